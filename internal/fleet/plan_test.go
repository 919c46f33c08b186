package fleet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlanCheck(t *testing.T) {
	for _, tt := range []struct {
		plan Plan
		want string
	}{
		{Plan{}, "name the targets: --device ID"},
		{Plan{Devices: []string{"a b"}}, `--device: invalid device id "a b"`},
		{Plan{Devices: []string{"d"}, Module: "m/1"}, "--module: invalid module id"},
		{Plan{Files: []string{"-", "-"}}, "--devices-file - is given more than once"},
		{Plan{Query: "  "}, "--query: the query is empty"},
		{Plan{Query: "SELECT deviceId FROM devices WHERE " + strings.Repeat("x", 8200)}, "IoT Hub accepts queries of at most 8192"},
		{Plan{Query: "SELECT * FROM devices.jobs"}, "not devices.jobs"},
		{Plan{Query: "DELETE x"}, "is not a device query"},
		{Plan{Query: "SELECT * FROM devices.modules", Module: "m"}, "--module cannot be combined with a FROM devices.modules query"},
	} {
		err := tt.plan.Check()
		require.Error(t, err, tt.want)
		var ie *InputError
		assert.ErrorAs(t, err, &ie)
		assert.Contains(t, err.Error(), tt.want)
	}
	assert.NoError(t, (&Plan{Devices: []string{"d"}, Query: "SELECT deviceId FROM devices"}).Check())
}

// TestPlanOneDuplicateRule: ids, files and the query combine, each target
// once, every duplicate counted, whatever source it came from.
func TestPlanOneDuplicateRule(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ids.txt")
	require.NoError(t, os.WriteFile(file, []byte("f1\nd1\nf1\n"), 0o600))
	p := Plan{Devices: []string{"d1", "d2", "d1"}, Files: []string{file, "-"}, Stdin: strings.NewReader("s1\nf1\n"), TempDir: dir}

	var listed []string
	dupes, err := p.Listed(func(t Target) error { listed = append(listed, t.String()); return nil })
	require.NoError(t, err)
	assert.Equal(t, []string{"d1", "d2", "f1", "s1"}, listed)
	assert.Equal(t, 4, dupes)

	p.Stdin = strings.NewReader("s1\nf1\n")
	p.Keep = func(t Target) bool { return t.DeviceID != "d2" }
	r, err := p.Resolve(context.Background(), true)
	require.NoError(t, err)
	defer r.Close()
	assert.True(t, r.Known)
	assert.Equal(t, 3, r.Total, "d2 left out by Keep")
	assert.Equal(t, 4, r.Duplicates())

	bad := Plan{Files: []string{filepath.Join(dir, "missing")}}
	_, err = bad.Listed(func(Target) error { return nil })
	var ie *InputError
	require.ErrorAs(t, err, &ie)
	assert.Contains(t, err.Error(), "cannot read it")
}

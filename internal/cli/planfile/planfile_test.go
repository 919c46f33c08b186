package planfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/invoke"
	"github.com/dmctl/dmctl/internal/cli/planfile"
	"github.com/dmctl/dmctl/internal/output"
)

func version(v int64) *int64 { return &v }

func samplePlan() *planfile.Plan {
	return &planfile.Plan{Format: planfile.FormatVersion, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Hub: "myhub.azure-devices.net",
		Method: "reboot", Payload: []byte(`{"delay":"<5s>"}`), Run: planfile.Run{Timeout: "30s", AbortIf: []string{"offline>10%"}},
		Targets: []planfile.Target{{DeviceID: "d-1", Version: version(3), ETag: "AAAAAAAAAAM="}, {DeviceID: "gw", ModuleID: "m1", Version: version(1), ETag: "AAAAAAAAAAE="}}}
}

func TestEncodeReadRoundTrip(t *testing.T) {
	b, err := planfile.Encode(samplePlan())
	require.NoError(t, err)
	text := string(b)
	assert.Contains(t, text, "\n    {\"deviceId\":\"d-1\",\"version\":3,\"etag\":\"AAAAAAAAAAM=\"},\n", "one target per line")
	assert.Contains(t, text, `"offline>10%"`, "no HTML escaping")
	assert.Contains(t, text, `"<5s>"`)
	path := filepath.Join(t.TempDir(), "p.plan")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	p, sum, err := planfile.Read(path)
	require.NoError(t, err)
	assert.Len(t, sum, 64)
	assert.Equal(t, samplePlan().Targets, p.Targets)
	assert.Equal(t, "reboot", p.Method)
	planned := p.Planned()
	assert.Equal(t, "gw/m1", planned[1].String())
	assert.Equal(t, int64(3), planned[0].Twin.Version)
}

func TestReadRefusesBadPlans(t *testing.T) {
	good, err := planfile.Encode(samplePlan())
	require.NoError(t, err)
	edit := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	for name, c := range map[string]struct{ text, want string }{
		"not JSON":         {"hello", "not a JSON plan"},
		"no format":        {`{"hub":"h"}`, `no "dmctlPlan"`},
		"format 2":         {edit(`"dmctlPlan": 1`, `"dmctlPlan": 2`), "plan format 2 is not one this dmctl reads"},
		"unknown field":    {edit(`"method"`, `"methd": "x", "method"`), `unknown field "methd"`},
		"duplicate":        {edit(`{"deviceId":"gw","moduleId":"m1"`, `{"deviceId":"d-1"`), "targets[1]: d-1 is listed twice (also targets[0])"},
		"no version":       {edit(`"version":3,`, ``), "targets[0] (d-1): no twin version and etag"},
		"no etag":          {edit(`"etag":"AAAAAAAAAAM="`, `"etag":""`), "targets[0] (d-1): no twin version and etag"},
		"bad device id":    {edit(`"deviceId":"d-1"`, `"deviceId":"a b"`), "targets[0]: deviceId"},
		"bad method":       {edit(`"method": "reboot"`, `"method": "re boot"`), `"method"`},
		"empty hub":        {edit(`"hub": "myhub.azure-devices.net"`, `"hub": ""`), `"hub" is empty`},
		"wrong field type": {edit(`"version":3`, `"version":"3"`), "version"},
	} {
		path := filepath.Join(t.TempDir(), "p.plan")
		require.NoError(t, os.WriteFile(path, []byte(c.text), 0o600))
		_, _, err := planfile.Read(path)
		require.Error(t, err, name)
		var fe *cmdutil.FlagError
		assert.True(t, errors.As(err, &fe), "%s: bad input (exit 2)", name)
		assert.Contains(t, err.Error(), "plan "+path+": ", name)
		assert.Contains(t, err.Error(), c.want, name)
	}
	_, _, err = planfile.Read(filepath.Join(t.TempDir(), "missing.plan"))
	assert.ErrorContains(t, err, "cannot read it")
}

// TestRunNamesInvokeFlags: every Run field names one of invoke's flags,
// and a Run read from invoke's flags gives the same values back to them.
func TestRunNamesInvokeFlags(t *testing.T) {
	f := cmdutil.NewFactory(&output.IOStreams{}, func(string) (string, bool) { return "", false })
	cmd := invoke.NewCmdInvoke(f, func(*invoke.Options) error { return nil })
	require.NoError(t, cmd.ParseFlags([]string{"--waves", "1,50%,100%", "--abort-if", "offline>10%", "--abort-if", "timeout>2", "--timeout", "45s", "--idempotent", "-c", "8",
		"--gate", "./check.sh", "--gate-timeout", "5m", "--gate-after-last", "--until-online", "72h"}))
	run, err := planfile.RunFromFlags(cmd.Flags())
	require.NoError(t, err)
	assert.Equal(t, "1,50%,100%", run.Waves)
	assert.Equal(t, []string{"offline>10%", "timeout>2"}, run.AbortIf)
	assert.Equal(t, "45s", run.Timeout)
	assert.True(t, run.Idempotent)
	assert.Equal(t, "8", run.Concurrency)
	assert.Equal(t, 10, run.MinSample, "defaults are recorded too")
	assert.Equal(t, "./check.sh", run.Gate)
	assert.Equal(t, "5m", run.GateTimeout)
	assert.True(t, run.GateAfterLast)
	assert.Equal(t, "72h", run.UntilOnline)

	again := invoke.NewCmdInvoke(f, func(*invoke.Options) error { return nil })
	require.NoError(t, run.SetFlags(again.Flags()))
	back, err := planfile.RunFromFlags(again.Flags())
	require.NoError(t, err)
	assert.Equal(t, run, back)
	assert.False(t, again.Flags().Changed("min-sample"), "a default stays not given")
	assert.True(t, again.Flags().Changed("waves"))
}

func TestCheckPayloadRefusesSecrets(t *testing.T) {
	assert.NoError(t, planfile.CheckPayload([]byte(`{"fw":"https://example.com/fw.bin"}`)))
	assert.Error(t, planfile.CheckPayload([]byte(`{"cs":"HostName=h;SharedAccessKeyName=s;SharedAccessKey=c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="}`)))
	assert.Error(t, planfile.CheckPayload([]byte(`{"password":"hunter2"}`)))
}

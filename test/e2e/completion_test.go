package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/test/testbin"
)

// candidates returns the completion candidates of `dmctl __complete args...`
// (the lines before cobra's ":<directive>" line, descriptions dropped).
func candidates(t *testing.T, env map[string]string, args ...string) []string {
	t.Helper()
	r := runDmctl(t, dmctlCmd{env: env}, append([]string{"__complete"}, args...)...)
	require.Equal(t, 0, r.code, r.stderr)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if strings.HasPrefix(l, ":") || l == "" {
			continue
		}
		name, _, _ := strings.Cut(l, "\t")
		out = append(out, name)
	}
	return out
}

func TestCompletion(t *testing.T) {
	t.Run("static lists", func(t *testing.T) {
		assert.Equal(t, []string{"F1", "S1", "S2", "S3"}, candidates(t, nil, "invoke", "reboot", "--tier", ""))
		assert.Equal(t, []string{"table", "wide", "json", "jsonl", "name"}, candidates(t, nil, "version", "-o", ""))
		assert.Contains(t, candidates(t, nil, "version", "--auth", ""), "azure-cli")
	})

	t.Run("no credential: silent, no hub call", func(t *testing.T) {
		assert.Empty(t, candidates(t, nil, "twin", "show", "--device", ""))
		assert.Empty(t, candidates(t, nil, "jobs", "show", ""))
	})

	hub := testbin.StartHubsim(t, "--devices", "12", "--seed", "9", "--no-throttle")
	env := map[string]string{"IOTHUB_CONNECTION_STRING": hub.ServiceConnectionString, "SSL_CERT_FILE": hub.CAFile}

	t.Run("device ids from the hub", func(t *testing.T) {
		got := candidates(t, env, "twin", "show", "--device", "sim-00001")
		assert.Equal(t, []string{"sim-000010", "sim-000011", "sim-000012"}, got)
		assert.Len(t, candidates(t, env, "jobs", "create", "reboot", "--device", ""), 12)
		assert.Len(t, candidates(t, env, "invoke", "reboot", "--device", ""), 12, "invoke completes device ids too")
	})

	t.Run("job ids from the hub", func(t *testing.T) {
		r := runDmctl(t, dmctlCmd{env: env}, "jobs", "create", "reboot", "--device", "sim-000001", "--job-id", "complete-me")
		require.Contains(t, []int{0, 4}, r.code, r.stderr)
		assert.Contains(t, candidates(t, env, "jobs", "show", "comp"), "complete-me")
	})

	t.Run("device ids through a saved profile", func(t *testing.T) {
		cfg := t.TempDir()
		r := runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": hub.ServiceConnectionString, "DMCTL_CONFIG_DIR": cfg}},
			"config", "set-profile", "sim", "--store-connection-string", "--ca-file", hub.CAFile)
		require.Equal(t, 0, r.code, r.stderr)
		got := candidates(t, map[string]string{"DMCTL_CONFIG_DIR": cfg}, "twin", "show", "--device", "sim-00000")
		assert.Len(t, got, 9)
	})

	t.Run("unreachable hub: silent", func(t *testing.T) {
		bad := map[string]string{"IOTHUB_CONNECTION_STRING": replaceKey(t, hub.ServiceConnectionString, "d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5d3Jvbmdrez0="), "SSL_CERT_FILE": hub.CAFile}
		assert.Empty(t, candidates(t, bad, "twin", "show", "--device", ""))
	})
}

// TestGeneratedFilesAreMarked: every checked-in generated file says so.
func TestGeneratedFilesAreMarked(t *testing.T) {
	root, err := testbin.ModuleRoot()
	require.NoError(t, err)
	for _, dir := range []string{"completions", "docs/reference", "docs/man"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		require.NoError(t, err)
		require.NotEmpty(t, entries, dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(root, dir, e.Name()))
			require.NoError(t, err)
			assert.Contains(t, string(b), "DO NOT EDIT", filepath.Join(dir, e.Name()))
		}
	}
}

package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain points os.UserConfigDir at an empty directory, so no test reads
// the profiles of the user running the tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dmctl-cli-test-config")
	if err != nil {
		panic(err)
	}
	_ = os.Setenv("XDG_CONFIG_HOME", dir)
	_ = os.Setenv("HOME", dir)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func writeProfiles(t *testing.T, te *testEnv, text string) string {
	t.Helper()
	dir := t.TempDir()
	te.env[EnvConfigDir] = dir
	require.NoError(t, os.WriteFile(filepath.Join(dir, configFileName), []byte(text), 0o600))
	return dir
}

func TestProfilePrecedence(t *testing.T) {
	const store = `
current: prod
profiles:
  prod: {hub: prod.azure-devices.net, auth: azure-cli, output: json, caFile: /etc/prod-ca.pem}
  lab: {hub: lab.azure-devices.net, output: jsonl}
`
	cases := []struct {
		name                      string
		args                      []string
		env                       map[string]string
		hub, authM, out, ca, prof string
	}{
		{name: "current profile", args: nil,
			hub: "prod.azure-devices.net", authM: "azure-cli", out: "json", ca: "/etc/prod-ca.pem", prof: "prod"},
		{name: "--profile wins over current", args: []string{"--profile", "lab"},
			hub: "lab.azure-devices.net", authM: "", out: "jsonl", prof: "lab"},
		{name: "DMCTL_PROFILE", env: map[string]string{EnvProfile: "lab"},
			hub: "lab.azure-devices.net", out: "jsonl", prof: "lab"},
		{name: "flags win over the profile", args: []string{"--hub", "other.azure-devices.net", "-o", "name", "--auth", "environment"},
			hub: "other.azure-devices.net", authM: "environment", out: "name", ca: "/etc/prod-ca.pem", prof: "prod"},
		{name: "environment wins over the profile", env: map[string]string{EnvHub: "env.azure-devices.net", EnvOutput: "wide"},
			hub: "env.azure-devices.net", authM: "azure-cli", out: "wide", ca: "/etc/prod-ca.pem", prof: "prod"},
		{name: "a connection string drops the profile's hub and auth", env: map[string]string{"IOTHUB_CONNECTION_STRING": "HostName=x.azure-devices.net;SharedAccessKeyName=s;SharedAccessKey=" + testKey},
			hub: "", authM: "", out: "json", ca: "/etc/prod-ca.pem", prof: "prod"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			writeProfiles(t, te, store)
			for k, v := range c.env {
				te.env[k] = v
			}
			code := te.run(append(c.args, "version")...)
			require.Equal(t, 0, code, te.errOut.String())
			g := te.f.Global
			assert.Equal(t, c.hub, g.Hub)
			assert.Equal(t, c.authM, g.Auth)
			assert.Equal(t, c.out, g.Output)
			assert.Equal(t, c.ca, g.CAFile)
			require.NotNil(t, g.profile)
			assert.Equal(t, c.prof, g.profile.name)
		})
	}
}

func TestProfileErrors(t *testing.T) {
	t.Run("unknown --profile is a usage error", func(t *testing.T) {
		te := newTestEnv(t, nil)
		writeProfiles(t, te, "profiles: {a: {hub: a.azure-devices.net}}\n")
		assert.Equal(t, ExitUsage, te.run("--profile", "b", "version"))
		assert.Contains(t, te.errOut.String(), `--profile: no profile "b"`)
	})
	t.Run("a profile's bad output names the profile", func(t *testing.T) {
		te := newTestEnv(t, nil)
		writeProfiles(t, te, "current: a\nprofiles: {a: {output: yaml}}\n")
		assert.Equal(t, ExitUsage, te.run("version"))
		assert.Contains(t, te.errOut.String(), `-o/--output (from profile "a")`)
	})
	t.Run("a broken store does not stop commands that use no profile", func(t *testing.T) {
		te := newTestEnv(t, nil)
		writeProfiles(t, te, "profiles: [not, a, map]\n")
		assert.Equal(t, 0, te.run("version"), te.errOut.String())
	})
	t.Run("no store, no profile", func(t *testing.T) {
		te := newTestEnv(t, nil)
		te.env[EnvConfigDir] = t.TempDir()
		assert.Equal(t, 0, te.run("version"))
		assert.Nil(t, te.f.Global.profile)
	})
	t.Run("bad profile names", func(t *testing.T) {
		te := newTestEnv(t, nil)
		te.env[EnvConfigDir] = t.TempDir()
		assert.Equal(t, ExitUsage, te.run("config", "set-profile", "../x", "--hub", "h.azure-devices.net"))
		assert.Contains(t, te.errOut.String(), `profile name "../x"`)
	})
}

func TestConfigCommands(t *testing.T) {
	te := newTestEnv(t, nil)
	dir := t.TempDir()
	te.env[EnvConfigDir] = dir
	te.env["IOTHUB_CONNECTION_STRING"] = "HostName=lab.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + testKey

	require.Equal(t, 0, te.run("config", "set-profile", "lab", "--store-connection-string"), te.errOut.String())
	st, err := os.Stat(filepath.Join(dir, configFileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := os.ReadFile(filepath.Join(dir, configFileName))
	require.NoError(t, err)
	assert.Contains(t, string(b), "current: lab")
	assert.Contains(t, string(b), testKey, "stored, as asked")

	te.out.Reset()
	require.Equal(t, 0, te.run("config", "get-profile"))
	assert.Equal(t, "name: lab\ncurrent: true\nconnectionString: HostName=lab.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=REDACTED\n", te.out.String())
	assert.NotContains(t, te.out.String()+te.errOut.String(), testKey)

	assert.Equal(t, ExitUsage, te.run("config", "set-profile", "lab"), "nothing to change")
	assert.Equal(t, ExitUsage, te.run("config", "use", "nope"))
	require.Equal(t, 0, te.run("config", "set-profile", "prod", "--hub", "prod", "--auth", "azure-cli"))
	te.out.Reset()
	require.Equal(t, 0, te.run("config", "list"))
	assert.Equal(t, "CURRENT   NAME   HUB                      AUTH\n*         lab    (connection string)      -\n          prod   prod.azure-devices.net   azure-cli\n", te.out.String())

	require.Equal(t, 0, te.run("config", "delete", "lab"))
	te.out.Reset()
	require.Equal(t, 0, te.run("config", "list", "-o", "json"))
	assert.JSONEq(t, `[{"name":"prod","current":false,"hub":"prod.azure-devices.net","auth":"azure-cli"}]`, te.out.String())
}

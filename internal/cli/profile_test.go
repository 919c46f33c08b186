package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
	"github.com/dmctl/dmctl/internal/output"
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

func writeProfiles(t *testing.T, te *cmdtest.Env, text string) string {
	t.Helper()
	dir := t.TempDir()
	te.Env[cmdutil.EnvConfigDir] = dir
	require.NoError(t, os.WriteFile(filepath.Join(dir, cmdutil.ConfigFileName), []byte(text), 0o600))
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
		{name: "DMCTL_PROFILE", env: map[string]string{cmdutil.EnvProfile: "lab"},
			hub: "lab.azure-devices.net", out: "jsonl", prof: "lab"},
		{name: "flags win over the profile", args: []string{"--hub", "other.azure-devices.net", "-o", "name", "--auth", "environment"},
			hub: "other.azure-devices.net", authM: "environment", out: "name", ca: "/etc/prod-ca.pem", prof: "prod"},
		{name: "environment wins over the profile", env: map[string]string{cmdutil.EnvHub: "env.azure-devices.net", cmdutil.EnvOutput: "wide"},
			hub: "env.azure-devices.net", authM: "azure-cli", out: "wide", ca: "/etc/prod-ca.pem", prof: "prod"},
		{name: "a connection string drops the profile's hub and auth", env: map[string]string{"IOTHUB_CONNECTION_STRING": "HostName=x.azure-devices.net;SharedAccessKeyName=s;SharedAccessKey=" + cmdtest.TestKey},
			hub: "", authM: "", out: "json", ca: "/etc/prod-ca.pem", prof: "prod"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			writeProfiles(t, te, store)
			for k, v := range c.env {
				te.Env[k] = v
			}
			code := te.Run(append(c.args, "version")...)
			require.Equal(t, 0, code, te.ErrOut.String())
			g := te.F.Global
			assert.Equal(t, c.hub, g.Hub)
			assert.Equal(t, c.authM, g.Auth)
			assert.Equal(t, c.out, g.Output)
			assert.Equal(t, c.ca, g.CAFile)
			require.NotNil(t, g.Applied)
			assert.Equal(t, c.prof, g.Applied.Name)
		})
	}
}

func TestProfileErrors(t *testing.T) {
	t.Run("unknown --profile is a usage error", func(t *testing.T) {
		te := newTestEnv(t, nil)
		writeProfiles(t, te, "profiles: {a: {hub: a.azure-devices.net}}\n")
		assert.Equal(t, cmdutil.ExitUsage, te.Run("--profile", "b", "version"))
		assert.Contains(t, te.ErrOut.String(), `--profile: no profile "b"`)
	})
	t.Run("a profile's bad output names the profile", func(t *testing.T) {
		te := newTestEnv(t, nil)
		writeProfiles(t, te, "current: a\nprofiles: {a: {output: yaml}}\n")
		assert.Equal(t, cmdutil.ExitUsage, te.Run("version"))
		assert.Contains(t, te.ErrOut.String(), `-o/--output (from profile "a")`)
	})
	t.Run("a broken store stops every command that may apply a profile, not version", func(t *testing.T) {
		te := newTestEnv(t, nil)
		writeProfiles(t, te, "profiles: [not, a, map]\n")
		assert.Equal(t, 0, te.Run("version"), te.ErrOut.String())
		te2 := newTestEnv(t, nil)
		te2.Env[cmdutil.EnvConfigDir] = te.Env[cmdutil.EnvConfigDir]
		assert.Equal(t, cmdutil.ExitUsage, te2.Run("invoke", "reboot", "--device", "d"))
		assert.Contains(t, te2.ErrOut.String(), "not a dmctl config file")
		assert.Empty(t, te2.Inv.Calls)
	})
	t.Run("no store, no profile", func(t *testing.T) {
		te := newTestEnv(t, nil)
		te.Env[cmdutil.EnvConfigDir] = t.TempDir()
		assert.Equal(t, 0, te.Run("version"))
		assert.Nil(t, te.F.Global.Applied)
	})
	t.Run("bad profile names", func(t *testing.T) {
		te := newTestEnv(t, nil)
		te.Env[cmdutil.EnvConfigDir] = t.TempDir()
		assert.Equal(t, cmdutil.ExitUsage, te.Run("config", "set-profile", "../x", "--hub", "h.azure-devices.net"))
		assert.Contains(t, te.ErrOut.String(), `profile name "../x"`)
	})
}

func TestConfigCommands(t *testing.T) {
	te := newTestEnv(t, nil)
	dir := t.TempDir()
	te.Env[cmdutil.EnvConfigDir] = dir
	te.Env["IOTHUB_CONNECTION_STRING"] = "HostName=lab.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + cmdtest.TestKey

	require.Equal(t, 0, te.Run("config", "set-profile", "lab", "--store-connection-string"), te.ErrOut.String())
	st, err := os.Stat(filepath.Join(dir, cmdutil.ConfigFileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := os.ReadFile(filepath.Join(dir, cmdutil.ConfigFileName))
	require.NoError(t, err)
	assert.Contains(t, string(b), "current: lab")
	assert.Contains(t, string(b), cmdtest.TestKey, "stored, as asked")

	te.Out.Reset()
	require.Equal(t, 0, te.Run("config", "get-profile"))
	assert.Equal(t, "name: lab\ncurrent: true\nconnectionString: HostName=lab.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=REDACTED\n", te.Out.String())
	assert.NotContains(t, te.Out.String()+te.ErrOut.String(), cmdtest.TestKey)

	assert.Equal(t, cmdutil.ExitUsage, te.Run("config", "set-profile", "lab"), "nothing to change")
	assert.Equal(t, cmdutil.ExitUsage, te.Run("config", "use", "nope"))
	require.Equal(t, 0, te.Run("config", "set-profile", "prod", "--hub", "prod", "--auth", "azure-cli"))
	te.Out.Reset()
	require.Equal(t, 0, te.Run("config", "list"))
	assert.Equal(t, "CURRENT   NAME   HUB                      AUTH\n*         lab    (connection string)      -\n          prod   prod.azure-devices.net   azure-cli\n", te.Out.String())

	require.Equal(t, 0, te.Run("config", "delete", "lab"))
	te.Out.Reset()
	require.Equal(t, 0, te.Run("config", "list", "-o", "json"))
	assert.JSONEq(t, `[{"name":"prod","current":false,"hub":"prod.azure-devices.net","auth":"azure-cli"}]`, te.Out.String())
}

// leakKey is a key like IoT Hub's, planted in config files to check that no
// message quotes them.
const leakKey = "8H02KG1w5GAu7YMgj0qgUaNsQP0RxSUkHDaDxLg14f4="

func assertNoPieceOf(t *testing.T, out, secret string) {
	t.Helper()
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(out, secret[i:i+8]) {
			t.Fatalf("output holds %q, a piece of the secret:\n%s", secret[i:i+8], out)
		}
	}
}

// A malformed config.yaml is named with the line that is wrong; the
// message never holds the file's text (yaml.v3 quotes values, anchors and
// tags in some messages).
func TestConfigFileErrorsNeverQuoteTheFile(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"string where a profile belongs", "profiles:\n  lab: " + leakKey + "\n", "line 2: a string where a profile (a mapping of hub, auth, caFile, output and connectionString) belongs"},
		{"top level is a string", leakKey + "\n", "line 1: a string where the file's top level (a mapping of current and profiles) belongs"},
		{"list where profiles belong", "profiles: [" + leakKey + "]\n", "line 1: a list where the profiles (a mapping of NAME: profile) belongs"},
		{"mapping where a string belongs", "profiles:\n  lab:\n    connectionString: {SharedAccessKey: " + leakKey + "}\n", "line 3: a mapping where a string belongs"},
		{"unknown anchor", "profiles:\n  lab: {hub: *" + strings.TrimRight(leakKey, "=") + "}\n", "line 2: not valid YAML (an alias names an anchor that is not defined)"},
		{"bad indentation", "profiles:\n  lab:\n    hub: x\n   connectionString: " + leakKey + "\n", "not valid YAML (did not find expected key)"},
		{"tab", "profiles:\n\tlab: " + leakKey + "\n", "line 2: not valid YAML (found character that cannot start any token)"},
		{"bad escape", "profiles: {lab: {connectionString: \"" + leakKey + "\\q\"}}\n", "line 1: not valid YAML (found unknown escape character)"},
		{"bad binary", "profiles: {lab: {connectionString: !!binary " + leakKey + "*}}\n", "a !!binary value is not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, args := range [][]string{{"config", "list"}, {"config", "get-profile", "lab"}, {"--profile", "lab", "version"}} {
				te := newTestEnv(t, nil)
				dir := writeProfiles(t, te, tt.text)
				code := te.Run(args...)
				out := te.Out.String() + te.ErrOut.String()
				assert.Equal(t, cmdutil.ExitUsage, code, "%v: %s", args, out)
				assert.Contains(t, out, filepath.Join(dir, cmdutil.ConfigFileName)+": not a dmctl config file: ")
				assert.Contains(t, out, tt.want)
				assertNoPieceOf(t, out, leakKey)
				assert.NotContains(t, out, leakKey[:7], "yaml.v3 quotes the first 7 characters of a value")
			}
		})
	}
}

// A stored connection string that cannot be read is shown without its text
// by get-profile and list, and refused naming the profile when used.
func TestStoredConnectionStringUnreadable(t *testing.T) {
	for name, stored := range map[string]string{
		"colon separator":  "HostName=h.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey:" + leakKey,
		"bare key":         "HostName=h.azure-devices.net;SharedAccessKeyName=service;" + leakKey,
		"key in HostName":  "HostName=" + leakKey + ";SharedAccessKeyName=service;SharedAccessKey=" + leakKey,
		"key as policy":    "HostName=h.azure-devices.net;SharedAccessKeyName=" + leakKey + ";SharedAccessKey=" + leakKey,
		"truncated base64": "HostName=h.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + leakKey[:30],
	} {
		t.Run(name, func(t *testing.T) {
			text := "current: lab\nprofiles:\n  lab:\n    hub: " + leakKey + "\n    connectionString: \"" + stored + "\"\n"
			te := newTestEnv(t, nil)
			writeProfiles(t, te, text)
			require.Equal(t, 0, te.Run("config", "get-profile", "lab"), te.ErrOut.String())
			assert.Contains(t, te.Out.String(), "connectionString: (stored, unreadable: ")
			assert.Contains(t, te.Out.String(), "hub: (stored, not a host name)")
			te.Out.Reset()
			require.Equal(t, 0, te.Run("config", "list", "-o", "json"), te.ErrOut.String())
			assert.Contains(t, te.Out.String(), `"connectionString": "(stored, unreadable: `)
			assertNoPieceOf(t, te.Out.String()+te.ErrOut.String(), leakKey)

			// Used for a command: refused before anything is sent, naming the profile.
			ios, _, out, errOut := output.Test()
			vars := map[string]string{cmdutil.EnvConfigDir: te.Env[cmdutil.EnvConfigDir]}
			f := cmdutil.NewFactory(ios, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
			require.NoError(t, os.WriteFile(filepath.Join(vars[cmdutil.EnvConfigDir], cmdutil.ConfigFileName),
				[]byte("current: lab\nprofiles:\n  lab:\n    connectionString: \""+stored+"\"\n"), 0o600))
			code := Run(context.Background(), f, []string{"invoke", "reboot", "--device", "d"})
			assert.Equal(t, cmdutil.ExitUsage, code, errOut.String())
			assert.Contains(t, errOut.String(), `Error: profile "lab": invalid connection string: `)
			assertNoPieceOf(t, out.String()+errOut.String(), leakKey)
		})
	}
}

func TestProfileNamesThatMayBeSecretsAreNotEchoed(t *testing.T) {
	te := newTestEnv(t, nil)
	writeProfiles(t, te, "profiles: {a: {hub: a.azure-devices.net}}\n")
	te.Env[cmdutil.EnvProfile] = "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + leakKey
	assert.Equal(t, cmdutil.ExitUsage, te.Run("version"))
	assert.Contains(t, te.ErrOut.String(), "DMCTL_PROFILE: no profile (the name given) in ")
	assertNoPieceOf(t, te.ErrOut.String(), leakKey)

	te = newTestEnv(t, nil)
	te.Env[cmdutil.EnvConfigDir] = t.TempDir()
	assert.Equal(t, cmdutil.ExitUsage, te.Run("config", "get-profile", leakKey))
	assert.Contains(t, te.ErrOut.String(), "profile name (the name given): use 1-64 letters")
	assertNoPieceOf(t, te.ErrOut.String(), leakKey)
}

// --debug output goes through the redacting writer: no key, signature,
// bearer token, client secret or access token reaches stderr, also when a
// line arrives in pieces.
func TestRedactingWriterDebugLines(t *testing.T) {
	const token = "eyJhbGciOiJFUzI1NiIsImtpZCI6IngifQ.eyJhdWQiOiJodHRwczovL2lvdGh1YnMuYXp1cmUubmV0In0.c2lnbmF0dXJl"
	const secret = "Rq8~vX.2mN_kT4pL9wZ-sY6bH3cJ1fG5dQ0aE7uI"
	const sig = "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D"
	var b strings.Builder
	w := cmdutil.NewRedactingWriter(&b)
	writes := []string{
		"> POST https://h/twins/d/methods {Authorization: SharedAccessSignature sr=h&sig=" + sig[:10], sig[10:] + "&se=1, Content-Type: application/json}\n",
		"> POST https://login/t/oauth2/v2.0/token body=client_id=c&client_secret=" + secret + "&grant_type=client_credentials\n",
		`< 200 body={"token_type":"Bearer","access_token":"` + token + `","expires_in":3600}` + "\n",
		"> GET https://h/twins/d {Authorization: Bearer " + token + "}\n",
		"headers: map[Authorization:[" + token + "] Accept:[*/*]]\n",
		"[Authentication] cs HostName=h;SharedAccessKeyName=p;SharedAccessKey:" + leakKey + "\n",
		"a last line without newline " + leakKey,
	}
	for _, s := range writes {
		_, err := w.Write([]byte(s))
		require.NoError(t, err)
	}
	require.NoError(t, w.Flush())
	out := b.String()
	for _, s := range []string{token, secret, sig, leakKey} {
		assertNoPieceOf(t, out, s)
	}
	assert.Contains(t, out, "{Authorization: SharedAccessSignature sr=h&sig=REDACTED&se=1, Content-Type: application/json}")
	assert.Contains(t, out, "headers: map[Authorization:[REDACTED] Accept:[*/*]]")
	assert.Contains(t, out, "client_secret=REDACTED&grant_type=client_credentials")
	assert.Contains(t, out, `"access_token":"REDACTED"`)
	assert.Equal(t, 7, strings.Count(out, "\n"), out)
}

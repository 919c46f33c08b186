package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/test/testbin"
)

// secretsLeakedPiece returns the first 8-character window of secret that
// appears in out, or "".
func secretsLeakedPiece(out, secret string) string {
	for i := 0; i+8 <= len(secret); i++ {
		if w := secret[i : i+8]; strings.Contains(out, w) {
			return w
		}
	}
	return ""
}

// secretsAssertNoPiece fails when any 8-character run of secret shows in
// stdout or stderr.
func secretsAssertNoPiece(t *testing.T, r dmctlRun, secret string) {
	t.Helper()
	if w := secretsLeakedPiece(r.stdout+r.stderr, secret); w != "" {
		t.Errorf("output holds %q, 8 characters of the key\nstdout: %s\nstderr: %s", w, r.stdout, r.stderr)
	}
}

// secretsMalformed are connection strings that embed key in every position
// a hurried paste can put it, none of them usable.
func secretsMalformed(host, key string) map[string]string {
	const pol = "SharedAccessKeyName=service"
	h := "HostName=" + host
	bare := strings.TrimRight(key, "=")
	return map[string]string{
		"key as HostName":              "HostName=" + key + ";" + pol + ";SharedAccessKey=" + key,
		"unpadded key as HostName":     "HostName=" + bare + ";" + pol + ";SharedAccessKey=" + key,
		"key as GatewayHostName":       h + ";" + pol + ";SharedAccessKey=" + key + ";GatewayHostName=" + key,
		"key as SharedAccessKeyName":   h + ";SharedAccessKeyName=" + key + ";SharedAccessKey=" + key,
		"key as SharedAccessSignature": h + ";" + pol + ";SharedAccessSignature=" + key,
		"key and signature":            h + ";" + pol + ";SharedAccessKey=" + key + ";SharedAccessSignature=" + key,
		"key as DeviceId":              h + ";DeviceId=" + key + ";SharedAccessKey=" + key,
		"key as ModuleId":              h + ";ModuleId=" + key + ";SharedAccessKey=" + key,
		"key as x509":                  h + ";DeviceId=d;x509=" + key,
		"key as a bare part":           h + ";" + pol + ";" + key,
		"unpadded key as a bare part":  h + ";" + pol + ";" + bare,
		"key after SharedAccessKey:":   h + ";" + pol + ";SharedAccessKey:" + key,
		"key after sharedaccesskey:":   h + ";" + pol + ";sharedaccesskey:" + key,
		"key after a space":            h + ";" + pol + ";SharedAccessKey " + key,
		"key under an unknown name":    h + ";" + pol + ";Key=" + key,
		"key duplicated":               h + ";" + pol + ";SharedAccessKey=" + key + ";SharedAccessKey=" + key,
		"key truncated":                h + ";" + pol + ";SharedAccessKey=" + key[:30],
		"key quoted":                   h + ";" + pol + ";SharedAccessKey=\"" + key + "\"",
		"only the key":                 key,
	}
}

// secretsCommands are the commands that resolve a credential, and the exit
// code each documents for a credential it cannot use: 2 (bad input,
// nothing sent), and 3 for doctor (see `dmctl doctor --help`: 3 when the
// credential failed).
var secretsCommands = []struct {
	name string
	args []string
	code int
}{
	{"invoke", []string{"invoke", "reboot", "--device", "sim-000001"}, 2},
	{"jobs create", []string{"jobs", "create", "reboot", "--device", "sim-000001", "--yes"}, 2},
	{"twin show", []string{"twin", "show", "--device", "sim-000001"}, 2},
	{"doctor", []string{"doctor", "--timeout", "5s"}, 3},
}

// TestSecretsNeverInOutput feeds malformed connection strings that hold the
// hub's real service key through every way dmctl takes one, to every command
// that reads one, with and without --debug: each exits with its documented
// code, names the input, and prints no 8 characters of the key.
func TestSecretsNeverInOutput(t *testing.T) {
	methodLog := filepath.Join(t.TempDir(), "methods.jsonl")
	hub := testbin.StartHubsim(t, "--devices", "2", "--no-throttle", "--method-log", methodLog)
	key := keyOf(t, hub.ServiceConnectionString)

	type input struct {
		name  string
		setup func(t *testing.T, cs string) (dmctlCmd, []string, string) // env, extra args, what the message names
	}
	inputs := []input{
		{"--connection-string", func(t *testing.T, cs string) (dmctlCmd, []string, string) {
			return dmctlCmd{env: map[string]string{}}, []string{"--connection-string", cs}, "--connection-string"
		}},
		{"--connection-string-file", func(t *testing.T, cs string) (dmctlCmd, []string, string) {
			p := filepath.Join(t.TempDir(), "hub.cs")
			require.NoError(t, os.WriteFile(p, []byte(cs+"\n"), 0o600))
			return dmctlCmd{env: map[string]string{}}, []string{"--connection-string-file", p}, "--connection-string-file " + p
		}},
		{"IOTHUB_CONNECTION_STRING", func(t *testing.T, cs string) (dmctlCmd, []string, string) {
			return dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": cs}}, nil, "IOTHUB_CONNECTION_STRING"
		}},
		{"stored profile", func(t *testing.T, cs string) (dmctlCmd, []string, string) {
			dir := t.TempDir()
			cfg := "current: lab\nprofiles:\n  lab:\n    connectionString: '" + strings.ReplaceAll(cs, "'", "''") + "'\n"
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600))
			return dmctlCmd{env: map[string]string{"DMCTL_CONFIG_DIR": dir}}, []string{"--profile", "lab"}, `profile "lab"`
		}},
	}

	var mu sync.Mutex
	ran := 0
	for csName, cs := range secretsMalformed(hub.HostName, key) {
		t.Run(csName, func(t *testing.T) {
			t.Parallel()
			for _, in := range inputs {
				for _, c := range secretsCommands {
					for _, debug := range []bool{false, true} {
						env, extra, names := in.setup(t, cs)
						args := append(append(append([]string{}, c.args...), "--ca-file", hub.CAFile), extra...)
						if debug {
							args = append(args, "--debug")
						}
						r := runDmctl(t, env, args...)
						label := in.name + " / " + c.name
						if debug {
							label += " / --debug"
						}
						assert.Equal(t, c.code, r.code, "%s: exit code\nstderr: %s", label, r.stderr)
						assert.Contains(t, r.stdout+r.stderr, names, "%s: the message names the input", label)
						assert.NotRegexp(t, `goroutine \d+|panic:`, r.stderr, label)
						secretsAssertNoPiece(t, r, key)
						mu.Lock()
						ran++
						mu.Unlock()
					}
				}
			}
		})
	}
	t.Cleanup(func() {
		b, err := os.ReadFile(methodLog)
		if err == nil {
			assert.Empty(t, strings.TrimSpace(string(b)), "no method reached a device")
		}
		t.Logf("%d runs", ran)
	})
}

// TestSecretsStoredProfileViews: get-profile and list show a stored
// connection string that cannot be read without its text; a malformed
// config.yaml is named with its line, never quoted.
func TestSecretsStoredProfileViews(t *testing.T) {
	key := "8H02KG1w5GAu7YMgj0qgUaNsQP0RxSUkHDaDxLg14f4="
	for name, cs := range secretsMalformed("127.0.0.1:1", key) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := "current: lab\nprofiles:\n  lab:\n    connectionString: '" + strings.ReplaceAll(cs, "'", "''") + "'\n"
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600))
			env := dmctlCmd{env: map[string]string{"DMCTL_CONFIG_DIR": dir}}
			for _, args := range [][]string{{"config", "get-profile", "lab"}, {"config", "get-profile", "lab", "-o", "json"}, {"config", "list"}, {"config", "list", "-o", "json"}} {
				r := runDmctl(t, env, args...)
				// A view of the store: it works (exit 0) and says the string is unreadable.
				assert.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
				if args[1] == "get-profile" {
					// Unreadable, or (a SharedAccessSignature instead of a key) shown redacted.
					assert.Regexp(t, `\(stored, unreadable|SharedAccessSignature=REDACTED`, r.stdout, "%v", args)
				}
				assert.Contains(t, r.stdout, "lab", "%v", args)
				secretsAssertNoPiece(t, r, key)
			}
		})
	}

	broken := map[string]string{
		"key where a profile belongs": "profiles:\n  lab: " + key + "\n",
		"key in an anchor":            "profiles:\n  lab: {connectionString: *" + strings.TrimRight(key, "=") + "}\n",
		"key after a tab":             "profiles:\n\tlab: " + key + "\n",
		"key in a mapping":            "profiles:\n  lab:\n    connectionString: {SharedAccessKey: " + key + "}\n",
		"key at the top":              key + "\n",
	}
	for name, text := range broken {
		t.Run("config file: "+name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
			env := dmctlCmd{env: map[string]string{"DMCTL_CONFIG_DIR": dir}}
			for _, args := range [][]string{{"config", "list"}, {"config", "get-profile", "lab"},
				{"invoke", "reboot", "--device", "d", "--profile", "lab"}, {"twin", "show", "--device", "d", "--profile", "lab"}} {
				r := runDmctl(t, env, args...)
				assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
				assert.Contains(t, r.stderr, path+": not a dmctl config file: ", "%v", args)
				assert.Contains(t, r.stderr, "line ", "%v: the message names the line", args)
				secretsAssertNoPiece(t, r, key)
				assert.NotContains(t, r.stdout+r.stderr, key[:7], "yaml.v3 quotes 7 characters of a value")
			}
		})
	}
}

// TestSecretsHubNeverEchoesAConnectionString: a connection string given to
// --hub or DMCTL_HUB is refused naming --hub, without its text.
func TestSecretsHubNeverEchoesAConnectionString(t *testing.T) {
	key := "8H02KG1w5GAu7YMgj0qgUaNsQP0RxSUkHDaDxLg14f4="
	for _, v := range []string{
		"HostName=127.0.0.1:1;SharedAccessKeyName=service;SharedAccessKey=" + key,
		key,
		"SharedAccessKey " + key,
	} {
		for _, c := range secretsCommands {
			for _, viaEnv := range []bool{false, true} {
				env := dmctlCmd{env: map[string]string{}}
				args := append([]string{}, c.args...)
				if viaEnv {
					env.env["DMCTL_HUB"] = v
				} else {
					args = append(args, "--hub", v)
				}
				r := runDmctl(t, env, append(args, "--auth", "environment")...)
				assert.Equal(t, 2, r.code, "%v (env %v): %s", c.args, viaEnv, r.stderr)
				assert.Contains(t, r.stderr, "--hub", "%v", c.args)
				secretsAssertNoPiece(t, r, key)
			}
		}
	}
}

package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/test/testbin"
)

// TestDmctlAgainstHubsim drives the built hubsim with the built dmctl: the
// two are independent readings of the wire contract, so each checks the other.
func TestDmctlAgainstHubsim(t *testing.T) {
	hub := testbin.StartHubsim(t, "--devices", "20", "--register", "offline-1", "--no-throttle", "--seed", "3")

	sasEnv := dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": hub.ServiceConnectionString}}

	t.Run("reboot succeeds", func(t *testing.T) {
		r := runDmctl(t, sasEnv, "invoke", "reboot", "--ca-file", hub.CAFile,
			"--device", "sim-000001", "--device", "sim-000002", "-o", "json")
		require.Equal(t, 0, r.code, r.stderr)
		var results []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &results))
		require.Len(t, results, 2)
		for _, res := range results {
			assert.Equal(t, "succeeded", res["outcome"])
			assert.EqualValues(t, 200, res["status"])
			assert.EqualValues(t, 1, res["attempts"])
		}
		assert.NotContains(t, r.stdout+r.stderr, keyOf(t, hub.ServiceConnectionString))
	})

	t.Run("unknown method is a device status 404, exit 4", func(t *testing.T) {
		r := runDmctl(t, sasEnv, "invoke", "selfDestruct", "--ca-file", hub.CAFile, "--device", "sim-000003", "-o", "jsonl")
		assert.Equal(t, 4, r.code, r.stderr)
		assert.Contains(t, r.stdout, `"outcome":"failed"`)
		assert.Contains(t, r.stdout, `"status":404`)
	})

	t.Run("offline registered device", func(t *testing.T) {
		r := runDmctl(t, sasEnv, "invoke", "reboot", "--ca-file", hub.CAFile, "--device", "offline-1", "-o", "jsonl")
		assert.Equal(t, 4, r.code, r.stderr)
		assert.Contains(t, r.stdout, `"outcome":"offline"`)
		assert.Contains(t, r.stdout, "404103")
	})

	t.Run("unknown device", func(t *testing.T) {
		r := runDmctl(t, sasEnv, "invoke", "reboot", "--ca-file", hub.CAFile, "--device", "no-such-device", "-o", "jsonl")
		assert.Equal(t, 4, r.code, r.stderr)
		assert.Contains(t, r.stdout, `"outcome":"notFound"`)
		assert.Contains(t, r.stdout, "404001")
	})

	t.Run("policy without ServiceConnect is refused, exit 3", func(t *testing.T) {
		env := dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": hub.RegistryReadConnectionString}}
		r := runDmctl(t, env, "invoke", "reboot", "--ca-file", hub.CAFile, "--device", "sim-000004")
		assert.Equal(t, 3, r.code, r.stderr)
		assert.NotContains(t, r.stdout+r.stderr, keyOf(t, hub.RegistryReadConnectionString))
		assert.Contains(t, r.stderr, "SharedAccessKey=REDACTED")
	})

	t.Run("wrong key is refused, exit 3", func(t *testing.T) {
		bad := replaceKey(t, hub.ServiceConnectionString, "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkh")
		env := dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": bad}}
		r := runDmctl(t, env, "invoke", "reboot", "--ca-file", hub.CAFile, "--device", "sim-000004")
		assert.Equal(t, 3, r.code, r.stderr)
		assert.NotContains(t, r.stdout+r.stderr, "d3Jvbmcga2V5")
	})

	t.Run("out-of-range timeout is caught before sending, exit 2", func(t *testing.T) {
		r := runDmctl(t, sasEnv, "invoke", "reboot", "--ca-file", hub.CAFile, "--device", "sim-000005", "--timeout", "301")
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, "--timeout")
	})

	// Entra: azidentity's real EnvironmentCredential gets a token from
	// hubsim's token endpoint; the hub checks it and the principal's role.
	entraEnv := func(p testbin.Principal) dmctlCmd {
		return dmctlCmd{env: map[string]string{
			"AZURE_TENANT_ID":         hub.Entra.TenantID,
			"AZURE_CLIENT_ID":         p.ClientID,
			"AZURE_CLIENT_SECRET":     p.ClientSecret,
			"AZURE_AUTHORITY_HOST":    hub.Entra.AuthorityHost,
			"AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
			"SSL_CERT_FILE":           hub.CAFile,
		}}
	}
	t.Run("entra contributor invokes", func(t *testing.T) {
		p := hub.Principal(t, "contributor")
		r := runDmctl(t, entraEnv(p), "invoke", "reboot", "--auth", "environment", "--hub", hub.HostName,
			"--ca-file", hub.CAFile, "--device", "sim-000006", "-o", "jsonl")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, `"outcome":"succeeded"`)
		assert.NotContains(t, r.stdout+r.stderr, p.ClientSecret)
	})
	for _, name := range []string{"reader", "norole"} {
		t.Run("entra "+name+" is refused, exit 3", func(t *testing.T) {
			p := hub.Principal(t, name)
			r := runDmctl(t, entraEnv(p), "invoke", "reboot", "--auth", "environment", "--hub", hub.HostName,
				"--ca-file", hub.CAFile, "--device", "sim-000007")
			assert.Equal(t, 3, r.code, r.stderr)
			assert.Contains(t, r.stderr, "IoT Hub Data Contributor")
			assert.NotContains(t, r.stdout+r.stderr, p.ClientSecret)
		})
	}
}

func keyOf(t *testing.T, cs string) string {
	t.Helper()
	for _, p := range strings.Split(cs, ";") {
		if k, ok := strings.CutPrefix(p, "SharedAccessKey="); ok {
			return k
		}
	}
	t.Fatalf("no SharedAccessKey in connection string")
	return ""
}

func replaceKey(t *testing.T, cs, key string) string {
	t.Helper()
	parts := strings.Split(cs, ";")
	for i, p := range parts {
		if strings.HasPrefix(p, "SharedAccessKey=") {
			parts[i] = "SharedAccessKey=" + key
			return strings.Join(parts, ";")
		}
	}
	t.Fatalf("no SharedAccessKey in connection string")
	return ""
}

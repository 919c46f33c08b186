package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/sas"
	"github.com/dmctl/dmctl/test/testbin"
)

// otherCA writes a CA certificate that did not sign hubsim's certificate.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "some other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "other-ca.pem")
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return p
}

type doctorOut struct {
	OK     bool `json:"ok"`
	Checks []struct {
		Name, Status, Detail, Hint string
	} `json:"checks"`
}

func (d doctorOut) status(name string) string {
	for _, c := range d.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return ""
}

func (d doctorOut) check(name string) (detail, hint string) {
	for _, c := range d.Checks {
		if c.Name == name {
			return c.Detail, c.Hint
		}
	}
	return "", ""
}

func runDoctor(t *testing.T, env map[string]string, args ...string) (doctorOut, dmctlRun) {
	t.Helper()
	r := runDmctl(t, dmctlCmd{env: env}, append([]string{"doctor", "-o", "json", "--timeout", "10s"}, args...)...)
	var d doctorOut
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &d), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return d, r
}

// TestDoctorVerdicts: a good setup, a wrong key, an expired token and a
// wrong CA give four distinct verdicts and exit codes.
func TestDoctorVerdicts(t *testing.T) {
	hub := testbin.StartHubsim(t, "--devices", "5", "--seed", "1")
	cs := hub.ServiceConnectionString
	key := keyOf(t, cs)

	t.Run("good setup", func(t *testing.T) {
		d, r := runDoctor(t, map[string]string{"IOTHUB_CONNECTION_STRING": cs}, "--ca-file", hub.CAFile)
		assert.Equal(t, 0, r.code, r.stdout+r.stderr)
		assert.True(t, d.OK)
		for _, name := range []string{"credential", "token", "reachable", "tls", "clock", "permission"} {
			assert.Equal(t, "pass", d.status(name), name)
		}
		detail, _ := d.check("permission")
		assert.Contains(t, detail, "5 devices")
		detail, _ = d.check("token")
		assert.Contains(t, detail, "audience "+hub.HTTPSAddr)
		assert.NotContains(t, r.stdout+r.stderr, key)
	})

	t.Run("wrong key", func(t *testing.T) {
		wrong := replaceKey(t, cs, "d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5d3Jvbmdrez0=")
		d, r := runDoctor(t, map[string]string{"IOTHUB_CONNECTION_STRING": wrong}, "--ca-file", hub.CAFile)
		assert.Equal(t, 3, r.code, r.stdout+r.stderr)
		assert.False(t, d.OK)
		assert.Equal(t, "pass", d.status("credential"))
		assert.Equal(t, "pass", d.status("tls"))
		assert.Equal(t, "fail", d.status("permission"))
		detail, hint := d.check("permission")
		assert.Contains(t, detail, "401")
		assert.Contains(t, hint, "key is current")
		assert.Contains(t, r.stderr, "1 of")
	})

	t.Run("expired token", func(t *testing.T) {
		parsed, err := connstr.ParseService(cs)
		require.NoError(t, err)
		k, err := sas.DecodeKey(parsed.SharedAccessKey)
		require.NoError(t, err)
		tok := sas.NewToken(parsed.HostName, parsed.SharedAccessKeyName, k, time.Now().Add(-2*time.Hour))
		expired := "HostName=" + parsed.HostName + ";SharedAccessKeyName=" + parsed.SharedAccessKeyName + ";SharedAccessSignature=" + tok
		d, r := runDoctor(t, map[string]string{"IOTHUB_CONNECTION_STRING": expired}, "--ca-file", hub.CAFile)
		assert.Equal(t, 3, r.code, r.stdout+r.stderr)
		assert.Equal(t, "fail", d.status("credential"))
		assert.Equal(t, "fail", d.status("token"))
		detail, _ := d.check("token")
		assert.Contains(t, detail, "expired at")
		assert.Equal(t, "pass", d.status("tls"), "the hub itself is fine")
		assert.NotContains(t, r.stdout+r.stderr, strings.SplitN(tok, "sig=", 2)[1][:10])
	})

	t.Run("wrong CA", func(t *testing.T) {
		d, r := runDoctor(t, map[string]string{"IOTHUB_CONNECTION_STRING": cs}, "--ca-file", otherCA(t))
		assert.Equal(t, 4, r.code, r.stdout+r.stderr)
		assert.Equal(t, "pass", d.status("credential"))
		assert.Equal(t, "pass", d.status("reachable"))
		assert.Equal(t, "fail", d.status("tls"))
		_, hint := d.check("tls")
		assert.Contains(t, hint, "--ca-file")
		assert.Equal(t, "skip", d.status("permission"))
	})
}

// TestProfiles: a profile saved with its connection string drives invoke
// and doctor, the file is 0600, and the secret is never printed.
func TestProfiles(t *testing.T) {
	hub := testbin.StartHubsim(t, "--devices", "3", "--seed", "2")
	cs := hub.ServiceConnectionString
	cfg := t.TempDir()
	base := map[string]string{"DMCTL_CONFIG_DIR": cfg}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	r := runDmctl(t, dmctlCmd{env: with("IOTHUB_CONNECTION_STRING", cs)}, "config", "set-profile", "lab", "--store-connection-string", "--ca-file", hub.CAFile, "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	st, err := os.Stat(filepath.Join(cfg, "config.yaml"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	r = runDmctl(t, dmctlCmd{env: base}, "config", "set-profile", "prod", "--hub", "myhub.azure-devices.net", "--auth", "azure-cli")
	require.Equal(t, 0, r.code, r.stderr)

	r = runDmctl(t, dmctlCmd{env: base}, "config", "list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "CURRENT   NAME   HUB                       AUTH\n"+
		"*         lab    (connection string)       -\n"+
		"          prod   myhub.azure-devices.net   azure-cli\n", r.stdout)

	r = runDmctl(t, dmctlCmd{env: base}, "config", "get-profile", "lab", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "SharedAccessKey=REDACTED")
	assert.NotContains(t, r.stdout+r.stderr, keyOf(t, cs))

	// The current profile (lab) supplies the credential, the CA and -o json.
	r = runDmctl(t, dmctlCmd{env: base}, "invoke", "reboot", "--device", "sim-000001", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"outcome": "succeeded"`)
	assert.NotContains(t, r.stdout+r.stderr, keyOf(t, cs))

	d, dr := runDoctor(t, base)
	assert.Equal(t, 0, dr.code, dr.stdout+dr.stderr)
	detail, _ := d.check("profile")
	assert.Contains(t, detail, `"lab"`)
	detail, _ = d.check("credential")
	assert.Contains(t, detail, `profile "lab"`)

	// DMCTL_PROFILE and --profile select another profile; an unknown one is exit 2.
	r = runDmctl(t, dmctlCmd{env: with("DMCTL_PROFILE", "nope")}, "invoke", "reboot", "--device", "sim-000001")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, `DMCTL_PROFILE: no profile "nope"`)

	r = runDmctl(t, dmctlCmd{env: base}, "config", "use", "prod")
	require.Equal(t, 0, r.code, r.stderr)
	r = runDmctl(t, dmctlCmd{env: base}, "--profile", "lab", "twin", "show", "--device", "sim-000002", "--path", "deviceId")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "\"sim-000002\"\n", r.stdout)

	r = runDmctl(t, dmctlCmd{env: base}, "config", "delete", "lab")
	require.Equal(t, 0, r.code, r.stderr)
	r = runDmctl(t, dmctlCmd{env: base}, "config", "list", "-o", "name")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "prod\n", r.stdout)
}

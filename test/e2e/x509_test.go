package e2e

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/testkit"
)

// TestX509DeviceAgent runs the hubsim binary with X.509 devices declared by
// --register (a self-signed one by its SHA-256 thumbprint, a CA-signed one
// trusted through --ca-cert), connects `hubsim device --cert --key` with the
// ready line's x509=true connection strings, and invokes a method on each
// with the dmctl binary. A wrong certificate is refused: the agent exits 1
// saying so, and hubsim's log names the device and the reason.
func TestX509DeviceAgent(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCert(t, testkit.CertSpec{CommonName: "e2e Test CA", IsCA: true})
	caFile, _ := ca.WriteFiles(t, dir, "ca")
	self := testkit.NewCert(t, testkit.CertSpec{CommonName: "cam-self"})
	signed := testkit.NewCert(t, testkit.CertSpec{CommonName: "cam-ca", Parent: ca})

	p := startHubsimBinary(t, "-v", "--no-throttle", "--ca-cert", caFile,
		"--register", "cam-self:x509="+strings.ToUpper(self.SHA256())+",cam-ca:x509ca,cam-sas")
	dmctl := func(args ...string) dmctlRun {
		return runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": p.ready.ServiceConnectionString}},
			append([]string{"invoke", "--ca-file", p.ready.CAFile, "-o", "json"}, args...)...)
	}

	for id, cert := range map[string]*testkit.Cert{"cam-self": self, "cam-ca": signed} {
		t.Run(id, func(t *testing.T) {
			cs := p.ready.DeviceConnectionStrings[id]
			parsed, err := connstr.ParseDevice(cs)
			require.NoError(t, err, "the ready line's connection string")
			require.True(t, parsed.X509, "x509=true: %s", cs)
			require.Empty(t, parsed.SharedAccessKey)

			certFile, keyFile := cert.WriteFiles(t, dir, id)
			agent := startAgent(t, cs, p.ready.CAFile, "--cert", certFile, "--key", keyFile)
			agent.waitEvent(t, "connected", func(ev map[string]any) bool { return ev["event"] == "connected" })

			r := dmctl("reboot", "--device", id)
			require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
			rs := parseJSON(t, r.stdout)
			require.Len(t, rs, 1)
			require.NotNil(t, rs[0].Status)
			assert.Equal(t, 200, *rs[0].Status)
			assert.JSONEq(t, `{"message":"Reboot started"}`, string(rs[0].Payload))
			agent.waitEvent(t, "the reboot", func(ev map[string]any) bool { return ev["event"] == "method" && ev["method"] == "reboot" })
		})
	}

	t.Run("a wrong certificate is refused", func(t *testing.T) {
		wrong := testkit.NewCert(t, testkit.CertSpec{CommonName: "cam-self"})
		certFile, keyFile := wrong.WriteFiles(t, dir, "wrong")
		agent := startAgent(t, p.ready.DeviceConnectionStrings["cam-self"], p.ready.CAFile, "--cert", certFile, "--key", keyFile)
		var err error
		select {
		case err = <-agent.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("hubsim device kept going with a refused certificate: %s", agent.stderr.String())
		}
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit), "hubsim device should fail: %v", err)
		assert.Equal(t, 1, exit.ExitCode(), "a refusal cannot heal: exit 1")
		assert.Contains(t, agent.stderr.String(), "not Authorized")
		assert.Contains(t, agent.stderr.String(), "certificate (--cert)")
		line := p.stderr.WaitUntil(t, 10*time.Second, "hubsim logs the refusal", func(s string) bool {
			return strings.Contains(s, "devices/cam-self authenticates with an X.509 certificate (selfSigned): the client certificate")
		})
		assert.Contains(t, line, "matches none of the identity's thumbprints")
	})

	t.Run("bad --cert/--key input exits 2", func(t *testing.T) {
		certFile, keyFile := self.WriteFiles(t, dir, "again")
		otherKey := filepath.Join(dir, "ca-key.pem")
		cs := p.ready.DeviceConnectionStrings["cam-self"]
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--cert", certFile}, "--cert needs --key"},
			{[]string{"--cert", filepath.Join(dir, "missing.pem"), "--key", keyFile}, "--cert: open "},
			{[]string{"--cert", certFile, "--key", otherKey}, "private key does not match public key"},
			{nil, "x509=true needs the device certificate and key"},
		} {
			agent := startAgent(t, cs, p.ready.CAFile, tc.args...)
			var err error
			select {
			case err = <-agent.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("%v: hubsim device did not exit", tc.args)
			}
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "%v: %v", tc.args, err)
			assert.Equal(t, 2, exit.ExitCode(), "%v: %s", tc.args, agent.stderr.String())
			assert.Contains(t, agent.stderr.String(), tc.want, "%v", tc.args)
		}
	})

	// The SAS device beside them is untouched: its string still has its key.
	sas, err := connstr.ParseDevice(p.ready.DeviceConnectionStrings["cam-sas"])
	require.NoError(t, err)
	assert.NotEmpty(t, sas.SharedAccessKey)
}

package conformance

// X.509 devices: Microsoft's Node device SDK (unmodified) connects with a
// connection string `HostName=...;DeviceId=...;x509=true` and
// client.setOptions({ cert, key }) — the SDK's own X.509 sample pattern — to
// hubsim devices registered as self-signed (by thumbprint) and CA-signed
// (--ca-cert); dmctl and the Node service SDK then invoke its methods.

import (
	"errors"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/testkit"
	"github.com/dmctl/dmctl/test/testbin"
)

// x509Env is the environment device.js needs for an X.509 device: the
// certificate and key files, and redirect8883.js preloaded, since the SDK
// dials HostName:8883 whatever GatewayHostName says.
func (h *hub) x509Env(t *testing.T, cert *testkit.Cert, name string) []string {
	t.Helper()
	certFile, keyFile := cert.WriteFiles(t, t.TempDir(), name)
	_, mqttPort, err := net.SplitHostPort(h.MQTTAddr)
	require.NoError(t, err)
	return []string{
		"DEVICE_CERT_FILE=" + certFile, "DEVICE_KEY_FILE=" + keyFile,
		"HUBSIM_MQTT_PORT=" + mqttPort,
		"NODE_OPTIONS=--require=" + filepath.Join(suiteDir(t), "redirect8883.js"),
	}
}

// nodeX509String is the ready line's X.509 connection string as the Node
// SDK takes it: HostName without its port (the username's host; the SDK
// dials HostName:8883, which redirect8883.js sends to hubsim's MQTT port).
func (h *hub) nodeX509String(t *testing.T, id string) string {
	t.Helper()
	cs := h.DeviceConnectionStrings[id]
	parsed, err := connstr.ParseDevice(cs)
	require.NoError(t, err, "the ready line's connection string of %s", id)
	require.True(t, parsed.X509, "x509=true for %s", id)
	require.Empty(t, parsed.SharedAccessKey, "no key for an X.509 device")
	return testbin.StripPort(cs)
}

// TestDeviceSDKX509: self-signed and CA-signed devices connect with the
// Node SDK's X.509 authentication and answer methods invoked by dmctl and
// by the Node service SDK; the registry shows their authentication.
func TestDeviceSDKX509(t *testing.T) {
	node := requireNode(t)
	requireDeviceSDK(t)
	dir := t.TempDir()
	ca := testkit.NewCert(t, testkit.CertSpec{CommonName: "conformance Test CA", IsCA: true})
	caFile, _ := ca.WriteFiles(t, dir, "ca")
	self := testkit.NewCert(t, testkit.CertSpec{CommonName: "node-x509-self"})
	signed := testkit.NewCert(t, testkit.CertSpec{CommonName: "node-x509-ca", Parent: ca})
	h := startHub(t, "--no-throttle", "--ca-cert", caFile,
		"--register", "node-x509-self:x509="+self.SHA1()+",node-x509-ca:x509ca")

	for _, tc := range []struct {
		id, authType string
		cert         *testkit.Cert
	}{{"node-x509-self", "selfSigned", self}, {"node-x509-ca", "certificateAuthority", signed}} {
		t.Run(tc.id, func(t *testing.T) {
			dev := h.startDevice(t, node, h.nodeX509String(t, tc.id), map[string]any{"auth": tc.authType}, h.x509Env(t, tc.cert, tc.id)...)
			dev.wait("ready", 90*time.Second, isEvent("ready"))

			rs, code, stderr := h.dmctl(t, "echo", "--device", tc.id, "--payload", `{"via":"dmctl"}`)
			require.Equal(t, 0, code, "stderr: %s\ndevice: %s", stderr, dev.output())
			require.Len(t, rs, 1)
			require.NotNil(t, rs[0].Status)
			assert.Equal(t, 200, *rs[0].Status)
			assert.JSONEq(t, `{"method":"echo","received":{"via":"dmctl"},"deviceId":"`+tc.id+`"}`, string(rs[0].Payload))

			r := h.run(t, node, "invoke", "DEVICE_ID="+tc.id, "METHOD_NAME=echo", `METHOD_PAYLOAD="via node"`, "RESPONSE_TIMEOUT=10")
			require.Equal(t, 0, r.ExitCode, "invoke failed: %s\nstderr: %s", r.Stdout, connstr.Redact(r.Stderr))
			result, ok := r.Out["result"].(map[string]any)
			require.True(t, ok, "result: %s", r.Stdout)
			assert.EqualValues(t, 200, result["status"])
			dev.wait("echo from the service SDK", 10*time.Second, func(ev map[string]any) bool {
				return ev["event"] == "method" && ev["payload"] == "via node"
			})

			status, doc := h.rest(t, h.ServiceConnectionString, http.MethodGet, "/twins/"+tc.id, "")
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, "Connected", doc["connectionState"])
			assert.Equal(t, tc.authType, doc["authenticationType"])
			assert.Equal(t, tc.authType, reportedOf(t, doc)["auth"], "the device reported over its X.509 connection")
		})
	}
}

// TestDeviceSDKX509Refused: the Node SDK with a certificate the hub does not
// accept (unknown thumbprint; CN of another device) fails to open with the
// SDK's unauthorized error, and the device stays Disconnected.
func TestDeviceSDKX509Refused(t *testing.T) {
	node := requireNode(t)
	requireDeviceSDK(t)
	dir := t.TempDir()
	ca := testkit.NewCert(t, testkit.CertSpec{CommonName: "conformance Test CA", IsCA: true})
	caFile, _ := ca.WriteFiles(t, dir, "ca")
	registered := testkit.NewCert(t, testkit.CertSpec{CommonName: "x509-self"})
	h := startHub(t, "--no-throttle", "-v", "--ca-cert", caFile,
		"--register", "x509-self:x509="+registered.SHA256()+",x509-ca:x509ca")

	for _, tc := range []struct {
		name, id string
		cert     *testkit.Cert
	}{
		{"an unregistered thumbprint", "x509-self", testkit.NewCert(t, testkit.CertSpec{CommonName: "x509-self"})},
		{"a CA-signed certificate of another device", "x509-ca", testkit.NewCert(t, testkit.CertSpec{CommonName: "x509-other", Parent: ca})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := h.startDevice(t, node, h.nodeX509String(t, tc.id), map[string]any{"never": true}, h.x509Env(t, tc.cert, "wrong")...)
			select {
			case <-d.done:
			case <-time.After(60 * time.Second):
				t.Fatalf("device.js did not give up:\n%s", d.output())
			}
			var exit *exec.ExitError
			require.True(t, errors.As(d.err, &exit), "device.js should fail, got %v:\n%s", d.err, d.output())
			assert.Equal(t, 1, exit.ExitCode())
			out := d.output()
			assert.NotContains(t, out, `"event":"ready"`)
			assert.Regexp(t, `(?i)unauthori[sz]ed|not authori[sz]ed`, out, "the SDK reports the refusal")

			status, doc := h.rest(t, h.ServiceConnectionString, http.MethodGet, "/twins/"+tc.id, "")
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, "Disconnected", doc["connectionState"], "refused clients never attach")
		})
	}

	// Once hubsim has stopped, its log is all there: one refusal per
	// device, naming it and the reason.
	require.NoError(t, h.Stop())
	logs := h.Stderr()
	for id, reason := range map[string]string{
		"x509-self": "(selfSigned): the client certificate (SHA-256 thumbprint",
		"x509-ca":   `(certificateAuthority): the client certificate's subject CN "x509-other" is not the device id "x509-ca"`,
	} {
		line := "devices/" + id + " authenticates with an X.509 certificate " + reason
		assert.True(t, strings.Contains(logs, line), "hubsim logs %q:\n%s", line, logs)
	}
}

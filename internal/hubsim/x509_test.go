package hubsim

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/hubsim/devices"
	"github.com/dmctl/dmctl/internal/testkit"
)

func TestParseRegister(t *testing.T) {
	sha1 := strings.Repeat("ab", 20)
	sha256 := strings.Repeat("CD", 32)
	for in, want := range map[string]registerEntry{
		"dev1":                             {id: "dev1"},
		"gw/mod":                           {id: "gw/mod"},
		"dev1:x509=" + sha256:              {id: "dev1", auth: devices.Auth{Type: devices.AuthSelfSigned, PrimaryThumbprint: sha256}},
		"dev1:x509=" + sha256 + "+" + sha1: {id: "dev1", auth: devices.Auth{Type: devices.AuthSelfSigned, PrimaryThumbprint: sha256, SecondaryThumbprint: sha1}},
		"dev1:X509=" + sha1:                {id: "dev1", auth: devices.Auth{Type: devices.AuthSelfSigned, PrimaryThumbprint: sha1}},
		"dev2:x509ca":                      {id: "dev2", auth: devices.Auth{Type: devices.AuthCertificateAuthority}},
		"urn:cam:7:x509ca":                 {id: "urn:cam:7", auth: devices.Auth{Type: devices.AuthCertificateAuthority}},
		"a:b=c":                            {id: "a:b=c"},
	} {
		got, err := parseRegister(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for in, why := range map[string]string{
		"dev1:x509=":                             "no thumbprint after x509=",
		"dev1:x509=abc":                          "the primary thumbprint: a thumbprint has 40 (SHA-1) or 64 (SHA-256) hex digits, not 3",
		"dev1:x509=" + sha1 + "+":                "the secondary thumbprint: the thumbprint is empty",
		"dev1:x509=" + sha1 + "+zz":              "the secondary thumbprint",
		"dev1:x509=AB:CD:EF":                     "remove the colons",
		"dev1:x509":                              "after \":x509\" comes =THUMBPRINT[+THUMBPRINT]",
		"dev1:x509sa":                            "after \":x509\" comes",
		":x509ca":                                "no device id",
		"\xf6:X509":                              "after \":x509\" comes", // not UTF-8: found by FuzzParseRegister
		"gw/mod:x509ca":                          "modules authenticate with SAS keys only",
		"gw/mod:x509=" + strings.Repeat("a", 40): "modules authenticate with SAS keys only",
	} {
		_, err := parseRegister(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), why, in)
	}
}

// writeCAFiles writes a CA certificate, a leaf certificate and a file that
// is not PEM, and returns their paths.
func writeCAFiles(t *testing.T) (ca *testkit.Cert, caFile, leafFile, notPEM string) {
	t.Helper()
	dir := t.TempDir()
	ca = testkit.NewCert(t, testkit.CertSpec{CommonName: "Test CA", IsCA: true})
	caFile, _ = ca.WriteFiles(t, dir, "ca")
	leafFile, _ = testkit.NewCert(t, testkit.CertSpec{CommonName: "dev", Parent: ca}).WriteFiles(t, dir, "leaf")
	notPEM = filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	return ca, caFile, leafFile, notPEM
}

func TestX509InputErrors(t *testing.T) {
	_, caFile, leafFile, notPEM := writeCAFiles(t)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	fleetDir := t.TempDir()
	fleet := filepath.Join(fleetDir, "fleet.yaml")
	require.NoError(t, os.WriteFile(fleet, []byte("caCerts: [notes.pem]\ngroups:\n  - {idPattern: d-%d, count: 1, authentication: {type: certificateAuthority}}\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(fleetDir, "notes.pem"), []byte("nothing"), 0o600))

	for _, tc := range []struct {
		name string
		cfg  Config
		flag string
		want string
	}{
		{"missing --ca-cert", Config{CACerts: []string{missing}}, "--ca-cert", missing + ": no such file or directory"},
		{"--ca-cert not PEM", Config{CACerts: []string{notPEM}}, "--ca-cert", notPEM + ": no PEM certificate in it"},
		{"--ca-cert not a CA", Config{CACerts: []string{caFile, leafFile}}, "--ca-cert", leafFile + `: certificate 1 (subject "CN=dev") is not a CA certificate`},
		{"fleet caCerts not PEM", Config{FleetFile: fleet}, "--fleet", "fleet.yaml: caCerts[0] (" + filepath.Join(fleetDir, "notes.pem") + "): no PEM certificate in it"},
		{"Config.Fleet caCerts missing", Config{Fleet: &devices.FleetSpec{CACerts: []string{missing}, Groups: []devices.Group{{IDPattern: "x-%d", Count: 1}}}}, "fleet", "caCerts[0] (" + missing + "): no such file"},
		{"bad thumbprint", Config{Register: []string{"ok", "cam:x509=123"}}, "--register", `"cam:x509=123": the primary thumbprint`},
		{"module x509", Config{Register: []string{"gw/m:x509ca"}}, "--register", "modules authenticate with SAS keys only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.NoThrottle = true
			_, err := New(tc.cfg)
			require.Error(t, err)
			var ie *InputError
			require.True(t, errors.As(err, &ie), "an InputError: %v", err)
			assert.Equal(t, tc.flag, ie.Flag)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	for _, args := range [][]string{
		{"--ca-cert", ""},
		{"--ca-cert", missing},
		{"--ca-cert", notPEM},
		{"--register", "cam:x509=xyz"},
		{"--register", "cam:x509ca,gw/m:x509ca", "--ca-cert", caFile},
	} {
		var stdout, stderr bytes.Buffer
		code := Run(context.Background(), args, &stdout, &stderr)
		assert.Equal(t, ExitUsage, code, "%v: %s", args, stderr.String())
		assert.Contains(t, stderr.String(), args[0], "names the flag")
		assert.Empty(t, stdout.String(), "no ready line")
	}
}

// TestX509Devices: --register declares X.509 devices; the ready line gives
// them x509=true connection strings, the registry API shows their
// authentication, and `hubsim device --cert --key` connects as each kind
// (the CA from --ca-cert and from a fleet file alike) and answers methods.
func TestX509Devices(t *testing.T) {
	ca, caFile, _, _ := writeCAFiles(t)
	fleetCA := testkit.NewCert(t, testkit.CertSpec{CommonName: "Fleet CA", IsCA: true})
	fleetDir := t.TempDir()
	fleetCA.WriteFiles(t, fleetDir, "fleet-ca")
	fleet := filepath.Join(fleetDir, "fleet.yaml")
	require.NoError(t, os.WriteFile(fleet, []byte(`caCerts: [fleet-ca.pem]
groups:
  - {name: cams, idPattern: cam-%d, count: 2, connection: {onlineShare: 0}, authentication: {type: certificateAuthority}}
`), 0o600))
	selfCert := testkit.NewCert(t, testkit.CertSpec{CommonName: "self-1"})
	dir := t.TempDir()
	certs := map[string]*testkit.Cert{
		"self-1": selfCert,
		"ca-1":   testkit.NewCert(t, testkit.CertSpec{CommonName: "ca-1", Parent: ca}),
		"cam-2":  testkit.NewCert(t, testkit.CertSpec{CommonName: "cam-2", Parent: fleetCA}),
	}
	s := startTestServer(t, Config{
		Register: []string{"sas-1", "self-1:x509=" + selfCert.SHA256(), "ca-1:x509ca"},
		CACerts:  []string{caFile}, FleetFile: fleet, NoThrottle: true,
	})
	r := s.Ready()
	for _, id := range []string{"self-1", "ca-1"} {
		cs := r.DeviceConnectionStrings[id]
		parsed, err := connstr.ParseDevice(cs)
		require.NoError(t, err, id)
		assert.True(t, parsed.X509, "%s: x509=true", id)
		assert.Empty(t, parsed.SharedAccessKey, id)
		assert.Equal(t, r.HostName, parsed.HostName)
		assert.Equal(t, r.MQTTAddr, parsed.GatewayHostName)
		assert.Equal(t, "HostName="+r.HostName+";DeviceId="+id+";GatewayHostName="+r.MQTTAddr+";x509=true", cs)
	}
	sas, err := connstr.ParseDevice(r.DeviceConnectionStrings["sas-1"])
	require.NoError(t, err)
	assert.NotEmpty(t, sas.SharedAccessKey, "SAS devices keep their key")

	tok := token(t, s, PolicyRegistryRead, s.HostName(), time.Hour)
	rec := call(s, http.MethodGet, "/devices/self-1?api-version=2021-04-12", "", authz(tok))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `"type":"selfSigned"`)
	assert.Contains(t, rec.Body.String(), `"primaryThumbprint":"`+selfCert.SHA256()+`"`)
	assert.Contains(t, rec.Body.String(), `"primaryKey":null`)
	rec = call(s, http.MethodGet, "/devices/cam-1?api-version=2021-04-12", "", authz(tok))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `"type":"certificateAuthority"`, "a fleet group's authentication")

	for id, cert := range certs {
		t.Run(id, func(t *testing.T) {
			certFile, keyFile := cert.WriteFiles(t, dir, id)
			cs := "HostName=" + r.HostName + ";DeviceId=" + id + ";GatewayHostName=" + r.MQTTAddr + ";x509=true"
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout, stderr testkit.SyncBuffer
			done := make(chan int, 1)
			go func() {
				done <- Run(ctx, []string{"device", "--connection-string", cs, "--ca-file", s.Certs().CAFile, "--cert", certFile, "--key", keyFile}, &stdout, &stderr)
			}()
			if _, ok := stdout.Await(10*time.Second, nil, func(out string) bool { return strings.Contains(out, `"event":"connected"`) }); !ok {
				cancel()
				t.Fatalf("the X.509 agent did not connect (exit %d): %s", <-done, stderr.String())
			}
			status, _, err := s.Registry().InvokeMethod(ctx, id, "", "reboot", nil, 0, 5*time.Second)
			require.NoError(t, err)
			assert.Equal(t, 200, status)
			cancel()
			assert.Equal(t, ExitOK, <-done, stderr.String())
		})
	}

	t.Run("a certificate of an untrusted CA is refused", func(t *testing.T) {
		untrusted := testkit.NewCert(t, testkit.CertSpec{CommonName: "Untrusted CA", IsCA: true})
		other := testkit.NewCert(t, testkit.CertSpec{CommonName: "cam-1", Parent: untrusted})
		certFile, keyFile := other.WriteFiles(t, dir, "other")
		cs := "HostName=" + r.HostName + ";DeviceId=cam-1;GatewayHostName=" + r.MQTTAddr
		var stdout, stderr bytes.Buffer
		code := Run(context.Background(), []string{"device", "--connection-string", cs, "--ca-file", s.Certs().CAFile, "--cert", certFile, "--key", keyFile}, &stdout, &stderr)
		assert.Equal(t, ExitError, code, "a refusal ends the agent: %s", stderr.String())
		assert.Contains(t, stderr.String(), "not Authorized")
	})
}

// TestX509CADeviceWithoutCAWarns: certificateAuthority devices with no CA
// trusted can never connect: hubsim says so (as a hub, it still starts).
func TestX509CADeviceWithoutCAWarns(t *testing.T) {
	var logs testkit.SyncBuffer
	s := newTestServer(t, Config{Register: []string{"ca-1:x509ca"}, Log: &logs})
	assert.NotNil(t, s)
	assert.Contains(t, logs.String(), "1 device(s) authenticate with certificateAuthority but no CA certificate is trusted")
}

// FuzzParseRegister: any --register entry is read as an id (with its
// authentication) or refused with an error, never a panic; an accepted
// X.509 entry has a valid authentication and a device id.
func FuzzParseRegister(f *testing.F) {
	for _, s := range []string{"dev1", "gw/mod", "dev1:x509=" + strings.Repeat("ab", 20), "dev1:x509=" + strings.Repeat("ab", 32) + "+" + strings.Repeat("CD", 20),
		"dev2:x509ca", "a:x509", ":x509ca", "x:X509=zz", "gw/m:x509ca", "a:x509=+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		e, err := parseRegister(entry)
		if err != nil {
			return
		}
		if err := e.auth.Check(); err != nil {
			t.Fatalf("%q: accepted with an invalid authentication: %v", entry, err)
		}
		if e.auth.X509() && (e.id == "" || strings.Contains(e.id, "/")) {
			t.Fatalf("%q: X.509 for %q", entry, e.id)
		}
		if !e.auth.X509() && e.id != entry {
			t.Fatalf("%q: a SAS entry is its id, got %q", entry, e.id)
		}
	})
}

package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/hubsim"
	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/sim"
	"github.com/dmctl/dmctl/internal/sas"
	"github.com/dmctl/dmctl/internal/testkit"
)

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
		cfg  hubsim.Config
		flag string
		want string
	}{
		{"missing --ca-cert", hubsim.Config{CACerts: []string{missing}}, "--ca-cert", missing + ": no such file or directory"},
		{"--ca-cert not PEM", hubsim.Config{CACerts: []string{notPEM}}, "--ca-cert", notPEM + ": no PEM certificate in it"},
		{"--ca-cert not a CA", hubsim.Config{CACerts: []string{caFile, leafFile}}, "--ca-cert", leafFile + `: certificate 1 (subject "CN=dev") is not a CA certificate`},
		{"fleet caCerts not PEM", hubsim.Config{FleetFile: fleet}, "--fleet", "fleet.yaml: caCerts[0] (" + filepath.Join(fleetDir, "notes.pem") + "): no PEM certificate in it"},
		{"hubsim.Config.Fleet caCerts missing", hubsim.Config{Fleet: &sim.FleetSpec{CACerts: []string{missing}, Groups: []sim.Group{{IDPattern: "x-%d", Count: 1}}}}, "fleet", "caCerts[0] (" + missing + "): no such file"},
		{"bad thumbprint", hubsim.Config{Register: []string{"ok", "cam:x509=123"}}, "--register", `"cam:x509=123": the primary thumbprint`},
		{"module x509", hubsim.Config{Register: []string{"gw/m:x509ca"}}, "--register", "modules authenticate with SAS keys only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.NoThrottle = true
			_, err := hubsim.New(tc.cfg)
			require.Error(t, err)
			var ie *hubsim.InputError
			require.True(t, errors.As(err, &ie), "an hubsim.InputError: %v", err)
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
	s := startTestServer(t, hubsim.Config{
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
	sasCS, err := connstr.ParseDevice(r.DeviceConnectionStrings["sas-1"])
	require.NoError(t, err)
	assert.NotEmpty(t, sasCS.SharedAccessKey, "SAS devices keep their key")

	key, ok := s.PolicyKey(identity.PolicyRegistryRead)
	require.True(t, ok)
	tok := sas.NewToken(s.HostName(), identity.PolicyRegistryRead, key, time.Now().Add(time.Hour))
	get := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "https://"+s.HostName()+path, nil)
		req.Host = s.HostName()
		req.Header.Set("Authorization", tok)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	rec := get("/devices/self-1?api-version=2021-04-12")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), `"type":"selfSigned"`)
	assert.Contains(t, rec.Body.String(), `"primaryThumbprint":"`+selfCert.SHA256()+`"`)
	assert.Contains(t, rec.Body.String(), `"primaryKey":null`)
	rec = get("/devices/cam-1?api-version=2021-04-12")
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

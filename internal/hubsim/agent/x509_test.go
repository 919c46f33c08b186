package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/certs"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	hubmqtt "github.com/dmctl/dmctl/internal/hubsim/transport/mqtt"
	"github.com/dmctl/dmctl/internal/testkit"
)

// newX509Hub is newHub with a self-signed X.509 device cam1 whose
// registered thumbprint is that of the returned certificate.
func newX509Hub(t *testing.T) (*hub, *testkit.Cert) {
	t.Helper()
	cert := testkit.NewCert(t, testkit.CertSpec{CommonName: "cam1"})
	b, err := certs.LoadOrCreate(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	require.NoError(t, err)
	reg := registry.NewRegistry(registry.Options{HostName: hubHost, Seed: 3})
	require.NoError(t, reg.Register("cam1"))
	require.NoError(t, reg.SetAuth("cam1", "", registry.Auth{Type: registry.AuthSelfSigned, PrimaryThumbprint: cert.SHA256()}))
	ep, err := hubmqtt.New(hubmqtt.Config{Registry: reg, TLS: b.TLSConfig(), HostName: hubHost})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = ep.Serve(ln) }()
	t.Cleanup(func() { _ = ep.Close() })
	return &hub{reg: reg, ep: ep, addr: ln.Addr().String(), caFile: b.CAFile}, cert
}

// TestX509Device: with --cert and --key the agent connects as an X.509
// device (the hub refuses any password for it) and answers methods, with
// x509=true or with no credential in the connection string.
func TestX509Device(t *testing.T) {
	h, cert := newX509Hub(t)
	certFile, keyFile := cert.WriteFiles(t, t.TempDir(), "cam1")
	base := "HostName=" + hubHost + ";DeviceId=cam1;GatewayHostName=" + h.addr
	for name, cs := range map[string]string{"x509=true": base + ";x509=true", "no credential": base} {
		t.Run(name, func(t *testing.T) {
			r := start(t, Config{ConnectionString: cs, CAFile: h.caFile, CertFile: certFile, KeyFile: keyFile})
			r.waitEvent(t, "connected", func(e Event) bool { return e.Event == "connected" })
			status, _ := h.invoke(t, "cam1", "reboot", "")
			assert.Equal(t, 200, status)
			r.cancel()
			r.waitEvent(t, "stopped", func(e Event) bool { return e.Event == "disconnected" && e.Reason == "stopped" })
		})
	}

	t.Run("a wrong certificate is a fatal refusal", func(t *testing.T) {
		wrong := testkit.NewCert(t, testkit.CertSpec{CommonName: "cam1"})
		wc, wk := wrong.WriteFiles(t, t.TempDir(), "wrong")
		a, err := New(Config{ConnectionString: base + ";x509=true", CAFile: h.caFile, CertFile: wc, KeyFile: wk})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = a.Run(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "refused the connection")
		assert.Contains(t, err.Error(), "certificate (--cert)")
		assert.NoError(t, ctx.Err(), "Run gave up at once")
	})
}

func TestX509Validation(t *testing.T) {
	dir := t.TempDir()
	a := testkit.NewCert(t, testkit.CertSpec{CommonName: "d"})
	b := testkit.NewCert(t, testkit.CertSpec{CommonName: "d"})
	certA, keyA := a.WriteFiles(t, dir, "a")
	_, keyB := b.WriteFiles(t, dir, "b")
	notPEM := filepath.Join(dir, "x.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	missing := filepath.Join(dir, "missing.pem")
	x509CS := "HostName=h;DeviceId=d;x509=true"
	sasKey := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyPEM, err := os.ReadFile(keyA)
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"x509=true without a certificate", Config{ConnectionString: x509CS}, "x509=true needs the device certificate and key: give --cert and --key"},
		{"--cert without --key", Config{ConnectionString: x509CS, CertFile: certA}, "--cert needs --key"},
		{"--key without --cert", Config{ConnectionString: x509CS, KeyFile: keyA}, "--key needs --cert"},
		{"unreadable certificate", Config{ConnectionString: x509CS, CertFile: missing, KeyFile: keyA}, "--cert: open " + missing},
		{"unreadable key", Config{ConnectionString: x509CS, CertFile: certA, KeyFile: missing}, "--key: open " + missing},
		{"certificate not PEM", Config{ConnectionString: x509CS, CertFile: notPEM, KeyFile: keyA}, "--cert " + notPEM + " and --key " + keyA},
		{"key not PEM", Config{ConnectionString: x509CS, CertFile: certA, KeyFile: notPEM}, "--key " + notPEM},
		{"key of another certificate", Config{ConnectionString: x509CS, CertFile: certA, KeyFile: keyB}, "private key does not match public key"},
		{"certificate and key swapped", Config{ConnectionString: x509CS, CertFile: keyA, KeyFile: certA}, "--cert " + keyA},
		{"a certificate with a SAS key", Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=" + sasKey, CertFile: certA, KeyFile: keyA}, "must not carry a SharedAccessKey"},
		{"a certificate and a bad connection string", Config{ConnectionString: "HostName=h", CertFile: certA, KeyFile: keyA}, "device connection string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.Error(t, err)
			var ue *UsageError
			assert.True(t, errors.As(err, &ue), "a *UsageError")
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), string(keyPEM[30:60]), "no key material in the message")
			assert.NotContains(t, err.Error(), sasKey)
		})
	}

	ag, err := New(Config{ConnectionString: x509CS, CertFile: certA, KeyFile: keyA})
	require.NoError(t, err)
	pw, exp := ag.password()
	assert.Empty(t, pw, "an X.509 device sends no password")
	assert.True(t, exp.IsZero())
	assert.Equal(t, "h/d/?api-version=2021-04-12&DeviceClientType=hubsim-device%2F1.0", ag.username)
}

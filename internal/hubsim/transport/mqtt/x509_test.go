package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/testkit"
)

var (
	self1 = Identity{DeviceID: "self1"}
	ca1   = Identity{DeviceID: "ca1"}
	ca2   = Identity{DeviceID: "ca2"}
	gwMod = Identity{DeviceID: "ca1", ModuleID: "mod"}
)

// x509Fixture is an endpoint with, besides newFixture's SAS identities, a
// self-signed device self1 (primary: selfA's SHA-256, secondary: selfB's
// SHA-1), CA-signed devices ca1 and ca2 (ca1 has a SAS module mod) trusting
// root, and a hub clock the test can move (skew).
type x509Fixture struct {
	*fixture
	root, otherRoot, inter *testkit.Cert
	selfA, selfB, stranger *testkit.Cert
	skew                   *atomic.Int64 // added to the hub clock, ns
}

func newX509Fixture(t *testing.T) *x509Fixture {
	t.Helper()
	x := &x509Fixture{skew: &atomic.Int64{}}
	x.root = testkit.NewCert(t, testkit.CertSpec{CommonName: "Test Root CA", IsCA: true})
	x.inter = testkit.NewCert(t, testkit.CertSpec{CommonName: "Test Intermediate CA", IsCA: true, Parent: x.root})
	x.otherRoot = testkit.NewCert(t, testkit.CertSpec{CommonName: "Other Root CA", IsCA: true})
	x.selfA = testkit.NewCert(t, testkit.CertSpec{CommonName: "self1"})
	x.selfB = testkit.NewCert(t, testkit.CertSpec{CommonName: "self1"})
	x.stranger = testkit.NewCert(t, testkit.CertSpec{CommonName: "self1"})
	x.fixture = newFixtureWith(t, func(reg *registry.Registry, cfg *Config) {
		require.NoError(t, reg.Register("self1", "ca1", "ca2", "ca1/mod"))
		require.NoError(t, reg.SetAuth("self1", "", registry.Auth{Type: registry.AuthSelfSigned,
			PrimaryThumbprint: strings.ToUpper(x.selfA.SHA256()), SecondaryThumbprint: x.selfB.SHA1()}))
		for _, d := range []string{"ca1", "ca2"} {
			require.NoError(t, reg.SetAuth(d, "", registry.Auth{Type: registry.AuthCertificateAuthority}))
		}
		pool := x509.NewCertPool()
		pool.AddCert(x.root.Cert)
		cfg.ClientCAs = pool
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(x.skew.Load())) }
	})
	return x
}

// connectX509 connects id presenting cert (nil: none) with password and
// returns the CONNACK code.
func (x *x509Fixture) connectX509(id Identity, cert *testkit.Cert, password []byte) (*rawClient, byte) {
	x.t.Helper()
	c := x.dial()
	if cert != nil {
		c = x.dialWithCert(cert.TLS())
	}
	return c, c.connect(id.ClientID(), username(id), password)
}

// refusedLine waits for the endpoint's refusal of id and returns that one
// log line.
func (x *x509Fixture) refusedLine(id Identity, n int) string {
	x.t.Helper()
	var line string
	x.logs.WaitUntil(x.t, 5*time.Second, "a refusal of "+id.ClientID(), func(s string) bool {
		var hits []string
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, "refused CONNECT") && strings.Contains(l+" ", "devices/"+id.DeviceID+" ") {
				hits = append(hits, l)
			}
		}
		if len(hits) >= n {
			line = hits[n-1]
			return true
		}
		return false
	})
	return line
}

func TestX509SelfSigned(t *testing.T) {
	x := newX509Fixture(t)

	t.Run("the primary thumbprint's certificate (SHA-256, registered upper-case)", func(t *testing.T) {
		c, code := x.connectX509(self1, x.selfA, nil)
		require.Equal(t, byte(0), code, "CONNACK 0")
		assert.Equal(t, "Connected", connectionState(t, x.reg, self1))
		c.subscribe(map[string]byte{FilterMethods: 0})
		roundTrip(t, x.fixture, c, self1)
		c.write(disconnectPacket())
		c.expectClosed()
		x.waitDisconnected(self1, 1)
	})
	t.Run("the secondary thumbprint's certificate (SHA-1)", func(t *testing.T) {
		c, code := x.connectX509(self1, x.selfB, nil)
		require.Equal(t, byte(0), code)
		c.write(disconnectPacket())
		c.expectClosed()
		x.waitDisconnected(self1, 2)
	})

	refusals := []struct {
		name     string
		cert     *testkit.Cert
		password []byte
		reason   string
	}{
		{"another certificate", x.stranger, nil, "matches none of the identity's thumbprints"},
		{"no certificate", nil, nil, "no client certificate was presented"},
		{"a SAS token signed with the device's key", nil, token(self1, x.key(self1), time.Hour), "a password (SAS token) is not accepted"},
		{"the right certificate and a SAS token", x.selfA, token(self1, x.key(self1), time.Hour), "a password (SAS token) is not accepted"},
		{"a CA-signed certificate with the device's CN", testkit.NewCert(t, testkit.CertSpec{CommonName: "self1", Parent: x.root}), nil, "matches none"},
	}
	for i, tc := range refusals {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			c, code := x.connectX509(self1, tc.cert, tc.password)
			assert.Equal(t, byte(5), code, "CONNACK 5 (not authorized)")
			c.expectClosed()
			line := x.refusedLine(self1, i+1)
			assert.Contains(t, line, "devices/self1 authenticates with an X.509 certificate (selfSigned)")
			assert.Contains(t, line, tc.reason)
			assert.NotContains(t, line, base64.StdEncoding.EncodeToString(x.key(self1)), "no key in the log")
			assert.NotContains(t, line, "sig=", "no token in the log")
		})
	}
	assert.Equal(t, "Disconnected", connectionState(t, x.reg, self1), "no refused client attached")
}

func TestX509CertificateAuthority(t *testing.T) {
	x := newX509Fixture(t)
	direct := testkit.NewCert(t, testkit.CertSpec{CommonName: "ca1", Parent: x.root})
	viaInter := testkit.NewCert(t, testkit.CertSpec{CommonName: "ca2", Parent: x.inter})

	t.Run("signed by the trusted CA", func(t *testing.T) {
		c, code := x.connectX509(ca1, direct, nil)
		require.Equal(t, byte(0), code)
		c.subscribe(map[string]byte{FilterMethods: 0})
		roundTrip(t, x.fixture, c, ca1)
	})
	t.Run("through an intermediate the device presents", func(t *testing.T) {
		c, code := x.connectX509(ca2, viaInter, nil)
		require.Equal(t, byte(0), code)
		c.subscribe(map[string]byte{FilterMethods: 0})
		roundTrip(t, x.fixture, c, ca2)
	})

	now := time.Now()
	n := 0
	for _, tc := range []struct {
		name   string
		cert   *testkit.Cert
		reason string
	}{
		{"CN is another device", testkit.NewCert(t, testkit.CertSpec{CommonName: "ca1", Parent: x.root}), `subject CN "ca1" is not the device id "ca2"`},
		{"an untrusted CA", testkit.NewCert(t, testkit.CertSpec{CommonName: "ca2", Parent: x.otherRoot}), "does not chain to a CA certificate the hub trusts"},
		{"self-signed", testkit.NewCert(t, testkit.CertSpec{CommonName: "ca2"}), "does not chain"},
		{"expired", testkit.NewCert(t, testkit.CertSpec{CommonName: "ca2", Parent: x.root, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Minute)}), "expired at"},
		{"no certificate", nil, "no client certificate was presented"},
	} {
		n++
		t.Run("refused: "+tc.name, func(t *testing.T) {
			c, code := x.connectX509(ca2, tc.cert, nil)
			assert.Equal(t, byte(5), code, "CONNACK 5 (not authorized)")
			c.expectClosed()
			line := x.refusedLine(ca2, n)
			assert.Contains(t, line, "devices/ca2 authenticates with an X.509 certificate (certificateAuthority)")
			assert.Contains(t, line, tc.reason)
		})
	}

	t.Run("refused: the intermediate missing from the chain", func(t *testing.T) {
		leafOnly := *viaInter
		leafOnly.Chain = leafOnly.Chain[:1]
		c, code := x.connectX509(ca2, &leafOnly, nil)
		assert.Equal(t, byte(5), code)
		c.expectClosed()
	})

	t.Run("refused: a SAS token", func(t *testing.T) {
		c, code := x.connectX509(ca2, nil, token(ca2, x.key(ca2), time.Hour))
		assert.Equal(t, byte(5), code)
		c.expectClosed()
	})

	t.Run("the hub clock decides validity", func(t *testing.T) {
		short := testkit.NewCert(t, testkit.CertSpec{CommonName: "ca2", Parent: x.root, NotAfter: time.Now().Add(time.Hour)})
		x.skew.Store(int64(2 * time.Hour))
		defer x.skew.Store(0)
		c, code := x.connectX509(ca2, short, nil)
		assert.Equal(t, byte(5), code, "expired by the hub's clock")
		c.expectClosed()
		x.skew.Store(0)
		c, code = x.connectX509(ca2, short, nil)
		assert.Equal(t, byte(0), code, "valid by the hub's clock")
		c.write(disconnectPacket())
		c.expectClosed()
	})

	t.Run("the module of a CA device uses SAS", func(t *testing.T) {
		c, code := x.connectX509(gwMod, nil, token(gwMod, x.key(gwMod), time.Hour))
		require.Equal(t, byte(0), code)
		c.write(disconnectPacket())
		c.expectClosed()
		c, code = x.connectX509(gwMod, direct, nil)
		assert.Equal(t, byte(5), code, "a certificate does not authenticate a module")
		c.expectClosed()
	})
}

// TestX509LeavesSASDevicesAlone: a SAS device connects as before, with or
// without a client certificate in the handshake; its SAS rules still apply.
func TestX509LeavesSASDevicesAlone(t *testing.T) {
	x := newX509Fixture(t)
	c, code := x.connectX509(dev1, nil, token(dev1, x.key(dev1), time.Hour))
	require.Equal(t, byte(0), code, "no certificate")
	c.subscribe(map[string]byte{FilterMethods: 0})
	roundTrip(t, x.fixture, c, dev1)

	c, code = x.connectX509(dev2, x.selfA, token(dev2, x.key(dev2), time.Hour))
	require.Equal(t, byte(0), code, "a certificate is ignored for a SAS device")
	c.subscribe(map[string]byte{FilterMethods: 0})
	roundTrip(t, x.fixture, c, dev2)

	c, code = x.connectX509(Identity{DeviceID: "dev3"}, testkit.NewCert(t, testkit.CertSpec{CommonName: "dev3", Parent: x.root}), nil)
	assert.Equal(t, byte(5), code, "a certificate is no credential for a SAS device")
	c.expectClosed()
	assert.Contains(t, x.refusedLine(Identity{DeviceID: "dev3"}, 1), "no password")
}

// TestX509OverWebSocket: the client certificate of the TLS connection under
// MQTT over WebSocket authenticates too (paho, an off-the-shelf client).
func TestX509OverWebSocket(t *testing.T) {
	x := newX509Fixture(t)
	for name, tc := range map[string]struct {
		cert *testkit.Cert
		ok   bool
	}{"right certificate": {x.selfA, true}, "wrong certificate": {x.stranger, false}} {
		t.Run(name, func(t *testing.T) {
			cfg := x.client.Clone()
			cfg.Certificates = []tls.Certificate{tc.cert.TLS()}
			c := paho.NewClient(paho.NewClientOptions().
				AddBroker("wss://" + x.addr + WebSocketPath).
				SetClientID("self1").SetUsername(username(self1)).
				SetTLSConfig(cfg).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false))
			tok := c.Connect()
			require.True(t, tok.WaitTimeout(10*time.Second), "connect timed out")
			if !tc.ok {
				require.Error(t, tok.Error())
				assert.Contains(t, tok.Error().Error(), "not Authorized")
				return
			}
			require.NoError(t, tok.Error())
			defer c.Disconnect(100)
			assert.Equal(t, "Connected", connectionState(t, x.reg, self1))
		})
	}
}

func disconnectPacket() packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}
}

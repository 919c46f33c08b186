package mqtt

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/certs"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
)

// TestSessionsSurviveARestart: with a session store (hubsim's --dir), a
// client that connected with clean session 0 finds its session, its
// twin-response subscription included, after the endpoint restarts, as on
// IoT Hub: the Node SDK does not subscribe again and a twin GET is answered.
// Without the store the session is gone (session present 0).
func TestSessionsSurviveARestart(t *testing.T) {
	b, err := certs.LoadOrCreate(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	require.NoError(t, err)
	reg := registry.NewRegistry(registry.Options{HostName: testHost, Seed: 7})
	require.NoError(t, reg.Register("dev1"))
	store := filepath.Join(t.TempDir(), "mqtt-sessions.db")

	start := func(sessions string) (*fixture, func()) {
		ep, err := New(Config{Registry: reg, TLS: b.TLSConfig(), HostName: testHost, HandshakeTimeout: 3 * time.Second, Sessions: sessions})
		require.NoError(t, err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		served := make(chan error, 1)
		go func() { served <- ep.Serve(ln) }()
		return &fixture{t: t, reg: reg, ep: ep, addr: ln.Addr().String(), client: b.ClientTLSConfig()}, func() {
			require.NoError(t, ep.Close())
			require.NoError(t, <-served)
		}
	}
	connect := func(f *fixture) (*rawClient, packets.Packet) {
		c := f.dial()
		c.write(connectPacket(dev1.ClientID(), username(dev1), token(dev1, f.key(dev1), time.Hour), false))
		ack := c.expect(packets.Connack)
		require.Equal(t, byte(0), ack.ReasonCode)
		return c, ack
	}

	f, stop := start(store)
	c, ack := connect(f)
	assert.False(t, ack.SessionPresent, "a first connection has no session")
	assert.Equal(t, []byte{0}, c.subscribe(map[string]byte{FilterTwinRes: 0}))
	c.publish("$iothub/twin/GET/?$rid=before", 0, []byte(" "))
	c.expectPublish("$iothub/twin/res/200/?$rid=before")
	_ = c.c.Close()
	stop()

	f, stop = start(store)
	c, ack = connect(f)
	assert.True(t, ack.SessionPresent, "the session was kept across the restart")
	c.publish("$iothub/twin/GET/?$rid=after", 0, []byte(" "))
	c.expectPublish("$iothub/twin/res/200/?$rid=after")
	_ = c.c.Close()
	stop()

	f, stop = start(filepath.Join(t.TempDir(), "other.db"))
	defer stop()
	_, ack = connect(f)
	assert.False(t, ack.SessionPresent, "another store holds no session")
}

// TestSessionStoreReleasedWithoutServing: an endpoint closed before it
// served still releases its session store (a hub shut down while starting).
func TestSessionStoreReleasedWithoutServing(t *testing.T) {
	b, err := certs.LoadOrCreate(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	require.NoError(t, err)
	reg := registry.NewRegistry(registry.Options{HostName: testHost})
	store := filepath.Join(t.TempDir(), "mqtt-sessions.db")
	ep, err := New(Config{Registry: reg, TLS: b.TLSConfig(), HostName: testHost, Sessions: store})
	require.NoError(t, err)
	require.NoError(t, ep.Close())
	again, err := New(Config{Registry: reg, TLS: b.TLSConfig(), HostName: testHost, Sessions: store})
	require.NoError(t, err, "the store was released")
	require.NoError(t, again.Close())
}

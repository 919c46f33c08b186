package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/certs"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/hubsim/sim"
	"github.com/dmctl/dmctl/internal/sas"
	"github.com/dmctl/dmctl/internal/testkit"
)

// testHost is the hub host name devices put in username and sr; the TCP
// connection goes to the endpoint's loopback address.
const testHost = "hub.test:8443"

type fixture struct {
	t      *testing.T
	reg    *registry.Registry
	ep     *Endpoint
	addr   string
	client *tls.Config
	logs   *testkit.SyncBuffer // the endpoint's log (Verbose)
}

// newFixture serves an endpoint on loopback for registered devices dev1..dev3
// and a device edge-01 with module mod1.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, nil)
}

// newFixtureWith is newFixture with setup run on the registry and the
// endpoint's Config before the endpoint is made.
func newFixtureWith(t *testing.T, setup func(*registry.Registry, *Config)) *fixture {
	t.Helper()
	b, err := certs.LoadOrCreate(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	require.NoError(t, err)
	reg := registry.NewRegistry(registry.Options{HostName: testHost, Seed: 7})
	require.NoError(t, reg.Register("dev1", "dev2", "dev3"))
	off := 0.0
	require.NoError(t, reg.Apply(&sim.FleetSpec{Groups: []sim.Group{{
		Name: "edge", IDPattern: "edge-%02d", Count: 1, Modules: []string{"mod1"},
		Connection: sim.Connection{OnlineShare: &off},
	}}}))
	logs := &testkit.SyncBuffer{}
	cfg := Config{
		Registry: reg, TLS: b.TLSConfig(), HostName: testHost,
		Log: log.New(logs, "", 0), Verbose: true, HandshakeTimeout: 3 * time.Second,
	}
	if setup != nil {
		setup(reg, &cfg)
	}
	ep, err := New(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- ep.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, ep.Close())
		select {
		case err := <-served:
			require.NoError(t, err, "Serve returns nil after Close")
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return &fixture{t: t, reg: reg, ep: ep, addr: ln.Addr().String(), client: b.ClientTLSConfig(), logs: logs}
}

func (f *fixture) key(id Identity) []byte {
	f.t.Helper()
	k, ok := f.reg.Key(id.DeviceID, id.ModuleID)
	require.True(f.t, ok, "key of %s", id.ClientID())
	return k
}

// token signs a device/module SAS for id with key, valid for ttl.
func token(id Identity, key []byte, ttl time.Duration) []byte {
	return []byte(sas.NewToken(testHost+"/"+id.resourcePath(), "", key, time.Now().Add(ttl)))
}

func username(id Identity) string {
	return testHost + "/" + id.ClientID() + "/?api-version=2021-04-12&DeviceClientType=test%2F1"
}

// rawClient speaks MQTT packet by packet (encoded with mochi's codec), so
// tests see exactly what the hub sends.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	r  *bufio.Reader
	id uint16
}

func (f *fixture) dial() *rawClient {
	f.t.Helper()
	return f.dialWith(f.client)
}

// dialWithCert connects presenting a client certificate.
func (f *fixture) dialWithCert(cert tls.Certificate) *rawClient {
	f.t.Helper()
	cfg := f.client.Clone()
	cfg.Certificates = []tls.Certificate{cert}
	return f.dialWith(cfg)
}

func (f *fixture) dialWith(cfg *tls.Config) *rawClient {
	f.t.Helper()
	c, err := tls.Dial("tcp", f.addr, cfg)
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = c.Close() })
	return &rawClient{t: f.t, c: c, r: bufio.NewReader(c)}
}

func (c *rawClient) writeRaw(b []byte) {
	c.t.Helper()
	_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.c.Write(b)
	require.NoError(c.t, err)
}

func (c *rawClient) write(pk packets.Packet) {
	c.t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		c.t.Fatalf("rawClient cannot encode packet type %d", pk.FixedHeader.Type)
	}
	require.NoError(c.t, err)
	c.writeRaw(buf.Bytes())
}

// read returns the next packet, or an error (io.EOF when the hub closed
// the connection, a timeout error when nothing came).
func (c *rawClient) read(timeout time.Duration) (packets.Packet, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(timeout))
	hb, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: 4}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	buf := make([]byte, n)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(buf)
	case packets.Suback:
		err = pk.SubackDecode(buf)
	case packets.Unsuback:
		err = pk.UnsubackDecode(buf)
	case packets.Publish:
		err = pk.PublishDecode(buf)
	case packets.Puback:
		err = pk.PubackDecode(buf)
	case packets.Pingresp, packets.Disconnect:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// expect reads the next packet and requires its type.
func (c *rawClient) expect(typ byte) packets.Packet {
	c.t.Helper()
	pk, err := c.read(5 * time.Second)
	require.NoError(c.t, err, "waiting for packet type %d", typ)
	require.Equal(c.t, typ, pk.FixedHeader.Type, "packet type")
	return pk
}

// expectClosed requires that the hub closes the connection (EOF or reset),
// skipping a DISCONNECT it may send first.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	for i := 0; i < 3; i++ {
		pk, err := c.read(5 * time.Second)
		if err != nil {
			var ne net.Error
			require.False(c.t, errors.As(err, &ne) && ne.Timeout(), "the hub should have closed the connection")
			return
		}
		require.Contains(c.t, []byte{packets.Disconnect, packets.Connack}, pk.FixedHeader.Type,
			"only a DISCONNECT (or CONNACK) may come before the close, got type %d", pk.FixedHeader.Type)
	}
	c.t.Fatal("the hub kept the connection open")
}

// expectNothing requires that no packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	pk, err := c.read(d)
	var ne net.Error
	require.True(c.t, errors.As(err, &ne) && ne.Timeout(), "expected silence, got packet %d (err %v)", pk.FixedHeader.Type, err)
}

func connectPacket(clientID, user string, password []byte, clean bool) packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), ClientIdentifier: clientID, Clean: clean, Keepalive: 60,
			UsernameFlag: user != "", Username: []byte(user),
			PasswordFlag: len(password) > 0, Password: password,
		},
	}
}

// connect sends CONNECT and returns the CONNACK return code.
func (c *rawClient) connect(clientID, user string, password []byte) byte {
	c.t.Helper()
	c.write(connectPacket(clientID, user, password, false))
	return c.expect(packets.Connack).ReasonCode
}

// connectAs connects id with a valid token and requires CONNACK 0.
func (f *fixture) connectAs(id Identity) *rawClient {
	f.t.Helper()
	c := f.dial()
	require.Equal(f.t, byte(0), c.connect(id.ClientID(), username(id), token(id, f.key(id), time.Hour)), "CONNACK of %s", id.ClientID())
	return c
}

func (c *rawClient) subscribe(filters map[string]byte) []byte {
	c.t.Helper()
	c.sendSubscribe(filters)
	ack := c.expect(packets.Suback)
	require.Equal(c.t, c.id, ack.PacketID)
	return ack.ReasonCodes
}

func (c *rawClient) sendSubscribe(filters map[string]byte) {
	c.t.Helper()
	c.id++
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: c.id, ProtocolVersion: 4}
	for f, q := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: q})
	}
	c.write(pk)
}

// subscribeExpectingPublish subscribes and returns the one PUBLISH (topic
// starting with prefix) the subscription releases, such as a method call
// that waited for it: the hub may write it before or after the SUBACK.
func (c *rawClient) subscribeExpectingPublish(filters map[string]byte, prefix string) packets.Packet {
	c.t.Helper()
	c.sendSubscribe(filters)
	var pub *packets.Packet
	acked := false
	for !acked || pub == nil {
		pk, err := c.read(5 * time.Second)
		require.NoError(c.t, err, "waiting for the SUBACK and a PUBLISH to %s", prefix)
		switch pk.FixedHeader.Type {
		case packets.Suback:
			require.False(c.t, acked, "a second SUBACK")
			require.Equal(c.t, c.id, pk.PacketID)
			acked = true
		case packets.Publish:
			require.Nil(c.t, pub, "a second PUBLISH (%q)", pk.TopicName)
			require.True(c.t, strings.HasPrefix(pk.TopicName, prefix), "topic %q should start with %q", pk.TopicName, prefix)
			pub = &pk
		default:
			c.t.Fatalf("unexpected packet type %d while subscribing", pk.FixedHeader.Type)
		}
	}
	return *pub
}

func (c *rawClient) unsubscribe(filters ...string) {
	c.t.Helper()
	c.id++
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: c.id, ProtocolVersion: 4}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f})
	}
	c.write(pk)
	c.expect(packets.Unsuback)
}

func (c *rawClient) publish(topic string, qos byte, payload []byte) {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, Payload: payload, ProtocolVersion: 4}
	if qos > 0 {
		c.id++
		pk.PacketID = c.id
	}
	c.write(pk)
}

// expectPublish waits for a PUBLISH whose topic starts with prefix.
func (c *rawClient) expectPublish(prefix string) packets.Packet {
	c.t.Helper()
	pk := c.expect(packets.Publish)
	require.True(c.t, strings.HasPrefix(pk.TopicName, prefix), "topic %q should start with %q", pk.TopicName, prefix)
	return pk
}

// invokeResult is the outcome of an InvokeMethod run in the background.
type invokeResult struct {
	status  int
	payload json.RawMessage
	err     error
}

func (f *fixture) invokeAsync(id Identity, method string, payload json.RawMessage, connect, response time.Duration) <-chan invokeResult {
	ch := make(chan invokeResult, 1)
	go func() {
		s, p, err := f.reg.InvokeMethod(context.Background(), id.DeviceID, id.ModuleID, method, payload, connect, response)
		ch <- invokeResult{s, p, err}
	}()
	return ch
}

func waitResult(t *testing.T, ch <-chan invokeResult) invokeResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("InvokeMethod did not return")
		return invokeResult{}
	}
}

// eventually polls cond for up to 5 s, for state that no event announces
// (the endpoint's counters).
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, 2*time.Millisecond, msg)
}

// waitDisconnected waits for the endpoint's n-th "device <id> disconnected"
// log line: the endpoint writes it once the identity is detached from the
// registry (its twin Disconnected, unless a newer connection took over) and
// the connection is no longer counted in Stats().Connected.
func (f *fixture) waitDisconnected(id Identity, n int) {
	f.t.Helper()
	line := "device " + id.ClientID() + " disconnected"
	f.logs.WaitUntil(f.t, 5*time.Second, fmt.Sprintf("%d× %q in the log", n, line), func(s string) bool {
		return strings.Count(s, line) >= n
	})
}

func connectionState(t *testing.T, reg *registry.Registry, id Identity) string {
	t.Helper()
	doc, err := reg.Twin(id.DeviceID, id.ModuleID)
	require.NoError(t, err)
	s, _ := doc["connectionState"].(string)
	return s
}

// topicQuery returns all parameters of a topic's query (first value wins).
func topicQuery(topic string) map[string]string {
	_, q, ok := strings.Cut(topic, "?")
	if !ok {
		return nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(q, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := out[k]; !dup {
			out[k] = v
		}
	}
	return out
}

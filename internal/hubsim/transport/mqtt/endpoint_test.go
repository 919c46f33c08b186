package mqtt

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/sas"
)

var (
	dev1 = Identity{DeviceID: "dev1"}
	dev2 = Identity{DeviceID: "dev2"}
	mod1 = Identity{DeviceID: "edge-01", ModuleID: "mod1"}
)

// roundTrip subscribes c to methods and checks one method call end to end.
func roundTrip(t *testing.T, f *fixture, c *rawClient, id Identity) {
	t.Helper()
	res := f.invokeAsync(id, "ping", json.RawMessage(`{"n":1}`), 2*time.Second, 5*time.Second)
	req := c.expectPublish("$iothub/methods/POST/ping/?$rid=")
	c.publish("$iothub/methods/res/200/?$rid="+topicQuery(req.TopicName)["$rid"], 0, []byte(`"pong"`))
	r := waitResult(t, res)
	require.NoError(t, r.err)
	assert.Equal(t, 200, r.status)
	assert.JSONEq(t, `"pong"`, string(r.payload))
}

func TestConnectAndDisconnect(t *testing.T) {
	f := newFixture(t)
	assert.Equal(t, "Disconnected", connectionState(t, f.reg, dev1))
	c := f.connectAs(dev1)
	assert.Equal(t, "Connected", connectionState(t, f.reg, dev1), "connected right after CONNACK")
	assert.True(t, f.ep.Connected("dev1", ""))
	assert.EqualValues(t, 1, f.ep.Stats().Connected)
	assert.Equal(t, "Disconnected", connectionState(t, f.reg, dev2), "other devices unaffected")

	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	c.expectClosed()
	f.waitDisconnected(dev1, 1)
	assert.Equal(t, "Disconnected", connectionState(t, f.reg, dev1), "twin should be Disconnected after DISCONNECT")
	assert.EqualValues(t, 0, f.ep.Stats().Connected, "stats should show no connection")
	assert.False(t, f.ep.Connected("dev1", ""))
	assert.Contains(t, f.logs.String(), "device dev1 connected from 127.0.0.1:")
}

// TestConnectRefused: every bad CONNECT gets CONNACK 5 and a closed
// connection, nothing secret is logged, and the endpoint keeps serving.
func TestConnectRefused(t *testing.T) {
	f := newFixture(t)
	k1, k2 := f.key(dev1), f.key(dev2)
	other := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name     string
		client   string
		user     string
		password []byte
	}{
		{"wrong key", "dev1", username(dev1), token(dev1, other, time.Hour)},
		{"token of another device", "dev1", username(dev1), token(dev2, k2, time.Hour)},
		{"another device's sr with the right key", "dev1", username(dev1), token(dev2, k1, time.Hour)},
		{"expired token", "dev1", username(dev1), []byte(sas.NewToken(testHost+"/devices/dev1", "", k1, time.Now().Add(-time.Minute)))},
		{"unregistered device", "ghost", username(Identity{DeviceID: "ghost"}), token(Identity{DeviceID: "ghost"}, k1, time.Hour)},
		{"username of another device", "dev1", username(dev2), token(dev1, k1, time.Hour)},
		{"no password", "dev1", username(dev1), nil},
		{"password not a token", "dev1", username(dev1), []byte("letmein")},
		{"module token for the device", "edge-01", username(Identity{DeviceID: "edge-01"}), token(mod1, f.key(mod1), time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.dial()
			assert.Equal(t, byte(5), c.connect(tc.client, tc.user, tc.password), "CONNACK 5 (not authorized)")
			c.expectClosed()
		})
	}
	assert.Equal(t, "Disconnected", connectionState(t, f.reg, dev1), "no refused client attached")
	assert.EqualValues(t, 9, f.ep.Stats().Refused)
	logs := f.logs.String()
	assert.Contains(t, logs, "signature does not match")
	for _, k := range [][]byte{k1, k2} {
		assert.NotContains(t, logs, base64.StdEncoding.EncodeToString(k), "keys never logged")
	}
	assert.NotContains(t, logs, "sig=", "tokens never logged")
	assert.NotContains(t, logs, "letmein", "passwords never logged")

	// Still serving.
	c := f.connectAs(dev1)
	c.subscribe(map[string]byte{FilterMethods: 0})
	roundTrip(t, f, c, dev1)
}

// TestMalformedConnect: garbage, a non-CONNECT first packet, a truncated
// CONNECT, other protocol versions and a plain-TCP client never crash the
// endpoint, and a device connected meanwhile keeps working.
func TestMalformedConnect(t *testing.T) {
	f := newFixture(t)
	good := f.connectAs(dev2)
	good.subscribe(map[string]byte{FilterMethods: 1})

	t.Run("garbage bytes", func(t *testing.T) {
		c := f.dial()
		c.writeRaw([]byte("\x10\xff\xff\xff\xff\x7fnot mqtt at all"))
		c.expectClosed()
	})
	t.Run("PUBLISH before CONNECT", func(t *testing.T) {
		c := f.dial()
		c.publish("devices/dev1/messages/events/", 0, []byte("x"))
		c.expectClosed()
	})
	t.Run("truncated CONNECT", func(t *testing.T) {
		c := f.dial()
		var buf bytes.Buffer
		pk := connectPacket("dev1", username(dev1), token(dev1, f.key(dev1), time.Hour), false)
		require.NoError(t, pk.ConnectEncode(&buf))
		b := buf.Bytes()
		c.writeRaw(b[:len(b)/2])
		_ = c.c.(*tls.Conn).CloseWrite()
		c.expectClosed()
	})
	t.Run("CONNECT with a bad protocol name", func(t *testing.T) {
		c := f.dial()
		pk := connectPacket("dev1", username(dev1), token(dev1, f.key(dev1), time.Hour), false)
		pk.Connect.ProtocolName = []byte("HTTP")
		c.write(pk)
		c.expectClosed()
	})
	t.Run("CONNECT with a length beyond the packet", func(t *testing.T) {
		c := f.dial()
		// Client id length says 200 bytes, 3 follow.
		c.writeRaw([]byte{0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 200, 'a', 'b', 'c'})
		c.expectClosed()
	})
	t.Run("MQTT 3.1 (MQIsdp)", func(t *testing.T) {
		c := f.dial()
		pk := connectPacket("dev1", username(dev1), token(dev1, f.key(dev1), time.Hour), false)
		pk.Connect.ProtocolName, pk.ProtocolVersion = []byte("MQIsdp"), 3
		c.write(pk)
		assert.Equal(t, byte(1), c.expect(packets.Connack).ReasonCode, "unacceptable protocol version")
		c.expectClosed()
	})
	t.Run("MQTT 5", func(t *testing.T) {
		c := f.dial()
		pk := connectPacket("dev1", username(dev1), token(dev1, f.key(dev1), time.Hour), false)
		pk.ProtocolVersion = 5
		c.write(pk)
		// A v5 CONNACK: fixed header, flags, reason code 0x84.
		hb, err := c.r.ReadByte()
		require.NoError(t, err)
		assert.Equal(t, byte(packets.Connack<<4), hb)
		_, _, err = packets.DecodeLength(c.r)
		require.NoError(t, err)
		_, err = c.r.ReadByte()
		require.NoError(t, err)
		rc, err := c.r.ReadByte()
		require.NoError(t, err)
		assert.Equal(t, packets.ErrUnsupportedProtocolVersion.Code, rc)
	})
	t.Run("not TLS", func(t *testing.T) {
		raw, err := net.Dial("tcp", f.addr)
		require.NoError(t, err)
		defer raw.Close()
		_, _ = raw.Write([]byte("\x10\x0cplain mqtt"))
		_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, _ := raw.Read(buf)
		_, err = raw.Read(buf)
		assert.Error(t, err, "the hub closes a connection that does not speak TLS (read %d bytes)", n)
	})

	assert.Equal(t, "Disconnected", connectionState(t, f.reg, dev1))
	roundTrip(t, f, good, dev2)
	c := f.connectAs(dev1)
	c.subscribe(map[string]byte{FilterMethods: 0})
	roundTrip(t, f, c, dev1)
}

func TestMethods(t *testing.T) {
	f := newFixture(t)
	c := f.connectAs(dev1)

	// Connected but not subscribed: 404103 at once.
	r := waitResult(t, f.invokeAsync(dev1, "reboot", nil, 0, 5*time.Second))
	assert.ErrorIs(t, r.err, registry.ErrDeviceNotOnline)
	assert.Equal(t, "Connected", connectionState(t, f.reg, dev1), "still Connected: only not subscribed")

	codes := c.subscribe(map[string]byte{FilterMethods: 2})
	assert.Equal(t, []byte{1}, codes, "SUBACK grants at most QoS 1")

	t.Run("payload and answer pass through", func(t *testing.T) {
		res := f.invokeAsync(dev1, "firmwareUpdate", json.RawMessage(`{"fwPackageUri":"https://x/y","n":[1,2]}`), 0, 5*time.Second)
		req := c.expectPublish("$iothub/methods/POST/firmwareUpdate/?$rid=")
		assert.Equal(t, byte(0), req.FixedHeader.Qos, "method requests are QoS 0")
		assert.JSONEq(t, `{"fwPackageUri":"https://x/y","n":[1,2]}`, string(req.Payload))
		rid := topicQuery(req.TopicName)["$rid"]
		require.NotEmpty(t, rid)
		c.publish("$iothub/methods/res/201/?$rid="+rid, 1, []byte(`{"accepted":true}`))
		assert.Equal(t, c.id, c.expect(packets.Puback).PacketID, "QoS 1 responses are acknowledged")
		got := waitResult(t, res)
		require.NoError(t, got.err)
		assert.Equal(t, 201, got.status)
		assert.JSONEq(t, `{"accepted":true}`, string(got.payload))
	})
	t.Run("no payload is sent as null", func(t *testing.T) {
		res := f.invokeAsync(dev1, "reboot", nil, 0, 5*time.Second)
		req := c.expectPublish("$iothub/methods/POST/reboot/?$rid=")
		assert.Equal(t, "null", string(req.Payload))
		c.publish("$iothub/methods/res/200/?$rid="+topicQuery(req.TopicName)["$rid"], 0, nil)
		got := waitResult(t, res)
		require.NoError(t, got.err)
		assert.Equal(t, 200, got.status)
		assert.Equal(t, "null", string(got.payload), "an empty answer is payload null")
	})
	t.Run("an answer that is not JSON becomes a JSON string", func(t *testing.T) {
		res := f.invokeAsync(dev1, "x", nil, 0, 5*time.Second)
		req := c.expectPublish("$iothub/methods/POST/x/?$rid=")
		c.publish("$iothub/methods/res/500/?$rid="+topicQuery(req.TopicName)["$rid"], 0, []byte("oops"))
		got := waitResult(t, res)
		require.NoError(t, got.err)
		assert.Equal(t, 500, got.status)
		assert.Equal(t, `"oops"`, string(got.payload))
	})
	t.Run("a device that never answers: 504101", func(t *testing.T) {
		start := time.Now()
		res := f.invokeAsync(dev1, "hang", nil, 0, 300*time.Millisecond)
		c.expectPublish("$iothub/methods/POST/hang/?$rid=")
		got := waitResult(t, res)
		assert.ErrorIs(t, got.err, registry.ErrTimeout)
		assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	})
	t.Run("a late or unknown answer is ignored", func(t *testing.T) {
		c.publish("$iothub/methods/res/200/?$rid=ffffffff", 0, []byte(`{}`))
		roundTrip(t, f, c, dev1)
	})
	t.Run("another device cannot answer", func(t *testing.T) {
		c2 := f.connectAs(dev2)
		res := f.invokeAsync(dev1, "who", nil, 0, 400*time.Millisecond)
		req := c.expectPublish("$iothub/methods/POST/who/?$rid=")
		c2.publish("$iothub/methods/res/200/?$rid="+topicQuery(req.TopicName)["$rid"], 0, []byte(`"impostor"`))
		got := waitResult(t, res)
		assert.ErrorIs(t, got.err, registry.ErrTimeout, "dev2's answer must not complete dev1's call")
	})
	t.Run("unsubscribed: 404103 again", func(t *testing.T) {
		c.unsubscribe(FilterMethods)
		got := waitResult(t, f.invokeAsync(dev1, "reboot", nil, 0, time.Second))
		assert.ErrorIs(t, got.err, registry.ErrDeviceNotOnline)
	})
	st := f.ep.Stats()
	assert.GreaterOrEqual(t, st.MethodRequests, int64(6))
	assert.GreaterOrEqual(t, st.MethodResponses, int64(4))
}

// TestMethodsConnectTimeout: a call waits up to connectTimeout for the
// device to connect and subscribe.
func TestMethodsConnectTimeout(t *testing.T) {
	f := newFixture(t)
	res := f.invokeAsync(dev3(), "hello", nil, 5*time.Second, 5*time.Second)
	// The call is in flight before the device connects (no event says it
	// has started waiting; the registry counts it on entry).
	eventually(t, func() bool { return f.reg.Stats().MethodsInvoked == 1 }, "the call reached the registry")
	c := f.connectAs(dev3())
	// Connected but not subscribed: the call must keep waiting. Had it given
	// up here (404103), no request would be published once the device
	// subscribes, and r.err would say so.
	req := c.subscribeExpectingPublish(map[string]byte{FilterMethods: 0}, "$iothub/methods/POST/hello/?$rid=")
	c.publish("$iothub/methods/res/200/?$rid="+topicQuery(req.TopicName)["$rid"], 0, []byte(`1`))
	r := waitResult(t, res)
	require.NoError(t, r.err)
	assert.Equal(t, 200, r.status)

	// Offline registered device, connect timeout passes: 404103.
	start := time.Now()
	r = waitResult(t, f.invokeAsync(dev2, "hello", nil, 300*time.Millisecond, 5*time.Second))
	assert.ErrorIs(t, r.err, registry.ErrDeviceNotOnline)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
}

func dev3() Identity { return Identity{DeviceID: "dev3"} }

// TestOneConnectionPerIdentity: a second connection of the same identity
// closes the first; methods go to the new one.
func TestOneConnectionPerIdentity(t *testing.T) {
	f := newFixture(t)
	first := f.connectAs(dev1)
	first.subscribe(map[string]byte{FilterMethods: 0})
	second := f.dial()
	require.Equal(t, byte(0), second.connect("dev1", username(dev1), token(dev1, f.key(dev1), time.Hour)))
	first.expectClosed()
	second.subscribe(map[string]byte{FilterMethods: 0})
	roundTrip(t, f, second, dev1)
	f.waitDisconnected(dev1, 1) // the first connection is dropped
	assert.Equal(t, "Connected", connectionState(t, f.reg, dev1), "the old connection's close does not detach the new one")
	assert.EqualValues(t, 1, f.ep.Stats().Connected, "one live connection")
}

// TestResumedSession: with clean session 0 the subscriptions survive a
// reconnect (MQTT persistent sessions).
func TestResumedSession(t *testing.T) {
	f := newFixture(t)
	c := f.connectAs(dev1)
	c.subscribe(map[string]byte{FilterMethods: 0})
	_ = c.c.Close()
	f.waitDisconnected(dev1, 1)
	require.Equal(t, "Disconnected", connectionState(t, f.reg, dev1))

	c2 := f.dial()
	c2.write(connectPacket("dev1", username(dev1), token(dev1, f.key(dev1), time.Hour), false))
	ack := c2.expect(packets.Connack)
	assert.Equal(t, byte(0), ack.ReasonCode)
	assert.True(t, ack.SessionPresent, "session present")
	roundTrip(t, f, c2, dev1)

	// A clean session starts without subscriptions.
	_ = c2.c.Close()
	f.waitDisconnected(dev1, 2)
	require.Equal(t, "Disconnected", connectionState(t, f.reg, dev1))
	c3 := f.dial()
	c3.write(connectPacket("dev1", username(dev1), token(dev1, f.key(dev1), time.Hour), true))
	assert.False(t, c3.expect(packets.Connack).SessionPresent)
	r := waitResult(t, f.invokeAsync(dev1, "x", nil, 0, time.Second))
	assert.ErrorIs(t, r.err, registry.ErrDeviceNotOnline)
}

func TestTwin(t *testing.T) {
	f := newFixture(t)
	_, err := f.reg.PatchTwin("dev1", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"interval": 30}}}, "")
	require.NoError(t, err)
	c := f.connectAs(dev1)

	t.Run("no answer without the twin/res subscription", func(t *testing.T) {
		c.publish("$iothub/twin/GET/?$rid=0", 0, []byte(" "))
		c.expectNothing(300 * time.Millisecond)
	})
	assert.Equal(t, []byte{0}, c.subscribe(map[string]byte{FilterTwinRes: 0}))

	t.Run("GET", func(t *testing.T) {
		c.publish("$iothub/twin/GET/?$rid=g1", 0, []byte(" "))
		pk := c.expectPublish("$iothub/twin/res/200/?$rid=g1")
		assert.Equal(t, "$iothub/twin/res/200/?$rid=g1", pk.TopicName)
		var body map[string]map[string]any
		require.NoError(t, json.Unmarshal(pk.Payload, &body))
		require.Contains(t, body, "desired")
		require.Contains(t, body, "reported")
		assert.EqualValues(t, 2, body["desired"]["$version"])
		assert.EqualValues(t, 30, body["desired"]["interval"])
		assert.EqualValues(t, 1, body["reported"]["$version"])
		assert.NotContains(t, body["desired"], "$metadata")
		assert.NotContains(t, body["reported"], "$metadata")
		assert.Len(t, body, 2, "only the properties sections")
	})
	t.Run("reported PATCH", func(t *testing.T) {
		c.publish("$iothub/twin/PATCH/properties/reported/?$rid=p1", 1, []byte(`{"fw":"1.2","battery":{"level":87}}`))
		puback := false
		for i := 0; i < 2; i++ {
			pk, err := c.read(5 * time.Second)
			require.NoError(t, err)
			switch pk.FixedHeader.Type {
			case packets.Puback:
				puback = true
			case packets.Publish:
				assert.Equal(t, "$iothub/twin/res/204/?$rid=p1&$version=2", pk.TopicName)
				assert.Empty(t, pk.Payload)
			}
		}
		assert.True(t, puback, "QoS 1 PUBLISH acknowledged")
		doc, err := f.reg.Twin("dev1", "")
		require.NoError(t, err)
		rep := doc["properties"].(map[string]any)["reported"].(map[string]any)
		assert.Equal(t, "1.2", rep["fw"])
		assert.EqualValues(t, 87, rep["battery"].(map[string]any)["level"])
		assert.EqualValues(t, 2, rep["$version"])

		c.publish("$iothub/twin/PATCH/properties/reported/?$rid=p2", 0, []byte(`{"fw":null}`))
		assert.Equal(t, "$iothub/twin/res/204/?$rid=p2&$version=3", c.expectPublish("$iothub/twin/res/").TopicName)
		doc, _ = f.reg.Twin("dev1", "")
		assert.NotContains(t, doc["properties"].(map[string]any)["reported"], "fw", "null deletes")
	})
	t.Run("bad reported PATCH", func(t *testing.T) {
		for _, tc := range []struct{ body, status, code string }{
			{`not json`, "400", "400006"},
			{`[1,2]`, "400", "400006"},
			{`{"bad.name":1}`, "400", "400004"},
		} {
			c.publish("$iothub/twin/PATCH/properties/reported/?$rid=bad", 0, []byte(tc.body))
			pk := c.expectPublish("$iothub/twin/res/")
			assert.Equal(t, "$iothub/twin/res/"+tc.status+"/?$rid=bad", pk.TopicName, tc.body)
			var e map[string]any
			require.NoError(t, json.Unmarshal(pk.Payload, &e), tc.body)
			assert.Equal(t, tc.code, fmt.Sprint(e["errorCode"]), tc.body)
			assert.NotEmpty(t, e["message"])
		}
	})
	t.Run("desired push", func(t *testing.T) {
		c.publish("$iothub/twin/GET/?$rid=g2", 0, nil) // no subscription to desired yet: nothing pushed
		c.expectPublish("$iothub/twin/res/200/?$rid=g2")
		_, err := f.reg.PatchTwin("dev1", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"interval": 60}}}, "")
		require.NoError(t, err)
		c.expectNothing(200 * time.Millisecond)

		c.subscribe(map[string]byte{FilterDesired: 1})
		_, err = f.reg.PatchTwin("dev1", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"mode": "eco", "interval": nil}}}, "")
		require.NoError(t, err)
		pk := c.expectPublish(desiredTopic)
		assert.Equal(t, "$iothub/twin/PATCH/properties/desired/?$version=4", pk.TopicName)
		assert.JSONEq(t, `{"mode":"eco","interval":null,"$version":4}`, string(pk.Payload))
		eventually(t, func() bool { return f.ep.Stats().DesiredPushes == 1 }, "one desired push counted")
	})
	t.Run("another device gets no push", func(t *testing.T) {
		c2 := f.connectAs(dev2)
		c2.subscribe(map[string]byte{FilterDesired: 0})
		_, err := f.reg.PatchTwin("dev1", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"x": 1}}}, "")
		require.NoError(t, err)
		c.expectPublish(desiredTopic)
		c2.expectNothing(200 * time.Millisecond)
	})
}

func TestQoS2PublishClosesConnection(t *testing.T) {
	f := newFixture(t)
	c := f.connectAs(dev1)
	c.publish("devices/dev1/messages/events/", 2, []byte("hi"))
	c.expectClosed()
	f.waitDisconnected(dev1, 1)
	assert.Equal(t, "Disconnected", connectionState(t, f.reg, dev1), "detached")
	assert.EqualValues(t, 1, f.ep.Stats().Closed)
	assert.Contains(t, f.logs.String(), "QoS 2")
}

func TestTopicsAndACLs(t *testing.T) {
	f := newFixture(t)
	c := f.connectAs(dev1)

	t.Run("own topics granted, others refused", func(t *testing.T) {
		for _, tc := range []struct {
			filter string
			qos    byte
			want   byte
		}{
			{FilterMethods, 0, 0},
			{FilterTwinRes, 1, 1},
			{FilterDesired, 2, 1},
			{"devices/dev1/messages/devicebound/#", 1, 1},
			{"devices/dev2/messages/devicebound/#", 1, 0x80},
			{"devices/+/messages/devicebound/#", 0, 0x80},
			{"#", 0, 0x80},
			{"$SYS/#", 0, 0x80},
		} {
			assert.Equal(t, []byte{tc.want}, c.subscribe(map[string]byte{tc.filter: tc.qos}), tc.filter)
		}
	})
	t.Run("telemetry accepted and acknowledged, not routed", func(t *testing.T) {
		c2 := f.connectAs(dev2)
		// dev2 tries to listen to dev1's telemetry: refused.
		assert.Equal(t, []byte{0x80}, c2.subscribe(map[string]byte{"devices/dev1/messages/events/#": 0}))
		c.publish("devices/dev1/messages/events/a=1", 1, []byte(`{"temp":21}`))
		assert.Equal(t, c.id, c.expect(packets.Puback).PacketID)
		c.publish("devices/dev1/messages/events/", 0, []byte(`{"temp":22}`))
		eventually(t, func() bool { return f.ep.Stats().Telemetry == 2 }, "two telemetry messages counted")
		c2.expectNothing(200 * time.Millisecond)
	})
	t.Run("publishing on another device's topic closes the connection", func(t *testing.T) {
		c.publish("devices/dev2/messages/events/", 0, []byte("spoof"))
		c.expectClosed()
	})
	t.Run("publishing a hub-to-device topic closes the connection", func(t *testing.T) {
		c2 := f.connectAs(dev2)
		c2.publish("$iothub/methods/POST/reboot/?$rid=1", 1, []byte("{}"))
		c2.expectClosed()
	})
	t.Run("wills are dropped", func(t *testing.T) {
		listener := f.connectAs(dev3())
		listener.subscribe(map[string]byte{"devices/dev3/messages/devicebound/#": 1})
		w := f.dial()
		pk := connectPacket("dev1", username(dev1), token(dev1, f.key(dev1), time.Hour), true)
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, "devices/dev3/messages/devicebound/x", []byte("will")
		w.write(pk)
		require.Equal(t, byte(0), w.expect(packets.Connack).ReasonCode)
		_ = w.c.Close() // ungraceful: a broker would publish the will
		listener.expectNothing(300 * time.Millisecond)
	})
}

func TestModule(t *testing.T) {
	f := newFixture(t)
	assert.Equal(t, "Disconnected", connectionState(t, f.reg, mod1))
	c := f.connectAs(mod1)
	assert.Equal(t, "Connected", connectionState(t, f.reg, mod1))
	assert.Equal(t, []byte{1, 1}, c.subscribe(map[string]byte{FilterMethods: 1, "devices/edge-01/modules/mod1/inputs/#": 1}))
	roundTrip(t, f, c, mod1)
	c.publish("devices/edge-01/modules/mod1/messages/events/", 0, []byte("{}"))
	c.subscribe(map[string]byte{FilterTwinRes: 0})
	c.publish("$iothub/twin/PATCH/properties/reported/?$rid=m", 0, []byte(`{"ok":true}`))
	assert.Equal(t, "$iothub/twin/res/204/?$rid=m&$version=2", c.expectPublish("$iothub/twin/res/").TopicName)
	doc, err := f.reg.Twin("edge-01", "mod1")
	require.NoError(t, err)
	assert.Equal(t, true, doc["properties"].(map[string]any)["reported"].(map[string]any)["ok"])
}

func TestTokenExpiryClosesConnection(t *testing.T) {
	f := newFixture(t)
	c := f.dial()
	// se is in whole seconds: this token expires within 1–2 s.
	exp := time.Now().Add(1500 * time.Millisecond)
	tok := []byte(sas.NewToken(testHost+"/devices/dev1", "", f.key(dev1), exp))
	require.Equal(t, byte(0), c.connect("dev1", username(dev1), tok))
	c.expectClosed()
	assert.WithinDuration(t, exp.Truncate(time.Second), time.Now(), 1500*time.Millisecond)
	assert.Contains(t, f.logs.String(), "token expired")
}

// TestLogsRedactSecretsInDeviceText: a client that puts a token in its
// username does not get it into the log.
func TestLogsRedactSecretsInDeviceText(t *testing.T) {
	f := newFixture(t)
	tok := string(token(dev1, f.key(dev1), time.Hour))
	c := f.dial()
	assert.Equal(t, byte(5), c.connect("dev1", tok, []byte(tok)))
	c.expectClosed()
	_, sig, _ := strings.Cut(tok, "sig=")
	sig, _, _ = strings.Cut(sig, "&")
	require.NotEmpty(t, sig)
	assert.NotContains(t, f.logs.String(), sig)
	assert.Contains(t, f.logs.String(), "refused CONNECT")
}

// TestDesiredPushDoesNotBlockTheService: a device that does not read its
// socket delays neither the service's twin PATCH nor other devices' pushes,
// and pushes keep their order.
func TestDesiredPushDoesNotBlockTheService(t *testing.T) {
	f := newFixture(t)
	stuck := f.connectAs(dev1)
	stuck.subscribe(map[string]byte{FilterDesired: 0})
	fine := f.connectAs(dev2)
	fine.subscribe(map[string]byte{FilterDesired: 0})
	// ~25 MB to a client that reads nothing: far more than socket buffers hold.
	const n = 1000
	desired := map[string]any{}
	for k := 0; k < 7; k++ {
		desired[fmt.Sprintf("blob%d", k)] = strings.Repeat("x", 3500)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		desired["i"] = i
		_, err := f.reg.PatchTwin("dev1", "", map[string]any{"properties": map[string]any{"desired": desired}}, "")
		require.NoError(t, err)
	}
	assert.Less(t, time.Since(start), 5*time.Second, "PATCHes do not wait for the device")
	_, err := f.reg.PatchTwin("dev2", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"a": 1}}}, "")
	require.NoError(t, err)
	assert.Equal(t, "$iothub/twin/PATCH/properties/desired/?$version=2", fine.expectPublish(desiredTopic).TopicName)
	// The stuck device, once it reads, gets every patch in order.
	for i := 0; i < n; i++ {
		pk := stuck.expectPublish(desiredTopic)
		require.Equal(t, fmt.Sprintf("%s?$version=%d", desiredTopic, i+2), pk.TopicName)
	}
}

// TestRevokedIdentities: a disabled device is refused at CONNECT (CONNACK
// 5) and a connected one is disconnected when disabled, as is a module of a
// deleted device; a method to a disabled device finds it offline (404103).
// Enabling it again lets it connect.
func TestRevokedIdentities(t *testing.T) {
	f := newFixture(t)
	c := f.connectAs(dev1)
	c.subscribe(map[string]byte{FilterMethods: 1})
	_, err := f.reg.PutIdentity(registry.IdentitySpec{DeviceID: "dev1", Status: registry.StatusDisabled, IfMatch: "*"})
	require.NoError(t, err)
	c.expectClosed()
	f.waitDisconnected(dev1, 1)
	assert.Contains(t, f.logs.String(), "device dev1: the device was disabled, closing the connection")
	assert.Equal(t, "Disconnected", connectionState(t, f.reg, dev1))

	c2 := f.dial()
	assert.Equal(t, byte(5), c2.connect("dev1", username(dev1), token(dev1, f.key(dev1), time.Hour)), "a disabled device is not authorized")
	c2.expectClosed()
	assert.Contains(t, f.logs.String(), `device "dev1" is disabled`)
	c4 := f.dial()
	assert.Equal(t, byte(5), c4.connect("dev1", username(dev1), token(dev1, make([]byte, 32), time.Hour)))
	c4.expectClosed()
	assert.Equal(t, 1, strings.Count(f.logs.String(), `is disabled`), "a wrong key learns nothing of the status")
	r := waitResult(t, f.invokeAsync(dev1, "reboot", nil, 0, time.Second))
	assert.ErrorIs(t, r.err, registry.ErrDeviceNotOnline)

	_, err = f.reg.PutIdentity(registry.IdentitySpec{DeviceID: "dev1", Status: registry.StatusEnabled, IfMatch: "*"})
	require.NoError(t, err)
	f.connectAs(dev1)
	assert.Equal(t, "Connected", connectionState(t, f.reg, dev1))

	mod := Identity{DeviceID: "edge-01", ModuleID: "mod1"}
	m := f.connectAs(mod)
	require.NoError(t, f.reg.DeleteIdentity("edge-01", "", ""))
	m.expectClosed()
	c3 := f.dial()
	assert.Equal(t, byte(5), c3.connect(mod.ClientID(), username(mod), token(mod, make([]byte, 32), time.Hour)), "deleted: not registered")
}

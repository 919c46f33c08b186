package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/dmctl/dmctl/internal/hubsim/registry"
)

// Reasons the hub closes a connection.
var (
	errQoS2          = errors.New("QoS 2 is not supported by IoT Hub")
	errForbiddenPub  = errors.New("publish to a topic the device may not use")
	errTokenExpired  = errors.New("the SAS token of the connection has expired")
	errRevoked       = errors.New("the identity was deleted or disabled")
	errNotAttachable = errors.New("the identity could not be attached to the registry")
)

// conn is one authenticated device connection.
type conn struct {
	ep     *Endpoint
	cl     *mochi.Client
	id     Identity
	remote string

	established atomic.Bool // OnSessionEstablished ran (CONNACK sent)

	mu            sync.Mutex
	subs          map[subscription]bool
	detach        func()
	cancelDesired func()
	expiry        *time.Timer
	desiredQ      [][2][]byte // desired patches to send: topic, body
	sending       bool        // a sendDesired goroutine is draining desiredQ
}

func (c *conn) subscribed(s subscription) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[s]
}

// publish sends a QoS 0 PUBLISH to this connection only.
func (c *conn) publish(topic string, body []byte) error {
	return c.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     body,
	})
}

var jsonNull = []byte("null")

// invoke is the registry.MethodHandler of the connection.
func (c *conn) invoke(ctx context.Context, method string, payload json.RawMessage) (int, json.RawMessage, error) {
	if !c.subscribed(subMethods) {
		return 0, nil, fmt.Errorf("%w: the device has not subscribed to %s", registry.ErrDeviceNotOnline, FilterMethods)
	}
	rid := c.ep.nextRID()
	key := pendingKey(c.id.ClientID(), rid)
	ch := make(chan methodAnswer, 1)
	c.ep.addPending(key, ch)
	defer c.ep.removePending(key)
	body := []byte(payload)
	if len(bytes.TrimSpace(body)) == 0 {
		body = jsonNull // an empty body makes the Node SDK answer 400 by itself
	}
	if err := c.publish(methodPostTopic+method+"/?$rid="+rid, body); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", registry.ErrDeviceNotOnline, err)
	}
	c.ep.stats.methodRequests.Add(1)
	select {
	case a := <-ch:
		return a.status, a.payload, nil
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// hook gives the mochi broker IoT Hub's semantics.
type hook struct {
	mochi.HookBase
	ep *Endpoint
}

// ID names the hook.
func (h *hook) ID() string { return "iothub" }

// Provides lists the events the hook handles.
func (h *hook) Provides(b byte) bool {
	switch b {
	case mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnSessionEstablish, mochi.OnSessionEstablished,
		mochi.OnDisconnect, mochi.OnPacketRead, mochi.OnSubscribed, mochi.OnUnsubscribed, mochi.OnPublish:
		return true
	}
	return false
}

func (h *hook) conn(cl *mochi.Client) *conn {
	v, ok := h.ep.conns.Load(cl)
	if !ok {
		return nil
	}
	return v.(*conn)
}

// OnConnect refuses protocol versions other than MQTT 3.1.1.
func (h *hook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	if pk.ProtocolVersion == 4 {
		return nil
	}
	h.ep.stats.refused.Add(1)
	h.ep.logf("refused CONNECT from %s: MQTT protocol level %d (IoT Hub speaks MQTT 3.1.1, level 4)", cl.Net.Remote, pk.ProtocolVersion)
	_ = h.ep.srv.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
	return packets.ErrUnsupportedProtocolVersion
}

// OnConnectAuthenticate checks client id, username and SAS password, or the
// client certificate of an X.509 identity. A refusal makes mochi answer
// CONNACK 5 (not authorized) to MQTT 3.1.1.
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	_, _, err := h.ep.auth.check(pk.Connect.ClientIdentifier, string(pk.Connect.Username), pk.Connect.Password, peerCertificates(cl.Net.Conn), h.ep.now())
	if err != nil {
		h.ep.stats.refused.Add(1)
		h.ep.logf("refused CONNECT from %s: %v", cl.Net.Remote, err)
		return false
	}
	// Will messages would be routed to other clients by the broker; the hub
	// keeps topics per connection, so wills are dropped.
	cl.Properties.Will = mochi.Will{}
	return true
}

// OnSessionEstablish attaches the identity to the registry before CONNACK
// is sent, so a device is Connected as soon as it has its CONNACK. It gets
// methods once it has subscribed to them.
func (h *hook) OnSessionEstablish(cl *mochi.Client, pk packets.Packet) {
	e := h.ep
	id, expiry, err := e.auth.check(pk.Connect.ClientIdentifier, string(pk.Connect.Username), pk.Connect.Password, peerCertificates(cl.Net.Conn), e.now())
	if err != nil { // cannot happen: the same packet passed OnConnectAuthenticate
		cl.Stop(err)
		return
	}
	c := &conn{ep: e, cl: cl, id: id, remote: cl.Net.Remote, subs: map[subscription]bool{}}
	e.conns.Store(cl, c)
	e.mu.Lock()
	e.current[id.ClientID()] = c
	e.mu.Unlock()

	detach, err := e.reg.AttachUnsubscribed(id.DeviceID, id.ModuleID, c.invoke)
	if err != nil {
		e.logf("device %s: %v", id.ClientID(), err)
		cl.Stop(errNotAttachable)
		return
	}
	cancel := e.reg.OnDesired(id.DeviceID, id.ModuleID, c.pushDesired)
	c.mu.Lock()
	c.detach, c.cancelDesired = detach, cancel
	if d := expiry.Sub(e.now()); d > 0 {
		c.expiry = time.AfterFunc(d, func() {
			e.logf("device %s: token expired, closing the connection", id.ClientID())
			cl.Stop(errTokenExpired)
		})
	}
	c.mu.Unlock()
	e.stats.connects.Add(1)
	e.stats.connected.Add(1)
	e.logf("device %s connected from %s", id.ClientID(), c.remote)
	// If CONNACK cannot be sent, mochi drops the client without
	// OnDisconnect: detach it here then.
	e.watchEstablishment(cl, c)
}

// watchEstablishment cleans up a connection that never got to
// OnSessionEstablished (its CONNACK could not be written).
func (e *Endpoint) watchEstablishment(cl *mochi.Client, c *conn) {
	time.AfterFunc(e.cfg.HandshakeTimeout, func() {
		switch {
		case c.established.Load():
		case cl.Closed():
			e.drop(cl, errors.New("CONNACK could not be sent"))
		default:
			e.watchEstablishment(cl, c)
		}
	})
}

// OnSessionEstablished runs once CONNACK is sent: a resumed session
// (clean session 0) keeps its subscriptions, methods included.
func (h *hook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	c := h.conn(cl)
	if c == nil {
		return
	}
	c.established.Store(true)
	methods := false
	c.mu.Lock()
	for filter := range cl.State.Subscriptions.GetAll() {
		if s := classifyFilter(c.id, filter); s != subNone {
			c.subs[s] = true
			methods = methods || s == subMethods
		}
	}
	c.mu.Unlock()
	if methods && h.ep.isCurrent(c) {
		h.ep.reg.SetMethodsSubscribed(c.id.DeviceID, c.id.ModuleID, true)
	}
}

// OnDisconnect detaches the identity (unless a newer connection of the
// same identity has taken over).
func (h *hook) OnDisconnect(cl *mochi.Client, err error, _ bool) {
	h.ep.drop(cl, err)
}

func (e *Endpoint) drop(cl *mochi.Client, err error) {
	v, ok := e.conns.LoadAndDelete(cl)
	if !ok {
		return
	}
	c := v.(*conn)
	c.mu.Lock()
	detach, cancel, timer := c.detach, c.cancelDesired, c.expiry
	c.detach, c.cancelDesired, c.expiry = nil, nil, nil
	c.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	if cancel != nil {
		cancel()
	}
	if detach != nil {
		detach() // a no-op when a newer connection attached since
	}
	e.mu.Lock()
	if e.current[c.id.ClientID()] == c {
		delete(e.current, c.id.ClientID())
	}
	e.mu.Unlock()
	e.stats.connected.Add(-1)
	if err != nil && !isClosedErr(err) {
		e.logf("device %s disconnected: %v", c.id.ClientID(), err)
	} else {
		e.logf("device %s disconnected", c.id.ClientID())
	}
}

// isCurrent reports whether c is its identity's live connection.
func (e *Endpoint) isCurrent(c *conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.current[c.id.ClientID()] == c
}

// OnPacketRead closes the connection on a QoS 2 PUBLISH, as a hub does.
func (h *hook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 2 {
		h.ep.stats.closed.Add(1)
		h.ep.logf("client %q published with QoS 2 to %q: closing the connection", cl.ID, pk.TopicName)
		cl.Stop(errQoS2)
		// Only ErrRejectPacket ends mochi's read loop (other hook errors are skipped).
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnACLCheck lets a device subscribe to and publish on its own topics only.
// A forbidden PUBLISH closes the connection.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	c := h.conn(cl)
	if c == nil {
		return false
	}
	if !write {
		if classifyFilter(c.id, topic) == subNone {
			h.ep.logf("device %s: SUBSCRIBE to %q refused (not one of its topics)", c.id.ClientID(), topic)
			return false
		}
		return true
	}
	if classifyTopic(c.id, topic) == pubForbidden {
		h.ep.stats.closed.Add(1)
		h.ep.logf("device %s: PUBLISH to %q is not allowed: closing the connection", c.id.ClientID(), topic)
		cl.Stop(errForbiddenPub)
		return false
	}
	return true
}

// OnSubscribed records granted subscriptions; $iothub/methods/POST/# makes
// the device reachable for direct methods.
func (h *hook) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	c := h.conn(cl)
	if c == nil {
		return
	}
	methods := false
	c.mu.Lock()
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] > 2 {
			continue
		}
		if s := classifyFilter(c.id, f.Filter); s != subNone {
			c.subs[s] = true
			methods = methods || s == subMethods
		}
	}
	c.mu.Unlock()
	if methods && h.ep.isCurrent(c) {
		h.ep.reg.SetMethodsSubscribed(c.id.DeviceID, c.id.ModuleID, true)
	}
}

// OnUnsubscribed forgets subscriptions.
func (h *hook) OnUnsubscribed(cl *mochi.Client, pk packets.Packet) {
	c := h.conn(cl)
	if c == nil {
		return
	}
	methods := false
	c.mu.Lock()
	for _, f := range pk.Filters {
		if s := classifyFilter(c.id, f.Filter); s != subNone {
			delete(c.subs, s)
			methods = methods || s == subMethods
		}
	}
	c.mu.Unlock()
	if methods && h.ep.isCurrent(c) {
		h.ep.reg.SetMethodsSubscribed(c.id.DeviceID, c.id.ModuleID, false)
	}
}

// OnPublish handles what a device publishes. Nothing is routed to other
// clients: every message is acknowledged (QoS 1) and then ignored by the
// broker.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	c := h.conn(cl)
	if c == nil {
		return pk, packets.ErrRejectPacket
	}
	switch classifyTopic(c.id, pk.TopicName) {
	case pubMethodResponse:
		c.methodResponse(pk.TopicName, pk.Payload)
	case pubTwinGet:
		c.twinGet(pk.TopicName)
	case pubReported:
		c.reportedPatch(pk.TopicName, pk.Payload)
	case pubTelemetry:
		h.ep.stats.telemetry.Add(1)
	}
	return pk, packets.CodeSuccessIgnore
}

func (c *conn) methodResponse(topic string, body []byte) {
	status, rid, ok := parseMethodResponse(topic)
	if !ok {
		c.ep.logf("device %s: malformed method response topic %q ignored", c.id.ClientID(), topic)
		return
	}
	payload := json.RawMessage(jsonNull)
	if b := bytes.TrimSpace(body); len(b) > 0 {
		if json.Valid(b) {
			payload = json.RawMessage(append([]byte(nil), b...))
		} else {
			// Not JSON: the service still gets the device's text, as a JSON string.
			s, _ := json.Marshal(string(body))
			payload = s
		}
	}
	if c.ep.answer(pendingKey(c.id.ClientID(), rid), methodAnswer{status: status, payload: payload}) {
		c.ep.stats.methodResponses.Add(1)
	} else {
		c.ep.logf("device %s: method response for $rid=%s that no call waits for (late or unknown) ignored", c.id.ClientID(), rid)
	}
}

// twinError is the body of a failed twin request.
func twinError(code int, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"errorCode": code, "message": msg})
	return b
}

func (c *conn) twinResponse(status int, rid, extra string, body []byte) {
	if !c.subscribed(subTwinRes) {
		c.ep.logf("device %s: twin response $rid=%s not sent: no subscription to %s", c.id.ClientID(), rid, FilterTwinRes)
		return
	}
	_ = c.publish(fmt.Sprintf("%s%d/?$rid=%s%s", twinResTopic, status, rid, extra), body)
}

func (c *conn) twinGet(topic string) {
	rid, ok := requestID(topic, twinGetTopic)
	if !ok {
		c.ep.logf("device %s: twin GET without $rid (%q) ignored", c.id.ClientID(), topic)
		return
	}
	c.ep.stats.twinGets.Add(1)
	doc, err := c.ep.reg.Twin(c.id.DeviceID, c.id.ModuleID)
	if err != nil {
		c.twinResponse(404, rid, "", twinError(404001, err.Error()))
		return
	}
	props, _ := doc["properties"].(map[string]any)
	out := map[string]any{}
	for _, section := range []string{"desired", "reported"} {
		m, _ := props[section].(map[string]any)
		if m == nil {
			m = map[string]any{"$version": 1}
		}
		delete(m, "$metadata")
		out[section] = m
	}
	body, err := json.Marshal(out)
	if err != nil {
		c.twinResponse(500, rid, "", twinError(500001, "the twin could not be encoded"))
		return
	}
	c.twinResponse(200, rid, "", body)
}

func (c *conn) reportedPatch(topic string, body []byte) {
	rid, ok := requestID(topic, twinReportTopic)
	if !ok {
		c.ep.logf("device %s: reported-properties patch without $rid (%q) ignored", c.id.ClientID(), topic)
		return
	}
	var patch map[string]any
	if err := json.Unmarshal(body, &patch); err != nil || patch == nil {
		c.twinResponse(400, rid, "", twinError(400006, "the reported-properties patch must be a JSON object"))
		return
	}
	v, err := c.ep.reg.UpdateReported(c.id.DeviceID, c.id.ModuleID, patch)
	switch {
	case errors.Is(err, registry.ErrInvalidPatch):
		c.twinResponse(400, rid, "", twinError(400004, err.Error()))
		return
	case errors.Is(err, registry.ErrDeviceNotFound), errors.Is(err, registry.ErrModuleNotFound):
		c.twinResponse(404, rid, "", twinError(404001, err.Error()))
		return
	case err != nil:
		c.twinResponse(500, rid, "", twinError(500001, err.Error()))
		return
	}
	c.ep.stats.reportedPatches.Add(1)
	c.twinResponse(204, rid, fmt.Sprintf("&$version=%d", v), nil)
}

// pushDesired sends a desired-properties patch made by the service. It runs
// on the goroutine of the service call, so it only queues the patch: a
// short-lived sender drains the queue in order, and a device that does not
// read its socket delays nobody but itself.
func (c *conn) pushDesired(patch map[string]any) {
	if !c.subscribed(subDesired) {
		return
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return
	}
	topic := fmt.Sprintf("%s?$version=%v", desiredTopic, patch["$version"])
	c.mu.Lock()
	c.desiredQ = append(c.desiredQ, [2][]byte{[]byte(topic), body})
	start := !c.sending
	c.sending = true
	c.mu.Unlock()
	if start {
		go c.sendDesired()
	}
}

func (c *conn) sendDesired() {
	for {
		c.mu.Lock()
		if len(c.desiredQ) == 0 {
			c.sending = false
			c.mu.Unlock()
			return
		}
		m := c.desiredQ[0]
		c.desiredQ = c.desiredQ[1:]
		c.mu.Unlock()
		if c.publish(string(m[0]), m[1]) == nil {
			c.ep.stats.desiredPushes.Add(1)
		}
	}
}

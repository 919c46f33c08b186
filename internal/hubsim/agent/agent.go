// Package agent is `hubsim device`: a small device agent that connects to
// any IoT hub — hubsim or a real Azure IoT Hub — over MQTT 3.1.1 over TLS
// (or MQTT over WebSocket) from a device or module connection string, and
// plays the device side of device management: it answers the direct
// methods reboot, factoryReset and firmwareUpdate, acts (simulated: it never
// touches the machine it runs on) and reports progress in
// properties.reported.iothubDM as iothub-contract.md §4.3 describes.
//
// It authenticates with the connection string's SharedAccessKey (a fresh
// SAS token per connection) or SharedAccessSignature, or, with a client
// certificate and key (Config.CertFile, KeyFile), as an X.509 device: the
// certificate in the TLS handshake and no password.
//
// The MQTT client is github.com/eclipse/paho.mqtt.golang; the IoT Hub
// conventions (username, SAS password, $iothub topics) are implemented here
// (iothub-contract.md §7).
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dmctl/dmctl/internal/ctxtime"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/sas"
)

// APIVersion is the api-version the agent puts in its MQTT username.
const APIVersion = "2021-04-12"

// ClientType is the DeviceClientType the agent announces.
const ClientType = "hubsim-device/1.0"

// Defaults of Config.
const (
	DefaultRebootDowntime = 5 * time.Second
	DefaultResetDowntime  = 5 * time.Second
	DefaultFirmwareStep   = 2 * time.Second
	DefaultTokenTTL       = time.Hour
	// MinTokenTTL is the shortest token lifetime (tokens expire in whole
	// seconds; the agent reconnects when a fifth of the lifetime is left).
	MinTokenTTL      = 5 * time.Second
	DefaultKeepAlive = 60 * time.Second
	// requestTimeout bounds a twin request (GET or reported patch).
	requestTimeout = 30 * time.Second
)

// Config configures an Agent.
type Config struct {
	// ConnectionString is a device or module connection string with a
	// SharedAccessKey (or a ready-made SharedAccessSignature), or, with
	// CertFile and KeyFile, x509=true (or no credential at all). The agent
	// connects to GatewayHostName when set, else HostName; without a port,
	// 8883 (MQTT) or 443 (WebSocket).
	ConnectionString string
	// CertFile and KeyFile (PEM; both or neither) are the device's X.509
	// client certificate (with any intermediates after it) and private key:
	// the agent presents them in the TLS handshake and sends no password.
	CertFile string
	KeyFile  string
	// CAFile is a PEM file of extra CA certificates to trust besides the
	// system's (e.g. hubsim's ca.pem).
	CAFile string
	// WebSocket connects with MQTT over WebSocket (wss://host/$iothub/websocket).
	WebSocket bool
	// RebootDowntime and ResetDowntime are how long the device stays
	// offline for a reboot or a factory reset; FirmwareStep is the time
	// between two firmware-update states. 0 = the defaults.
	RebootDowntime time.Duration
	ResetDowntime  time.Duration
	FirmwareStep   time.Duration
	// TokenTTL is the lifetime of the SAS tokens the agent signs; it
	// reconnects with a fresh token before one expires. 0 = 1 hour.
	TokenTTL time.Duration
	// Events receives one JSON object per line for each thing that happens
	// (connected, method, reported, desired, offline, disconnected); nil
	// discards them. Log receives the same as human-readable lines.
	Events io.Writer
	Log    io.Writer
	// Now is the clock for reported timestamps and tokens (nil = time.Now).
	Now func() time.Time
}

// UsageError is a problem with the agent's input (connection string, CA
// file, durations): nothing was started.
type UsageError struct{ Err error }

// Error returns the problem.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// Agent is a device agent. Create it with New, run it with Run.
type Agent struct {
	cfg      Config
	deviceID string
	moduleID string
	hubHost  string // HostName: username and sr
	broker   string // the URL the MQTT client dials
	tls      *tls.Config
	username string
	key      []byte // nil when the connection string carries a SAS, or for X.509
	sasToken string
	x509     bool // authenticates with the client certificate in tls
	now      func() time.Time

	outMu sync.Mutex

	mu       sync.Mutex
	queue    []map[string]any // reported patches not yet acknowledged by the hub
	queued   chan struct{}    // signalled when queue grows
	waiters  map[string]chan twinResponse
	offline  chan offlineRequest
	ctx      context.Context
	rid      atomic.Uint64
	fwGen    atomic.Uint64
	sessions atomic.Int64
}

type twinResponse struct {
	status  int
	version string
	body    []byte
}

type offlineRequest struct {
	reason string
	d      time.Duration
	after  func() // runs before reconnecting
}

// New checks cfg and prepares an agent.
func New(cfg Config) (*Agent, error) {
	if strings.TrimSpace(cfg.ConnectionString) == "" {
		return nil, usageErrorf("no device connection string: give --connection-string or set IOTHUB_DEVICE_CONNECTION_STRING")
	}
	clientCert, err := loadClientCert(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	cs, err := connstr.ParseDevice(cfg.ConnectionString)
	if err != nil && clientCert != nil {
		// With a certificate, HostName and DeviceId are enough: the
		// certificate is the credential, as x509=true says.
		if c, err2 := connstr.ParseDevice(cfg.ConnectionString + ";x509=true"); err2 == nil {
			cs, err = c, nil
		}
	}
	if err != nil {
		return nil, &UsageError{fmt.Errorf("device connection string: %w", err)}
	}
	switch {
	case cs.X509 && clientCert == nil:
		return nil, usageErrorf("device connection string: x509=true needs the device certificate and key: give --cert and --key")
	case !cs.X509 && clientCert != nil:
		return nil, usageErrorf("--cert and --key authenticate the device with its certificate: the connection string must not carry a SharedAccessKey or SharedAccessSignature as well (use x509=true)")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"--reboot-downtime", &cfg.RebootDowntime, DefaultRebootDowntime},
		{"--reset-downtime", &cfg.ResetDowntime, DefaultResetDowntime},
		{"--firmware-step", &cfg.FirmwareStep, DefaultFirmwareStep},
		{"--token-ttl", &cfg.TokenTTL, DefaultTokenTTL},
	} {
		if *d.v < 0 {
			return nil, usageErrorf("%s %s: must not be negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.TokenTTL < MinTokenTTL {
		return nil, usageErrorf("--token-ttl %s: must be at least %s", cfg.TokenTTL, MinTokenTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Events == nil {
		cfg.Events = io.Discard
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	a := &Agent{
		cfg:      cfg,
		deviceID: cs.DeviceID,
		moduleID: cs.ModuleID,
		hubHost:  cs.HostName,
		now:      cfg.Now,
		queued:   make(chan struct{}, 1),
		waiters:  map[string]chan twinResponse{},
		offline:  make(chan offlineRequest, 1),
	}
	switch {
	case cs.X509:
		a.x509 = true
	case cs.SharedAccessKey != "":
		if a.key, err = sas.DecodeKey(cs.SharedAccessKey); err != nil {
			return nil, usageErrorf("device connection string: SharedAccessKey: %v", err)
		}
	default:
		tok, err := sas.Parse(cs.SharedAccessSignature)
		if err != nil {
			return nil, usageErrorf("device connection string: SharedAccessSignature: %v", err)
		}
		if !cfg.Now().Before(tok.Expiry) {
			return nil, usageErrorf("device connection string: the SharedAccessSignature expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
		}
		a.sasToken = cs.SharedAccessSignature
	}

	target := cs.HostName
	if cs.GatewayHostName != "" {
		target = cs.GatewayHostName
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil { // no port
		host, port = strings.Trim(target, "[]"), "8883"
		if cfg.WebSocket {
			port = "443"
		}
	}
	addr := net.JoinHostPort(host, port)
	if cfg.WebSocket {
		a.broker = "wss://" + addr + "/$iothub/websocket"
	} else {
		a.broker = "tls://" + addr
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, usageErrorf("--ca-file: %v", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, usageErrorf("--ca-file %s: no PEM certificate in it", cfg.CAFile)
		}
	}
	a.tls = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: host}
	if clientCert != nil {
		a.tls.Certificates = []tls.Certificate{*clientCert}
	}
	a.username = a.hubHost + "/" + a.clientID() + "/?api-version=" + APIVersion + "&DeviceClientType=" + url.QueryEscape(ClientType)
	return a, nil
}

func (a *Agent) clientID() string {
	if a.moduleID == "" {
		return a.deviceID
	}
	return a.deviceID + "/" + a.moduleID
}

func (a *Agent) resource() string {
	r := a.hubHost + "/devices/" + a.deviceID
	if a.moduleID != "" {
		r += "/modules/" + a.moduleID
	}
	return r
}

// Broker is the URL the agent connects to.
func (a *Agent) Broker() string { return a.broker }

// loadClientCert reads --cert and --key (nil, nil when neither is given).
// Its errors name the flag and the file, never the key.
func loadClientCert(certFile, keyFile string) (*tls.Certificate, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "":
		return nil, usageErrorf("--key needs --cert: give the device certificate with its private key")
	case keyFile == "":
		return nil, usageErrorf("--cert needs --key: give the device certificate's private key")
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, usageErrorf("--cert: %v", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, usageErrorf("--key: %v", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, usageErrorf("--cert %s and --key %s: %v", certFile, keyFile, err)
	}
	return &pair, nil
}

// password returns a SAS token for the next connection and its expiry;
// none for an X.509 device.
func (a *Agent) password() (string, time.Time) {
	if a.x509 {
		return "", time.Time{}
	}
	if a.key == nil {
		tok, err := sas.Parse(a.sasToken)
		if err != nil {
			return a.sasToken, time.Time{}
		}
		return a.sasToken, tok.Expiry
	}
	exp := a.now().Add(a.cfg.TokenTTL).Truncate(time.Second)
	return sas.NewToken(a.resource(), "", a.key, exp), exp
}

// Event is one line of the agent's event stream.
type Event struct {
	Time     string `json:"time"`
	Event    string `json:"event"`
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId,omitempty"`
	Broker   string `json:"broker,omitempty"`
	Method   string `json:"method,omitempty"`
	Status   int    `json:"status,omitempty"`
	Version  int64  `json:"version,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Seconds  int64  `json:"seconds,omitempty"`
	// Reported is the reported-properties patch the hub acknowledged.
	Reported map[string]any `json:"reported,omitempty"`
}

func (a *Agent) emit(ev Event, human string, args ...any) {
	ev.Time = timestamp(a.now())
	ev.DeviceID, ev.ModuleID = a.deviceID, a.moduleID
	line, err := json.Marshal(ev)
	a.outMu.Lock()
	defer a.outMu.Unlock()
	if err == nil {
		_, _ = a.cfg.Events.Write(append(line, '\n'))
	}
	_, _ = fmt.Fprintf(a.cfg.Log, "hubsim device %s: "+human+"\n", append([]any{a.clientID()}, args...)...)
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// errFatal marks errors that retrying cannot fix.
type errFatal struct{ err error }

func (e *errFatal) Error() string { return e.err.Error() }
func (e *errFatal) Unwrap() error { return e.err }

// Run connects and serves until ctx ends (then it disconnects and returns
// nil). Connection failures are retried with backoff, except those that
// cannot heal: the hub refusing the credentials, or its certificate not
// being trusted.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	a.ctx = ctx
	a.mu.Unlock()
	backoff := time.Second
	for {
		if ctx.Err() != nil {
			return nil
		}
		s, err := a.connect(ctx)
		if err != nil {
			var fatal *errFatal
			if errors.As(err, &fatal) {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			a.emit(Event{Event: "error", Broker: a.broker, Reason: err.Error()}, "cannot connect to %s: %v (retrying in %s)", a.broker, err, backoff)
			if !ctxtime.SleepOK(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		end := a.serve(ctx, s)
		s.client.Disconnect(250)
		switch {
		case ctx.Err() != nil:
			a.emit(Event{Event: "disconnected", Reason: "stopped"}, "disconnected (stopped)")
			return nil
		case end.offline != nil:
			r := end.offline
			a.emit(Event{Event: "offline", Reason: r.reason, Seconds: int64(r.d.Seconds())}, "offline for %s (%s)", r.d, r.reason)
			if !ctxtime.SleepOK(ctx, r.d) {
				return nil
			}
			if r.after != nil {
				r.after()
			}
		case end.renew:
			a.emit(Event{Event: "disconnected", Reason: "token renewal"}, "reconnecting with a fresh token")
		default:
			a.emit(Event{Event: "disconnected", Reason: end.reason}, "connection lost: %s", end.reason)
			if !ctxtime.SleepOK(ctx, time.Second) {
				return nil
			}
		}
	}
}

// session is one MQTT connection.
type session struct {
	client paho.Client
	lost   chan error
	expiry time.Time
}

type sessionEnd struct {
	offline *offlineRequest
	renew   bool
	reason  string
}

func (a *Agent) connect(ctx context.Context) (*session, error) {
	pw, exp := a.password()
	s := &session{lost: make(chan error, 1), expiry: exp}
	opts := paho.NewClientOptions().
		AddBroker(a.broker).
		SetClientID(a.clientID()).
		SetUsername(a.username).
		SetPassword(pw).
		SetTLSConfig(a.tls).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetKeepAlive(DefaultKeepAlive).
		SetConnectTimeout(30 * time.Second).
		SetWriteTimeout(30 * time.Second).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetDefaultPublishHandler(a.route).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case s.lost <- err:
			default:
			}
		})
	c := paho.NewClient(opts)
	s.client = c
	if err := wait(ctx, c.Connect(), 35*time.Second); err != nil {
		return nil, classifyConnectError(err, a.x509)
	}
	filters := map[string]byte{
		"$iothub/methods/POST/#":                  1,
		"$iothub/twin/res/#":                      1,
		"$iothub/twin/PATCH/properties/desired/#": 1,
	}
	tok := c.SubscribeMultiple(filters, a.route)
	if err := wait(ctx, tok, requestTimeout); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code > 2 {
				c.Disconnect(0)
				return nil, &errFatal{fmt.Errorf("the hub refused the subscription to %s", f)}
			}
		}
	}
	n := a.sessions.Add(1)
	a.emit(Event{Event: "connected", Broker: a.broker}, "connected to %s (connection %d)", a.broker, n)
	return s, nil
}

func classifyConnectError(err error, withCert bool) error {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var verify *tls.CertificateVerificationError
	switch {
	case withCert && (errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword)):
		return &errFatal{fmt.Errorf("the hub refused the connection (%v): check the DeviceId and the certificate (--cert): the hub must have its thumbprint registered, or trust its CA and find the DeviceId as its subject CN, and it must be valid now", err)}
	case errors.Is(err, packets.ErrorRefusedNotAuthorised), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return &errFatal{fmt.Errorf("the hub refused the connection (%v): check the connection string's DeviceId and key", err)}
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &verify):
		return &errFatal{fmt.Errorf("the hub's TLS certificate is not trusted (%v): give its CA with --ca-file", err)}
	}
	return err
}

// wait waits for a paho token, ctx or timeout.
func wait(ctx context.Context, t paho.Token, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("no answer from the hub within %s", timeout)
	}
}

// serve runs one connection: it reads the twin, sends queued reported
// patches, and returns when the connection ends or must end.
func (a *Agent) serve(ctx context.Context, s *session) sessionEnd {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	senderDone := make(chan error, 1)

	if doc, err := a.twinRequest(sctx, s.client, "$iothub/twin/GET/?$rid=%s", []byte(" ")); err == nil {
		var tw struct {
			Desired  map[string]any `json:"desired"`
			Reported map[string]any `json:"reported"`
		}
		if json.Unmarshal(doc.body, &tw) == nil {
			dv, _ := tw.Desired["$version"].(float64)
			rv, _ := tw.Reported["$version"].(float64)
			a.emit(Event{Event: "twin", Version: int64(rv)}, "twin: desired $version %d, reported $version %d", int64(dv), int64(rv))
		}
	} else if sctx.Err() == nil {
		a.emit(Event{Event: "error", Reason: "twin GET: " + err.Error()}, "twin GET failed: %v", err)
	}

	go func() { senderDone <- a.sendQueue(sctx, s.client) }()

	var renew <-chan time.Time
	if !s.expiry.IsZero() && a.key != nil {
		d := s.expiry.Sub(a.now()) - a.cfg.TokenTTL/5
		t := time.NewTimer(max(d, time.Second))
		defer t.Stop()
		renew = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return sessionEnd{}
		case err := <-s.lost:
			return sessionEnd{reason: errText(err)}
		case err := <-senderDone:
			if ctx.Err() != nil {
				return sessionEnd{}
			}
			return sessionEnd{reason: "reported-properties patch failed: " + errText(err)}
		case <-renew:
			return sessionEnd{renew: true}
		case r := <-a.offline:
			// Report what is queued (e.g. startedRebootTime) before going offline.
			deadline := time.Now().Add(10 * time.Second)
			for a.queueLen() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
				select {
				case err := <-s.lost:
					return sessionEnd{offline: &r, reason: errText(err)}
				case <-time.After(20 * time.Millisecond):
				}
			}
			return sessionEnd{offline: &r}
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// route dispatches every message the hub sends.
func (a *Agent) route(c paho.Client, m paho.Message) {
	topic := m.Topic()
	switch {
	case strings.HasPrefix(topic, "$iothub/methods/POST/"):
		a.onMethod(c, topic, m.Payload())
	case strings.HasPrefix(topic, "$iothub/twin/res/"):
		a.onTwinResponse(topic, m.Payload())
	case strings.HasPrefix(topic, "$iothub/twin/PATCH/properties/desired/"):
		var patch map[string]any
		_ = json.Unmarshal(m.Payload(), &patch)
		v, _ := patch["$version"].(float64)
		a.emit(Event{Event: "desired", Version: int64(v)}, "desired properties changed ($version %d)", int64(v))
	default:
		a.emit(Event{Event: "message", Reason: topic}, "message on %s ignored", topic)
	}
}

func topicParam(topic, name string) string {
	_, q, _ := strings.Cut(topic, "?")
	for _, kv := range strings.Split(q, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func (a *Agent) onTwinResponse(topic string, body []byte) {
	rest := strings.TrimPrefix(topic, "$iothub/twin/res/")
	st, _, _ := strings.Cut(rest, "/")
	status, err := strconv.Atoi(st)
	if err != nil {
		return
	}
	rid := topicParam(topic, "$rid")
	a.mu.Lock()
	ch := a.waiters[rid]
	delete(a.waiters, rid)
	a.mu.Unlock()
	if ch != nil {
		ch <- twinResponse{status: status, version: topicParam(topic, "$version"), body: append([]byte(nil), body...)}
	}
}

// twinRequest publishes a twin request (topicFmt has one %s for the $rid)
// and waits for its response.
func (a *Agent) twinRequest(ctx context.Context, c paho.Client, topicFmt string, body []byte) (twinResponse, error) {
	rid := strconv.FormatUint(a.rid.Add(1), 10)
	ch := make(chan twinResponse, 1)
	a.mu.Lock()
	a.waiters[rid] = ch
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.waiters, rid)
		a.mu.Unlock()
	}()
	if err := wait(ctx, c.Publish(fmt.Sprintf(topicFmt, rid), 0, false, body), requestTimeout); err != nil {
		return twinResponse{}, err
	}
	t := time.NewTimer(requestTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.status >= 300 {
			return r, fmt.Errorf("the hub answered %d: %s", r.status, strings.TrimSpace(string(r.body)))
		}
		return r, nil
	case <-ctx.Done():
		return twinResponse{}, ctx.Err()
	case <-t.C:
		return twinResponse{}, fmt.Errorf("no twin response within %s", requestTimeout)
	}
}

// report queues a reported-properties patch; it is sent (in order) while
// connected and retried on the next connection until the hub accepts it.
func (a *Agent) report(patch map[string]any) {
	a.mu.Lock()
	a.queue = append(a.queue, patch)
	a.mu.Unlock()
	select {
	case a.queued <- struct{}{}:
	default:
	}
}

func (a *Agent) queueLen() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue)
}

// sendQueue sends queued patches until ctx ends; an error ends the session.
func (a *Agent) sendQueue(ctx context.Context, c paho.Client) error {
	for {
		a.mu.Lock()
		var head map[string]any
		if len(a.queue) > 0 {
			head = a.queue[0]
		}
		a.mu.Unlock()
		if head == nil {
			select {
			case <-a.queued:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		body, err := json.Marshal(head)
		if err != nil { // cannot happen: patches are built from JSON values
			a.dropHead()
			continue
		}
		r, err := a.twinRequest(ctx, c, "$iothub/twin/PATCH/properties/reported/?$rid=%s", body)
		switch {
		case err == nil:
			a.dropHead()
			v, _ := strconv.ParseInt(r.version, 10, 64)
			a.emit(Event{Event: "reported", Version: v, Reported: head}, "reported %s ($version %d)", body, v)
		case r.status >= 400 && r.status < 500:
			// The hub will never take it: drop it rather than retry forever.
			a.dropHead()
			a.emit(Event{Event: "error", Reason: "reported patch refused: " + err.Error()}, "reported patch %s refused: %v", body, err)
		default:
			return err
		}
	}
}

// dropHead removes the patch just sent (only sendQueue removes patches,
// so it is still the head).
func (a *Agent) dropHead() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) > 0 {
		a.queue = a.queue[1:]
	}
}

// goOffline asks the connection loop to disconnect for d once queued
// patches are out, then run after and reconnect.
func (a *Agent) goOffline(reason string, d time.Duration, after func()) {
	select {
	case a.offline <- offlineRequest{reason: reason, d: d, after: after}:
	default: // already going offline: this request joins it
		if after != nil {
			go func() {
				a.mu.Lock()
				ctx := a.ctx
				a.mu.Unlock()
				if ctxtime.SleepOK(ctx, d) {
					after()
				}
			}()
		}
	}
}

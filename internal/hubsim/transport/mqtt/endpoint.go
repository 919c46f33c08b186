// Package mqtt is hubsim's device endpoint: MQTT 3.1.1 over TLS (and over
// WebSocket at /$iothub/websocket on the same port) with Azure IoT Hub's
// semantics, so real device code — Microsoft's device SDKs, or
// `hubsim device` — connects to hubsim as it would to a hub
// (iothub-contract.md §7, node-sdks.md).
//
// The broker is github.com/mochi-mqtt/server/v2; a hook gives it IoT Hub's
// rules:
//
//   - CONNECT: client id = device id or "deviceId/moduleId"; username
//     "{host}/{clientId}/?api-version=..." (host with or without port, extra
//     query parameters ignored); password = a SAS token signed with the
//     identity's key whose sr is "{host}/devices/{id}[/modules/{mid}]". A
//     device whose authentication is X.509 (registry.Auth) sends no password:
//     the client certificate of the TLS handshake must have a registered
//     thumbprint (selfSigned) or chain to Config.ClientCAs with subject CN =
//     the device id (certificateAuthority), and be valid by the hub clock.
//     Anything else gets CONNACK 5 (not authorized); MQTT 3.1 and 5 get
//     CONNACK "unacceptable protocol version". A second connection of the
//     same identity closes the first. The connection is closed when its token
//     expires, as a hub does.
//   - Direct methods: a device that subscribed to $iothub/methods/POST/# is
//     attached to the registry (registry.Registry.Attach); an invoke is
//     published to it as $iothub/methods/POST/{name}/?$rid={rid} with the
//     request payload (JSON null when there is none) and completed by the
//     device's $iothub/methods/res/{status}/?$rid={rid}. Not subscribed
//     (or not connected) within the connect timeout gives 404103, no answer
//     within the response timeout 504101 — the registry's rules.
//   - Twin: $iothub/twin/GET/?$rid= answers $iothub/twin/res/200/?$rid= with
//     {"desired":{...},"reported":{...}} (each with $version, without
//     $metadata); $iothub/twin/PATCH/properties/reported/?$rid= merges the
//     patch and answers 204 with &$version={new reported version}; desired
//     changes made through the service API are pushed to devices subscribed
//     to $iothub/twin/PATCH/properties/desired/#.
//   - SUBACK grants at most QoS 1; a QoS 2 PUBLISH closes the connection.
//     Telemetry (devices/{id}/messages/events/...) is accepted and
//     acknowledged, and the C2D (and module input) filters may be
//     subscribed, but nothing is routed anywhere: topics are per connection
//     as on a hub, never shared between devices.
//   - ACLs: a device may subscribe to and publish on its own topics only;
//     a PUBLISH elsewhere closes the connection, a SUBSCRIBE elsewhere is
//     refused in the SUBACK (0x80).
//
// The hub sends every message to a device at QoS 0 (method requests are QoS 0
// on a hub; twin responses and desired patches are sent at QoS 0 here too).
package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"go.etcd.io/bbolt"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/hubsim/transport"
)

// DefaultHandshakeTimeout bounds the TLS handshake plus the CONNECT packet.
const DefaultHandshakeTimeout = 30 * time.Second

// Config configures an Endpoint.
type Config struct {
	// Registry holds the identities, their keys and twins (required).
	Registry *registry.Registry
	// TLS is the server's TLS configuration: the hub's certificate (required).
	// The endpoint serves a copy that requests (does not require) a client
	// certificate, for X.509 identities.
	TLS *tls.Config
	// ClientCAs are the CA certificates trusted for devices whose
	// authentication is certificateAuthority (nil: none).
	ClientCAs *x509.CertPool
	// HostName is the hub host name devices put in their username and sr,
	// e.g. "127.0.0.1:8443"; the same host without the port is accepted too.
	HostName string
	// Log receives diagnostics; nil discards them. Verbose adds a line per
	// connection, refused CONNECT and protocol violation.
	Log     *log.Logger
	Verbose bool
	// Now is the clock for token checks (nil = time.Now).
	Now func() time.Time
	// HandshakeTimeout bounds the TLS handshake and the CONNECT (0 =
	// DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// Sessions, when set, is a file (bbolt, through mochi's storage hook)
	// that keeps the sessions of clean-session-0 clients (their
	// subscriptions) across restarts, as IoT Hub keeps them: a Node SDK
	// device that reconnects after a restart finds its twin-response
	// subscription still there. Clients and subscriptions only; no password
	// is stored.
	Sessions string
}

// Stats are the endpoint's counters.
type Stats struct {
	Connected       int64 `json:"connected"`       // connections now
	Connects        int64 `json:"connects"`        // accepted CONNECTs
	Refused         int64 `json:"refused"`         // refused CONNECTs (CONNACK not 0)
	Closed          int64 `json:"closed"`          // connections closed by the hub for a violation
	MethodRequests  int64 `json:"methodRequests"`  // method requests published to devices
	MethodResponses int64 `json:"methodResponses"` // method responses received (matched to a waiting call)
	TwinGets        int64 `json:"twinGets"`
	ReportedPatches int64 `json:"reportedPatches"`
	DesiredPushes   int64 `json:"desiredPushes"`
	Telemetry       int64 `json:"telemetry"` // device-to-cloud messages accepted
}

type counters struct {
	connected, connects, refused, closed, methodRequests, methodResponses,
	twinGets, reportedPatches, desiredPushes, telemetry atomic.Int64
}

// Endpoint is the MQTT device endpoint. It is a transport.Endpoint.
type Endpoint struct {
	cfg  Config
	reg  *registry.Registry
	auth *authenticator
	now  func() time.Time
	log  *log.Logger
	srv  *mochi.Server

	conns   sync.Map // *mochi.Client -> *conn
	mu      sync.Mutex
	current map[string]*conn // client id -> the identity's live connection
	pending map[string]chan methodAnswer
	rid     atomic.Uint64
	stats   counters

	stateMu sync.Mutex
	serving bool
	closed  bool
	ln      *tlsListener
}

// New returns an endpoint ready to Serve.
func New(cfg Config) (*Endpoint, error) {
	if cfg.Registry == nil {
		return nil, errors.New("mqtt endpoint: no registry")
	}
	if cfg.TLS == nil || len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil {
		return nil, errors.New("mqtt endpoint: no TLS server certificate")
	}
	if cfg.HostName == "" {
		return nil, errors.New("mqtt endpoint: no hub host name")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	// Ask for a client certificate and accept any (or none) in the
	// handshake: whether it authenticates the identity named in CONNECT is
	// the hook's decision (thumbprint, or chain to ClientCAs and CN), as on
	// IoT Hub. The TLS layer still proves the client holds the key.
	cfg.TLS = cfg.TLS.Clone()
	cfg.TLS.ClientAuth = tls.RequestClientCert
	e := &Endpoint{
		cfg:     cfg,
		reg:     cfg.Registry,
		auth:    newAuthenticator(cfg.HostName, cfg.Registry.Keys),
		now:     cfg.Now,
		log:     cfg.Log,
		current: map[string]*conn{},
		pending: map[string]chan methodAnswer{},
	}
	// mochi logs through slog; its default handler writes to stdout (hubsim's
	// ready-line channel), and its warnings can dump whole packets, a
	// CONNECT's password included. Its log is discarded: the hook logs what
	// matters, without secrets.
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumQos = 1 // SUBACK grants at most QoS 1
	e.srv = mochi.New(&mochi.Options{
		Capabilities: caps,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	cfg.Registry.OnRevoked(e.revoke)
	e.auth.auth, e.auth.roots, e.auth.enabled = cfg.Registry.Auth, cfg.ClientCAs, cfg.Registry.Enabled
	if err := e.srv.AddHook(&hook{ep: e}, nil); err != nil {
		return nil, err
	}
	if cfg.Sessions != "" {
		store := &bolt.Hook{}
		if err := e.srv.AddHook(store, &bolt.Options{Path: cfg.Sessions, Options: &bbolt.Options{Timeout: 2 * time.Second}}); err != nil {
			return nil, fmt.Errorf("the MQTT session store %s (is another hubsim using this --dir?): %w", cfg.Sessions, err)
		}
	}
	return e, nil
}

// Serve accepts device connections on l until Close (or until l is
// closed). TLS is done here: l is a plain TCP listener.
func (e *Endpoint) Serve(l net.Listener) error {
	e.stateMu.Lock()
	if e.closed {
		e.stateMu.Unlock()
		return net.ErrClosed
	}
	if e.serving {
		e.stateMu.Unlock()
		return errors.New("mqtt endpoint: already serving")
	}
	e.serving = true
	e.ln = newTLSListener("mqtts", l, e.cfg.TLS, e.cfg.HandshakeTimeout, e.connError)
	ln := e.ln
	if err := e.srv.AddListener(ln); err != nil {
		e.stateMu.Unlock()
		return err
	}
	if err := e.srv.Serve(); err != nil {
		e.stateMu.Unlock()
		return err
	}
	e.stateMu.Unlock()
	<-ln.done
	return nil
}

// Close stops accepting and drops every connection.
func (e *Endpoint) Close() error {
	e.stateMu.Lock()
	defer e.stateMu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	// Even when it never served: the broker's hooks (the session store
	// holds its file open from New) are stopped by its Close.
	return e.srv.Close()
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	c := &e.stats
	return Stats{
		Connected: c.connected.Load(), Connects: c.connects.Load(), Refused: c.refused.Load(), Closed: c.closed.Load(),
		MethodRequests: c.methodRequests.Load(), MethodResponses: c.methodResponses.Load(),
		TwinGets: c.twinGets.Load(), ReportedPatches: c.reportedPatches.Load(), DesiredPushes: c.desiredPushes.Load(),
		Telemetry: c.telemetry.Load(),
	}
}

// Connected reports whether the identity has a live connection.
func (e *Endpoint) Connected(deviceID, moduleID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.current[Identity{deviceID, moduleID}.ClientID()]
	return ok
}

// logf logs when verbose. Device-supplied text (client ids, usernames,
// topics) goes through connstr.Redact in case a client put a secret there.
func (e *Endpoint) logf(format string, args ...any) {
	if e.cfg.Verbose {
		e.log.Print(connstr.Redact(fmt.Sprintf("mqtt: "+format, args...)))
	}
}

func (e *Endpoint) connError(stage string, remote net.Addr, err error) {
	e.logf("%s with %s failed: %v", stage, remote, err)
}

func (e *Endpoint) nextRID() string {
	return strconv.FormatUint(e.rid.Add(1), 16)
}

// methodAnswer is a device's answer to a method request.
type methodAnswer struct {
	status  int
	payload []byte
}

func pendingKey(clientID, rid string) string { return clientID + "\n" + rid }

func (e *Endpoint) addPending(key string, ch chan methodAnswer) {
	e.mu.Lock()
	e.pending[key] = ch
	e.mu.Unlock()
}

func (e *Endpoint) removePending(key string) {
	e.mu.Lock()
	delete(e.pending, key)
	e.mu.Unlock()
}

// answer completes a waiting method call; false when none waits for it.
func (e *Endpoint) answer(key string, a methodAnswer) bool {
	e.mu.Lock()
	ch, ok := e.pending[key]
	delete(e.pending, key)
	e.mu.Unlock()
	if !ok {
		return false
	}
	ch <- a // buffered, one answer per key
	return true
}

// revoke closes the connection of an identity the registry deleted or
// disabled, as a hub does.
func (e *Endpoint) revoke(deviceID, moduleID, reason string) {
	e.mu.Lock()
	c := e.current[Identity{deviceID, moduleID}.ClientID()]
	e.mu.Unlock()
	if c != nil {
		e.logf("device %s: %s, closing the connection", c.id.ClientID(), reason)
		c.cl.Stop(errRevoked)
	}
}

// SessionsFile is the file in the hub's state directory that keeps the
// sessions of clean-session-0 clients.
const SessionsFile = "mqtt-sessions.db"

// NewEndpoint is the MQTT transport of hubsim's server: New over a
// transport.Config, with the sessions kept in its Dir.
func NewEndpoint(c transport.Config) (transport.Endpoint, error) {
	cfg := Config{
		Registry: c.Registry, TLS: c.TLS, HostName: c.HostName, Log: c.Log, Verbose: c.Verbose, ClientCAs: c.ClientCAs,
	}
	if c.Dir != "" {
		cfg.Sessions = filepath.Join(c.Dir, SessionsFile)
	}
	return New(cfg)
}

package iothub

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// callState follows one call through the pipeline: whether it reached the
// transport, whether the request was fully written, and (for Debug) the body.
type callState struct {
	reached atomic.Bool
	written atomic.Bool
	body    []byte
	query   string // the URL's query, set on each attempt by attemptPolicy

	// The request body as azcore reads it and as net/http writes it, kept
	// here to save two allocations per call.
	pipelineBody, sendBody bytes.Reader
}

type callStateKey struct{}

func withCallState(ctx context.Context, st *callState) context.Context {
	return context.WithValue(ctx, callStateKey{}, st)
}

func callStateFrom(ctx context.Context) *callState {
	st, _ := ctx.Value(callStateKey{}).(*callState)
	return st
}

// tracingTransport wraps the real transport. Every request carries an
// httptrace.ClientTrace whose WroteRequest hook records that the whole
// request went out, and every failure comes back as a *TransportError that
// says so. If net/http re-sends a request on its own (it does for
// idempotent methods on a stale keep-alive connection), one complete write
// is enough to count as written.
type tracingTransport struct {
	next policy.Transporter
}

func (t *tracingTransport) Do(req *http.Request) (*http.Response, error) {
	st := callStateFrom(req.Context())
	if st == nil {
		st = &callState{}
		req = req.WithContext(withCallState(req.Context(), st))
	}
	st.reached.Store(true)
	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				st.written.Store(true)
			}
		},
		TLSHandshakeStart: func() { handshakes.Add(1) },
		TLSHandshakeDone:  func(tls.ConnectionState, error) { handshakes.Add(-1) },
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	if st.body != nil && req.Body != nil && req.ContentLength == int64(len(st.body)) {
		// azcore hands the body on wrapped in its own reader types, which
		// net/http cannot tell from a slow stream: it would flush the
		// headers in a write of their own and the body in another (two TLS
		// records, two syscalls). A *bytes.Reader it knows to be in memory,
		// so headers and body leave in one write. req is this attempt's own
		// copy (WithContext above).
		st.sendBody.Reset(st.body)
		req.Body = io.NopCloser(&st.sendBody)
	}
	resp, err := t.next.Do(req)
	if err != nil {
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, &TransportError{Err: err, RequestWritten: st.written.Load()}
	}
	return resp, nil
}

// handshakes counts the TLS handshakes under way on every transport.
var handshakes atomic.Int64

// HandshakesInProgress is how many TLS handshakes to the hub (or the token
// endpoint) are under way: connections being opened. A fleet run's
// in-flight rule does not add calls while many are, since each new call
// would open one more (fleet.InFlightOptions.Opening).
func HandshakesInProgress() int { return int(handshakes.Load()) }

// MaxConnections is the most keep-alive connections to one hub: one per
// call in flight, up to the most calls a fleet run may keep in flight. The
// pool holds only connections that were opened (one per call in flight at
// the busiest moment), so a high bound costs nothing for a small run.
const MaxConnections = 100000

// NewTransport returns the one HTTP client dmctl uses for hub and token
// calls (ClientOptions.Transport, and the credential's own requests): TLS
// 1.2 or later with full verification, proxies from HTTPS_PROXY/NO_PROXY,
// and no redirects (a redirected POST could run a method twice, or carry
// the credential elsewhere). roots, when non-nil, replaces the system trust
// store (the system store plus --ca-file); nil uses the system store, which
// honours SSL_CERT_FILE and SSL_CERT_DIR.
//
// It speaks HTTP/1.1 with one keep-alive connection per call in flight, up
// to MaxConnections, not HTTP/2 streams over one connection: against hubsim
// that gave about 1.7x the calls/s for less CPU on both sides
// (docs/fleets.md), and a slow answer holds up nothing else.
func NewTransport(roots *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	// Session tickets let a new connection to the hub skip the certificate
	// chain's verification (the larger part of a handshake's CPU): a run
	// that grows its calls in flight opens most of its connections after
	// the first ones have answered.
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ClientSessionCache: newTicketCache()}
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // non-nil and empty: no h2
	tr.MaxIdleConns = MaxConnections
	tr.MaxIdleConnsPerHost = MaxConnections
	tr.IdleConnTimeout = 90 * time.Second
	tr.TLSHandshakeTimeout = 15 * time.Second
	tr.ResponseHeaderTimeout = 0 // bounded per call by the context deadline
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// defaultTransport is shared by every client built without a Transport, so
// they share one connection pool.
var defaultTransport = sync.OnceValue(func() *http.Client { return NewTransport(nil) })

// ticketFirstWait is how long a handshake waits for the session ticket of
// the first connection to a host when that one is still being made.
const ticketFirstWait = 500 * time.Millisecond

// ticketCache is a TLS client session cache that lets the first handshake
// to a host go ahead alone: a run that starts hundreds of calls at once
// would otherwise make hundreds of full handshakes (certificate chain
// verified each time, and the hub signs each one) before the first ticket
// arrives. Handshakes started while the first one is under way wait for
// its ticket, at most ticketFirstWait once per host; a host that sends no
// ticket in time is not waited for again.
type ticketCache struct {
	lru   tls.ClientSessionCache
	mu    sync.Mutex
	hosts map[string]*ticketWait
}

type ticketWait struct {
	done   chan struct{} // closed at the first ticket, or when waiting is given up
	closed bool
}

func newTicketCache() *ticketCache {
	return &ticketCache{lru: tls.NewLRUClientSessionCache(64), hosts: map[string]*ticketWait{}}
}

// Get implements tls.ClientSessionCache.
func (c *ticketCache) Get(key string) (*tls.ClientSessionState, bool) {
	if s, ok := c.lru.Get(key); ok {
		return s, true
	}
	c.mu.Lock()
	w, seen := c.hosts[key]
	if !seen {
		// The first handshake to this host: it goes ahead; the others wait
		// for its ticket, or for ticketFirstWait.
		w = &ticketWait{done: make(chan struct{})}
		c.hosts[key] = w
		time.AfterFunc(ticketFirstWait, func() { c.release(w) })
	}
	c.mu.Unlock()
	if !seen {
		return nil, false
	}
	<-w.done
	return c.lru.Get(key)
}

// Put implements tls.ClientSessionCache.
func (c *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	c.lru.Put(key, cs)
	if cs == nil {
		return
	}
	c.mu.Lock()
	w := c.hosts[key]
	c.mu.Unlock()
	if w != nil {
		c.release(w)
	}
}

func (c *ticketCache) release(w *ticketWait) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.done)
	}
}

package mqtt

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// WebSocketPath is where MQTT over WebSocket is served (iothub-contract.md
// §7.1), with sub-protocol "mqtt".
const WebSocketPath = "/$iothub/websocket"

// tlsListener is a mochi listener over a net.Listener: it runs the TLS
// handshake under a deadline, then looks at the first byte. MQTT (a CONNECT
// packet) goes to the broker; "GET" is a WebSocket upgrade to
// WebSocketPath whose binary messages carry MQTT.
type tlsListener struct {
	id       string
	ln       net.Listener
	tls      *tls.Config
	deadline time.Duration // TLS handshake and CONNECT
	log      *slog.Logger
	onError  func(stage string, remote net.Addr, err error)

	closed atomic.Bool
	done   chan struct{} // closed when the accept loop has ended

	connMu   sync.Mutex
	conns    map[net.Conn]struct{} // accepted connections not closed yet
	sessions sync.WaitGroup        // setup goroutines (TLS, first packet, the session)

	ws    *http.Server  // MQTT over WebSocket, fed by wsLn
	wsLn  *chanListener // connections whose first bytes were "GET"
	wsEst listeners.EstablishFn
}

func newTLSListener(id string, ln net.Listener, cfg *tls.Config, deadline time.Duration, onError func(string, net.Addr, error)) *tlsListener {
	l := &tlsListener{id: id, ln: ln, tls: cfg, deadline: deadline, onError: onError, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	l.wsLn = &chanListener{conns: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, l.handleWebSocket)
	l.ws = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: deadline,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	return l
}

// ID returns the listener's id.
func (l *tlsListener) ID() string { return l.id }

// Address returns the listening address.
func (l *tlsListener) Address() string { return l.ln.Addr().String() }

// Protocol returns "mqtts".
func (l *tlsListener) Protocol() string { return "mqtts" }

// Init keeps the broker's logger.
func (l *tlsListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until the listener is closed.
func (l *tlsListener) Serve(establish listeners.EstablishFn) {
	defer close(l.done)
	l.wsEst = establish
	go func() { _ = l.ws.Serve(l.wsLn) }()
	backoff := 5 * time.Millisecond
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry.
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !l.track(c) {
			_ = c.Close()
			return
		}
		go func() {
			defer l.untrack(c)
			l.setup(c, establish)
		}()
	}
}

func (l *tlsListener) setup(raw net.Conn, establish listeners.EstablishFn) {
	_ = raw.SetDeadline(time.Now().Add(l.deadline))
	tc := tls.Server(raw, l.tls)
	if err := tc.Handshake(); err != nil {
		l.onError("TLS handshake", raw.RemoteAddr(), err)
		_ = raw.Close()
		return
	}
	br := bufio.NewReader(tc)
	first, err := br.Peek(1)
	if err != nil || l.closed.Load() {
		if err != nil && !errors.Is(err, io.EOF) {
			l.onError("first packet", raw.RemoteAddr(), err)
		}
		_ = tc.Close()
		return
	}
	conn := &bufferedConn{Conn: tc, r: br}
	if first[0] == 'G' { // "GET /$iothub/websocket HTTP/1.1"
		if !l.wsLn.push(conn) {
			_ = conn.Close()
		}
		return
	}
	if err := establish(l.id, conn); err != nil && !isClosedErr(err) {
		l.onError("session", raw.RemoteAddr(), err)
	}
}

// Close stops accepting and closes the listener's clients.
//
// It closes the connections itself and waits for their sessions to end
// before it asks the broker to close the listener's clients: mochi's
// Clients.GetByListener takes its read lock twice, so it deadlocks when a
// session ending at the same moment waits for the write lock (Delete).
// With every session of this listener over, nothing deletes concurrently.
func (l *tlsListener) Close(closeClients listeners.CloseFn) {
	if l.closed.CompareAndSwap(false, true) {
		_ = l.ln.Close()
		l.connMu.Lock() // after this, track refuses: no session starts
		for c := range l.conns {
			_ = c.Close()
		}
		l.connMu.Unlock()
		_ = l.ws.Close()
		l.sessions.Wait()
	}
	closeClients(l.id)
}

// track records a connection whose session is starting (counted in
// sessions); false once the listener is closing. Close takes connMu after
// setting closed, so every session it must wait for was added before.
func (l *tlsListener) track(c net.Conn) bool {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.closed.Load() {
		return false
	}
	l.conns[c] = struct{}{}
	l.sessions.Add(1)
	return true
}

// untrack ends what track began.
func (l *tlsListener) untrack(c net.Conn) {
	l.connMu.Lock()
	delete(l.conns, c)
	l.connMu.Unlock()
	l.sessions.Done()
}

var upgrader = websocket.Upgrader{
	Subprotocols: []string{"mqtt"},
	// Devices are not browsers: there is no Origin to check.
	CheckOrigin: func(*http.Request) bool { return true },
}

func (l *tlsListener) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
	}
	nc := ws.NetConn()
	if !l.track(nc) { // closing: no new session
		_ = ws.Close()
		return
	}
	defer l.untrack(nc)
	_ = nc.SetDeadline(time.Now().Add(l.deadline)) // until CONNECT
	if err := l.wsEst(l.id, &wsConn{Conn: nc, ws: ws}); err != nil && !isClosedErr(err) {
		l.onError("session", nc.RemoteAddr(), err)
	}
	_ = ws.Close()
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF)
}

// peerCertificates returns the client certificates (leaf first) of the TLS
// connection under c, a connection this listener handed to the broker (MQTT
// over TLS, or over WebSocket over TLS); nil when the client sent none.
// The listener requests a certificate but verifies none: the hub checks it
// per identity at CONNECT (identity.CheckThumbprint, identity.CheckCA).
func peerCertificates(c net.Conn) []*x509.Certificate {
	for {
		switch t := c.(type) {
		case *tls.Conn:
			return t.ConnectionState().PeerCertificates
		case *bufferedConn:
			c = t.Conn
		case *wsConn:
			c = t.Conn
		default:
			return nil
		}
	}
}

// bufferedConn reads through the reader that peeked at the first byte.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener hands sniffed connections to the WebSocket HTTP server.
type chanListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// wsConn carries MQTT bytes in binary WebSocket messages. Deadlines and
// addresses are those of the underlying connection.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the current message, nil between messages
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT must travel in binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }

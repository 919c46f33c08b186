// Package testbin builds the project's binaries once per test process and
// runs hubsim for end-to-end suites.
//
// Build compiles ./cmd/<name> (from the module root found with `go env GOMOD`)
// into a temporary directory shared by the whole test process, at most once
// per name. StartHubsim runs the hubsim binary in a fresh directory, waits for
// its ready line (see notes/hubsim-api.md), decodes it into a Hubsim, and
// stops the process when the test ends.
//
// Suites that want the build directory removed at the end of the run use
//
//	func TestMain(m *testing.M) { os.Exit(testbin.Run(m)) }
//
// Nothing here prints secrets: failure messages pass hubsim's output through
// connstr.Redact.
package testbin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/hubsim"
)

// ReadyTimeout is how long Start waits for hubsim's ready line.
var ReadyTimeout = 30 * time.Second

// StopTimeout is how long hubsim gets to exit after SIGTERM before it is killed.
var StopTimeout = 10 * time.Second

// maxCapture bounds how much of a child's stdout/stderr is kept in memory.
const maxCapture = 4 << 20

var (
	dirOnce sync.Once
	dirPath string
	dirErr  error

	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

type build struct {
	once sync.Once
	path string
	err  error
}

// Run runs the tests of m and then removes the process-wide build directory.
// Call it from TestMain: os.Exit(testbin.Run(m)).
func Run(m *testing.M) int {
	code := m.Run()
	if dirPath != "" {
		_ = os.RemoveAll(dirPath)
	}
	return code
}

// ModuleRoot returns the directory holding the module's go.mod, as reported
// by `go env GOMOD`.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

func buildDir() (string, error) {
	dirOnce.Do(func() {
		dirPath, dirErr = os.MkdirTemp("", "dmctl-testbin-")
	})
	return dirPath, dirErr
}

// Build compiles ./cmd/<name> once per test process and returns the path of
// the binary. A build failure fails tb with the compiler output; later calls
// for the same name fail the same way without rebuilding.
func Build(tb testing.TB, name string) string {
	tb.Helper()
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		tb.Fatalf("testbin.Build: invalid command name %q: want the name of a directory under ./cmd", name)
	}
	buildsMu.Lock()
	b, ok := builds[name]
	if !ok {
		b = &build{}
		builds[name] = b
	}
	buildsMu.Unlock()

	b.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			b.err = err
			return
		}
		dir, err := buildDir()
		if err != nil {
			b.err = fmt.Errorf("creating build directory: %w", err)
			return
		}
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
		cmd.Dir = root
		if output, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build ./cmd/%s: %w\n%s", name, err, output)
			return
		}
		b.path = out
	})
	if b.err != nil {
		tb.Fatalf("testbin.Build(%q): %v", name, b.err)
	}
	return b.path
}

// Ready is hubsim's ready line (one JSON object on stdout). It is hubsim's
// own type, so the line has one definition that both sides share.
type Ready = hubsim.Ready

// Entra is the ready line's description of hubsim's local token endpoint.
type Entra = hubsim.ReadyEntra

// Principal is one Entra service principal announced in the ready line.
type Principal = hubsim.ReadyPrincipal

// Hubsim is a running hubsim process started by StartHubsim.
type Hubsim struct {
	Ready                // the decoded ready line
	Raw   map[string]any // the ready line as a generic map, for fields Ready does not name
	Dir   string         // the --dir hubsim was started with
	Args  []string       // the full argument list
	Cmd   *exec.Cmd      // the process; do not Wait on it (StartHubsim does)
	done  chan struct{}  // closed when the process has exited
	err   error          // the process's exit error, valid after done is closed
	out   *captureBuffer // stdout after the ready line
	errs  *captureBuffer // stderr
	stop  sync.Once
}

// Principal returns the Entra principal with the given name from the ready
// line, failing tb when there is none.
func (h *Hubsim) Principal(tb testing.TB, name string) Principal {
	tb.Helper()
	for _, p := range h.Entra.Principals {
		if p.Name == name {
			return p
		}
	}
	tb.Fatalf("hubsim ready line has no Entra principal named %q", name)
	return Principal{}
}

// Port returns the TCP port of the HTTPS listener.
func (h *Hubsim) Port() int {
	_, p, err := net.SplitHostPort(h.HTTPSAddr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// Stats reads GET /hubsim/stats, which flushes the method log before it
// answers: every delivery hubsim had answered is then in the file.
func (h *Hubsim) Stats(tb testing.TB) map[string]any {
	tb.Helper()
	return h.getStats(tb, "/hubsim/stats")
}

// Settle reads GET /hubsim/stats?idle: it answers once no method call is in
// flight at hubsim and every ended job's run has returned (woken by those
// events, not polled), and it flushes the method log. After a client has
// stopped (killed, cancelled, its job ended), Settle is how a test knows that
// nothing more will reach a device, so what the log holds then is final.
func (h *Hubsim) Settle(tb testing.TB) map[string]any {
	tb.Helper()
	return h.getStats(tb, "/hubsim/stats?idle")
}

func (h *Hubsim) getStats(tb testing.TB, path string) map[string]any {
	tb.Helper()
	pem, err := os.ReadFile(h.CAFile)
	if err != nil {
		tb.Fatalf("hubsim stats: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		tb.Fatalf("hubsim stats: no certificate in %s", h.CAFile)
	}
	c := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + h.HTTPSAddr + path)
	if err != nil {
		tb.Fatalf("hubsim stats: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("hubsim stats: %s (%v)", resp.Status, err)
	}
	return m
}

// Stderr returns what hubsim has written to stderr so far.
func (h *Hubsim) Stderr() string { return h.errs.String() }

// Stdout returns what hubsim has written to stdout after its ready line.
func (h *Hubsim) Stdout() string { return h.out.String() }

// Exited reports whether the hubsim process has already exited.
func (h *Hubsim) Exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits for hubsim to exit, killing it after
// StopTimeout. It returns an error when hubsim had to be killed, exited with
// a non-zero status, or had already exited on its own. Only the first call
// does anything (later calls return nil);
// StartHubsim registers it with tb.Cleanup, so calling it is only needed to
// stop hubsim early (e.g. to restart it on the same --dir).
func (h *Hubsim) Stop() error {
	var err error
	h.stop.Do(func() {
		stopTimeout := StopTimeout
		if h.Exited() {
			err = fmt.Errorf("hubsim exited before it was stopped: %v", h.err)
			return
		}
		_ = h.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
			if h.err != nil {
				err = fmt.Errorf("hubsim did not exit cleanly after SIGTERM: %v", h.err)
			}
		case <-time.After(stopTimeout):
			_ = h.Cmd.Process.Kill()
			<-h.done
			err = fmt.Errorf("hubsim did not exit within %s of SIGTERM and was killed", stopTimeout)
		}
	})
	return err
}

// StartHubsim builds and runs hubsim with `--dir tb.TempDir()` followed by
// args (when args already contain --dir, that one is used instead), waits up
// to ReadyTimeout for the ready line and decodes it. If hubsim exits, prints
// an undecodable line or is not ready in time, tb fails with hubsim's stderr.
// hubsim is stopped in tb.Cleanup; a hubsim that does not stop cleanly there
// (non-zero exit, crash before, or needing SIGKILL) fails the test.
func StartHubsim(tb testing.TB, args ...string) *Hubsim {
	tb.Helper()
	return Start(tb, Build(tb, "hubsim"), args...)
}

// Start is StartHubsim for a given binary: bin must behave like hubsim (print
// the ready line, stop on SIGTERM), e.g. a prebuilt bin/hubsim.
func Start(tb testing.TB, bin string, args ...string) *Hubsim {
	tb.Helper()

	dir := ""
	for i, a := range args {
		switch {
		case a == "--dir" && i+1 < len(args):
			dir = args[i+1]
		case strings.HasPrefix(a, "--dir="):
			dir = strings.TrimPrefix(a, "--dir=")
		}
	}
	full := append([]string(nil), args...)
	if dir == "" {
		dir = tb.TempDir()
		full = append([]string{"--dir", dir}, full...)
	}

	ready := make(chan string, 1)
	h := &Hubsim{
		Dir:  dir,
		Args: full,
		done: make(chan struct{}),
		out:  &captureBuffer{},
		errs: &captureBuffer{},
	}
	h.Cmd = exec.Command(bin, full...)
	h.Cmd.Stdout = &readyWriter{ready: ready, rest: h.out}
	h.Cmd.Stderr = h.errs
	h.Cmd.WaitDelay = 5 * time.Second
	if err := h.Cmd.Start(); err != nil {
		tb.Fatalf("starting hubsim: %v", err)
	}
	go func() {
		h.err = h.Cmd.Wait()
		close(h.done)
	}()

	fail := func(format string, a ...any) {
		tb.Helper()
		if !h.Exited() {
			_ = h.Cmd.Process.Kill()
			<-h.done
		}
		tb.Fatalf("hubsim %s: %s\n--- hubsim stderr ---\n%s", strings.Join(full, " "),
			fmt.Sprintf(format, a...), connstr.Redact(h.Stderr()))
	}

	var line string
	readyTimeout := ReadyTimeout
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case line = <-ready:
	case <-h.done:
		// The ready line may have been written just before exiting.
		select {
		case line = <-ready:
		default:
			fail("exited before printing its ready line (%v)", h.err)
		}
	case <-timer.C:
		fail("printed no ready line within %s", readyTimeout)
	}

	if err := json.Unmarshal([]byte(line), &h.Ready); err != nil {
		fail("ready line is not the expected JSON: %v\nline: %s", err, connstr.Redact(line))
	}
	if err := json.Unmarshal([]byte(line), &h.Raw); err != nil {
		fail("ready line is not a JSON object: %v", err)
	}
	if h.HTTPSAddr == "" || h.ServiceConnectionString == "" || h.CAFile == "" {
		fail("ready line lacks httpsAddr, serviceConnectionString or caFile: %s", connstr.Redact(line))
	}

	tb.Cleanup(func() {
		if err := h.Stop(); err != nil {
			tb.Errorf("%v\n--- hubsim stderr ---\n%s", err, connstr.Redact(h.Stderr()))
		}
	})
	return h
}

var hostPort = regexp.MustCompile(`(?i)(^|;)(\s*HostName\s*=[^;:]+):\d+`)

// StripPort rewrites `HostName=host:port` in a connection string to
// `HostName=host`, for clients (like Microsoft's Node service SDK) that cannot
// take a port and are redirected to hubsim by other means. Other fields
// (GatewayHostName included) are left as they are.
func StripPort(connectionString string) string {
	return hostPort.ReplaceAllString(connectionString, "$1$2")
}

// readyWriter receives hubsim's stdout: the first line that looks like a
// JSON object is sent on ready; everything else goes to rest.
type readyWriter struct {
	ready chan<- string
	rest  *captureBuffer
	buf   bytes.Buffer
	sent  bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	if w.sent {
		return w.rest.Write(p)
	}
	w.buf.Write(p)
	for !w.sent {
		data := w.buf.Bytes()
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(data[:i]))
		w.buf.Next(i + 1)
		if strings.HasPrefix(line, "{") {
			w.sent = true
			w.ready <- line
			_, _ = w.rest.Write(w.buf.Bytes())
			w.buf.Reset()
		} else {
			_, _ = w.rest.Write([]byte(line + "\n"))
		}
	}
	return len(p), nil
}

// captureBuffer is a goroutine-safe buffer that keeps at most maxCapture
// bytes (the most recent ones).
type captureBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (c *captureBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	if over := len(c.buf) - maxCapture; over > 0 {
		c.buf = append(c.buf[:0], c.buf[over:]...)
	}
	return len(p), nil
}

func (c *captureBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// RunContext is a small convenience for suites: it runs name with args in
// dir under a timeout, with env appended to the current environment, and
// returns stdout and stderr separately.
func RunContext(ctx context.Context, timeout time.Duration, dir string, env []string, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout = &o
	cmd.Stderr = &e
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("%s timed out after %s: %w", name, timeout, err)
	}
	return o.String(), e.String(), err
}

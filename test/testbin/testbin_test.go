package testbin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStripPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"HostName=127.0.0.1:8443;SharedAccessKeyName=service;SharedAccessKey=abc=",
			"HostName=127.0.0.1;SharedAccessKeyName=service;SharedAccessKey=abc="},
		{"SharedAccessKeyName=s;HostName=localhost:1;SharedAccessKey=k", "SharedAccessKeyName=s;HostName=localhost;SharedAccessKey=k"},
		{"hostname=h.example:443;DeviceId=d", "hostname=h.example;DeviceId=d"},
		{"HostName=hub;GatewayHostName=127.0.0.1:8883;DeviceId=d", "HostName=hub;GatewayHostName=127.0.0.1:8883;DeviceId=d"},
		{"HostName=127.0.0.1;DeviceId=d", "HostName=127.0.0.1;DeviceId=d"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, StripPort(tt.in), tt.in)
	}
}

func TestReadyWriterSplitsFirstJSONLine(t *testing.T) {
	ready := make(chan string, 1)
	rest := &captureBuffer{}
	w := &readyWriter{ready: ready, rest: rest}
	for _, chunk := range []string{"starting\n{\"httpsAddr\":", "\"127.0.0.1:1\"}\nafter", " ready\n{\"x\":1}\n"} {
		n, err := w.Write([]byte(chunk))
		require.NoError(t, err)
		require.Equal(t, len(chunk), n)
	}
	select {
	case line := <-ready:
		assert.Equal(t, `{"httpsAddr":"127.0.0.1:1"}`, line)
	default:
		t.Fatal("no ready line")
	}
	assert.Equal(t, "starting\nafter ready\n{\"x\":1}\n", rest.String())
}

func TestCaptureBufferKeepsTheTail(t *testing.T) {
	c := &captureBuffer{}
	_, _ = c.Write([]byte(strings.Repeat("a", maxCapture)))
	_, _ = c.Write([]byte("tail"))
	s := c.String()
	assert.Len(t, s, maxCapture)
	assert.True(t, strings.HasSuffix(s, "atail"))
}

func TestBuildRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "../x", "a/b", "."} {
		ft := &fakeTB{TB: t}
		func() {
			defer func() { _ = recover() }()
			Build(ft, name)
		}()
		assert.True(t, ft.failed, "Build(%q) should fail", name)
		assert.Contains(t, ft.msg, "invalid command name")
	}
}

// fakeTB records Fatalf instead of stopping the real test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}

const fakeHubsim = `#!/bin/sh
# args: --dir DIR MODE
ready='{"httpsAddr":"127.0.0.1:1234","hostName":"127.0.0.1:1234","caFile":"/x/ca.pem","serviceConnectionString":"HostName=127.0.0.1:1234;SharedAccessKeyName=service;SharedAccessKey=c2VjcmV0","devices":7,"extra":"e","entra":{"principals":[{"name":"reader","clientId":"id","role":"IoT Hub Data Reader"}]}}'
case "$3" in
ok) trap 'echo bye >&2; exit 0' TERM; echo "a log line"; echo "$ready"; echo after; while :; do sleep 0.05; done ;;
exit) echo "boom SharedAccessKey=c2VjcmV0" >&2; exit 3 ;;
badjson) echo '{not json SharedAccessKey=c2VjcmV0'; exec sleep 5 ;;
silent) exec sleep 30 ;;
stubborn) trap '' TERM; echo "$ready"; while :; do sleep 0.05; done ;;
failstop) trap 'exit 4' TERM; echo "$ready"; while :; do sleep 0.05; done ;;
esac
`

func writeFake(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fakehubsim")
	require.NoError(t, os.WriteFile(p, []byte(fakeHubsim), 0o755))
	return p
}

// recordingTB records failures instead of failing the real test; Fatalf
// panics to stop the code under test, as testing's Fatalf stops a goroutine.
type recordingTB struct {
	testing.TB
	mu     sync.Mutex
	fatals []string
	errors []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	panic(errFatal)
}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

var errFatal = errors.New("fatal")

func startFake(t *testing.T, rec *recordingTB, bin, mode string) (h *Hubsim) {
	t.Helper()
	defer func() {
		if v := recover(); v != nil && v != errFatal {
			panic(v)
		}
	}()
	return Start(rec, bin, mode)
}

func TestStartDecodesReadyLineAndStopsCleanly(t *testing.T) {
	bin := writeFake(t)
	rec := &recordingTB{TB: t}
	h := startFake(t, rec, bin, "ok")
	require.Empty(t, rec.fatals)
	require.NotNil(t, h)
	assert.Equal(t, "127.0.0.1:1234", h.HTTPSAddr)
	assert.Equal(t, 1234, h.Port())
	assert.Equal(t, 7, h.Devices)
	assert.Equal(t, "e", h.Raw["extra"])
	assert.Equal(t, "id", h.Principal(t, "reader").ClientID)
	assert.Equal(t, []string{"--dir", h.Dir, "ok"}, h.Args)
	assert.DirExists(t, h.Dir)
	// Output after the ready line keeps flowing into Stdout.
	require.Eventually(t, func() bool { return strings.Contains(h.Stdout(), "after") }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, h.Stop())
	assert.True(t, h.Exited())
	assert.Contains(t, h.Stderr(), "bye", "hubsim got SIGTERM")
	assert.Contains(t, h.Stdout(), "a log line", "lines before the ready line are kept")
	assert.NoError(t, h.Stop(), "Stop is idempotent")
}

func TestStartUsesGivenDir(t *testing.T) {
	bin := writeFake(t)
	dir := t.TempDir()
	rec := &recordingTB{TB: t}
	// The fake reads its mode from $3, so pass --dir explicitly first.
	func() {
		defer func() { _ = recover() }()
		h := Start(rec, bin, "--dir", dir, "ok")
		assert.Equal(t, dir, h.Dir)
		assert.Equal(t, []string{"--dir", dir, "ok"}, h.Args)
		assert.NoError(t, h.Stop())
	}()
	assert.Empty(t, rec.fatals)
}

func TestStartFailures(t *testing.T) {
	defer func(r, s time.Duration) { ReadyTimeout, StopTimeout = r, s }(ReadyTimeout, StopTimeout)
	ReadyTimeout = time.Second
	bin := writeFake(t)
	tests := []struct{ mode, want string }{
		{"exit", "exited before printing its ready line"},
		{"badjson", "ready line is not the expected JSON"},
		{"silent", "printed no ready line within 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			h := startFake(t, rec, bin, tt.mode)
			assert.Nil(t, h)
			require.Len(t, rec.fatals, 1)
			assert.Contains(t, rec.fatals[0], tt.want)
			assert.NotContains(t, rec.fatals[0], "c2VjcmV0", "secrets are redacted")
			if tt.mode == "exit" {
				assert.Contains(t, rec.fatals[0], "boom", "stderr is shown")
			}
		})
	}
}

func TestStopReportsUncleanExit(t *testing.T) {
	defer func(s time.Duration) { StopTimeout = s }(StopTimeout)
	StopTimeout = 500 * time.Millisecond
	bin := writeFake(t)

	rec := &recordingTB{TB: t}
	h := startFake(t, rec, bin, "stubborn")
	require.NotNil(t, h)
	err := h.Stop()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "was killed")

	h = startFake(t, rec, bin, "failstop")
	require.NotNil(t, h)
	err = h.Stop()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not exit cleanly")
	assert.Empty(t, rec.fatals)
}

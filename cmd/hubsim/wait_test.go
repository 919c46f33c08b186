package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim"
	"github.com/dmctl/dmctl/internal/hubsim/hubenv"
	"github.com/dmctl/dmctl/internal/testkit"
)

func TestWaitBadFlagsExit2(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"wait"}, "--dir is required"},
		{[]string{"wait", "--dir", ""}, "--dir: the value is empty"},
		{[]string{"wait", "--dir", t.TempDir(), "--timeout", "0s"}, "--timeout 0s"},
		{[]string{"wait", "--dir", t.TempDir(), "--timeout", "-1s"}, "--timeout"},
		{[]string{"wait", "--dir", t.TempDir(), "--timeout", "soon"}, "--timeout"},
		{[]string{"wait", "--dir", t.TempDir(), "extra"}, `unexpected argument "extra"`},
		{[]string{"wait", "--bogus"}, "--bogus"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), c.args, &stdout, &stderr)
			assert.Equal(t, ExitUsage, code, "stderr: %s", stderr.String())
			assert.Contains(t, stderr.String(), c.want)
			assert.Empty(t, stdout.String())
		})
	}
}

func TestWaitTimesOutWithoutAHub(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"wait", "--dir", dir, "--timeout", "200ms"}, &stdout, &stderr)
	assert.Equal(t, ExitError, code)
	assert.Contains(t, stderr.String(), "was not ready within 200ms")
	assert.Contains(t, stderr.String(), filepath.Join(dir, hubenv.File)+" does not exist")
	assert.Empty(t, stdout.String())
}

// A hubsim.env whose hub is gone (a stopped run) is not "ready": wait dials
// the address in it and keeps waiting.
func TestWaitIsNotFooledByAStaleEnvFile(t *testing.T) {
	dir := t.TempDir()
	s := startTestServer(t, hubsim.Config{Dir: dir})
	_, err := s.WriteEnv()
	require.NoError(t, err)
	addr := s.HostName()
	require.NoError(t, s.Shutdown(context.Background()))

	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"wait", "--dir", dir, "--timeout", "300ms"}, &stdout, &stderr)
	assert.Equal(t, ExitError, code)
	assert.Contains(t, stderr.String(), "https://"+addr+" (from "+filepath.Join(dir, hubenv.File)+") does not accept TLS connections")
}

// A TLS server that is not the hub of DIR (another CA) is not it either.
func TestWaitVerifiesTheCAOfDir(t *testing.T) {
	other := startTestServer(t, hubsim.Config{})
	dir := t.TempDir()
	s := newTestServer(t, hubsim.Config{Dir: dir})
	_, err := s.WriteEnv()
	require.NoError(t, err)
	env, err := os.ReadFile(filepath.Join(dir, hubenv.File))
	require.NoError(t, err)
	// Point DIR's env file at the other hub: same host, another CA.
	_, otherPort, _ := net.SplitHostPort(other.HostName())
	_, port, _ := net.SplitHostPort(s.HostName())
	forged := strings.ReplaceAll(string(env), ":"+port, ":"+otherPort)
	require.NoError(t, os.WriteFile(filepath.Join(dir, hubenv.File), []byte(forged), 0o600))

	// One whole probe (not bounded by a short wait, which a loaded machine
	// could cut before the handshake ends) is refused for the certificate.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = hubenv.WaitReady(ctx, dir, 3*time.Second)
	require.Error(t, err, "WaitReady never takes it for DIR's hub")
	assert.Contains(t, err.Error(), "certificate", "its last whole probe was refused for the certificate")
}

// hubsim started in the background and `hubsim wait` started at the same
// moment, on a DIR holding a stale hubsim.env: wait returns only once the new
// hub serves, and the env file then names the new hub.
func TestWaitForAStartingHub(t *testing.T) {
	dir := t.TempDir()
	stale := startTestServer(t, hubsim.Config{Dir: dir})
	_, err := stale.WriteEnv()
	require.NoError(t, err)
	require.NoError(t, stale.Shutdown(context.Background()))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hubDone := make(chan int, 1)
	hubErr := &testkit.SyncBuffer{}
	go func() { hubDone <- Run(ctx, []string{"--dir", dir}, &testkit.SyncBuffer{}, hubErr) }()

	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"wait", "--dir", dir, "--timeout", "30s"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, "wait: %s\nhubsim: %s", stderr.String(), hubErr.String())
	assert.Contains(t, stderr.String(), "hubsim: ready on https://127.0.0.1:")
	assert.Empty(t, stdout.String())

	vars, err := hubenv.Read(filepath.Join(dir, hubenv.File))
	require.NoError(t, err)
	assert.Contains(t, stderr.String(), vars["HUBSIM_HOST"])
	_, err = hubenv.WaitReady(context.Background(), dir, 5*time.Second)
	assert.NoError(t, err, "the hub wait reported is serving")

	cancel()
	select {
	case code := <-hubDone:
		assert.Equal(t, ExitOK, code, hubErr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("hubsim did not stop")
	}
}

// New removes a hubsim.env an earlier run left before it listens, so nothing
// can read an old address while the new hub starts.
func TestNewRemovesAStaleEnvFile(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, hubenv.File)
	require.NoError(t, os.WriteFile(env, []byte("export HUBSIM_HTTPS_ADDR='127.0.0.1:1'\n"), 0o600))
	s := newTestServer(t, hubsim.Config{Dir: dir})
	_, err := os.Stat(env)
	assert.True(t, os.IsNotExist(err), "stale %s removed by New: %v", env, err)
	_, err = s.WriteEnv()
	require.NoError(t, err)
	vars, err := hubenv.Read(env)
	require.NoError(t, err)
	assert.Equal(t, s.HostName(), vars["HUBSIM_HTTPS_ADDR"])
}

// `hubsim > ready.json`: the shell creates the file with the umask's mode;
// hubsim makes it 0600 before the ready line (every key) is in it.
func TestReadyLineFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	out, err := os.OpenFile(filepath.Join(dir, "ready.json"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	require.NoError(t, err)
	defer out.Close()
	require.NoError(t, out.Chmod(0o644)) // whatever the test's umask
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	stderr := &testkit.SyncBuffer{}
	go func() { done <- Run(ctx, []string{"--dir", filepath.Join(dir, "hub")}, out, stderr) }()

	_, err = hubenv.WaitReady(context.Background(), filepath.Join(dir, "hub"), 30*time.Second)
	require.NoError(t, err, stderr.String())
	b, err := os.ReadFile(out.Name())
	require.NoError(t, err)
	assert.Contains(t, string(b), `"serviceConnectionString":"HostName=`, "the ready line is in the file")
	fi, err := os.Stat(out.Name())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, ExitOK, code, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("hubsim did not stop")
	}
}

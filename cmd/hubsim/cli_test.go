package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/hubsim"
	"github.com/dmctl/dmctl/internal/hubsim/hubenv"
	"github.com/dmctl/dmctl/internal/sas"
	"github.com/dmctl/dmctl/internal/testkit"
)

func TestBadFlagsExit2NamingTheFlag(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--tier", "S9"}, "--tier"},
		{[]string{"--units", "0"}, "--units"},
		{[]string{"--no-throttle", "--tier", "S2"}, "--no-throttle"},
		{[]string{"--devices", "-1"}, "--devices"},
		{[]string{"--devices", "abc"}, "--devices"},
		{[]string{"--fault-drop", "1.5"}, "--fault-drop"},
		{[]string{"--fault-throttle", "0.6", "--fault-server-error", "0.6"}, "sum"},
		{[]string{"--register", "a,,b"}, "--register"},
		{[]string{"--https-addr", "nohostport"}, "--https-addr"},
		{[]string{"--bogus"}, "--bogus"},
		{[]string{"extra-arg"}, "extra-arg"},
		{[]string{"bench", "--concurrency", "0"}, "--concurrency"},
		{[]string{"bench", "--duration", "-1s"}, "--duration"},
		{[]string{"--fleet", "/nonexistent/fleet.yaml"}, "--fleet"},
		{[]string{"token", "--dir", "", "--device", "d1"}, "--dir"},
		{[]string{"token", "--dir", "hub", "--device", "d1", "--device", "d2"}, "--device is given more than once"},
		{[]string{"--tier", "S1", "--tier", "S2"}, "--tier is given more than once"},
		{[]string{"--dir", ""}, "--dir: the value is empty"},
		{[]string{"--https-addr", " "}, "--https-addr: the value is empty"},
		{[]string{"wait", "--dir", "hub", "--timeout", "1s", "--timeout", "2s"}, "--timeout is given more than once"},
		{[]string{"device", "--connection-string", ""}, "--connection-string: the value is empty"},
		{[]string{"device", "--cert", "a.pem", "--cert", "b.pem", "--key", "k.pem"}, "--cert is given more than once"},
		{[]string{"token", "--dir", "hub", "--device", " "}, "--device"},
		{[]string{"token", "--dir", "hub"}, "--device"},
		{[]string{"token", "--dir", "hub", "--device", "d1", "--ttl", "0s"}, "--ttl"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), c.args, &stdout, &stderr)
			assert.Equal(t, ExitUsage, code, "stderr: %s", stderr.String())
			assert.Contains(t, stderr.String(), c.want)
			assert.Empty(t, stdout.String(), "nothing on stdout")
			assert.NotContains(t, stderr.String(), "goroutine", "no stack trace")
		})
	}
}

// runHub runs the command line until the returned stop is called; it
// returns the decoded ready line.
func runHub(t *testing.T, args ...string) (hubsim.Ready, map[string]any, func() (int, string)) {
	t.Helper()
	pr, pw := io.Pipe()
	stderr := &testkit.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, args, pw, stderr)
		pw.Close()
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, pr)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("no ready line; stderr: %s", connstr.Redact(stderr.String()))
	}
	require.NotEmpty(t, line, "stderr: %s", connstr.Redact(stderr.String()))
	var r hubsim.Ready
	require.NoError(t, json.Unmarshal([]byte(line), &r))
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(line), &raw))
	stopped := false
	stop := func() (int, string) {
		if stopped {
			return 0, ""
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code, stderr.String()
		case <-time.After(20 * time.Second):
			t.Fatal("hubsim did not stop")
			return 0, ""
		}
	}
	t.Cleanup(func() { stop() })
	return r, raw, stop
}

func TestReadyLineEnvAndRestart(t *testing.T) {
	dir := t.TempDir()
	r, raw, stop := runHub(t, "--dir", dir)
	for _, k := range []string{"httpsAddr", "mqttAddr", "caFile", "hostName", "hubName", "serviceConnectionString",
		"ownerConnectionString", "registryReadConnectionString", "registryReadWriteConnectionString",
		"deviceConnectionStrings", "entra", "devices", "pid"} {
		assert.Contains(t, raw, k)
	}
	assert.True(t, strings.HasPrefix(r.HTTPSAddr, "127.0.0.1:"))
	assert.True(t, strings.HasPrefix(r.MQTTAddr, "127.0.0.1:"))
	assert.NotEqual(t, r.HTTPSAddr, r.MQTTAddr)
	assert.Equal(t, r.HTTPSAddr, r.HostName)
	assert.Equal(t, filepath.Join(dir, "ca.pem"), r.CAFile)
	assert.Equal(t, "hubsim", r.HubName)
	assert.Equal(t, os.Getpid(), r.PID)
	assert.Equal(t, "https://"+r.HostName+"/", r.Entra.AuthorityHost)
	assert.Equal(t, "https://iothubs.azure.net", r.Entra.Audience)
	assert.Len(t, r.Entra.Principals, 3)
	for _, cs := range []string{r.ServiceConnectionString, r.OwnerConnectionString, r.RegistryReadConnectionString, r.RegistryReadWriteConnectionString} {
		c, err := connstr.Parse(cs)
		require.NoError(t, err)
		assert.Equal(t, r.HostName, c.HostName)
	}
	assert.Contains(t, r.ServiceConnectionString, "SharedAccessKeyName=service;")

	// hubsim.env is written right after the ready line.
	_, err := hubenv.WaitReady(context.Background(), dir, 30*time.Second)
	require.NoError(t, err)
	env, err := os.ReadFile(filepath.Join(dir, hubenv.File))
	require.NoError(t, err)
	assert.Contains(t, string(env), "export IOTHUB_CONNECTION_STRING='"+r.ServiceConnectionString+"'")
	assert.Contains(t, string(env), "export SSL_CERT_FILE='"+r.CAFile+"'")
	assert.Contains(t, string(env), "export HUBSIM_HOST='"+r.HostName+"'")
	fi, err := os.Stat(filepath.Join(dir, hubenv.File))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	fi, err = os.Stat(filepath.Join(dir, hubsim.StateFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	code, stderr := stop()
	assert.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stderr, "hubsim: stopped")
	assert.NotContains(t, stderr, "SharedAccessKey=", "no secrets on stderr")

	// Same dir: same keys, tenant and principals; the CA file is kept.
	ca1, err := os.ReadFile(r.CAFile)
	require.NoError(t, err)
	r2, _, stop2 := runHub(t, "--dir", dir)
	defer stop2()
	key := func(cs string) string { c, err := connstr.Parse(cs); require.NoError(t, err); return c.SharedAccessKey }
	assert.Equal(t, key(r.ServiceConnectionString), key(r2.ServiceConnectionString))
	assert.Equal(t, key(r.OwnerConnectionString), key(r2.OwnerConnectionString))
	assert.Equal(t, r.Entra.TenantID, r2.Entra.TenantID)
	assert.Equal(t, r.Entra.Principals, r2.Entra.Principals)
	assert.Equal(t, r.Seed, r2.Seed, "the simulation seed is kept too")
	ca2, err := os.ReadFile(r2.CAFile)
	require.NoError(t, err)
	assert.Equal(t, ca1, ca2)
}

func TestTemporaryDirIsRemovedOnExit(t *testing.T) {
	r, _, stop := runHub(t)
	dir := filepath.Dir(r.CAFile)
	_, err := os.Stat(dir)
	require.NoError(t, err)
	code, _ := stop()
	assert.Equal(t, ExitOK, code)
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "temporary dir %s removed", dir)
}

// TestTokenCommand: `hubsim token` signs a device or module token with the
// key the running hub's registry answers; the device endpoint's own check
// (sr, signature, expiry) accepts it. An unknown device is named, exit 1.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	r, _, _ := runHub(t, "--dir", dir, "--register", "tok-1,tok-1/m1")
	_, err := hubenv.WaitReady(context.Background(), dir, 30*time.Second)
	require.NoError(t, err)
	for _, id := range []string{"tok-1", "tok-1/m1"} {
		dev, mod, _ := strings.Cut(id, "/")
		args := []string{"token", "--dir", dir, "--device", dev, "--ttl", "10m"}
		resource := r.HostName + "/devices/" + dev
		if mod != "" {
			args = append(args, "--module", mod)
			resource += "/modules/" + mod
		}
		var stdout, stderr bytes.Buffer
		require.Equal(t, 0, Run(context.Background(), args, &stdout, &stderr), "stderr: %s", stderr.String())
		tok, err := sas.Parse(strings.TrimSpace(stdout.String()))
		require.NoError(t, err)
		assert.Equal(t, resource, tok.Resource)
		assert.Empty(t, tok.KeyName, "a device token names no policy")
		assert.WithinDuration(t, time.Now().Add(10*time.Minute), tok.Expiry, time.Minute)
		cs, err := connstr.ParseDevice(r.DeviceConnectionStrings[id])
		require.NoError(t, err)
		key, err := sas.DecodeKey(cs.SharedAccessKey)
		require.NoError(t, err)
		assert.NoError(t, tok.Verify(key, time.Now()), "signed with the identity's primary key")
		assert.Empty(t, stderr.String())
	}
	var stdout, stderr bytes.Buffer
	assert.Equal(t, ExitError, Run(context.Background(), []string{"token", "--dir", dir, "--device", "nope"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "devices/nope")
	assert.Empty(t, stdout.String())
}

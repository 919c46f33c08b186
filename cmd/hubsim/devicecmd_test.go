package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/hubsim"
	"github.com/dmctl/dmctl/internal/testkit"
)

// TestReadyDeviceConnectionStrings: registered identities get connection
// strings whose GatewayHostName is the MQTT listener and whose HostName is
// the hub host.
func TestReadyDeviceConnectionStrings(t *testing.T) {
	s := newTestServer(t, hubsim.Config{Register: []string{"real-1"}})
	r := s.Ready()
	cs, err := connstr.ParseDevice(r.DeviceConnectionStrings["real-1"])
	require.NoError(t, err)
	assert.Equal(t, r.HostName, cs.HostName)
	assert.Equal(t, r.MQTTAddr, cs.GatewayHostName)
	assert.Equal(t, "real-1", cs.DeviceID)
	assert.NotEmpty(t, cs.SharedAccessKey)
}

// TestReadyModuleConnectionStrings: --register dev/mod gives the module a
// connection string with DeviceId, ModuleId and the module's own key, which
// `hubsim device` (and Microsoft's ModuleClient) connect with.
func TestReadyModuleConnectionStrings(t *testing.T) {
	s := startTestServer(t, hubsim.Config{Register: []string{"gw-1", "gw-1/mod-1"}, NoThrottle: true})
	r := s.Ready()
	mod, err := connstr.ParseDevice(r.DeviceConnectionStrings["gw-1/mod-1"])
	require.NoError(t, err)
	assert.Equal(t, "gw-1", mod.DeviceID)
	assert.Equal(t, "mod-1", mod.ModuleID)
	dev, err := connstr.ParseDevice(r.DeviceConnectionStrings["gw-1"])
	require.NoError(t, err)
	assert.Empty(t, dev.ModuleID)
	assert.NotEqual(t, dev.SharedAccessKey, mod.SharedAccessKey, "the module has a key of its own")

	t.Setenv("IOTHUB_DEVICE_CONNECTION_STRING", r.DeviceConnectionStrings["gw-1/mod-1"])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testkit.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"device", "--ca-file", s.Certs().CAFile}, &stdout, &stderr) }()
	if _, ok := stdout.Await(10*time.Second, nil, func(out string) bool { return strings.Contains(out, `"event":"connected"`) }); !ok {
		t.Fatalf("the module's agent did not connect: %s", stderr.String())
	}
	status, _, err := s.Registry().InvokeMethod(ctx, "gw-1", "mod-1", "reboot", nil, 0, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, status, "the module answers its method")
	cancel()
	assert.Equal(t, 0, <-done, stderr.String())
}

// TestSecondaryKeyConnects: the secondary key the registry API answers is
// one a device can sign with: `hubsim device` connects with a connection
// string carrying it and answers a method.
func TestSecondaryKeyConnects(t *testing.T) {
	s := startTestServer(t, hubsim.Config{Register: []string{"two-keys"}, NoThrottle: true})
	doc, err := s.Registry().Identity("two-keys", "")
	require.NoError(t, err)
	secondary, _ := doc["authentication"].(map[string]any)["symmetricKey"].(map[string]any)["secondaryKey"].(string)
	require.NotEmpty(t, secondary)
	cs := s.Ready().DeviceConnectionStrings["two-keys"]
	parsed, err := connstr.ParseDevice(cs)
	require.NoError(t, err)
	require.NotEqual(t, parsed.SharedAccessKey, secondary)
	t.Setenv("IOTHUB_DEVICE_CONNECTION_STRING", strings.Replace(cs, "SharedAccessKey="+parsed.SharedAccessKey, "SharedAccessKey="+secondary, 1))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testkit.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"device", "--ca-file", s.Certs().CAFile}, &stdout, &stderr) }()
	if _, ok := stdout.Await(10*time.Second, nil, func(out string) bool { return strings.Contains(out, `"event":"connected"`) }); !ok {
		t.Fatalf("the device did not connect with its secondary key: %s", stderr.String())
	}
	status, _, err := s.Registry().InvokeMethod(ctx, "two-keys", "", "reboot", nil, 0, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, status)
	cancel()
	assert.Equal(t, 0, <-done, stderr.String())
}

// TestDeviceCommand runs `hubsim device` against a running hub: it
// connects over MQTT, answers a reboot, and exits 0 when stopped; bad
// input exits 2.
func TestDeviceCommand(t *testing.T) {
	t.Run("usage errors exit 2", func(t *testing.T) {
		t.Setenv("IOTHUB_DEVICE_CONNECTION_STRING", "")
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"device"}, "no device connection string"},
			{[]string{"device", "extra"}, `unexpected argument "extra"`},
			{[]string{"device", "--connection-string", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=AAAA"}, "device connection string"},
			{[]string{"device", "--no-such-flag"}, "unknown flag"},
			{[]string{"device", "--connection-string", "HostName=h;DeviceId=d;SharedAccessKey=AAAA", "--reboot-downtime", "-1s"}, "--reboot-downtime"},
		} {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), tc.args, &stdout, &stderr)
			assert.Equal(t, ExitUsage, code, "%v: %s", tc.args, stderr.String())
			assert.Contains(t, stderr.String(), tc.want, "%v", tc.args)
		}
	})

	t.Run("runs against hubsim", func(t *testing.T) {
		s := startTestServer(t, hubsim.Config{Register: []string{"agent-1"}, NoThrottle: true})
		t.Setenv("IOTHUB_DEVICE_CONNECTION_STRING", s.Ready().DeviceConnectionStrings["agent-1"])
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var stdout, stderr testkit.SyncBuffer
		done := make(chan int, 1)
		go func() {
			done <- Run(ctx, []string{"device", "--ca-file", s.Certs().CAFile, "--reboot-downtime", "200ms"}, &stdout, &stderr)
		}()
		if _, ok := stdout.Await(10*time.Second, nil, func(out string) bool { return strings.Contains(out, `"event":"connected"`) }); !ok {
			t.Fatalf("agent did not connect: %s", stderr.String())
		}
		status, payload, err := s.Registry().InvokeMethod(ctx, "agent-1", "", "reboot", nil, 0, 5*time.Second)
		require.NoError(t, err)
		assert.Equal(t, 200, status)
		assert.JSONEq(t, `{"message":"Reboot started"}`, string(payload))
		cancel()
		select {
		case code := <-done:
			assert.Equal(t, ExitOK, code, stderr.String())
		case <-time.After(10 * time.Second):
			t.Fatal("hubsim device did not stop")
		}
		assert.NotContains(t, stdout.String()+stderr.String(), "SharedAccessKey=", "no secrets in the output")
		host, _, err := net.SplitHostPort(s.Ready().MQTTAddr)
		require.NoError(t, err)
		assert.Contains(t, stdout.String(), `"broker":"tls://`+host)
	})
}

package agent

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/certs"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	hubmqtt "github.com/dmctl/dmctl/internal/hubsim/transport/mqtt"
	"github.com/dmctl/dmctl/internal/sas"
	"github.com/dmctl/dmctl/internal/testkit"
)

const hubHost = "hub.test:8443"

// hub is an in-process MQTT endpoint over a registry, for the agent to
// connect to.
type hub struct {
	reg    *registry.Registry
	ep     *hubmqtt.Endpoint
	addr   string
	caFile string
}

func newHub(t *testing.T) *hub {
	t.Helper()
	b, err := certs.LoadOrCreate(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	require.NoError(t, err)
	reg := registry.NewRegistry(registry.Options{HostName: hubHost, Seed: 3})
	require.NoError(t, reg.Register("dev1", "dev2"))
	ep, err := hubmqtt.New(hubmqtt.Config{Registry: reg, TLS: b.TLSConfig(), HostName: hubHost})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = ep.Serve(ln) }()
	t.Cleanup(func() { _ = ep.Close() })
	return &hub{reg: reg, ep: ep, addr: ln.Addr().String(), caFile: b.CAFile}
}

func (h *hub) connectionString(t *testing.T, id string) string {
	t.Helper()
	k, ok := h.reg.Key(id, "")
	require.True(t, ok)
	return "HostName=" + hubHost + ";DeviceId=" + id + ";GatewayHostName=" + h.addr + ";SharedAccessKey=" + base64.StdEncoding.EncodeToString(k)
}

// running is an agent running in the background.
type running struct {
	events *testkit.SyncBuffer
	log    *testkit.SyncBuffer
	done   chan error
	cancel context.CancelFunc
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	r := &running{events: &testkit.SyncBuffer{}, log: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	cfg.Events, cfg.Log = r.events, r.log
	a, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			assert.NoError(t, err, "Run returns nil when stopped")
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

func (r *running) eventList(t *testing.T) []Event {
	t.Helper()
	events, err := parseEvents(r.events.String())
	require.NoError(t, err)
	return events
}

// parseEvents decodes the complete lines of an events stream.
func parseEvents(text string) ([]Event, error) {
	var out []Event
	complete := text[:strings.LastIndexByte(text, '\n')+1]
	sc := bufio.NewScanner(strings.NewReader(complete))
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("event line %q: %w", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// waitEvent waits until an event matches, checking each time the agent
// writes one, and returns the first that does.
func (r *running) waitEvent(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	return r.waitEvents(t, what, 1, match)
}

// waitEvents waits until n events match and returns the n-th.
func (r *running) waitEvents(t *testing.T, what string, n int, match func(Event) bool) Event {
	t.Helper()
	var found Event
	var bad error
	_, ok := r.events.Await(15*time.Second, nil, func(text string) bool {
		events, err := parseEvents(text)
		if err != nil {
			bad = err
			return true
		}
		seen := 0
		for _, ev := range events {
			if match(ev) {
				if seen++; seen == n {
					found = ev
					return true
				}
			}
		}
		return false
	})
	require.NoError(t, bad)
	if !ok {
		t.Fatalf("no %s event; events:\n%s\nlog:\n%s", what, r.events.String(), r.log.String())
	}
	return found
}

func (h *hub) invoke(t *testing.T, id, method, payload string) (int, map[string]any) {
	t.Helper()
	var p json.RawMessage
	if payload != "" {
		p = json.RawMessage(payload)
	}
	status, resp, err := h.reg.InvokeMethod(context.Background(), id, "", method, p, 5*time.Second, 5*time.Second)
	require.NoError(t, err, "invoke %s", method)
	var m map[string]any
	require.NoError(t, json.Unmarshal(resp, &m))
	return status, m
}

func (h *hub) dm(t *testing.T, id string) map[string]any {
	t.Helper()
	doc, err := h.reg.Twin(id, "")
	require.NoError(t, err)
	rep := doc["properties"].(map[string]any)["reported"].(map[string]any)
	m, _ := rep["iothubDM"].(map[string]any)
	return m
}

func (h *hub) connState(t *testing.T, id string) string {
	t.Helper()
	doc, err := h.reg.Twin(id, "")
	require.NoError(t, err)
	return doc["connectionState"].(string)
}

// eventually polls hub-side state (twins, a method call's answer), which no
// event announces, for up to 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 15*time.Second, 10*time.Millisecond, "timed out waiting for %s", what)
}

func isTime(t *testing.T, v any, field string) time.Time {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "%s should be a timestamp string, got %v", field, v)
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err, field)
	return tm
}

func TestRebootLifeCycle(t *testing.T) {
	h := newHub(t)
	r := start(t, Config{ConnectionString: h.connectionString(t, "dev1"), CAFile: h.caFile, RebootDowntime: 700 * time.Millisecond})
	r.waitEvent(t, "connected", func(e Event) bool { return e.Event == "connected" })
	// connected comes once the hub has acknowledged the subscriptions, and
	// the hub records a subscription before it acknowledges it.
	_, _, err := h.reg.InvokeMethod(context.Background(), "dev1", "", "noop", nil, 0, 5*time.Second)
	require.NoError(t, err, "the methods subscription is in place")

	before := time.Now()
	status, resp := h.invoke(t, "dev1", "reboot", "")
	assert.Equal(t, 200, status)
	assert.Equal(t, "Reboot started", resp["message"])

	eventually(t, "offline during the reboot", func() bool { return h.connState(t, "dev1") == "Disconnected" })
	_, _, err = h.reg.InvokeMethod(context.Background(), "dev1", "", "reboot", nil, 0, time.Second)
	assert.ErrorIs(t, err, registry.ErrDeviceNotOnline, "a rebooting device is offline")
	started := isTime(t, h.dm(t, "dev1")["reboot"].(map[string]any)["startedRebootTime"], "startedRebootTime")
	assert.False(t, started.Before(before.Add(-time.Second)))

	eventually(t, "lastReboot reported", func() bool {
		rb, _ := h.dm(t, "dev1")["reboot"].(map[string]any)
		return rb["lastReboot"] != nil
	})
	last := isTime(t, h.dm(t, "dev1")["reboot"].(map[string]any)["lastReboot"], "lastReboot")
	assert.GreaterOrEqual(t, last.Sub(started), 700*time.Millisecond, "lastReboot comes after the downtime")
	assert.Equal(t, "Connected", h.connState(t, "dev1"))

	off := r.waitEvent(t, "offline", func(e Event) bool { return e.Event == "offline" })
	assert.Equal(t, "reboot", off.Reason)
	r.waitEvent(t, "method", func(e Event) bool { return e.Event == "method" && e.Method == "reboot" && e.Status == 200 })
	n := 0
	for _, e := range r.eventList(t) {
		if e.Event == "connected" {
			n++
		}
		assert.Equal(t, "dev1", e.DeviceID)
		assert.NotEmpty(t, e.Time)
	}
	assert.Equal(t, 2, n, "connected before and after the reboot")
}

func TestFirmwareUpdateLifeCycle(t *testing.T) {
	h := newHub(t)
	r := start(t, Config{ConnectionString: h.connectionString(t, "dev1"), CAFile: h.caFile, FirmwareStep: 150 * time.Millisecond})
	r.waitEvent(t, "connected", func(e Event) bool { return e.Event == "connected" })

	status, resp := h.invoke(t, "dev1", "firmwareUpdate", `{"fwPackageUri":"http://insecure.example/fw.bin"}`)
	assert.Equal(t, 400, status)
	assert.Equal(t, "Invalid URL format. Must use https:// protocol.", resp["message"])
	status, _ = h.invoke(t, "dev1", "firmwareUpdate", `{"nothing":1}`)
	assert.Equal(t, 400, status)
	status, _ = h.invoke(t, "dev1", "firmwareUpdate", "")
	assert.Equal(t, 400, status, "no payload")

	uri := "https://firmware.example/v2.bin"
	status, resp = h.invoke(t, "dev1", "firmwareUpdate", `{"fwPackageUri":"`+uri+`"}`)
	assert.Equal(t, 200, status)
	assert.Equal(t, "Firmware update started", resp["message"])

	// Every state of the walk is reported, in order.
	var seen []string
	r.waitEvent(t, "applyComplete", func(e Event) bool {
		return e.Event == "reported" && strings.Contains(mustJSON(e.Reported), `"applyComplete"`)
	})
	for _, e := range r.eventList(t) {
		if e.Event != "reported" {
			continue
		}
		fw, _ := e.Reported["iothubDM"].(map[string]any)["firmwareUpdate"].(map[string]any)
		if s, ok := fw["status"].(string); ok {
			seen = append(seen, s)
		}
	}
	assert.Equal(t, []string{FwWaiting, FwDownloading, FwDownloadComplete, FwApplying, FwApplyComplete}, seen)

	fw := h.dm(t, "dev1")["firmwareUpdate"].(map[string]any)
	assert.Equal(t, FwApplyComplete, fw["status"])
	assert.Equal(t, uri, fw["fwPackageUri"])
	times := []string{"startedWaitingTime", "startedDownloadingTime", "downloadCompleteTime", "startedApplyingImage", "lastFirmwareUpdate"}
	prev := time.Time{}
	for _, f := range times {
		tm := isTime(t, fw[f], f)
		assert.False(t, tm.Before(prev), "%s is not before the previous step", f)
		prev = tm
	}
	assert.NotContains(t, fw, "error", "no error on success")

	// A second update clears the previous step times until it reaches them.
	status, _ = h.invoke(t, "dev1", "firmwareUpdate", `{"fwPackageUri":"https://firmware.example/v3.bin"}`)
	require.Equal(t, 200, status)
	eventually(t, "v3 waiting", func() bool {
		fw := h.dm(t, "dev1")["firmwareUpdate"].(map[string]any)
		return fw["fwPackageUri"] == "https://firmware.example/v3.bin"
	})
	fw = h.dm(t, "dev1")["firmwareUpdate"].(map[string]any)
	if fw["status"] == FwWaiting {
		assert.NotContains(t, fw, "downloadCompleteTime", "times of the previous update are cleared")
		assert.Contains(t, fw, "lastFirmwareUpdate", "lastFirmwareUpdate is kept")
	}
	eventually(t, "v3 applyComplete", func() bool {
		return h.dm(t, "dev1")["firmwareUpdate"].(map[string]any)["status"] == FwApplyComplete
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestFactoryResetAndUnknownMethod(t *testing.T) {
	h := newHub(t)
	r := start(t, Config{ConnectionString: h.connectionString(t, "dev2"), CAFile: h.caFile, ResetDowntime: 300 * time.Millisecond})
	r.waitEvent(t, "connected", func(e Event) bool { return e.Event == "connected" })

	status, resp := h.invoke(t, "dev2", "selfDestruct", `{"now":true}`)
	assert.Equal(t, 404, status)
	assert.Equal(t, "Method 'selfDestruct' is not implemented by this device", resp["message"])

	status, resp = h.invoke(t, "dev2", "factoryReset", "")
	assert.Equal(t, 200, status)
	assert.Equal(t, "Factory reset started", resp["message"])
	r.waitEvent(t, "resetting reported", func(e Event) bool {
		return e.Event == "reported" && strings.Contains(mustJSON(e.Reported), `"resetting"`)
	})
	eventually(t, "resetComplete", func() bool {
		fr, _ := h.dm(t, "dev2")["factoryReset"].(map[string]any)
		return fr["status"] == ResetComplete
	})
	fr := h.dm(t, "dev2")["factoryReset"].(map[string]any)
	started := isTime(t, fr["startedFactoryResetTime"], "startedFactoryResetTime")
	last := isTime(t, fr["lastFactoryReset"], "lastFactoryReset")
	assert.GreaterOrEqual(t, last.Sub(started), 300*time.Millisecond)
	r.waitEvent(t, "offline", func(e Event) bool { return e.Event == "offline" && e.Reason == "factory reset" })
}

func TestDesiredEvent(t *testing.T) {
	h := newHub(t)
	r := start(t, Config{ConnectionString: h.connectionString(t, "dev1"), CAFile: h.caFile})
	r.waitEvent(t, "connected", func(e Event) bool { return e.Event == "connected" })
	// The subscription is in place once connected is reported.
	_, err := h.reg.PatchTwin("dev1", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"interval": 5}}}, "")
	require.NoError(t, err)
	ev := r.waitEvent(t, "desired", func(e Event) bool { return e.Event == "desired" })
	assert.EqualValues(t, 2, ev.Version)
}

func TestWebSocketTransport(t *testing.T) {
	h := newHub(t)
	r := start(t, Config{ConnectionString: h.connectionString(t, "dev1"), CAFile: h.caFile, WebSocket: true})
	ev := r.waitEvent(t, "connected", func(e Event) bool { return e.Event == "connected" })
	assert.Equal(t, "wss://"+h.addr+"/$iothub/websocket", ev.Broker)
	status, _ := h.invoke(t, "dev1", "reboot", "")
	assert.Equal(t, 200, status)
}

// TestFatalErrors: a refused key and an untrusted certificate end Run with
// an error (retrying cannot help); neither error text carries the key.
func TestFatalErrors(t *testing.T) {
	h := newHub(t)
	good := h.connectionString(t, "dev1")
	wrongKey := strings.Replace(good, "SharedAccessKey=", "SharedAccessKey=AAAA", 1)
	_, err := base64.StdEncoding.DecodeString(strings.SplitN(wrongKey, "SharedAccessKey=", 2)[1])
	require.NoError(t, err, "still valid base64")

	for _, tc := range []struct {
		name, cs, ca, want string
	}{
		{"wrong key", wrongKey, h.caFile, "refused the connection"},
		{"untrusted certificate", good, "", "not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(Config{ConnectionString: tc.cs, CAFile: tc.ca})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = a.Run(ctx)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NoError(t, ctx.Err(), "Run gave up at once, without waiting for the timeout")
			key := strings.SplitN(tc.cs, "SharedAccessKey=", 2)[1]
			assert.NotContains(t, err.Error(), key)
		})
	}
}

func TestNewValidation(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	expired := sas.NewToken("h/devices/d", "", []byte("k"), time.Now().Add(-time.Hour))

	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty", Config{}, "no device connection string"},
		{"service string", Config{ConnectionString: "HostName=h;SharedAccessKeyName=service;SharedAccessKey=" + key}, "device connection string"},
		{"bad base64", Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=@@@"}, "not valid base64"},
		{"x509", Config{ConnectionString: "HostName=h;DeviceId=d;x509=true"}, "x509"},
		{"expired SAS", Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessSignature=" + expired}, "expired"},
		{"negative downtime", Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=" + key, RebootDowntime: -time.Second}, "--reboot-downtime"},
		{"short token ttl", Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=" + key, TokenTTL: 4 * time.Second}, "--token-ttl"},
		{"missing CA file", Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=" + key, CAFile: filepath.Join(dir, "nope.pem")}, "--ca-file"},
		{"CA file without PEM", Config{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=" + key, CAFile: notPEM}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.Error(t, err)
			var ue *UsageError
			assert.True(t, errors.As(err, &ue), "a *UsageError")
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), key)
		})
	}
}

func TestBrokerAndCredentials(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	k := base64.StdEncoding.EncodeToString(key)
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		cs     string
		ws     bool
		broker string
		user   string
		sr     string
	}{
		{"HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + k, false,
			"tls://myhub.azure-devices.net:8883", "myhub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=hubsim-device%2F1.0", "myhub.azure-devices.net/devices/dev1"},
		{"HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + k, true,
			"wss://myhub.azure-devices.net:443/$iothub/websocket", "myhub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=hubsim-device%2F1.0", "myhub.azure-devices.net/devices/dev1"},
		{"HostName=127.0.0.1:8443;DeviceId=dev1;GatewayHostName=127.0.0.1:9883;SharedAccessKey=" + k, false,
			"tls://127.0.0.1:9883", "127.0.0.1:8443/dev1/?api-version=2021-04-12&DeviceClientType=hubsim-device%2F1.0", "127.0.0.1:8443/devices/dev1"},
		{"HostName=h.example;DeviceId=dev1;ModuleId=m1;GatewayHostName=gw.example;SharedAccessKey=" + k, false,
			"tls://gw.example:8883", "h.example/dev1/m1/?api-version=2021-04-12&DeviceClientType=hubsim-device%2F1.0", "h.example/devices/dev1/modules/m1"},
	} {
		a, err := New(Config{ConnectionString: tc.cs, WebSocket: tc.ws, Now: func() time.Time { return now }})
		require.NoError(t, err, tc.cs)
		assert.Equal(t, tc.broker, a.Broker())
		assert.Equal(t, tc.user, a.username)
		pw, exp := a.password()
		tok, err := sas.Parse(pw)
		require.NoError(t, err)
		assert.Equal(t, tc.sr, tok.Resource)
		assert.Empty(t, tok.KeyName, "device tokens have no skn")
		assert.NoError(t, tok.Verify(key, now))
		assert.Equal(t, now.Add(DefaultTokenTTL), exp)
	}
}

// TestTokenRenewal: the agent reconnects with a fresh token before the
// current one expires (the hub would close the connection at expiry).
func TestTokenRenewal(t *testing.T) {
	h := newHub(t)
	r := start(t, Config{ConnectionString: h.connectionString(t, "dev1"), CAFile: h.caFile, TokenTTL: 5 * time.Second})
	r.waitEvent(t, "connected", func(e Event) bool { return e.Event == "connected" })
	r.waitEvent(t, "renewal", func(e Event) bool { return e.Event == "disconnected" && e.Reason == "token renewal" })
	r.waitEvents(t, "second connected", 2, func(e Event) bool { return e.Event == "connected" })
	for _, e := range r.eventList(t) {
		if e.Event == "disconnected" {
			assert.Equal(t, "token renewal", e.Reason, "the hub never closed the connection for an expired token")
		}
	}
	status, _ := h.invoke(t, "dev1", "reboot", "")
	assert.Equal(t, 200, status, "still answering after renewal")
}

package conformance

// The device side: Microsoft's Node device SDK (azure-iot-device +
// azure-iot-device-mqtt, unmodified) connects to hubsim's MQTT endpoint with
// the connection string from the ready line; dmctl (the built binary) and
// the Node service SDK then invoke its method handlers, and the service
// reads what it reported.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/sas"
	"github.com/dmctl/dmctl/internal/testkit"
	"github.com/dmctl/dmctl/test/testbin"
)

// deviceSDKVersions are the device SDK releases this suite targets.
var deviceSDKVersions = map[string]string{"azure-iot-device": "1.18.", "azure-iot-device-mqtt": "1.16."}

// requireDeviceSDK fails (never skips) when the device SDK is missing.
func requireDeviceSDK(t *testing.T) {
	t.Helper()
	for pkg, prefix := range deviceSDKVersions {
		data, err := os.ReadFile(filepath.Join(suiteDir(t), "node_modules", pkg, "package.json"))
		if err != nil {
			t.Fatalf("Microsoft's Node device SDK is not installed (%v): run `npm ci --prefix test/conformance`", err)
		}
		var meta struct {
			Version string `json:"version"`
		}
		require.NoError(t, json.Unmarshal(data, &meta))
		require.True(t, strings.HasPrefix(meta.Version, prefix), "installed %s is %s, want %sx", pkg, meta.Version, prefix)
	}
}

// nodeDevice is device/device.js running.
type nodeDevice struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *testkit.SyncBuffer
	mu     sync.Mutex
	events []map[string]any
	lines  []string
	more   chan struct{} // closed (and replaced) on every line
	done   chan struct{}
	err    error
}

// startDevice runs device/device.js with the device connection string and
// the reported patch; it is stopped (stdin closed, then killed) at cleanup.
func (h *hub) startDevice(t *testing.T, node, cs string, reported any, env ...string) *nodeDevice {
	t.Helper()
	rep, err := json.Marshal(reported)
	require.NoError(t, err)
	d := &nodeDevice{t: t, stderr: &testkit.SyncBuffer{}, more: make(chan struct{}), done: make(chan struct{})}
	d.cmd = exec.Command(node, filepath.Join("device", "device.js"))
	d.cmd.Dir = suiteDir(t)
	d.cmd.Env = append(append(append(os.Environ(), h.env...), "DEVICE_CONNECTION_STRING="+cs, "REPORTED="+string(rep)), env...)
	d.cmd.Stderr = d.stderr
	d.stdin, err = d.cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := d.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, d.cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var ev map[string]any
			d.mu.Lock()
			d.lines = append(d.lines, line)
			if json.Unmarshal([]byte(line), &ev) == nil {
				d.events = append(d.events, ev)
			}
			close(d.more)
			d.more = make(chan struct{})
			d.mu.Unlock()
		}
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop()
		require.NotContains(t, d.output(), "SharedAccessKey=", "the device script must not print secrets")
	})
	return d
}

func (d *nodeDevice) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n") + "\n--- stderr ---\n" + connstr.Redact(d.stderr.String())
}

// stop closes stdin (the script closes its client and exits 0) and waits.
func (d *nodeDevice) stop() {
	_ = d.stdin.Close()
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// wait returns the first event (in order) that matches, looking again on
// every line the script prints, failing after timeout or when the script
// exits without it.
func (d *nodeDevice) wait(what string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	d.t.Helper()
	find := func() (map[string]any, <-chan struct{}) {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, ev := range d.events {
			if match(ev) {
				return ev, nil
			}
		}
		return nil, d.more
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		ev, more := find()
		if ev != nil {
			return ev
		}
		select {
		case <-more:
		case <-d.done:
			if ev, _ := find(); ev != nil { // the line may have come with the exit
				return ev
			}
			d.t.Fatalf("device.js exited (%v) before %s:\n%s", d.err, what, d.output())
		case <-timer.C:
			d.t.Fatalf("device.js: no %s within %s:\n%s", what, timeout, d.output())
		}
	}
}

func isEvent(name string) func(map[string]any) bool {
	return func(ev map[string]any) bool { return ev["event"] == name }
}

func methodEvent(name string) func(map[string]any) bool {
	return func(ev map[string]any) bool { return ev["event"] == "method" && ev["name"] == name }
}

// dmctlResult is one element of `dmctl invoke -o json`.
type dmctlResult struct {
	DeviceID string          `json:"deviceId"`
	Method   string          `json:"method"`
	Outcome  string          `json:"outcome"`
	Status   *int            `json:"status"`
	Payload  json.RawMessage `json:"payload"`
	Error    *struct {
		HTTPStatus int    `json:"httpStatus"`
		Code       int    `json:"code"`
		CodeName   string `json:"codeName"`
	} `json:"error"`
}

// dmctl runs the built dmctl binary with the hub's service connection
// string (with its port: dmctl takes one) and CA.
func (h *hub) dmctl(t *testing.T, args ...string) (results []dmctlResult, code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testbin.Build(t, "dmctl"), append([]string{"invoke", "--ca-file", h.CAFile, "-o", "json"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "IOTHUB_CONNECTION_STRING=" + h.ServiceConnectionString}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running dmctl: %v", err)
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &results), "dmctl -o json stdout: %s\nstderr: %s", out.String(), errb.String())
	require.NotContains(t, out.String()+errb.String(), "SharedAccessKey=", "dmctl must not print secrets")
	return results, code, errb.String()
}

// rest calls hubsim's REST API directly with a SAS token of a policy
// connection string.
func (h *hub) rest(t *testing.T, policyCS, method, path, body string) (int, map[string]any) {
	t.Helper()
	c, err := connstr.ParseService(policyCS)
	require.NoError(t, err)
	key, err := sas.DecodeKey(c.SharedAccessKey)
	require.NoError(t, err)
	pem, err := os.ReadFile(h.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+h.HTTPSAddr+path+"?api-version=2021-04-12", rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", sas.NewToken(c.HostName, c.SharedAccessKeyName, key, time.Now().Add(time.Hour)))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var doc map[string]any
	if len(bytes.TrimSpace(b)) > 0 && b[0] == '{' {
		require.NoError(t, json.Unmarshal(b, &doc), "%s", b)
	}
	return resp.StatusCode, doc
}

func reportedOf(t *testing.T, twin map[string]any) map[string]any {
	t.Helper()
	props, ok := twin["properties"].(map[string]any)
	require.True(t, ok, "twin.properties: %v", twin)
	rep, ok := props["reported"].(map[string]any)
	require.True(t, ok, "twin.properties.reported: %v", props)
	return rep
}

// TestDeviceSDK is the device-side conformance suite (issue 4).
func TestDeviceSDK(t *testing.T) {
	node := requireNode(t)
	requireDeviceSDK(t)
	methodLog := filepath.Join(t.TempDir(), "methods.jsonl")
	h := startHub(t, "--register", "node-dev-1,offline-1", "--no-throttle", "--method-log", methodLog)

	cs := h.DeviceConnectionStrings["node-dev-1"]
	parsed, err := connstr.ParseDevice(cs)
	require.NoError(t, err, "device connection string from the ready line")
	assert.Equal(t, h.HostName, parsed.HostName, "HostName is the hub (username and sr)")
	assert.Equal(t, h.MQTTAddr, parsed.GatewayHostName, "GatewayHostName is the MQTT endpoint")

	run := fmt.Sprintf("run-%d", time.Now().UnixNano())
	reported := map[string]any{"conformance": map[string]any{"sdk": "azure-iot-device", "run": run}, "firmwareVersion": "1.2.3"}
	dev := h.startDevice(t, node, cs, reported)
	ready := dev.wait("ready", 90*time.Second, isEvent("ready"))

	t.Run("the device read its twin", func(t *testing.T) {
		twin, ok := ready["twin"].(map[string]any)
		require.True(t, ok, "ready.twin: %v", ready)
		desired, _ := twin["desired"].(map[string]any)
		rep, _ := twin["reported"].(map[string]any)
		assert.EqualValues(t, 1, desired["$version"], "a fresh twin: desired $version 1")
		assert.EqualValues(t, 1, rep["$version"], "a fresh twin: reported $version 1")
	})

	t.Run("dmctl invoke reaches the handler", func(t *testing.T) {
		rs, code, stderr := h.dmctl(t, "echo", "--device", "node-dev-1", "--payload", `{"from":"dmctl","n":1}`)
		require.Equal(t, 0, code, "stderr: %s", stderr)
		require.Len(t, rs, 1)
		assert.Equal(t, "node-dev-1", rs[0].DeviceID)
		require.NotNil(t, rs[0].Status)
		assert.Equal(t, 200, *rs[0].Status)
		assert.JSONEq(t, `{"method":"echo","received":{"from":"dmctl","n":1},"deviceId":"node-dev-1"}`, string(rs[0].Payload))
		ev := dev.wait("echo from dmctl", 10*time.Second, func(ev map[string]any) bool {
			p, _ := ev["payload"].(map[string]any)
			return ev["event"] == "method" && ev["name"] == "echo" && p["from"] == "dmctl"
		})
		assert.Equal(t, map[string]any{"from": "dmctl", "n": float64(1)}, ev["payload"])
		hits := settledDeliveries(t, h, methodLog, func(d delivery) bool { return d.DeviceID == "node-dev-1" && d.Method == "echo" })
		require.NotEmpty(t, hits, "the method log records the delivery")
		assert.Equal(t, 200, hits[0].Status)
	})

	t.Run("the Node service SDK reaches the handler", func(t *testing.T) {
		r := h.run(t, node, "invoke", "DEVICE_ID=node-dev-1", "METHOD_NAME=echo", `METHOD_PAYLOAD="from node"`, "RESPONSE_TIMEOUT=10")
		require.Equal(t, 0, r.ExitCode, "invoke failed: %s\nstderr: %s", r.Stdout, connstr.Redact(r.Stderr))
		result, ok := r.Out["result"].(map[string]any)
		require.True(t, ok, "result: %s", r.Stdout)
		assert.EqualValues(t, 200, result["status"])
		assert.Equal(t, map[string]any{"method": "echo", "received": "from node", "deviceId": "node-dev-1"}, result["payload"])
		dev.wait("echo from the service SDK", 10*time.Second, func(ev map[string]any) bool {
			return ev["event"] == "method" && ev["payload"] == "from node"
		})
	})

	t.Run("no payload arrives as null", func(t *testing.T) {
		rs, code, stderr := h.dmctl(t, "echo", "--device", "node-dev-1")
		require.Equal(t, 0, code, "stderr: %s", stderr)
		require.Len(t, rs, 1)
		assert.JSONEq(t, `{"method":"echo","received":null,"deviceId":"node-dev-1"}`, string(rs[0].Payload))
	})

	t.Run("a device status 500 is dmctl exit 4", func(t *testing.T) {
		rs, code, _ := h.dmctl(t, "fail", "--device", "node-dev-1")
		assert.Equal(t, 4, code)
		require.Len(t, rs, 1)
		require.NotNil(t, rs[0].Status)
		assert.Equal(t, 500, *rs[0].Status)
		assert.JSONEq(t, `{"error":"failing on purpose"}`, string(rs[0].Payload))
	})

	t.Run("a handler that never answers gives 504101", func(t *testing.T) {
		start := time.Now()
		rs, code, stderr := h.dmctl(t, "hang", "--device", "node-dev-1", "--timeout", "5s")
		assert.Equal(t, 4, code, "stderr: %s", stderr)
		require.Len(t, rs, 1)
		require.NotNil(t, rs[0].Error, "an error result: %+v", rs[0])
		assert.Equal(t, 504, rs[0].Error.HTTPStatus)
		assert.Equal(t, 504101, rs[0].Error.Code)
		assert.GreaterOrEqual(t, time.Since(start), 5*time.Second, "the hub waited the response timeout")
		dev.wait("hang delivered", 5*time.Second, methodEvent("hang"))

		r := h.run(t, node, "invoke", "DEVICE_ID=node-dev-1", "METHOD_NAME=hang", "RESPONSE_TIMEOUT=5")
		assertHubError(t, r, 504, "504101", "GatewayTimeout")
	})

	t.Run("the service sees the reported properties", func(t *testing.T) {
		// GET /twins/{id} through the Node service SDK...
		r := h.run(t, node, "twin", "DEVICE_ID=node-dev-1")
		require.Equal(t, 0, r.ExitCode, "getTwin failed: %s", r.Stdout)
		twin, ok := r.Out["twin"].(map[string]any)
		require.True(t, ok, "twin: %s", r.Stdout)
		assert.Equal(t, "Connected", twin["connectionState"])
		rep := reportedOf(t, twin)
		assert.Equal(t, map[string]any{"sdk": "azure-iot-device", "run": run}, rep["conformance"])
		assert.Equal(t, "1.2.3", rep["firmwareVersion"])
		assert.EqualValues(t, 2, rep["$version"], "one reported patch since the twin was created")

		// ...and directly.
		status, doc := h.rest(t, h.ServiceConnectionString, http.MethodGet, "/twins/node-dev-1", "")
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, "Connected", doc["connectionState"])
		assert.Equal(t, run, reportedOf(t, doc)["conformance"].(map[string]any)["run"])

		// A query on the reported property finds exactly this device.
		q := h.run(t, node, "query", "QUERY=SELECT * FROM devices WHERE properties.reported.conformance.run = '"+run+"'", "PAGE_SIZE=10")
		require.Equal(t, 0, q.ExitCode, "query failed: %s", q.Stdout)
		assert.EqualValues(t, 1, q.Out["count"])
		assert.Equal(t, "node-dev-1", q.Out["firstId"])
		q = h.run(t, node, "query", "QUERY=SELECT * FROM devices WHERE connectionState = 'Connected'", "PAGE_SIZE=10")
		require.Equal(t, 0, q.ExitCode, "query failed: %s", q.Stdout)
		assert.EqualValues(t, 1, q.Out["count"], "only the SDK device is connected")
		assert.Equal(t, "node-dev-1", q.Out["firstId"])
	})

	t.Run("a desired patch reaches the device", func(t *testing.T) {
		status, doc := h.rest(t, h.OwnerConnectionString, http.MethodPatch, "/twins/node-dev-1",
			`{"properties":{"desired":{"telemetryInterval":42}}}`)
		require.Equal(t, http.StatusOK, status, "%v", doc)
		// The SDK also emits the whole desired section once when the listener
		// is registered ($version 1): wait for the pushed patch.
		ev := dev.wait("desired patch", 10*time.Second, func(ev map[string]any) bool {
			p, _ := ev["patch"].(map[string]any)
			return ev["event"] == "desired" && p["telemetryInterval"] != nil
		})
		patch, ok := ev["patch"].(map[string]any)
		require.True(t, ok, "desired event: %v", ev)
		assert.EqualValues(t, 42, patch["telemetryInterval"])
		assert.EqualValues(t, 2, patch["$version"])
	})

	t.Run("an offline registered device: 404103, dmctl exit 4", func(t *testing.T) {
		rs, code, stderr := h.dmctl(t, "echo", "--device", "offline-1")
		assert.Equal(t, 4, code, "stderr: %s", stderr)
		require.Len(t, rs, 1)
		assert.Equal(t, "offline", rs[0].Outcome)
		require.NotNil(t, rs[0].Error)
		assert.Equal(t, 404103, rs[0].Error.Code)
		r := h.run(t, node, "invoke", "DEVICE_ID=offline-1", "METHOD_NAME=echo", "RESPONSE_TIMEOUT=5")
		assertHubError(t, r, 404, "404103", "DeviceNotOnline")
	})

	t.Run("after the device closes it is offline", func(t *testing.T) {
		dev.stop()
		dev.wait("closed", 5*time.Second, isEvent("closed"))
		require.Eventually(t, func() bool {
			_, doc := h.rest(t, h.ServiceConnectionString, http.MethodGet, "/twins/node-dev-1", "")
			return doc["connectionState"] == "Disconnected"
		}, 10*time.Second, 50*time.Millisecond, "twin connectionState")
		rs, code, _ := h.dmctl(t, "echo", "--device", "node-dev-1")
		assert.Equal(t, 4, code)
		require.Len(t, rs, 1)
		require.NotNil(t, rs[0].Error)
		assert.Equal(t, 404103, rs[0].Error.Code)
	})
}

// TestDeviceSDKRefused: the SDK with a wrong key, or with another device's
// key, fails to open (CONNACK 5); the hub keeps serving a good device.
func TestDeviceSDKRefused(t *testing.T) {
	node := requireNode(t)
	requireDeviceSDK(t)
	h := startHub(t, "--register", "good-1,victim-1,other-1", "--no-throttle")
	good := h.startDevice(t, node, h.DeviceConnectionStrings["good-1"], map[string]any{"ok": true})
	good.wait("ready", 90*time.Second, isEvent("ready"))

	victim, err := connstr.ParseDevice(h.DeviceConnectionStrings["victim-1"])
	require.NoError(t, err)
	other, err := connstr.ParseDevice(h.DeviceConnectionStrings["other-1"])
	require.NoError(t, err)
	wrong := *victim
	wrong.SharedAccessKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	stolen := *victim
	stolen.SharedAccessKey = other.SharedAccessKey

	for name, cs := range map[string]string{"wrong key": wrong.Secret(), "another device's key": stolen.Secret()} {
		t.Run(name, func(t *testing.T) {
			d := h.startDevice(t, node, cs, map[string]any{"never": true})
			select {
			case <-d.done:
			case <-time.After(60 * time.Second):
				t.Fatalf("device.js did not give up:\n%s", d.output())
			}
			var exit *exec.ExitError
			require.True(t, errors.As(d.err, &exit), "device.js should fail, got %v:\n%s", d.err, d.output())
			assert.Equal(t, 1, exit.ExitCode())
			out := d.output()
			assert.NotContains(t, out, `"event":"ready"`)
			assert.Contains(t, out, `"ok":false`)
			assert.Regexp(t, `(?i)unauthori[sz]ed|not authori[sz]ed`, out, "the SDK reports the refusal")
		})
	}

	status, doc := h.rest(t, h.ServiceConnectionString, http.MethodGet, "/twins/victim-1", "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "Disconnected", doc["connectionState"], "refused clients never attach")
	rs, code, stderr := h.dmctl(t, "echo", "--device", "good-1", "--payload", `"still here"`)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Len(t, rs, 1)
	assert.JSONEq(t, `{"method":"echo","received":"still here","deviceId":"good-1"}`, string(rs[0].Payload))
}

// TestDeviceSDKOverWebSocket: the SDK's MQTT-over-WebSocket transport
// (MqttWs) reaches hubsim's /$iothub/websocket on the MQTT port.
func TestDeviceSDKOverWebSocket(t *testing.T) {
	node := requireNode(t)
	requireDeviceSDK(t)
	h := startHub(t, "--register", "ws-dev-1", "--no-throttle")
	c, err := connstr.ParseDevice(h.DeviceConnectionStrings["ws-dev-1"])
	require.NoError(t, err)
	host, port, err := net.SplitHostPort(c.GatewayHostName)
	require.NoError(t, err)
	// MqttWs appends ":443" to GatewayHostName, so it must be a bare host;
	// the agent passed through the SDK's mqtt.webSocketAgent option dials the port.
	c.GatewayHostName = host
	dev := h.startDevice(t, node, c.Secret(), map[string]any{"transport": "ws"}, "TRANSPORT=ws", "WS_PORT="+port)
	ready := dev.wait("ready", 90*time.Second, isEvent("ready"))
	assert.Equal(t, "ws", ready["transport"])

	rs, code, stderr := h.dmctl(t, "echo", "--device", "ws-dev-1", "--payload", `{"over":"websocket"}`)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Len(t, rs, 1)
	assert.JSONEq(t, `{"method":"echo","received":{"over":"websocket"},"deviceId":"ws-dev-1"}`, string(rs[0].Payload))
	status, doc := h.rest(t, h.ServiceConnectionString, http.MethodGet, "/twins/ws-dev-1", "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ws", reportedOf(t, doc)["transport"])
}

// TestDeviceSDKSimulatedReboot: a device that, like Microsoft's
// dmpatterns_reboot_device.js sample, answers reboot, reports only
// iothubDM.reboot.startedRebootTime and stays connected: dmctl invoke reboot
// --wait reboot succeeds (after fleet.RebootStayedConnected) instead of
// timing out.
func TestDeviceSDKSimulatedReboot(t *testing.T) {
	node := requireNode(t)
	requireDeviceSDK(t)
	h := startHub(t, "--register", "sample-reboot", "--no-throttle")
	dev := h.startDevice(t, node, h.DeviceConnectionStrings["sample-reboot"], map[string]any{"sample": true})
	dev.wait("ready", 90*time.Second, isEvent("ready"))

	rs, code, stderr := h.dmctl(t, "reboot", "--device", "sample-reboot", "--wait", "reboot", "--wait-timeout", "2m")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Len(t, rs, 1)
	assert.Equal(t, "succeeded", rs[0].Outcome)
	dev.wait("the reboot method", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "method" && ev["name"] == "reboot"
	})
	assert.NotContains(t, dev.output(), `"event":"disconnect"`, "the device never went offline")
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// TestDeviceSDKAfterHubRestart: Microsoft's device SDK connects with clean
// session 0. After hubsim restarts with the same --dir and ports, the SDK
// reconnects by itself and expects its session (its twin-response
// subscription) to be there, as on IoT Hub: a getTwin after the restart is
// answered, not left hanging.
func TestDeviceSDKAfterHubRestart(t *testing.T) {
	node := requireNode(t)
	requireDeviceSDK(t)
	dir := filepath.Join(t.TempDir(), "hub")
	args := []string{"--dir", dir, "--https-addr", freePort(t), "--mqtt-addr", freePort(t), "--register", "restart-1", "--no-throttle"}
	h := startHub(t, args...)
	dev := h.startDevice(t, node, h.DeviceConnectionStrings["restart-1"], map[string]any{"restart": 1})
	dev.wait("ready", 90*time.Second, isEvent("ready"))
	rs, code, stderr := h.dmctl(t, "twin", "--device", "restart-1", "--timeout", "10")
	require.Equal(t, 0, code, "before the restart: %s", stderr)
	require.Equal(t, "succeeded", rs[0].Outcome)

	require.NoError(t, h.Stop())
	h2 := startHub(t, args...)
	// The SDK reconnects on its own; the hub waits up to 60 s for it.
	rs, code, stderr = h2.dmctl(t, "twin", "--device", "restart-1", "--timeout", "20", "--connect-timeout", "60")
	require.Equal(t, 0, code, "after the restart: %s\ndevice: %s", stderr, dev.output())
	require.Len(t, rs, 1)
	assert.Equal(t, "succeeded", rs[0].Outcome)
	assert.Contains(t, string(rs[0].Payload), "reportedVersion", "the device's getTwin was answered")
}

// TestRegistryCreateConnectInvokeDelete: a device created at run time with
// Microsoft's Registry.create (keys generated by the hub) connects with
// Microsoft's device SDK using the key the registry answered, dmctl
// invokes it, and Registry.delete removes it: the hub closes the device's
// connection and a call then finds no device (404001: the target fails,
// exit 4).
func TestRegistryCreateConnectInvokeDelete(t *testing.T) {
	node := requireNode(t)
	requireDeviceSDK(t)
	h := startHub(t, "--register", "anchor-1", "--no-throttle", "--verbose")
	keyFile := filepath.Join(t.TempDir(), "key")
	// The registry is written with the registryReadWrite policy, as on a hub
	// (the service policy may not).
	rw := "IOTHUB_CONNECTION_STRING=" + testbin.StripPort(h.RegistryReadWriteConnectionString)
	r := h.run(t, node, "registry", "OP=create", "DEVICE_ID=made-1")
	assertHubError(t, r, 401, "401003", "IotHubUnauthorized")
	r = h.run(t, node, "registry", "OP=create", "DEVICE_ID=made-1", "KEY_FILE="+keyFile, rw)
	require.Equal(t, 0, r.ExitCode, "Registry.create: %s\n%s", r.Stdout, connstr.Redact(r.Stderr))
	dev, _ := r.Out["device"].(map[string]any)
	require.NotNil(t, dev, r.Stdout)
	assert.Equal(t, "made-1", dev["deviceId"])
	assert.Equal(t, "enabled", dev["status"])
	assert.NotEmpty(t, dev["etag"])
	key, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.NotEmpty(t, key, "the hub generated a primary key")

	anchor, err := connstr.ParseDevice(h.DeviceConnectionStrings["anchor-1"])
	require.NoError(t, err)
	cs := "HostName=" + anchor.HostName + ";DeviceId=made-1;GatewayHostName=" + anchor.GatewayHostName + ";SharedAccessKey=" + string(key)
	d := h.startDevice(t, node, cs, map[string]any{"made": true})
	d.wait("ready", 90*time.Second, isEvent("ready"))

	rs, code, stderr := h.dmctl(t, "echo", "--device", "made-1", "--payload", `{"n":1}`)
	require.Equal(t, 0, code, "stderr: %s\ndevice: %s", stderr, d.output())
	require.Len(t, rs, 1)
	assert.Equal(t, "succeeded", rs[0].Outcome)

	r = h.run(t, node, "registry", "OP=delete", "DEVICE_ID=made-1", rw)
	require.Equal(t, 0, r.ExitCode, "Registry.delete: %s\n%s", r.Stdout, connstr.Redact(r.Stderr))
	require.Eventually(t, func() bool {
		return strings.Contains(h.Stderr(), "device made-1: the identity was deleted, closing the connection")
	}, 30*time.Second, 20*time.Millisecond, "the hub closes the deleted device's connection")
	rs, code, _ = h.dmctl(t, "echo", "--device", "made-1")
	require.Len(t, rs, 1)
	assert.Equal(t, 4, code, "the target did not succeed")
	require.NotNil(t, rs[0].Error, "%+v", rs[0])
	assert.Equal(t, 404001, rs[0].Error.Code)
	r = h.run(t, node, "registry", "DEVICE_ID=made-1")
	assertHubError(t, r, 404, "404001", "DeviceNotFound")
}

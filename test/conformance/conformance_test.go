// Package conformance runs Microsoft's Node IoT Hub SDKs, installed from the
// npm registry and unmodified (versions pinned in package-lock.json), against
// the hubsim binary. The SDK is an independent client of the IoT Hub wire
// contract: if it works against hubsim, hubsim behaves like a hub for it.
//
// The Node scripts live in service/; each reads its inputs from environment
// variables and prints one JSON line. The service SDK cannot dial a port
// other than 443, so every script is preloaded with redirect443.js, which
// sends the hub host's port-443 connections to hubsim's port while keeping
// TLS verification (trust comes from NODE_EXTRA_CA_CERTS = hubsim's CA).
//
// Prerequisite: `npm ci --prefix test/conformance` (the Makefile does it).
package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/test/testbin"
)

// sdkVersionPrefix is the azure-iothub release line this suite targets.
const sdkVersionPrefix = "1.16."

// scriptTimeout bounds one Node script run (SDK load ~1 s plus the calls).
const scriptTimeout = 90 * time.Second

func TestMain(m *testing.M) { os.Exit(testbin.Run(m)) }

// scriptResult is one script run: the decoded JSON line and the raw streams.
type scriptResult struct {
	Out      map[string]any
	Stdout   string
	Stderr   string
	ExitCode int
}

// errorInfo is the "error" object the scripts print for a failed SDK call.
type errorInfo struct {
	Name            string `json:"name"`
	Constructor     string `json:"constructor"`
	Message         string `json:"message"`
	StatusCode      int    `json:"statusCode"`
	ResponseBody    string `json:"responseBody"`
	ContentType     string `json:"contentType"`
	IothubErrorCode string `json:"iothubErrorCode"`
	RequestID       string `json:"requestId"`
}

func (r scriptResult) errorInfo(t *testing.T) errorInfo {
	t.Helper()
	raw, ok := r.Out["error"]
	require.True(t, ok, "script printed no error object: %s", r.Stdout)
	b, err := json.Marshal(raw)
	require.NoError(t, err)
	var e errorInfo
	require.NoError(t, json.Unmarshal(b, &e))
	return e
}

// hub is a running hubsim plus what the scripts need to reach it.
type hub struct {
	*testbin.Hubsim
	cs  string   // service connection string, HostName without the port
	env []string // NODE_EXTRA_CA_CERTS, HUBSIM_PORT, HUBSIM_HOST, IOTHUB_CONNECTION_STRING
}

// suiteDir returns test/conformance (the package directory, the test's cwd).
func suiteDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return wd
}

// requireNode fails (never skips) when node or the installed SDK is missing.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	require.NoError(t, err, "the conformance suite needs Node.js (node on PATH) to run Microsoft's SDKs")

	pkg := filepath.Join(suiteDir(t), "node_modules", "azure-iothub", "package.json")
	data, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatalf("Microsoft's Node SDKs are not installed (%v): run `npm ci --prefix test/conformance` "+
			"from the repository root (make test does this)", err)
	}
	var meta struct {
		Version string `json:"version"`
	}
	require.NoError(t, json.Unmarshal(data, &meta), "reading %s", pkg)
	require.True(t, strings.HasPrefix(meta.Version, sdkVersionPrefix),
		"installed azure-iothub is %s, want %sx: run `npm ci --prefix test/conformance`", meta.Version, sdkVersionPrefix)
	return node
}

// startHub starts hubsim with args and prepares the Node environment for it.
func startHub(t *testing.T, args ...string) *hub {
	t.Helper()
	h := testbin.StartHubsim(t, args...)
	host, port, err := net.SplitHostPort(h.HostName)
	require.NoError(t, err, "ready line hostName %q should be host:port", h.HostName)
	require.Equal(t, h.HTTPSAddr, net.JoinHostPort("127.0.0.1", port),
		"hostName and httpsAddr should name the same port")

	cs := testbin.StripPort(h.ServiceConnectionString)
	parsed, err := connstr.ParseService(cs)
	require.NoError(t, err, "service connection string without its port")
	require.Equal(t, host, parsed.HostName, "StripPort should leave the bare host")

	return &hub{Hubsim: h, cs: cs, env: []string{
		"NODE_EXTRA_CA_CERTS=" + h.CAFile,
		"HUBSIM_PORT=" + port,
		"HUBSIM_HOST=" + host,
		"IOTHUB_CONNECTION_STRING=" + cs,
	}}
}

// run runs service/<script>.js under `node -r ./redirect443.js` with env.
func (h *hub) run(t *testing.T, node, script string, env ...string) scriptResult {
	t.Helper()
	ctx := context.Background()
	stdout, stderr, err := testbin.RunContext(ctx, scriptTimeout, suiteDir(t), append(append([]string{}, h.env...), env...),
		node, "-r", "./redirect443.js", filepath.Join("service", script+".js"))
	res := scriptResult{Stdout: stdout, Stderr: stderr}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		res.ExitCode = exit.ExitCode()
	default:
		t.Fatalf("running %s.js: %v\nstderr: %s", script, err, connstr.Redact(stderr))
	}
	lines := nonEmptyLines(stdout)
	require.Len(t, lines, 1, "%s.js should print exactly one JSON line (exit %d)\nstdout: %s\nstderr: %s",
		script, res.ExitCode, connstr.Redact(stdout), connstr.Redact(stderr))
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &res.Out), "%s.js output is not JSON: %s", script, lines[0])
	require.NotContains(t, stdout+stderr, "SharedAccessKey=", "scripts must not print secrets")
	return res
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// hubError is the inner error object of the current IoT Hub error body
// (iothub-contract.md §1.7): {"Message":"<this object as a JSON string>","ExceptionMessage":""}.
type hubError struct {
	ErrorCode    json.Number    `json:"errorCode"`
	TrackingID   string         `json:"trackingId"`
	Message      string         `json:"message"`
	Info         map[string]any `json:"info"`
	TimestampUTC string         `json:"timestampUtc"`
}

// decodeHubError checks the body is the current JSON-in-string shape and
// returns the inner object.
func decodeHubError(t *testing.T, body string) hubError {
	t.Helper()
	var outer struct {
		Message          *string `json:"Message"`
		ExceptionMessage *string `json:"ExceptionMessage"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &outer), "error body is not JSON: %s", body)
	require.NotNil(t, outer.Message, "error body lacks Message: %s", body)
	assert.NotNil(t, outer.ExceptionMessage, "error body lacks ExceptionMessage: %s", body)
	var inner hubError
	dec := json.NewDecoder(strings.NewReader(*outer.Message))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&inner), "Message should hold the error object as a JSON string: %s", body)
	return inner
}

// assertHubError checks an SDK failure against the expected HTTP status,
// 6-digit code and iothub-errorcode name.
func assertHubError(t *testing.T, r scriptResult, status int, code, name string) {
	t.Helper()
	assert.Equal(t, 1, r.ExitCode, "the SDK call should fail")
	assert.Equal(t, false, r.Out["ok"])
	e := r.errorInfo(t)
	assert.Equal(t, status, e.StatusCode, "HTTP status (SDK error %s: %s)", e.Name, e.Message)
	assert.Contains(t, e.ContentType, "application/json", "error Content-Type")
	assert.Equal(t, name, e.IothubErrorCode, "iothub-errorcode header")
	assert.NotEmpty(t, e.RequestID, "x-ms-request-id header")
	require.NotEmpty(t, e.ResponseBody, "SDK error should carry the response body")
	assert.Contains(t, e.ResponseBody, code)
	inner := decodeHubError(t, e.ResponseBody)
	assert.Equal(t, code, inner.ErrorCode.String(), "errorCode (a JSON number)")
	assert.NotEmpty(t, inner.TrackingID, "trackingId")
	assert.NotEmpty(t, inner.Message, "message")
	if _, err := time.Parse(time.RFC3339Nano, inner.TimestampUTC); err != nil {
		assert.Failf(t, "timestampUtc is not ISO-8601", "%q: %v", inner.TimestampUTC, err)
	}
}

// delivery is one line of hubsim's --method-log.
type delivery struct {
	DeviceID  string `json:"deviceId"`
	ModuleID  string `json:"moduleId"`
	Method    string `json:"method"`
	RequestID string `json:"requestId"`
	Status    int    `json:"status"`
}

func readMethodLog(t *testing.T, path string) []delivery {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err, "method log")
	defer f.Close()
	var out []delivery
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var d delivery
		require.NoError(t, json.Unmarshal(sc.Bytes(), &d), "method log line %q", sc.Text())
		out = append(out, d)
	}
	require.NoError(t, sc.Err())
	return out
}

// settledDeliveries waits until hubsim has settled (no call in flight,
// every ended job stopped, the method log flushed: testbin's Settle) and
// returns the method-log lines that match.
func settledDeliveries(t *testing.T, h *hub, path string, match func(delivery) bool) []delivery {
	t.Helper()
	h.Settle(t)
	var hits []delivery
	for _, d := range readMethodLog(t, path) {
		if match(d) {
			hits = append(hits, d)
		}
	}
	return hits
}

// TestServiceSDKAgainstFleet drives a 1,200-device simulated fleet with the
// service SDK: direct methods, twin reads and a paged query.
func TestServiceSDKAgainstFleet(t *testing.T) {
	node := requireNode(t)
	methodLog := filepath.Join(t.TempDir(), "methods.jsonl")
	h := startHub(t, "--devices", "1200", "--no-throttle", "--method-log", methodLog)
	require.Equal(t, 1200, h.Devices, "ready line devices")

	t.Run("invokeDeviceMethod on a simulated device", func(t *testing.T) {
		t.Parallel()
		r := h.run(t, node, "invoke", "DEVICE_ID=sim-000001", "METHOD_NAME=reboot",
			`METHOD_PAYLOAD={"delayInSeconds":0}`, "RESPONSE_TIMEOUT=10")
		require.Equal(t, 0, r.ExitCode, "invoke failed: %s\nstderr: %s", r.Stdout, connstr.Redact(r.Stderr))
		assert.Equal(t, true, r.Out["ok"])
		assert.EqualValues(t, 200, r.Out["httpStatus"])
		assert.Contains(t, r.Out["contentType"], "application/json")
		result, ok := r.Out["result"].(map[string]any)
		require.True(t, ok, "result should be the parsed {status,payload} object: %s", r.Stdout)
		assert.EqualValues(t, 200, result["status"], "device status of reboot")
		// The simulator's documented reboot payload (internal/hubsim/sim/fleetfile.md).
		assert.Equal(t, map[string]any{"message": "Reboot started"}, result["payload"], "device payload")

		// Ground truth: hubsim delivered exactly this call to the device.
		hits := settledDeliveries(t, h, methodLog, func(d delivery) bool {
			return d.DeviceID == "sim-000001" && d.Method == "reboot"
		})
		require.Len(t, hits, 1, "method log should record one reboot delivered to sim-000001")
		assert.Equal(t, 200, hits[0].Status)
	})

	t.Run("invokeDeviceMethod unknown method gets device status 404", func(t *testing.T) {
		t.Parallel()
		r := h.run(t, node, "invoke", "DEVICE_ID=sim-000002", "METHOD_NAME=noSuchMethod", "RESPONSE_TIMEOUT=10")
		require.Equal(t, 0, r.ExitCode, "a device-reported 404 is still HTTP 200: %s", r.Stdout)
		assert.EqualValues(t, 200, r.Out["httpStatus"])
		result, ok := r.Out["result"].(map[string]any)
		require.True(t, ok, "result: %s", r.Stdout)
		assert.EqualValues(t, 404, result["status"])
		// fleetfile.md: an unlisted method is not implemented by the device.
		assert.Equal(t, map[string]any{"message": "Method 'noSuchMethod' is not implemented by this device"},
			result["payload"])
	})

	t.Run("invokeDeviceMethod on an unknown device", func(t *testing.T) {
		t.Parallel()
		r := h.run(t, node, "invoke", "DEVICE_ID=no-such-device", "METHOD_NAME=reboot", "RESPONSE_TIMEOUT=10")
		assertHubError(t, r, 404, "404001", "DeviceNotFound")
	})

	t.Run("getTwin", func(t *testing.T) {
		t.Parallel()
		r := h.run(t, node, "twin", "DEVICE_ID=sim-000003")
		require.Equal(t, 0, r.ExitCode, "getTwin failed: %s", r.Stdout)
		assert.Equal(t, true, r.Out["isTwin"], "the SDK should build a Twin object")
		twin, ok := r.Out["twin"].(map[string]any)
		require.True(t, ok, "twin: %s", r.Stdout)
		assert.Equal(t, "sim-000003", twin["deviceId"])
		assert.NotEmpty(t, twin["etag"])
		assert.NotEqual(t, "*", twin["etag"], "etag should come from hubsim, not the SDK default")
		assert.Equal(t, "enabled", twin["status"])
		assert.Contains(t, []any{"Connected", "Disconnected"}, twin["connectionState"])
		props, ok := twin["properties"].(map[string]any)
		require.True(t, ok, "twin.properties: %v", twin)
		for _, section := range []string{"desired", "reported"} {
			s, ok := props[section].(map[string]any)
			if assert.True(t, ok, "properties.%s should be an object", section) {
				assert.Contains(t, s, "$version", "properties.%s.$version", section)
				assert.Contains(t, s, "$metadata", "properties.%s.$metadata", section)
			}
		}
	})

	t.Run("getTwin on an unknown device", func(t *testing.T) {
		t.Parallel()
		r := h.run(t, node, "twin", "DEVICE_ID=no-such-device")
		assertHubError(t, r, 404, "404001", "DeviceNotFound")
	})

	t.Run("createQuery paged with nextAsTwin", func(t *testing.T) {
		t.Parallel()
		r := h.run(t, node, "query", "QUERY=SELECT * FROM devices", "PAGE_SIZE=100")
		require.Equal(t, 0, r.ExitCode, "query failed: %s", r.Stdout)
		assert.EqualValues(t, 1200, r.Out["count"], "twins returned")
		assert.EqualValues(t, 1200, r.Out["distinctIds"], "no twin twice")
		assert.EqualValues(t, 12, r.Out["pages"], "pages of 100")
		assert.EqualValues(t, 11, r.Out["continuationTokens"], "x-ms-continuation on every page but the last")
		sizes, ok := r.Out["pageSizes"].([]any)
		require.True(t, ok, "pageSizes: %s", r.Stdout)
		for i, n := range sizes {
			assert.EqualValues(t, 100, n, "page %d size", i+1)
		}
		assert.Equal(t, true, r.Out["allTwins"])
		assert.Equal(t, "sim-000001", r.Out["firstId"])
		assert.Equal(t, "sim-001200", r.Out["lastId"])
	})

	t.Run("createQuery with a WHERE clause", func(t *testing.T) {
		t.Parallel()
		r := h.run(t, node, "query",
			"QUERY=SELECT * FROM devices WHERE deviceId IN ['sim-000010', 'sim-000011', 'sim-000999']", "PAGE_SIZE=2")
		require.Equal(t, 0, r.ExitCode, "query failed: %s", r.Stdout)
		assert.EqualValues(t, 3, r.Out["count"])
		assert.EqualValues(t, 3, r.Out["distinctIds"])
		assert.Equal(t, "sim-000010", r.Out["firstId"])
		assert.Equal(t, "sim-000999", r.Out["lastId"])
	})
}

// TestServiceSDKOfflineDevice invokes a registered identity that no device
// client has connected for: the hub answers 404 / 404103 DeviceNotOnline.
func TestServiceSDKOfflineDevice(t *testing.T) {
	node := requireNode(t)
	h := startHub(t, "--devices", "2", "--register", "offline-1", "--no-throttle")
	require.Contains(t, h.DeviceConnectionStrings, "offline-1", "ready line lists the registered identity")

	r := h.run(t, node, "invoke", "DEVICE_ID=offline-1", "METHOD_NAME=reboot", "RESPONSE_TIMEOUT=5")
	assertHubError(t, r, 404, "404103", "DeviceNotOnline")

	// The twin of an offline, registered identity is readable and Disconnected.
	r = h.run(t, node, "twin", "DEVICE_ID=offline-1")
	require.Equal(t, 0, r.ExitCode, "getTwin failed: %s", r.Stdout)
	twin, ok := r.Out["twin"].(map[string]any)
	require.True(t, ok, "twin: %s", r.Stdout)
	assert.Equal(t, "offline-1", twin["deviceId"])
	assert.Equal(t, "Disconnected", twin["connectionState"])
}

// TestServiceSDKPayloads checks that the device's payload reaches the SDK
// unchanged, for every JSON type a device may answer with, using a fleet
// file whose method payloads are known.
func TestServiceSDKPayloads(t *testing.T) {
	node := requireNode(t)
	payloads := map[string]string{
		"object":  `{"fw":"1.2.3","nested":{"list":[1,2.5,"x",null,true],"empty":{}},"unicode":"héllo ✓"}`,
		"string":  `"just a string"`,
		"number":  `42.5`,
		"array":   `[1,"two",{"three":3}]`,
		"boolean": `false`,
		"null":    `null`,
	}
	methods := map[string]any{}
	for name, p := range payloads {
		methods["get_"+name] = map[string]any{"status": 201, "payload": json.RawMessage(p)}
	}
	// A listed method without a payload echoes the request (fleetfile.md).
	methods["echo"] = map[string]any{}
	fleet := map[string]any{"groups": []any{map[string]any{
		"name": "payloads", "idPattern": "pay-%02d", "count": 3, "methods": methods,
	}}}
	data, err := json.Marshal(fleet)
	require.NoError(t, err)
	fleetFile := filepath.Join(t.TempDir(), "fleet.json")
	require.NoError(t, os.WriteFile(fleetFile, data, 0o600))

	h := startHub(t, "--fleet", fleetFile, "--no-throttle")
	require.Equal(t, 3, h.Devices, "ready line devices")

	for name, p := range payloads {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := h.run(t, node, "invoke", "DEVICE_ID=pay-02", "METHOD_NAME=get_"+name, "RESPONSE_TIMEOUT=10")
			require.Equal(t, 0, r.ExitCode, "invoke failed: %s", r.Stdout)
			result, ok := r.Out["result"].(map[string]any)
			require.True(t, ok, "result: %s", r.Stdout)
			assert.EqualValues(t, 201, result["status"])
			var want any
			require.NoError(t, json.Unmarshal([]byte(p), &want))
			assert.Equal(t, want, result["payload"], fmt.Sprintf("payload of get_%s", name))
		})
		// The same JSON as a request payload makes the round trip SDK -> hub
		// -> device -> hub -> SDK unchanged.
		t.Run("echo "+name, func(t *testing.T) {
			t.Parallel()
			r := h.run(t, node, "invoke", "DEVICE_ID=pay-03", "METHOD_NAME=echo", "METHOD_PAYLOAD="+p, "RESPONSE_TIMEOUT=10")
			require.Equal(t, 0, r.ExitCode, "invoke failed: %s", r.Stdout)
			result, ok := r.Out["result"].(map[string]any)
			require.True(t, ok, "result: %s", r.Stdout)
			assert.EqualValues(t, 200, result["status"])
			var want any
			require.NoError(t, json.Unmarshal([]byte(p), &want))
			assert.Equal(t, map[string]any{"method": "echo", "received": want}, result["payload"])
		})
	}
}

// TestServiceSDKOnPort443: when hubsim listens on 443, its HostName carries
// no port, as a real hub's does, and the unmodified Node service SDK works
// with the ready line's connection string as it is: no redirect preload, no
// port stripped.
func TestServiceSDKOnPort443(t *testing.T) {
	node := requireNode(t)
	h := testbin.StartHubsim(t, "--https-addr", "127.0.0.1:443", "--devices", "1", "--no-throttle")
	require.Equal(t, "127.0.0.1", h.HostName, "no :443 in HostName")
	assert.Contains(t, h.ServiceConnectionString, "HostName=127.0.0.1;")
	stdout, stderr, err := testbin.RunContext(context.Background(), scriptTimeout, suiteDir(t),
		[]string{"NODE_EXTRA_CA_CERTS=" + h.CAFile, "IOTHUB_CONNECTION_STRING=" + h.ServiceConnectionString,
			"DEVICE_ID=sim-000001", "METHOD_NAME=reboot", "RESPONSE_TIMEOUT=10"},
		node, filepath.Join("service", "invoke.js"))
	require.NoError(t, err, "invoke.js: %s", connstr.Redact(stderr))
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(stdout)), &out), stdout)
	assert.Equal(t, true, out["ok"], stdout)
	result, _ := out["result"].(map[string]any)
	assert.EqualValues(t, 200, result["status"], stdout)
}

// TestServiceSDKRegistryGet: Microsoft's Registry.get, Registry.list and
// Registry.getModule read hubsim's identities; an unknown device is the
// SDK's DeviceNotFoundError.
func TestServiceSDKRegistryGet(t *testing.T) {
	node := requireNode(t)
	h := startHub(t, "--devices", "2", "--register", "gw-1,gw-1/mod-1", "--no-throttle")
	r := h.run(t, node, "registry", "DEVICE_ID=gw-1")
	require.Equal(t, 0, r.ExitCode, "Registry.get: %s\n%s", r.Stdout, connstr.Redact(r.Stderr))
	dev, ok := r.Out["device"].(map[string]any)
	require.True(t, ok, r.Stdout)
	assert.Equal(t, "gw-1", dev["deviceId"])
	assert.Equal(t, "enabled", dev["status"])
	cs, err := connstr.ParseDevice(h.DeviceConnectionStrings["gw-1"])
	require.NoError(t, err)
	keys, _ := dev["authentication"].(map[string]any)["symmetricKey"].(map[string]any)
	assert.Equal(t, cs.SharedAccessKey, keys["primaryKey"])
	assert.EqualValues(t, 3, r.Out["listed"], "Registry.list: the two simulated devices and gw-1")

	r = h.run(t, node, "registry", "DEVICE_ID=gw-1", "MODULE_ID=mod-1")
	require.Equal(t, 0, r.ExitCode, "Registry.getModule: %s", r.Stdout)
	mod, _ := r.Out["module"].(map[string]any)
	assert.Equal(t, "mod-1", mod["moduleId"])

	r = h.run(t, node, "registry", "DEVICE_ID=no-such-device")
	assert.NotEqual(t, 0, r.ExitCode)
	assertHubError(t, r, 404, "404001", "DeviceNotFound")
}

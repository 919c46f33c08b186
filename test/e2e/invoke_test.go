package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
)

// dmctlRun is one run of the built dmctl binary.
type dmctlRun struct {
	stdout, stderr string
	code           int
}

// dmctlCmd describes how to run dmctl: extra environment and stdin.
type dmctlCmd struct {
	env   map[string]string
	stdin string
	// path, when set, replaces PATH (used to put a stub az first).
	path string
}

// cleanEnv is a minimal environment: no AZURE_*, no proxies, no
// IOTHUB_CONNECTION_STRING unless the test sets it, a private HOME.
func cleanEnv(t *testing.T, c dmctlCmd) []string {
	path := c.path
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{"PATH=" + path, "HOME=" + t.TempDir(), "LANG=C"}
	for k, v := range c.env {
		env = append(env, k+"="+v)
	}
	return env
}

func runDmctl(t *testing.T, c dmctlCmd, args ...string) dmctlRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, "dmctl"), args...)
	cmd.Env = cleanEnv(t, c)
	cmd.Stdin = strings.NewReader(c.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running dmctl: %v", err)
	}
	return dmctlRun{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// invoke runs `dmctl invoke` against the stub with the connection string
// and the stub's CA (SSL_CERT_FILE, so a case can give its own --ca-file)
// in the environment.
func (h *stubHub) invoke(t *testing.T, args ...string) dmctlRun {
	t.Helper()
	return runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": h.ConnectionString(stubKey), "SSL_CERT_FILE": h.CAFile}},
		append([]string{"invoke"}, args...)...)
}

type jsonResult struct {
	DeviceID string          `json:"deviceId"`
	ModuleID string          `json:"moduleId"`
	Method   string          `json:"method"`
	Outcome  string          `json:"outcome"`
	Status   *int            `json:"status"`
	Payload  json.RawMessage `json:"payload"`
	Error    *struct {
		HTTPStatus int    `json:"httpStatus"`
		Code       int    `json:"code"`
		CodeName   string `json:"codeName"`
		Message    string `json:"message"`
		TrackingID string `json:"trackingId"`
		RequestID  string `json:"requestId"`
	} `json:"error"`
	Attempts   int       `json:"attempts"`
	StartTime  time.Time `json:"startTime"`
	DurationMs float64   `json:"durationMs"`
}

func parseJSON(t *testing.T, stdout string) []jsonResult {
	t.Helper()
	var rs []jsonResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &rs), "stdout: %s", stdout)
	return rs
}

// assertNoSecrets checks that neither the keys nor any signature or bearer
// token the stub received appears in the output.
func assertNoSecrets(t *testing.T, h *stubHub, r dmctlRun) {
	t.Helper()
	all := r.stdout + r.stderr
	assert.NotContains(t, all, stubKey)
	assert.NotContains(t, all, wrongKey)
	for _, req := range h.Requests() {
		authz := req.Header.Get("Authorization")
		if _, sig, ok := strings.Cut(authz, "sig="); ok {
			sig, _, _ = strings.Cut(sig, "&")
			require.NotEmpty(t, sig)
			assert.NotContains(t, all, sig, "a SAS signature leaked")
		}
		if tok, ok := strings.CutPrefix(authz, "Bearer "); ok {
			assert.NotContains(t, all, tok, "a bearer token leaked")
		}
	}
}

func TestInvokeSucceeds(t *testing.T) {
	h := newStubHub(t)
	h.Script("thermostat-17", deviceAnswer(200, `{"rebooted":true}`))
	r := h.invoke(t, "reboot", "--device", "thermostat-17")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Regexp(t, `^DEVICE +OUTCOME +STATUS +DURATION\nthermostat-17 +succeeded +200 +\S+\n$`, r.stdout)
	assert.Regexp(t, `^1 target: 1 succeeded; device status 200 x1\n1 call \(0 retries\) in \S+, \S+ calls/s; latency p50 \S+, p95 \S+, p99 \S+\n$`, r.stderr)

	reqs := h.Requests()
	require.Len(t, reqs, 1)
	req := reqs[0]
	assert.Empty(t, req.AuthError, "the stub verified the SAS with its key")
	assert.Equal(t, "POST", req.Method)
	assert.Equal(t, "/twins/thermostat-17/methods", req.EscapedPath)
	assert.Equal(t, "2021-04-12", req.APIVersion)
	assert.Contains(t, req.Header.Get("Content-Type"), "application/json")
	assert.JSONEq(t, `"reboot"`, string(req.Body["methodName"]))
	assert.JSONEq(t, `null`, string(req.Body["payload"]), "no --payload sends null")
	assert.JSONEq(t, `30`, string(req.Body["responseTimeoutInSeconds"]))
	assert.JSONEq(t, `0`, string(req.Body["connectTimeoutInSeconds"]))
	assertNoSecrets(t, h, r)
}

// TestInvokeRepeatedDevicesAreCalledOnce: a --device repeated (or named
// again in a devices file) is called once, and stderr says how many
// duplicates were removed.
func TestInvokeRepeatedDevicesAreCalledOnce(t *testing.T) {
	h := newStubHub(t)
	h.Script("d1", deviceAnswer(200, `null`))
	h.Script("d2", deviceAnswer(200, `null`))
	file := filepath.Join(t.TempDir(), "devices.txt")
	require.NoError(t, os.WriteFile(file, []byte("d2\nd1\n"), 0o600))
	r := h.invoke(t, "ping", "--device", "d1", "--device", "d1", "--device", "d2", "--devices-file", file, "-o", "jsonl")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Equal(t, 2, strings.Count(r.stdout, "\n"), "one result per distinct target")
	assert.Len(t, h.Requests(), 2, "each device called once")
	assert.Contains(t, r.stderr, "note: 3 duplicate targets removed\n")
}

func TestInvokeDeviceFailureIsExit4(t *testing.T) {
	h := newStubHub(t)
	h.Script("d1", deviceAnswer(500, `{"error":"disk full"}`))
	r := h.invoke(t, "reboot", "--device", "d1", "-o", "json")
	assert.Equal(t, 4, r.code, "stderr: %s", r.stderr)
	rs := parseJSON(t, r.stdout)
	require.Len(t, rs, 1)
	assert.Equal(t, "failed", rs[0].Outcome)
	require.NotNil(t, rs[0].Status)
	assert.Equal(t, 500, *rs[0].Status)
	assert.JSONEq(t, `{"error":"disk full"}`, string(rs[0].Payload))
	assert.Contains(t, r.stderr, "d1: failed: the device answered status 500: disk full\n")
}

func TestInvokeOkStatus(t *testing.T) {
	h := newStubHub(t)
	h.Script("d1", deviceAnswer(202, `null`))
	r := h.invoke(t, "reboot", "--device", "d1", "--ok-status", "200")
	assert.Equal(t, 4, r.code)
	r = h.invoke(t, "reboot", "--device", "d1", "--ok-status", "200,202")
	assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
}

func TestInvokeOffline(t *testing.T) {
	h := newStubHub(t)
	h.Script("d1", hubError(404, 404103, "DeviceNotOnline", "The operation failed because the requested device isn't online or hasn't registered the direct method callback."))
	r := h.invoke(t, "reboot", "--device", "d1", "-o", "json")
	assert.Equal(t, 4, r.code)
	rs := parseJSON(t, r.stdout)
	require.Len(t, rs, 1)
	assert.Equal(t, "offline", rs[0].Outcome)
	require.NotNil(t, rs[0].Error)
	assert.Equal(t, 404, rs[0].Error.HTTPStatus)
	assert.Equal(t, 404103, rs[0].Error.Code)
	assert.Equal(t, "DeviceNotOnline", rs[0].Error.CodeName)
	assert.Equal(t, "trk-404103-TimeStamp:03/14/2024 09:54:49", rs[0].Error.TrackingID)
	assert.Equal(t, "req-404103", rs[0].Error.RequestID)
	assert.Nil(t, rs[0].Status)
	assert.Len(t, h.Requests(), 1, "an offline device is not retried without --wait-online")
	assert.Contains(t, r.stderr, "d1: offline: 404 404103 DeviceNotOnline: The operation failed because the requested device isn't online")
	assert.Contains(t, r.stderr, "(tracking id trk-404103-TimeStamp:03/14/2024 09:54:49)")
}

func TestInvokeGatewayTimeoutIsNotResentUnlessIdempotent(t *testing.T) {
	h := newStubHub(t)
	h.Script("d1", hubError(504, 504101, "GatewayTimeout", "Timed out waiting for the response from device."), deviceAnswer(200, `null`))
	r := h.invoke(t, "reboot", "--device", "d1", "-o", "json")
	assert.Equal(t, 4, r.code)
	assert.Len(t, h.RequestsFor("d1"), 1, "504101 may mean the device ran it: sent once")
	rs := parseJSON(t, r.stdout)
	assert.Equal(t, "timeout", rs[0].Outcome)
	assert.Equal(t, 1, rs[0].Attempts)
	assert.Contains(t, r.stderr, "add --idempotent")

	h2 := newStubHub(t)
	h2.Script("d1", hubError(504, 504101, "GatewayTimeout", "Timed out waiting for the response from device."), deviceAnswer(200, `null`))
	r = h2.invoke(t, "getState", "--device", "d1", "--idempotent", "-o", "json")
	assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Len(t, h2.RequestsFor("d1"), 2, "with --idempotent the call is sent again")
	rs = parseJSON(t, r.stdout)
	assert.Equal(t, "succeeded", rs[0].Outcome)
	assert.Equal(t, 2, rs[0].Attempts)
}

func TestInvokeThrottledThenSucceeds(t *testing.T) {
	h := newStubHub(t)
	h.Script("d1", hubError(429, 429001, "ThrottlingException", "Throttled"), deviceAnswer(200, `{"done":1}`))
	r := h.invoke(t, "reboot", "--device", "d1", "-o", "json")
	assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Len(t, h.RequestsFor("d1"), 2, "429 is safe to resend")
	rs := parseJSON(t, r.stdout)
	require.Len(t, rs, 1)
	assert.Equal(t, 2, rs[0].Attempts)
	assert.Equal(t, "succeeded", rs[0].Outcome)
}

func TestInvokeUnauthorized(t *testing.T) {
	h := newStubHub(t)
	r := runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": h.ConnectionString(wrongKey)}},
		"invoke", "--ca-file", h.CAFile, "reboot", "--device", "d1", "--device", "d2")
	assert.Equal(t, 3, r.code, "stderr: %s", r.stderr)
	reqs := h.Requests()
	require.Len(t, reqs, 2, "401 is never resent")
	assert.Equal(t, "shared access signature does not match the key", reqs[0].AuthError)
	assert.Contains(t, r.stderr, "d1: unauthorized: 401 401002 IotHubUnauthorizedAccess: Unauthorized")
	assert.Contains(t, r.stderr, `hint: the hub refused SAS policy "service" from IOTHUB_CONNECTION_STRING (HostName=`+h.Host+`;SharedAccessKeyName=service;SharedAccessKey=REDACTED)`)
	assert.Equal(t, 1, strings.Count(r.stderr, "hint:"))
	assertNoSecrets(t, h, r)
}

func TestInvokeBadInputSendsNothing(t *testing.T) {
	h := newStubHub(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"invalid payload", []string{"reboot", "--device", "d1", "--payload", `{"a":}`}, "Error: --payload: the payload is not valid JSON"},
		{"bad device id", []string{"reboot", "--device", "bad/id"}, `Error: --device: invalid device id "bad/id"`},
		{"bad method", []string{"re boot", "--device", "d1"}, `Error: METHOD: invalid method name "re boot"`},
		{"timeout out of range", []string{"reboot", "--device", "d1", "--timeout", "301"}, "Error: --timeout: 301s is out of range"},
		{"bad ca file", []string{"reboot", "--device", "d1", "--ca-file", "/nonexistent.pem"}, "Error: --ca-file /nonexistent.pem: cannot read it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.invoke(t, tt.args...)
			assert.Equal(t, 2, r.code)
			assert.Empty(t, r.stdout)
			assert.True(t, strings.HasPrefix(r.stderr, tt.want), r.stderr)
			assert.Equal(t, 1, strings.Count(r.stderr, "Error:"), "the error is printed once")
			assert.NotContains(t, r.stderr, "goroutine")
		})
	}
	assert.Empty(t, h.Requests(), "nothing reached the hub")

	bad := runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": "HostName=" + h.Host + ";SharedAccessKey=" + stubKey}},
		"invoke", "--ca-file", h.CAFile, "reboot", "--device", "d1")
	assert.Equal(t, 2, bad.code)
	assert.Contains(t, bad.stderr, `IOTHUB_CONNECTION_STRING: invalid connection string: missing key "SharedAccessKeyName"`)
	assert.NotContains(t, bad.stderr, stubKey)

	none := runDmctl(t, dmctlCmd{}, "invoke", "reboot", "--device", "d1")
	assert.Equal(t, 2, none.code)
	assert.Contains(t, none.stderr, "no credentials: either give a service connection string")
	assert.Empty(t, h.Requests())
}

func TestInvokeIDsAreEncoded(t *testing.T) {
	h := newStubHub(t)
	h.Script("a#b?c%d/m;1=x", deviceAnswer(200, `"hi"`))
	r := h.invoke(t, "ping", "--device", "a#b?c%d", "--module", "m;1=x", "-o", "json")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	reqs := h.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "a#b?c%d", reqs[0].DeviceID, "the id arrives intact")
	assert.Equal(t, "m;1=x", reqs[0].ModuleID)
	assert.Equal(t, "2021-04-12", reqs[0].APIVersion, "a # or ? in the id does not eat the query")
	rs := parseJSON(t, r.stdout)
	assert.Equal(t, "a#b?c%d", rs[0].DeviceID)
	assert.Equal(t, "m;1=x", rs[0].ModuleID)
}

func TestInvokeModule(t *testing.T) {
	h := newStubHub(t)
	h.Script("gw-1/telemetry", deviceAnswer(200, `{"restarted":true}`))
	r := h.invoke(t, "restart", "--device", "gw-1", "--module", "telemetry")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Regexp(t, `^DEVICE +MODULE +OUTCOME +STATUS +DURATION\ngw-1 +telemetry +succeeded +200 +\S+\n$`, r.stdout)
	reqs := h.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "/twins/gw-1/modules/telemetry/methods", reqs[0].EscapedPath)
}

func TestInvokeOutputFormats(t *testing.T) {
	h := newStubHub(t)
	h.Script("d1", deviceAnswer(200, `{"v":1}`))
	h.Script("d2", deviceAnswer(500, `{"v":2}`))
	h.Script("d3", hubError(404, 404103, "DeviceNotOnline", "offline"))
	args := []string{"getState", "--device", "d2", "--device", "d1", "--device", "d3"}

	t.Run("table", func(t *testing.T) {
		r := h.invoke(t, args...)
		assert.Equal(t, 4, r.code)
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		require.Len(t, lines, 4)
		assert.Regexp(t, `^DEVICE +OUTCOME +STATUS +DURATION$`, lines[0])
		assert.Regexp(t, `^d1 +succeeded +200 +\S+$`, lines[1], "sorted by device")
		assert.Regexp(t, `^d2 +failed +500 +\S+$`, lines[2])
		assert.Regexp(t, `^d3 +offline +- +\S+$`, lines[3])
		assert.NotContains(t, r.stdout, "\x1b[", "no colour when stdout is not a terminal")
		assert.Regexp(t, `3 targets: 1 succeeded, 1 failed, 1 offline; device statuses 200 x1, 500 x1\n3 calls \(0 retries\) in \S+, \S+ calls/s; latency p50 \S+, p95 \S+, p99 \S+\n$`, r.stderr)
	})
	t.Run("wide", func(t *testing.T) {
		r := h.invoke(t, append(args, "-o", "wide")...)
		assert.Equal(t, 4, r.code)
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		require.Len(t, lines, 4)
		assert.Regexp(t, `^DEVICE +OUTCOME +STATUS +DURATION +ATTEMPTS +ERROR CODE +TRACKING ID +PAYLOAD$`, lines[0])
		assert.Regexp(t, `^d1 +succeeded +200 +\S+ +1 +- +- +\{"v":1\}$`, lines[1])
		assert.Regexp(t, `^d3 +offline +- +\S+ +1 +404103 DeviceNotOnline +trk-404103-TimeStamp:03/14/2024 09:54:49 +-$`, lines[3])
	})
	t.Run("json", func(t *testing.T) {
		r := h.invoke(t, append(args, "-o", "json")...)
		assert.Equal(t, 4, r.code)
		rs := parseJSON(t, r.stdout)
		require.Len(t, rs, 3)
		assert.Equal(t, []string{"d1", "d2", "d3"}, []string{rs[0].DeviceID, rs[1].DeviceID, rs[2].DeviceID}, "json is sorted by device")
		for _, res := range rs {
			assert.Equal(t, "getState", res.Method)
			assert.Equal(t, time.UTC, res.StartTime.Location())
			assert.WithinDuration(t, time.Now(), res.StartTime, time.Minute)
			assert.GreaterOrEqual(t, res.DurationMs, 0.0)
		}
	})
	t.Run("jsonl", func(t *testing.T) {
		r := h.invoke(t, append(args, "-o", "jsonl")...)
		assert.Equal(t, 4, r.code)
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		require.Len(t, lines, 3)
		got := map[string]string{}
		for _, l := range lines {
			var res jsonResult
			require.NoError(t, json.Unmarshal([]byte(l), &res))
			got[res.DeviceID] = res.Outcome
		}
		assert.Equal(t, map[string]string{"d1": "succeeded", "d2": "failed", "d3": "offline"}, got, "one line per target, in completion order")
	})
	t.Run("name", func(t *testing.T) {
		r := h.invoke(t, append(args, "-o", "name")...)
		assert.Equal(t, 4, r.code)
		assert.Equal(t, "d1\nd2\nd3\n", r.stdout)
	})
	t.Run("DMCTL_OUTPUT", func(t *testing.T) {
		r := runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": h.ConnectionString(stubKey), "DMCTL_OUTPUT": "name"}},
			"invoke", "--ca-file", h.CAFile, "getState", "--device", "d1")
		assert.Equal(t, 0, r.code)
		assert.Equal(t, "d1\n", r.stdout)
	})
}

func TestInvokeRequestOptions(t *testing.T) {
	h := newStubHub(t)
	dir := t.TempDir()
	pf := filepath.Join(dir, "payload.json")
	require.NoError(t, os.WriteFile(pf, []byte(`{"fwPackageUri":"https://example.invalid/fw.bin"}`), 0o600))

	r := h.invoke(t, "firmwareUpdate", "--device", "d1", "--payload", "@"+pf, "--timeout", "120", "--connect-timeout", "1m", "--api-version", "2020-09-30")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	r = runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": h.ConnectionString(stubKey)}, stdin: `{"level":"debug"}`},
		"invoke", "--ca-file", h.CAFile, "setLogLevel", "--device", "d2", "--payload", "-")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)

	reqs := h.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "2020-09-30", reqs[0].APIVersion)
	assert.JSONEq(t, `{"fwPackageUri":"https://example.invalid/fw.bin"}`, string(reqs[0].Body["payload"]))
	assert.JSONEq(t, `120`, string(reqs[0].Body["responseTimeoutInSeconds"]))
	assert.JSONEq(t, `60`, string(reqs[0].Body["connectTimeoutInSeconds"]))
	assert.Equal(t, "2021-04-12", reqs[1].APIVersion)
	assert.JSONEq(t, `{"level":"debug"}`, string(reqs[1].Body["payload"]))
	assert.JSONEq(t, `"setLogLevel"`, string(reqs[1].Body["methodName"]))
}

func TestInvokeConnectionStringSources(t *testing.T) {
	h := newStubHub(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cs")
	require.NoError(t, os.WriteFile(good, []byte(h.ConnectionString(stubKey)+"\n"), 0o600))

	t.Run("file beats env", func(t *testing.T) {
		r := runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": h.ConnectionString(wrongKey)}},
			"invoke", "--ca-file", h.CAFile, "--connection-string-file", good, "m", "--device", "d1")
		assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	})
	t.Run("env", func(t *testing.T) {
		r := runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": h.ConnectionString(stubKey)}},
			"invoke", "--ca-file", h.CAFile, "m", "--device", "d1")
		assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	})
	t.Run("flag", func(t *testing.T) {
		r := runDmctl(t, dmctlCmd{}, "invoke", "--ca-file", h.CAFile, "--connection-string", h.ConnectionString(stubKey), "m", "--device", "d1")
		assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
		assertNoSecrets(t, h, r)
	})
	t.Run("missing file", func(t *testing.T) {
		r := runDmctl(t, dmctlCmd{}, "invoke", "--ca-file", h.CAFile, "--connection-string-file", filepath.Join(dir, "nope"), "m", "--device", "d1")
		assert.Equal(t, 2, r.code)
		assert.Contains(t, r.stderr, "--connection-string-file "+filepath.Join(dir, "nope")+": cannot read the file: no such file or directory")
	})
	for _, req := range h.Requests() {
		assert.Empty(t, req.AuthError)
	}
	assert.Len(t, h.Requests(), 3)
}

func TestInvokeDebugRedactsSecrets(t *testing.T) {
	h := newStubHub(t)
	h.Script("d1", hubError(429, 429001, "ThrottlingException", "Throttled"), deviceAnswer(200, `{"ok":1}`))
	r := runDmctl(t, dmctlCmd{}, "invoke", "--debug", "--ca-file", h.CAFile, "--connection-string", h.ConnectionString(stubKey), "m", "--device", "d1", "--payload", `{"x":1}`)
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, "/twins/d1/methods", "--debug logs the requests")
	assert.Contains(t, r.stderr, "REDACTED")
	assertNoSecrets(t, h, r)
	require.Len(t, h.Requests(), 2)
}

func TestInvokeEntraAzureCLI(t *testing.T) {
	const token = "e2e-bearer-token-7f3a9c"
	h := newStubHub(t)
	h.Bearer = token
	h.Script("d1", deviceAnswer(200, `{"via":"entra"}`))

	bin := t.TempDir()
	azLog := filepath.Join(t.TempDir(), "az.log")
	script := "#!/bin/sh\n" +
		"echo \"$@\" >> \"$AZ_STUB_LOG\"\n" +
		"now=$(date +%s)\n" +
		"printf '{\"accessToken\":\"" + token + "\",\"expires_on\":%d,\"tokenType\":\"Bearer\",\"subscription\":\"sub\",\"tenant\":\"tenant\"}\\n' $((now + 3600))\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "az"), []byte(script), 0o755))

	r := runDmctl(t, dmctlCmd{path: bin + ":/usr/bin:/bin", env: map[string]string{"AZ_STUB_LOG": azLog}},
		"invoke", "--debug", "--auth", "azure-cli", "--hub", h.Host, "--ca-file", h.CAFile, "reboot", "--device", "d1", "-o", "json")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	rs := parseJSON(t, r.stdout)
	require.Len(t, rs, 1)
	assert.JSONEq(t, `{"via":"entra"}`, string(rs[0].Payload))

	reqs := h.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "Bearer "+token, reqs[0].Header.Get("Authorization"), "the hub saw the Azure CLI's token")
	assert.Empty(t, reqs[0].AuthError)
	logged, err := os.ReadFile(azLog)
	require.NoError(t, err)
	assert.Contains(t, string(logged), "account get-access-token")
	assert.Contains(t, string(logged), "--resource https://iothubs.azure.net")
	assertNoSecrets(t, h, r)
	assert.NotContains(t, r.stderr, token)
}

func TestInvokeEntraRefused(t *testing.T) {
	h := newStubHub(t)
	h.Bearer = "the-only-good-token"
	bin := t.TempDir()
	script := "#!/bin/sh\nnow=$(date +%s)\nprintf '{\"accessToken\":\"some-other-token\",\"expires_on\":%d}\\n' $((now + 3600))\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "az"), []byte(script), 0o755))
	r := runDmctl(t, dmctlCmd{path: bin + ":/usr/bin:/bin"},
		"invoke", "--auth", "azure-cli", "--hub", h.Host, "--ca-file", h.CAFile, "reboot", "--device", "d1")
	assert.Equal(t, 3, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, `"IoT Hub Data Contributor" role`)
	assert.NotContains(t, r.stdout+r.stderr, "some-other-token")
}

func TestInvokeEntraCredentialFails(t *testing.T) {
	h := newStubHub(t)
	h.Bearer = "unused"
	bin := t.TempDir()
	script := "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "az"), []byte(script), 0o755))
	r := runDmctl(t, dmctlCmd{path: bin + ":/usr/bin:/bin"},
		"invoke", "--auth", "azure-cli", "--hub", h.Host, "--ca-file", h.CAFile, "reboot", "--device", "d1")
	assert.Equal(t, 3, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, "azure-cli credential could not get a token")
	assert.Contains(t, r.stderr, "hint: run `az login`")
	assert.Empty(t, h.Requests(), "no token, no request")
}

func TestVersionAndHelp(t *testing.T) {
	r := runDmctl(t, dmctlCmd{}, "version", "-o", "json")
	require.Equal(t, 0, r.code)
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	assert.NotEmpty(t, v["version"])

	r = runDmctl(t, dmctlCmd{}, "help", "exit-codes")
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "130")
	r = runDmctl(t, dmctlCmd{}, "help", "environment")
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "IOTHUB_CONNECTION_STRING")
}

// connectProxy is a loopback HTTP CONNECT proxy that tunnels every request
// to one address and records the targets it was asked for.
type connectProxy struct {
	ln      net.Listener
	to      string
	mu      sync.Mutex
	targets []string
}

func startConnectProxy(t *testing.T, to string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &connectProxy{ln: ln, to: to}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.handle(c)
		}
	}()
	return p
}

func (p *connectProxy) handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, req.Method+" "+req.Host)
	p.mu.Unlock()
	if req.Method != http.MethodConnect {
		_, _ = io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", p.to)
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	go func() { _, _ = io.Copy(up, br) }()
	_, _ = io.Copy(c, up)
}

func (p *connectProxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// TestInvokeThroughHTTPSProxy checks that HTTPS_PROXY is honoured. Go never
// proxies "localhost" or loopback addresses, so the hub is named 0.0.0.0
// (not a loopback address to the proxy rules, yet local to the machine if
// the proxy were ignored: a broken build fails here without leaving it).
func TestInvokeThroughHTTPSProxy(t *testing.T) {
	h := newStubHubFor(t, "0.0.0.0")
	h.SASHost = "0.0.0.0"
	h.Script("d1", deviceAnswer(200, `{"proxied":true}`))
	p := startConnectProxy(t, h.Addr())
	r := runDmctl(t, dmctlCmd{env: map[string]string{
		"IOTHUB_CONNECTION_STRING": h.ConnectionString(stubKey),
		"HTTPS_PROXY":              "http://" + p.ln.Addr().String(),
	}}, "invoke", "--ca-file", h.CAFile, "ping", "--device", "d1", "-o", "json")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Equal(t, []string{"CONNECT 0.0.0.0:443"}, p.Targets())
	reqs := h.Requests()
	require.Len(t, reqs, 1)
	assert.Empty(t, reqs[0].AuthError, "the SAS was signed for the hub's name and verified through the tunnel")
	rs := parseJSON(t, r.stdout)
	assert.JSONEq(t, `{"proxied":true}`, string(rs[0].Payload))
}

// TestInvokeInterrupted sends SIGINT while a device is slow to answer: the
// call in flight gets --grace to finish, is then cancelled and reported
// unknown (the device may have run it), the rest as skipped, results so far
// are written, and dmctl exits 130.
func TestInvokeInterrupted(t *testing.T) {
	h := newStubHub(t)
	h.Script("slow", stubResponse{Status: 200, Body: `{"status":200,"payload":null}`, Delay: time.Minute})
	cmd := exec.Command(binary(t, "dmctl"), "invoke", "--ca-file", h.CAFile, "reboot", "--device", "fast", "--device", "slow", "--device", "never", "-o", "jsonl",
		"--concurrency", "1", "--grace", "1s")
	cmd.Env = cleanEnv(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": h.ConnectionString(stubKey)}})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	require.Eventually(t, func() bool { return len(h.RequestsFor("slow")) == 1 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	err := cmd.Wait()
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "%v", err)
	assert.Equal(t, 130, exitErr.ExitCode(), "stderr: %s", stderr.String())

	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	require.Len(t, lines, 3, stdout.String())
	var rs []jsonResult
	for _, l := range lines {
		var res jsonResult
		require.NoError(t, json.Unmarshal([]byte(l), &res))
		rs = append(rs, res)
	}
	assert.Equal(t, "succeeded", rs[0].Outcome)
	assert.Equal(t, "unknown", rs[1].Outcome)
	require.NotNil(t, rs[1].Error)
	assert.Contains(t, rs[1].Error.Message, "interrupted")
	assert.Equal(t, "skipped", rs[2].Outcome)
	assert.Empty(t, h.RequestsFor("never"))
	assert.True(t, strings.HasSuffix(stderr.String(), "Interrupted.\n"), stderr.String())
}

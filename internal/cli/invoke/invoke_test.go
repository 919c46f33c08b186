package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

// parseInvoke runs argv through cmdutil's root and returns the options
// invoke would run with, or the error (nothing is invoked).
func parseInvoke(t *testing.T, te *cmdtest.Env, args ...string) (*Options, int, error) {
	t.Helper()
	var got *Options
	root := cmdtest.Root(te.F, NewCmdInvoke(te.F, func(o *Options) error { got = o; return nil }))
	cmdutil.GuardFlags(root)
	root.SetArgs(append([]string{"invoke"}, args...))
	_, err := root.ExecuteC()
	if err != nil && cmdutil.IsCobraUsageError(err) {
		err = cmdutil.FlagErrorWrap(err)
	}
	return got, cmdutil.ExitCode(err), err
}

func TestInvokeArgsToOptions(t *testing.T) {
	dir := t.TempDir()
	payloadFile := filepath.Join(dir, "p.json")
	require.NoError(t, os.WriteFile(payloadFile, []byte(" {\"fw\": \"1.2\"}\n"), 0o600))
	only200, _ := fleet.ParseStatusSet("200,202")

	tests := []struct {
		name  string
		args  []string
		stdin string
		check func(t *testing.T, o *Options)
	}{
		{"defaults", []string{"reboot", "--device", "d1"}, "", func(t *testing.T, o *Options) {
			assert.Equal(t, "reboot", o.Method)
			assert.Equal(t, []fleet.Target{{DeviceID: "d1"}}, o.Targets)
			assert.Nil(t, o.Payload, "no --payload sends null")
			assert.Equal(t, 30*time.Second, o.Timeout)
			assert.Equal(t, time.Duration(0), o.ConnectTimeout)
			assert.Equal(t, "2xx", o.OKStatus.String())
			assert.False(t, o.Idempotent)
			assert.Equal(t, time.Duration(0), o.WaitOnline)
			assert.Equal(t, DefaultMaxAttempts, o.MaxAttempts)
			assert.Equal(t, DefaultRetryFor, o.RetryFor)
			assert.Equal(t, output.FormatTable, o.Output)
		}},
		{"several devices and a module", []string{"restart", "--device", "a#b?c%d", "--device", "gw,2", "--module", "telemetry"}, "", func(t *testing.T, o *Options) {
			assert.Equal(t, []fleet.Target{{DeviceID: "a#b?c%d", ModuleID: "telemetry"}, {DeviceID: "gw,2", ModuleID: "telemetry"}}, o.Targets,
				"ids may contain commas, so --device is never split")
		}},
		{"everything", []string{"fw", "--device", "d", "--payload", `{"a":[1,2]}`, "--timeout", "45", "--connect-timeout", "1m",
			"--ok-status", "200,202", "--idempotent", "--wait-online", "90", "--max-attempts", "7", "--retry-for", "10m", "-o", "jsonl"}, "", func(t *testing.T, o *Options) {
			assert.JSONEq(t, `{"a":[1,2]}`, string(o.Payload))
			assert.Equal(t, 45*time.Second, o.Timeout, "a bare number means seconds")
			assert.Equal(t, time.Minute, o.ConnectTimeout)
			assert.Equal(t, only200.String(), o.OKStatus.String())
			assert.True(t, o.OKStatus.Contains(202))
			assert.False(t, o.OKStatus.Contains(201))
			assert.True(t, o.Idempotent)
			assert.Equal(t, 90*time.Second, o.WaitOnline)
			assert.Equal(t, 7, o.MaxAttempts)
			assert.Equal(t, 10*time.Minute, o.RetryFor)
			assert.Equal(t, output.FormatJSONL, o.Output)
		}},
		{"repeated devices are kept for the plan", []string{"reboot", "--device", "d", "--device", "e", "--device", "d"}, "", func(t *testing.T, o *Options) {
			assert.Equal(t, []fleet.Target{{DeviceID: "d"}, {DeviceID: "e"}, {DeviceID: "d"}}, o.Targets, "the plan removes and counts them")
		}},
		{"payload from file", []string{"fw", "--device", "d", "--payload", "@" + payloadFile}, "", func(t *testing.T, o *Options) {
			assert.Equal(t, `{"fw": "1.2"}`, string(o.Payload))
		}},
		{"payload from stdin", []string{"fw", "--device", "d", "--payload", "-"}, "\"just a string\"\n", func(t *testing.T, o *Options) {
			assert.Equal(t, `"just a string"`, string(o.Payload))
		}},
		{"payload scalars", []string{"fw", "--device", "d", "--payload", "null"}, "", func(t *testing.T, o *Options) {
			assert.Equal(t, `null`, string(o.Payload))
		}},
		{"timeout bounds", []string{"m", "--device", "d", "--timeout", "5s", "--connect-timeout", "300"}, "", func(t *testing.T, o *Options) {
			assert.Equal(t, 5*time.Second, o.Timeout)
			assert.Equal(t, 300*time.Second, o.ConnectTimeout)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			te.In.WriteString(tt.stdin)
			o, code, err := parseInvoke(t, te, tt.args...)
			require.NoError(t, err)
			assert.Equal(t, 0, code)
			require.NotNil(t, o)
			tt.check(t, o)
		})
	}
}

func TestInvokeArgErrors(t *testing.T) {
	big := `"` + strings.Repeat("x", iothub.MaxPayloadBytes) + `"`
	tests := []struct {
		name     string
		args     []string
		stdinTTY bool
		want     string
	}{
		{"no method", []string{"--device", "d"}, false, "invoke needs exactly one METHOD argument (got 0), e.g. dmctl invoke reboot --device ID"},
		{"two methods", []string{"a", "b", "--device", "d"}, false, "invoke needs exactly one METHOD argument (got 2), e.g. dmctl invoke reboot --device ID"},
		{"bad method", []string{"re/boot", "--device", "d"}, false, `METHOD: invalid method name "re/boot": character "/" at position 3 is not allowed; method names may not contain $ ( ) < > @ , ; : \ " / [ ] ? = { }`},
		{"no device", []string{"reboot"}, false, "name the targets: --device ID (repeatable), --devices-file FILE (- for stdin) or --query SQL"},
		{"bad device", []string{"reboot", "--device", "a b"}, false, `--device: invalid device id "a b": character " " at position 2 is not allowed; IoT Hub ids may contain only ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '`},
		{"bad module", []string{"reboot", "--device", "d", "--module", "m/1"}, false, `--module: invalid module id "m/1": character "/" at position 2 is not allowed; IoT Hub ids may contain only ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '`},
		{"invalid payload", []string{"reboot", "--device", "d", "--payload", "{nope}"}, false, "--payload: the payload is not valid JSON: invalid character 'n' looking for beginning of object key string (at byte 2)"},
		{"two values", []string{"reboot", "--device", "d", "--payload", "1 2"}, false, "--payload: the payload is not valid JSON: more than one JSON value (extra text at byte 3)"},
		{"empty payload", []string{"reboot", "--device", "d", "--payload", " "}, false, `--payload: the value is empty; give a value or leave the flag out (an empty shell variable?)`},
		{"payload too big", []string{"reboot", "--device", "d", "--payload", big}, false, "--payload: the payload is larger than 128 KB, the most IoT Hub accepts"},
		{"payload file missing", []string{"reboot", "--device", "d", "--payload", "@/nonexistent/p.json"}, false, "--payload @/nonexistent/p.json: cannot read it: no such file or directory"},
		{"payload @ alone", []string{"reboot", "--device", "d", "--payload", "@"}, false, "--payload @: give a file name after @"},
		{"stdin is a terminal", []string{"reboot", "--device", "d", "--payload", "-"}, true, "--payload - (stdin): stdin is a terminal; pipe the payload in, or use --payload @FILE"},
		{"timeout too short", []string{"reboot", "--device", "d", "--timeout", "4"}, false, "--timeout: 4s is out of range: IoT Hub accepts 5s to 300s"},
		{"timeout too long", []string{"reboot", "--device", "d", "--timeout", "5m1s"}, false, "--timeout: 301s is out of range: IoT Hub accepts 5s to 300s"},
		{"timeout fraction", []string{"reboot", "--device", "d", "--timeout", "1500ms"}, false, `--timeout: "1500ms" is not a whole number of seconds`},
		{"timeout garbage", []string{"reboot", "--device", "d", "--timeout", "soon"}, false, `--timeout: "soon" is not a duration (use e.g. 30s, 2m, or a number of seconds)`},
		{"negative connect", []string{"reboot", "--device", "d", "--connect-timeout=-1"}, false, `--connect-timeout: "-1" is negative`},
		{"connect too long", []string{"reboot", "--device", "d", "--connect-timeout", "301"}, false, "--connect-timeout: 301s is out of range: IoT Hub accepts 0s to 300s"},
		{"bad ok-status", []string{"reboot", "--device", "d", "--ok-status", "2xx,abc"}, false, `--ok-status: "abc" is not a status (use numbers like 200 or classes like 2xx, separated by commas)`},
		{"zero attempts", []string{"reboot", "--device", "d", "--max-attempts", "0"}, false, "--max-attempts: 0 is out of range: use 1 (never resend) to 100"},
		{"wait too long", []string{"reboot", "--device", "d", "--wait-online", "25h"}, false, "--wait-online: 25h is longer than 24h"},
		{"unknown flag", []string{"reboot", "--device", "d", "--bogus"}, false, "unknown flag: --bogus"},
		{"bad output", []string{"reboot", "--device", "d", "-o", "yaml"}, false, `-o/--output: "yaml" is not one of table, wide, json, jsonl, name`},
		{"bad auth", []string{"reboot", "--device", "d", "--auth", "magic"}, false, `--auth: "magic" is not one of sas, default, azure-cli, environment, managed-identity, workload-identity`},
		{"bad api-version", []string{"reboot", "--device", "d", "--api-version", "latest"}, false, `--api-version: "latest" is not an api-version (expected YYYY-MM-DD, e.g. 2021-04-12)`},
		{"bad hub", []string{"reboot", "--device", "d", "--hub", "https://x"}, false, `--hub: "https://x" has a URL scheme; give the hub's host name, e.g. myhub.azure-devices.net`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			te.IOS.SetStdinTTY(tt.stdinTTY)
			o, code, err := parseInvoke(t, te, tt.args...)
			require.Error(t, err)
			assert.Nil(t, o, "the run function must not be reached")
			assert.Equal(t, tt.want, err.Error())
			assert.Equal(t, cmdutil.ExitUsage, code)
			assert.Empty(t, te.Inv.Calls)
		})
	}
}

func TestInvokeEnvDefaults(t *testing.T) {
	te := newTestEnv(t, nil)
	te.Env[cmdutil.EnvOutput] = "json"
	o, _, err := parseInvoke(t, te, "m", "--device", "d")
	require.NoError(t, err)
	assert.Equal(t, output.FormatJSON, o.Output)

	te = newTestEnv(t, nil)
	te.Env[cmdutil.EnvOutput] = "json"
	o, _, err = parseInvoke(t, te, "m", "--device", "d", "-o", "name")
	require.NoError(t, err)
	assert.Equal(t, output.FormatName, o.Output, "the flag beats DMCTL_OUTPUT")

	te = newTestEnv(t, nil)
	te.Env[cmdutil.EnvOutput] = "yaml"
	_, code, err := parseInvoke(t, te, "m", "--device", "d")
	require.Error(t, err)
	assert.Equal(t, `-o/--output (from DMCTL_OUTPUT): "yaml" is not an output format (use one of table, wide, json, jsonl, name)`, err.Error())
	assert.Equal(t, cmdutil.ExitUsage, code)

	te = newTestEnv(t, nil)
	te.Env[cmdutil.EnvAuth] = "nope"
	_, _, err = parseInvoke(t, te, "m", "--device", "d")
	require.Error(t, err)
	assert.Equal(t, `--auth (from DMCTL_AUTH): "nope" is not an auth method (use one of sas, default, azure-cli, environment, managed-identity, workload-identity)`, err.Error())

	te = newTestEnv(t, nil)
	te.Env[cmdutil.EnvHub] = "myhub"
	te.Env[cmdutil.EnvAuth] = "azure-cli"
	_, _, err = parseInvoke(t, te, "m", "--device", "d")
	require.NoError(t, err)
	assert.Equal(t, "myhub", te.F.Global.Hub)
	assert.Equal(t, "azure-cli", te.F.Global.Auth)
}

// runInvoke runs invokeRun directly with fixed options.
func runInvoke(t *testing.T, te *cmdtest.Env, format output.Format, targets ...fleet.Target) error {
	t.Helper()
	opts := &Options{
		IO: te.IOS, Invoker: te.F.Invoker, Now: te.F.Now, Sleep: te.F.Sleep,
		Output: format, Method: "reboot", Targets: targets, Timeout: 30 * time.Second,
		MaxAttempts: 3, RetryFor: time.Minute,
	}
	return invokeRun(context.Background(), opts)
}

func mixedScripts() map[string][]cmdtest.Answer {
	return map[string][]cmdtest.Answer{
		"d1": {cmdtest.OK(200, `{"ok":true}`)},
		"d2": {cmdtest.OK(500, `{"error":"disk full"}`)},
		"d3": {cmdtest.HubErr(404, 404103, "DeviceNotOnline", "The device is not online.")},
	}
}

func targets(ids ...string) []fleet.Target {
	var ts []fleet.Target
	for _, id := range ids {
		ts = append(ts, fleet.Target{DeviceID: id})
	}
	return ts
}

func TestInvokeRunFormats(t *testing.T) {
	const stderrPlain = "" +
		"d2: failed: the device answered status 500: disk full\n" +
		"d3: offline: 404 404103 DeviceNotOnline: The device is not online. (tracking id trk-DeviceNotOnline)\n" +
		"hint: an offline device may connect later: --wait-online 5m keeps retrying, --connect-timeout 60 lets the hub wait for it, --until-online 24h calls it once it connects.\n" +
		"3 targets: 1 succeeded, 1 failed, 1 offline; device statuses 200 x1, 500 x1\n3 calls (0 retries) in 0µs; latency p50 0µs, p95 0µs, p99 0µs\n"
	start := `"startTime":"2026-03-04T05:06:07Z","durationMs":0`
	tests := []struct {
		format output.Format
		tty    bool
		stdout string
	}{
		{output.FormatTable, false, "" +
			"DEVICE   OUTCOME     STATUS   DURATION\n" +
			"d1       succeeded   200      0µs\n" +
			"d2       failed      500      0µs\n" +
			"d3       offline     -        0µs\n"},
		{output.FormatTable, true, "" +
			"DEVICE   OUTCOME     STATUS   DURATION\n" +
			"d1       \x1b[32msucceeded\x1b[0m   \x1b[0m200      0µs\n" +
			"d2       \x1b[31mfailed\x1b[0m      \x1b[0m500      0µs\n" +
			"d3       \x1b[33moffline\x1b[0m     \x1b[0m-        0µs\n"},
		{output.FormatWide, false, "" +
			"DEVICE   OUTCOME     STATUS   DURATION   ATTEMPTS   ERROR CODE               TRACKING ID           PAYLOAD\n" +
			"d1       succeeded   200      0µs        1          -                        -                     {\"ok\":true}\n" +
			"d2       failed      500      0µs        1          -                        -                     {\"error\":\"disk full\"}\n" +
			"d3       offline     -        0µs        1          404103 DeviceNotOnline   trk-DeviceNotOnline   -\n"},
		{output.FormatJSONL, true, "" +
			`{"deviceId":"d1","method":"reboot","outcome":"succeeded","status":200,"payload":{"ok":true},"attempts":1,` + start + "}\n" +
			`{"deviceId":"d2","method":"reboot","outcome":"failed","status":500,"payload":{"error":"disk full"},"attempts":1,` + start + "}\n" +
			`{"deviceId":"d3","method":"reboot","outcome":"offline","error":{"httpStatus":404,"code":404103,"codeName":"DeviceNotOnline","message":"The device is not online.","trackingId":"trk-DeviceNotOnline"},"attempts":1,` + start + "}\n"},
		{output.FormatName, false, "d1\nd2\nd3\n"},
	}
	for _, tt := range tests {
		t.Run(string(tt.format)+map[bool]string{true: "-tty", false: "-pipe"}[tt.tty], func(t *testing.T) {
			te := newTestEnv(t, mixedScripts())
			te.IOS.SetStdoutTTY(tt.tty)
			err := runInvoke(t, te, tt.format, targets("d1", "d2", "d3")...)
			var terr *cmdutil.TargetsError
			require.True(t, errors.As(err, &terr))
			assert.Equal(t, cmdutil.ExitTargets, cmdutil.ExitCode(err))
			assert.Equal(t, tt.stdout, te.Out.String())
			assert.Equal(t, stderrPlain, te.ErrOut.String(), "stderr has no colour unless stderr is a terminal")
		})
	}
}

func TestInvokeRunJSON(t *testing.T) {
	te := newTestEnv(t, mixedScripts())
	err := runInvoke(t, te, output.FormatJSON, targets("d1", "d2", "d3")...)
	require.Error(t, err)
	var got []fleet.Result
	require.NoError(t, json.Unmarshal(te.Out.Bytes(), &got))
	require.Len(t, got, 3)
	assert.Equal(t, fleet.OutcomeSucceeded, got[0].Outcome)
	assert.Equal(t, fleet.OutcomeFailed, got[1].Outcome)
	assert.Equal(t, fleet.OutcomeOffline, got[2].Outcome)
	assert.Equal(t, 404103, got[2].Error.Code)
}

func TestInvokeRunStderrColourOnTTY(t *testing.T) {
	te := newTestEnv(t, mixedScripts())
	te.IOS.SetStderrTTY(true)
	_ = runInvoke(t, te, output.FormatJSON, targets("d1")...)
	assert.Equal(t, "1 target: 1 \x1b[32msucceeded\x1b[0m; device status 200 x1\n1 call (0 retries) in 0µs; latency p50 0µs, p95 0µs, p99 0µs\n", te.ErrOut.String())
}

func TestInvokeRunSuccessSendsTheRequest(t *testing.T) {
	te := newTestEnv(t, nil)
	opts := &Options{IO: te.IOS, Invoker: te.F.Invoker, Now: te.F.Now, Sleep: te.F.Sleep, Output: output.FormatTable,
		Method: "setInterval", Targets: []fleet.Target{{DeviceID: "d", ModuleID: "m"}}, Payload: json.RawMessage(`{"s":1}`),
		Timeout: 45 * time.Second, ConnectTimeout: 10 * time.Second, MaxAttempts: 1}
	require.NoError(t, invokeRun(context.Background(), opts))
	require.Len(t, te.Inv.Reqs, 1)
	assert.Equal(t, iothub.MethodRequest{MethodName: "setInterval", Payload: json.RawMessage(`{"s":1}`), ResponseTimeout: 45 * time.Second, ConnectTimeout: 10 * time.Second}, te.Inv.Reqs[0])
	assert.Equal(t, []fleet.Target{{DeviceID: "d", ModuleID: "m"}}, te.Inv.Calls)
	assert.Equal(t, "DEVICE   MODULE   OUTCOME     STATUS   DURATION\nd        m        succeeded   200      0µs\n", te.Out.String())
}

func TestInvokeRunUnauthorized(t *testing.T) {
	te := newTestEnv(t, map[string][]cmdtest.Answer{
		"d1": {cmdtest.HubErr(401, 401002, "IotHubUnauthorizedAccess", "Unauthorized")},
		"d2": {cmdtest.HubErr(401, 401002, "IotHubUnauthorizedAccess", "Unauthorized")},
	})
	err := runInvoke(t, te, output.FormatTable, targets("d1", "d2")...)
	assert.Equal(t, cmdutil.ExitAuth, cmdutil.ExitCode(err), "every target refused: exit 3")
	stderr := te.ErrOut.String()
	assert.Contains(t, stderr, `hint: the hub refused SAS policy "service" from IOTHUB_CONNECTION_STRING (HostName=hub.example.test;SharedAccessKeyName=service;SharedAccessKey=REDACTED)`)
	assert.Contains(t, stderr, "ServiceConnect")
	assert.Equal(t, 1, strings.Count(stderr, "hint:"), "one hint, not one per target")
	assert.NotContains(t, stderr+te.Out.String(), cmdtest.TestKey)

	te = newTestEnv(t, map[string][]cmdtest.Answer{"d1": {cmdtest.HubErr(401, 401002, "IotHubUnauthorizedAccess", "Unauthorized")}, "d2": {cmdtest.OK(200, `1`)}})
	err = runInvoke(t, te, output.FormatTable, targets("d1", "d2")...)
	assert.Equal(t, cmdutil.ExitTargets, cmdutil.ExitCode(err), "some targets refused, some not: exit 4")
}

func TestInvokeRunEntraRefusedHint(t *testing.T) {
	te := newTestEnv(t, map[string][]cmdtest.Answer{"d1": {cmdtest.HubErr(403, 0, "", "Principal is not authorized")}})
	te.Cred = &auth.Credential{Method: auth.MethodAzureCLI, Host: "hub.example.test", Source: "the Azure CLI (--auth azure-cli)"}
	err := runInvoke(t, te, output.FormatTable, targets("d1")...)
	assert.Equal(t, cmdutil.ExitAuth, cmdutil.ExitCode(err))
	assert.Contains(t, te.ErrOut.String(), `hint: the hub refused the Microsoft Entra ID token from the Azure CLI (--auth azure-cli) for hub.example.test. The identity needs the "IoT Hub Data Contributor" role`)
}

func TestInvokeRunCredentialFailure(t *testing.T) {
	te := newTestEnv(t, map[string][]cmdtest.Answer{"d1": {cmdtest.Answer{Err: &auth.CredentialError{Method: auth.MethodAzureCLI, Err: errors.New("AzureCLICredential: Please run 'az login'")}}}})
	te.Cred = &auth.Credential{Method: auth.MethodAzureCLI, Host: "hub.example.test", Source: "the Azure CLI (--auth azure-cli)"}
	err := runInvoke(t, te, output.FormatJSON, targets("d1")...)
	assert.Equal(t, cmdutil.ExitAuth, cmdutil.ExitCode(err))
	assert.Contains(t, te.ErrOut.String(), "d1: unauthorized: azure-cli credential could not get a token: AzureCLICredential: Please run 'az login'\n")
	assert.Contains(t, te.ErrOut.String(), "hint: run `az login`")
}

func TestInvokeRunTimeoutHint(t *testing.T) {
	te := newTestEnv(t, map[string][]cmdtest.Answer{"d1": {cmdtest.HubErr(504, 504101, "GatewayTimeout", "Timed out waiting for the response from device.")}})
	err := runInvoke(t, te, output.FormatTable, targets("d1")...)
	assert.Equal(t, cmdutil.ExitTargets, cmdutil.ExitCode(err))
	assert.Len(t, te.Inv.Calls, 1, "504101 is not resent without --idempotent")
	assert.Contains(t, te.ErrOut.String(), "hint: a method that timed out may still have run on the device, so it was not resent; add --idempotent")
}

func TestInvokeRunInvokerError(t *testing.T) {
	te := newTestEnv(t, nil)
	te.F.Invoker = func() (fleet.Invoker, *auth.Credential, error) {
		return nil, nil, &auth.InputError{Input: "--hub", Reason: "needed"}
	}
	err := runInvoke(t, te, output.FormatTable, targets("d1")...)
	assert.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
	assert.Empty(t, te.Out.String())
}

func TestInvokeRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	te := newTestEnv(t, nil)
	inner := te.Inv
	te.F.Invoker = func() (fleet.Invoker, *auth.Credential, error) {
		return cancelAfterFirst{inner: inner, cancel: cancel}, te.Cred, nil
	}
	opts := &Options{IO: te.IOS, Invoker: te.F.Invoker, Now: te.F.Now, Sleep: te.F.Sleep, Output: output.FormatJSONL,
		Method: "m", Targets: targets("a", "b"), Timeout: 30 * time.Second, MaxAttempts: 1}
	err := invokeRun(ctx, opts)
	assert.True(t, errors.Is(err, cmdutil.ErrInterrupted))
	assert.Equal(t, cmdutil.ExitInterrupted, cmdutil.ExitCode(err))
	lines := strings.Split(strings.TrimSpace(te.Out.String()), "\n")
	require.Len(t, lines, 2, "results so far are written, the rest marked skipped")
	assert.Contains(t, lines[0], `"outcome":"succeeded"`)
	assert.Contains(t, lines[1], `"outcome":"skipped"`)
}

type cancelAfterFirst struct {
	inner  *cmdtest.FakeInvoker
	cancel context.CancelFunc
}

func (c cancelAfterFirst) Invoke(ctx context.Context, t fleet.Target, req iothub.MethodRequest) (iothub.MethodResult, error) {
	defer c.cancel()
	return c.inner.Invoke(ctx, t, req)
}

func TestRepeatableFlagsStayRepeatable(t *testing.T) {
	te := newTestEnv(t, nil)
	o, _, err := parseInvoke(t, te, "reboot", "--device", "a", "--device", "b",
		"--wait-until", "properties.reported.x == 1", "--wait-until", "properties.reported.y == 2")
	require.NoError(t, err)
	assert.Len(t, o.Targets, 2)
	require.NotNil(t, o.Wait)
	assert.Len(t, o.Wait.Until, 2)
}

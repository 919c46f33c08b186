package e2e

// End-to-end tests of fleet runs: the built dmctl against the built hubsim,
// with hubsim's method log (one line per method actually delivered to a
// device) as the ground truth.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/test/testbin"
)

// fleetHub is a hubsim started for a fleet test, with its method log.
type fleetHub struct {
	*testbin.Hubsim
	methodLog string
}

// startFleetHub runs hubsim with a fleet file (JSON text) or --devices N,
// without throttling unless args say otherwise, and a method log.
func startFleetHub(t *testing.T, fleet string, args ...string) *fleetHub {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "methods.jsonl")
	full := []string{"--dir", filepath.Join(dir, "hub"), "--method-log", logPath, "--seed", "7"}
	if fleet != "" {
		fleetPath := filepath.Join(dir, "fleet.json")
		require.NoError(t, os.WriteFile(fleetPath, []byte(fleet), 0o600))
		full = append(full, "--fleet", fleetPath)
	}
	full = append(full, args...)
	return &fleetHub{Hubsim: testbin.StartHubsim(t, full...), methodLog: logPath}
}

func (h *fleetHub) env() []string {
	return []string{"IOTHUB_CONNECTION_STRING=" + h.ServiceConnectionString}
}

// dmctl returns a command running dmctl invoke against the hub.
func (h *fleetHub) dmctl(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	return h.command(t, "invoke", args...)
}

// command returns a command running dmctl's command name against the hub.
func (h *fleetHub) command(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary(t, "dmctl"), append([]string{name, "--ca-file", h.CAFile}, args...)...)
	cmd.Env = append(cleanEnv(t, dmctlCmd{}), h.env()...)
	return cmd
}

// run runs dmctl invoke to the end.
func (h *fleetHub) run(t *testing.T, stdin string, args ...string) dmctlRun {
	t.Helper()
	return h.runCommand(t, stdin, "invoke", args...)
}

// runCommand runs dmctl's command name to the end.
func (h *fleetHub) runCommand(t *testing.T, stdin, name string, args ...string) dmctlRun {
	t.Helper()
	cmd := h.command(t, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	require.NoError(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("dmctl %s did not finish in 3 minutes; stderr:\n%s", strings.Join(args, " "), connstr.Redact(stderr.String()))
	}
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else {
		require.NoError(t, err)
	}
	r := dmctlRun{stdout: stdout.String(), stderr: stderr.String(), code: code}
	assert.NotContains(t, r.stdout+r.stderr, "SharedAccessKey=", "no secret in the output")
	return r
}

// delivery is one line of hubsim's method log.
type delivery struct {
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId"`
	Method   string `json:"method"`
	Status   int    `json:"status"`
}

// deliveries waits until hubsim is idle (no call in flight, its method log
// flushed) and returns the deliveries of method per device.
func (h *fleetHub) deliveries(t *testing.T, method string) map[string][]delivery {
	t.Helper()
	h.Settle(t)
	f, err := os.Open(h.methodLog)
	if os.IsNotExist(err) {
		return map[string][]delivery{}
	}
	require.NoError(t, err)
	defer f.Close()
	out := map[string][]delivery{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var d delivery
		require.NoError(t, json.Unmarshal(sc.Bytes(), &d))
		if d.Method == method {
			out[d.DeviceID] = append(out[d.DeviceID], d)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// stats reads GET /hubsim/stats.
func (h *fleetHub) stats(t *testing.T) map[string]any {
	t.Helper()
	return h.Stats(t)
}

// jsonlResults parses -o jsonl output, requiring one line per target.
func jsonlResults(t *testing.T, stdout string) map[string]jsonResult {
	t.Helper()
	out := map[string]jsonResult{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var r jsonResult
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		key := r.DeviceID
		if r.ModuleID != "" {
			key += "/" + r.ModuleID
		}
		_, dup := out[key]
		require.False(t, dup, "%s has two result lines", key)
		out[key] = r
	}
	return out
}

func outcomes(rs map[string]jsonResult) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		m[r.Outcome]++
	}
	return m
}

// TestFleetQueryTenThousand: 10,000 devices from --query all succeed, with
// one JSONL line each, and each device got the method exactly once.
func TestFleetQueryTenThousand(t *testing.T) {
	h := startFleetHub(t, "", "--devices", "10000", "--no-throttle")
	r := h.run(t, "", "reboot", "--query", "SELECT deviceId FROM devices", "-o", "jsonl")
	require.Equal(t, 0, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	require.Len(t, rs, 10000)
	assert.Equal(t, map[string]int{"succeeded": 10000}, outcomes(rs))
	for id, res := range rs {
		if !assert.NotNil(t, res.Status, id) || *res.Status != 200 {
			break
		}
	}
	assert.Regexp(t, `^10000 targets: 10000 succeeded; device status 200 x10000\n10000 calls \(0 retries\) in \S+, \d+ calls/s; latency p50 \S+, p95 \S+, p99 \S+\n$`, r.stderr)
	got := h.deliveries(t, "reboot")
	require.Len(t, got, 10000)
	for id, ds := range got {
		require.Len(t, ds, 1, id)
		require.Equal(t, 200, ds[0].Status, id)
	}
}

// TestFleetOfflineShare: with 5% of the fleet offline, dmctl exits 4 and its
// counts equal hubsim's (offline devices it refused, methods it delivered).
func TestFleetOfflineShare(t *testing.T) {
	h := startFleetHub(t, `{"groups":[{"name":"field","idPattern":"field-%04d","count":1000,"connection":{"onlineShare":0.95},"methods":{"*":{"status":200}}}]}`, "--no-throttle")
	r := h.run(t, "", "getStatus", "--query", "SELECT deviceId FROM devices WHERE deviceId != 'x'", "-o", "jsonl")
	assert.Equal(t, 4, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	require.Len(t, rs, 1000)
	got := outcomes(rs)
	assert.Equal(t, map[string]int{"succeeded": 950, "offline": 50}, got, "exactly round((1-0.95)*1000) devices are offline")

	stats := h.stats(t)
	reg := stats["registry"].(map[string]any)
	assert.Equal(t, float64(got["offline"]), reg["notOnline"], "offline results = hubsim's refusals for not online")
	assert.Equal(t, float64(got["succeeded"]), stats["methodsDelivered"], "succeeded results = hubsim's deliveries")
	assert.Equal(t, float64(950), reg["connected"])
	delivered := h.deliveries(t, "getStatus")
	for id, res := range rs {
		switch res.Outcome {
		case "succeeded":
			assert.Len(t, delivered[id], 1, id)
		case "offline":
			assert.Empty(t, delivered[id], id)
			require.NotNil(t, res.Error)
			assert.Equal(t, 404103, res.Error.Code)
		}
	}
	assert.Contains(t, r.stderr, "1000 targets: 950 succeeded, 50 offline; device status 200 x950\n")
	assert.Contains(t, r.stderr, "... and 40 more; use -o wide or -o json to see every result\n")
}

const faultFleet = `{"groups":[{"name":"f","idPattern":"f-%04d","count":1500,"methods":{"*":{"status":200}}}]}`

var faultFlags = []string{"--no-throttle", "--fault-throttle", "0.08", "--fault-unavailable", "0.05", "--fault-server-error", "0.02",
	"--fault-gateway-timeout", "0.02", "--fault-drop", "0.02"}

// TestFleetFaultsMatchMethodLog: with 429, 503, 500, 504101 and dropped
// connections injected, every device's outcome agrees with hubsim's method
// log, and no device receives the method twice.
func TestFleetFaultsMatchMethodLog(t *testing.T) {
	h := startFleetHub(t, faultFleet, faultFlags...)
	r := h.run(t, "", "setLevel", "--query", "SELECT deviceId FROM devices", "--max-attempts", "12", "--retry-for", "2m", "-c", "64", "-o", "jsonl")
	assert.Equal(t, 4, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	require.Len(t, rs, 1500)
	got := h.deliveries(t, "setLevel")

	counts := outcomes(rs)
	t.Logf("outcomes: %v", counts)
	for id, res := range rs {
		n := len(got[id])
		require.LessOrEqual(t, n, 1, "%s received the method %d times without --idempotent", id, n)
		switch res.Outcome {
		case "succeeded":
			require.Equal(t, 1, n, id)
			assert.Equal(t, 200, got[id][0].Status, id)
		case "unknown": // the connection dropped after the device got it
			require.Equal(t, 1, n, "%s: unknown means the request was sent; hubsim delivered it", id)
			assert.Nil(t, res.Status, id)
		case "timeout": // 504101 injected before delivery
			require.Equal(t, 0, n, id)
			assert.Equal(t, 504101, res.Error.Code, id)
		case "error": // 500 injected before delivery
			require.Equal(t, 0, n, id)
			assert.Equal(t, 500, res.Error.HTTPStatus, id)
		case "throttled":
			require.Equal(t, 0, n, id)
		default:
			t.Fatalf("%s: unexpected outcome %s", id, res.Outcome)
		}
	}
	assert.Equal(t, len(got), counts["succeeded"]+counts["unknown"], "every delivery is a succeeded or unknown target")
	assert.Positive(t, counts["unknown"], "drops happened")
	assert.Positive(t, counts["timeout"], "gateway timeouts happened")
	assert.Positive(t, counts["error"], "server errors happened")

	faults := h.stats(t)["registry"].(map[string]any)["faults"].(map[string]any)
	m := regexp.MustCompile(`, (\d+) throttled with 429\)`).FindStringSubmatch(r.stderr)
	require.NotNil(t, m, r.stderr)
	assert.Equal(t, fmt.Sprint(faults["throttle"]), m[1], "dmctl counted every 429 hubsim sent")
	retried := 0
	for _, res := range rs {
		if res.Attempts > 1 {
			retried++
		}
	}
	assert.Positive(t, retried, "429 and 503 were resent")
}

// TestFleetFaultsIdempotent: with --idempotent, timeouts, 500s and dropped
// connections are resent too, so every device ends up succeeding, and the
// only devices that got the method twice are those whose connection was
// dropped after delivery.
func TestFleetFaultsIdempotent(t *testing.T) {
	h := startFleetHub(t, faultFleet, faultFlags...)
	r := h.run(t, "", "setLevel", "--query", "SELECT deviceId FROM devices", "--max-attempts", "12", "--retry-for", "2m", "-c", "64", "-o", "jsonl", "--idempotent")
	assert.Equal(t, 0, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	require.Len(t, rs, 1500)
	assert.Equal(t, map[string]int{"succeeded": 1500}, outcomes(rs))
	got := h.deliveries(t, "setLevel")
	twice := 0
	for id, res := range rs {
		n := len(got[id])
		require.GreaterOrEqual(t, n, 1, id)
		require.LessOrEqual(t, n, res.Attempts, id)
		if n > 1 {
			twice++
		}
	}
	dropped := h.stats(t)["dropped"].(float64)
	assert.Positive(t, twice, "with --idempotent a dropped call is resent, so the device gets it again")
	assert.Equal(t, int(dropped), totalDeliveries(got)-1500, "every extra delivery is a dropped connection's resend")
}

func totalDeliveries(m map[string][]delivery) int {
	n := 0
	for _, ds := range m {
		n += len(ds)
	}
	return n
}

// lineCounter counts the lines written to it and signals when n are in.
type lineCounter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines int
	at    int
	ch    chan struct{}
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	c.lines += bytes.Count(p, []byte("\n"))
	if c.ch != nil && c.lines >= c.at {
		close(c.ch)
		c.ch = nil
	}
	return len(p), nil
}

func (c *lineCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// startAndStop runs dmctl, sends sig once `at` result lines are out, and
// returns the run.
func (h *fleetHub) startAndStop(t *testing.T, at int, sig syscall.Signal, args ...string) dmctlRun {
	t.Helper()
	cmd := h.dmctl(t, args...)
	out := &lineCounter{at: at, ch: make(chan struct{})}
	reached := out.ch
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case <-reached:
	case <-time.After(2 * time.Minute):
		t.Fatalf("dmctl wrote fewer than %d results in 2 minutes; stderr:\n%s", at, stderr.String())
	}
	require.NoError(t, cmd.Process.Signal(sig))
	err := cmd.Wait()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = -int(ws.Signal())
		}
	} else {
		require.NoError(t, err)
	}
	return dmctlRun{stdout: out.String(), stderr: stderr.String(), code: code}
}

// lastResults merges result lines of several runs: the later run's line
// for a target wins.
func lastResults(t *testing.T, runs ...string) map[string]jsonResult {
	all := map[string]jsonResult{}
	for _, out := range runs {
		for k, v := range jsonlResults(t, out) {
			all[k] = v
		}
	}
	return all
}

const slowFleet = `{"groups":[{"name":"s","idPattern":"s-%%04d","count":%d,"methods":{"*":{"status":200,"latency":"%s"}}}]}`

// TestFleetInterruptAndResume: SIGINT about half way, then --resume: every
// device is invoked exactly once, and the second run invokes only what the
// first did not.
func TestFleetInterruptAndResume(t *testing.T) {
	const n = 2000
	h := startFleetHub(t, fmt.Sprintf(slowFleet, n, "20ms"), "--no-throttle")
	journal := filepath.Join(t.TempDir(), "run.journal")
	first := h.startAndStop(t, n/2, syscall.SIGINT, "ping", "--query", "SELECT deviceId FROM devices", "-c", "16", "-o", "jsonl", "--journal", journal)
	require.Equal(t, 130, first.code, first.stderr)
	assert.Contains(t, first.stderr, "hint: continue with: dmctl invoke --resume "+journal+"\n")
	assert.True(t, strings.HasSuffix(first.stderr, "Interrupted.\n"), first.stderr)
	firstRes := jsonlResults(t, first.stdout)
	done := 0
	for _, r := range firstRes {
		require.NotEqual(t, "unknown", r.Outcome, "calls in flight finished within the grace period")
		if r.Outcome == "succeeded" {
			done++
		}
	}
	assert.GreaterOrEqual(t, done, n/2)
	assert.Less(t, done, n, "the run was interrupted before the end")

	second := h.run(t, "", "--resume", journal, "-o", "jsonl")
	require.Equal(t, 0, second.code, second.stderr)
	secondRes := jsonlResults(t, second.stdout)
	assert.Len(t, secondRes, n-done, "the resumed run invokes only the rest")
	for id := range secondRes {
		assert.NotEqual(t, "succeeded", firstRes[id].Outcome, "%s ran in both runs", id)
	}
	assert.Contains(t, second.stderr, fmt.Sprintf("resumed from %s: %d targets already had a final result and were not run again\n", journal, done))

	all := lastResults(t, first.stdout, second.stdout)
	assert.Equal(t, map[string]int{"succeeded": n}, outcomes(all))
	got := h.deliveries(t, "ping")
	require.Len(t, got, n)
	for id, ds := range got {
		require.Len(t, ds, 1, "%s was invoked %d times", id, len(ds))
	}
}

// TestFleetKillAndResume: SIGKILL about half way, then --resume: the
// targets whose calls were in flight are reported unknown and not invoked
// again; every other device is invoked exactly once.
func TestFleetKillAndResume(t *testing.T) {
	const n = 600
	h := startFleetHub(t, fmt.Sprintf(slowFleet, n, "300ms"), "--no-throttle")
	journal := filepath.Join(t.TempDir(), "run.journal")
	first := h.startAndStop(t, n/2, syscall.SIGKILL, "ping", "--query", "SELECT deviceId FROM devices", "-c", "32", "-o", "jsonl", "--journal", journal)
	require.Equal(t, -int(syscall.SIGKILL), first.code, "killed")
	firstRes := jsonlResults(t, first.stdout)

	// hubsim still answers the calls that were in flight; wait until it has.
	h.Settle(t)
	second := h.run(t, "", "--resume", journal, "-o", "jsonl")
	assert.Equal(t, 4, second.code, "unknown targets are not successes; stderr:\n%s", second.stderr)
	secondRes := jsonlResults(t, second.stdout)
	unknown := map[string]bool{}
	for id, r := range secondRes {
		if r.Outcome == "unknown" {
			unknown[id] = true
			require.NotNil(t, r.Error, id)
			assert.Contains(t, r.Error.Message, "in flight", id)
		} else {
			assert.Equal(t, "succeeded", r.Outcome, id)
		}
	}
	t.Logf("%d results before the kill, %d unknown after it", len(firstRes), len(unknown))
	assert.Positive(t, len(unknown), "calls were in flight at the kill")
	assert.LessOrEqual(t, len(unknown), 32, "at most --concurrency calls are in flight")
	assert.Contains(t, second.stderr, "hint: for an unknown target nobody can tell whether the device ran the method")

	got := h.deliveries(t, "ping")
	deliveredUnknown := 0
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("s-%04d", i)
		ds := got[id]
		if unknown[id] {
			// In flight at the kill: hubsim delivered it unless the process
			// died between the journal's "dispatched" line and the request
			// leaving the socket. Never twice.
			require.LessOrEqual(t, len(ds), 1, id)
			deliveredUnknown += len(ds)
			continue
		}
		require.Len(t, ds, 1, "%s was invoked %d times", id, len(ds))
		_, before := firstRes[id]
		_, after := secondRes[id]
		assert.True(t, before != after, "%s has a result in exactly one of the runs", id)
	}
	t.Logf("%d of %d unknown targets were delivered by hubsim", deliveredUnknown, len(unknown))

	// A third resume runs nothing; with --idempotent it reruns the unknown ones.
	third := h.run(t, "", "--resume", journal, "-o", "jsonl")
	assert.Equal(t, 4, third.code)
	assert.Len(t, jsonlResults(t, third.stdout), len(unknown), "only the unknown ones are reported again")
	fourth := h.run(t, "", "--resume", journal, "--idempotent", "-o", "jsonl")
	assert.Equal(t, 0, fourth.code, fourth.stderr)
	fourthRes := jsonlResults(t, fourth.stdout)
	assert.Len(t, fourthRes, len(unknown))
	assert.Equal(t, map[string]int{"succeeded": len(unknown)}, outcomes(fourthRes))
}

// TestFleetMaxFailuresStopsBeforeNextWave: a first wave full of failures
// stops the rollout with exit 5; only the first wave's devices got the
// method, the rest are reported skipped.
func TestFleetMaxFailuresStopsBeforeNextWave(t *testing.T) {
	h := startFleetHub(t, `{"groups":[
		{"name":"bad","idPattern":"a-bad-%03d","count":20,"methods":{"*":{"status":500}}},
		{"name":"good","idPattern":"b-good-%03d","count":80,"methods":{"*":{"status":200}}}]}`, "--no-throttle")
	r := h.run(t, "", "update", "--query", "SELECT deviceId FROM devices", "--waves", "10,50%,100%", "--max-failures", "5%", "-o", "jsonl")
	require.Equal(t, 5, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	require.Len(t, rs, 100, "every target is reported")
	assert.Equal(t, map[string]int{"failed": 10, "skipped": 90}, outcomes(rs))
	assert.Contains(t, r.stderr, "wave 1 of 3: targets 1 to 10\n")
	assert.NotContains(t, r.stderr, "wave 2")
	assert.Contains(t, r.stderr, "Stopped: the rollout stopped after wave 1 of 3: 10 of 10 finished targets failed, more than --max-failures 5%; 90 targets were not started\n")
	got := h.deliveries(t, "update")
	assert.Len(t, got, 10, "only the first wave was invoked")
	for id := range got {
		assert.True(t, strings.HasPrefix(id, "a-bad-"), id)
	}

	// Bad input in a devices file: exit 2, nothing sent.
	list := filepath.Join(t.TempDir(), "ids.txt")
	require.NoError(t, os.WriteFile(list, []byte("b-good-001\nb-good 002\n"), 0o600))
	bad := h.run(t, "", "other", "--devices-file", list)
	assert.Equal(t, 2, bad.code)
	assert.Contains(t, bad.stderr, "--devices-file "+list+": line 2: invalid device id")
	assert.Empty(t, h.deliveries(t, "other"))
}

// TestFleetRetryFailuresThroughStdin: the README's pipeline — failures of
// one run, selected from its JSONL, fed back with --devices-file -.
func TestFleetRetryFailuresThroughStdin(t *testing.T) {
	h := startFleetHub(t, `{"groups":[{"name":"g","idPattern":"g-%02d","count":30,"connection":{"onlineShare":0.9},"methods":{"*":{"status":200}}}]}`, "--no-throttle")
	first := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices", "-o", "jsonl")
	require.Equal(t, 4, first.code)
	var failed bytes.Buffer
	for _, l := range strings.Split(strings.TrimSpace(first.stdout), "\n") {
		if !strings.Contains(l, `"outcome":"succeeded"`) {
			failed.WriteString(l + "\n")
		}
	}
	require.Equal(t, 3, strings.Count(failed.String(), "\n"))
	second := h.run(t, failed.String(), "ping", "--devices-file", "-", "-o", "name")
	assert.Equal(t, 4, second.code, "still offline")
	assert.Len(t, strings.Split(strings.TrimSpace(second.stdout), "\n"), 3)
	assert.Contains(t, second.stderr, "3 targets: 3 offline\n")
}

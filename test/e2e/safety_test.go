package e2e

// End-to-end tests of issue 10's operator-safety items 4 (every target of a
// stopped run accounted for: Ctrl-C, SIGTERM, a second Ctrl-C, a closed
// stdout), 5 (--resume refuses target flags), 6 (the confirmation prompt on
// a real pseudo-terminal, jobs create's prompt, --yes and --dry-run),
// 7 (exit codes), 8 (the 8 KB query limit), 9 (--version, durations in
// help, the device's message on failure lines, config list's header, -o
// name) and 11 (a resumed run's summary and dmctl journal show). They run
// the built dmctl against the built hubsim and take hubsim's method log
// (and /hubsim/stats) as the ground truth of what reached the devices.
//
// Nothing here sleeps to synchronise: every wait is on an event (a line on
// stderr or on the terminal, a count of result lines, hubsim's count of
// calls taken, the process exiting) and is bounded by safetyDeadline.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// safetyDeadline bounds every wait of this file; reaching it fails the test.
const safetyDeadline = 90 * time.Second

const safetyAllDevices = "SELECT deviceId FROM devices"

// safetyProc is a started dmctl whose exit can be awaited with a deadline.
type safetyProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func safetyStart(t *testing.T, cmd *exec.Cmd) *safetyProc {
	t.Helper()
	require.NoError(t, cmd.Start())
	p := &safetyProc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exit waits for the process and returns its exit code, or -N when signal
// N killed it. out describes what it wrote, for the failure message.
func (p *safetyProc) exit(t *testing.T, out fmt.Stringer) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(safetyDeadline):
		_ = p.cmd.Process.Kill()
		t.Fatalf("%s did not exit within %s; it wrote:\n%s", strings.Join(p.cmd.Args, " "), safetyDeadline, out)
	}
	if p.err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	require.True(t, errors.As(p.err, &exitErr), "%v", p.err)
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -int(ws.Signal())
	}
	return exitErr.ExitCode()
}

// waitFor returns once want has been written (checked on every write,
// bounded by safetyDeadline). ended is closed when nothing more can come (the
// writer is gone): then want must already be there.
func (l *lockedBuffer) waitFor(t *testing.T, want string, ended <-chan struct{}) {
	t.Helper()
	_, ok := l.Await(safetyDeadline, ended, func(text string) bool { return strings.Contains(text, want) })
	if ok {
		return
	}
	select {
	case <-ended:
		t.Fatalf("the output ended without %q; it was:\n%s", want, l.String())
	default:
		t.Fatalf("no %q within %s; the output so far:\n%s", want, safetyDeadline, l.String())
	}
}

// safetyRegistryStat reads a counter of /hubsim/stats' registry section.
func safetyRegistryStat(t *testing.T, h *fleetHub, name string) int {
	t.Helper()
	v, ok := h.stats(t)["registry"].(map[string]any)[name].(float64)
	require.True(t, ok, "hubsim stats have no registry.%s", name)
	return int(v)
}

// safetyRouteTotal is how many requests hubsim answered on a route.
func safetyRouteTotal(t *testing.T, h *fleetHub, route string) int {
	t.Helper()
	reqs, _ := h.stats(t)["requests"].(map[string]any)
	r, _ := reqs[route].(map[string]any)
	n, _ := r["total"].(float64)
	return int(n)
}

// safetyWaitInvoked waits until hubsim has taken at least n method calls
// (registry.methodsInvoked counts a call when it reaches the simulated
// device, before its latency), failing if p exits first.
func safetyWaitInvoked(t *testing.T, h *fleetHub, n int, p *safetyProc, out fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(safetyDeadline)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for safetyRegistryStat(t, h, "methodsInvoked") < n {
		select {
		case <-p.done:
			t.Fatalf("dmctl exited before hubsim took %d calls; it wrote:\n%s", n, out)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hubsim took fewer than %d calls in %s; dmctl wrote:\n%s", n, safetyDeadline, out)
		}
	}
}

// safetyStartAndSignal runs dmctl invoke args, sends sig once hubsim has
// taken `calls` more method calls, and returns the run. It stands beside
// fleetHub.startAndStop for outputs (json, table) that print nothing until
// the run ends, so result lines cannot be the trigger.
func safetyStartAndSignal(t *testing.T, h *fleetHub, calls int, sig syscall.Signal, args ...string) dmctlRun {
	t.Helper()
	base := safetyRegistryStat(t, h, "methodsInvoked")
	cmd := h.dmctl(t, args...)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	p := safetyStart(t, cmd)
	safetyWaitInvoked(t, h, base+calls, p, &stderr)
	require.NoError(t, cmd.Process.Signal(sig))
	code := p.exit(t, &stderr)
	return dmctlRun{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// safetyHubRun runs a dmctl command (not only invoke) against the hub.
func safetyHubRun(t *testing.T, h *fleetHub, stdin string, args ...string) dmctlRun {
	t.Helper()
	return runDmctl(t, dmctlCmd{stdin: stdin, env: map[string]string{"IOTHUB_CONNECTION_STRING": h.ServiceConnectionString}},
		append(args, "--ca-file", h.CAFile)...)
}

// safetyJobs lists the hub's jobs by id.
func safetyJobs(t *testing.T, h *fleetHub) []string {
	t.Helper()
	r := safetyHubRun(t, h, "", "jobs", "list", "-o", "name")
	require.Equal(t, 0, r.code, r.stderr)
	return strings.Fields(r.stdout)
}

func safetyIDs(pattern string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(pattern, i+1)
	}
	return ids
}

func safetyKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// safetyByOutcome returns the sorted ids of the results with outcome o.
func safetyByOutcome(rs map[string]jsonResult, o string) []string {
	var ids []string
	for id, r := range rs {
		if r.Outcome == o {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// safetyJSONResults parses -o json output, requiring one result per target.
func safetyJSONResults(t *testing.T, stdout string) map[string]jsonResult {
	t.Helper()
	out := map[string]jsonResult{}
	for _, r := range parseJSON(t, stdout) {
		_, dup := out[r.DeviceID]
		require.False(t, dup, "%s has two results", r.DeviceID)
		out[r.DeviceID] = r
	}
	return out
}

// safetyTableResults parses -o table output (DEVICE OUTCOME STATUS
// DURATION): one row per target, the device id and outcome of each.
func safetyTableResults(t *testing.T, stdout string) map[string]jsonResult {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	require.NotEmpty(t, lines)
	require.Regexp(t, `^DEVICE +OUTCOME +STATUS +DURATION$`, lines[0])
	out := map[string]jsonResult{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		require.GreaterOrEqual(t, len(f), 2, "table row %q", l)
		_, dup := out[f[0]]
		require.False(t, dup, "%s has two rows", f[0])
		out[f[0]] = jsonResult{DeviceID: f[0], Outcome: f[1]}
	}
	return out
}

// safetyDeliveredOnce asserts that hubsim delivered method to exactly the
// devices want, each once.
func safetyDeliveredOnce(t *testing.T, got map[string][]delivery, want []string) {
	t.Helper()
	assert.Equal(t, want, safetyKeys(got), "the devices hubsim delivered the method to")
	for id, ds := range got {
		assert.Len(t, ds, 1, "%s got the method %d times", id, len(ds))
	}
}

var safetyStoppingRe = regexp.MustCompile(`(?m)^Stopping: no new calls; waiting up to 10s for (\d+) calls? in flight to answer \(Ctrl-C again to stop at once\)\.$`)

// safetyCheckStopped checks a run of the ids stopped by a signal with
// calls still to make: every target reported once, succeeded (status 200)
// or skipped (never sent), the summary counting every target, the Stopping
// line naming the calls in flight, and "Interrupted." last. It returns the
// succeeded ids.
func safetyCheckStopped(t *testing.T, r dmctlRun, ids []string, rs map[string]jsonResult) []string {
	t.Helper()
	require.Equal(t, 130, r.code, r.stderr)
	require.Equal(t, ids, safetyKeys(rs), "every target is reported exactly once")
	for id, res := range rs {
		switch res.Outcome {
		case "succeeded":
			if res.Status != nil || res.Attempts != 0 { // json and jsonl results; a table row has neither
				require.NotNil(t, res.Status, id)
				assert.Equal(t, 200, *res.Status, id)
			}
		case "skipped":
			assert.Nil(t, res.Status, "%s was never sent", id)
			assert.Zero(t, res.Attempts, id)
		default:
			t.Fatalf("%s: outcome %s: calls in flight finish within --grace, the rest are skipped", id, res.Outcome)
		}
	}
	succeeded := safetyByOutcome(rs, "succeeded")
	s, n := len(succeeded), len(ids)
	require.Positive(t, s, "calls were made before the signal")
	require.Less(t, s, n, "the signal stopped the run before its end")
	assert.Contains(t, r.stderr, fmt.Sprintf("\n%d targets: %d succeeded, %d skipped; device status 200 x%d\n", n, s, n-s, s))
	m := safetyStoppingRe.FindStringSubmatch(r.stderr)
	if assert.NotNil(t, m, "the Stopping line; stderr:\n%s", r.stderr) {
		inFlight, _ := strconv.Atoi(m[1])
		assert.True(t, inFlight >= 1 && inFlight <= 16, "%d calls in flight with -c 16", inFlight)
		assert.True(t, strings.HasPrefix(r.stderr, m[0]+"\n"), "the Stopping line comes first; stderr:\n%s", r.stderr)
	}
	assert.True(t, strings.HasSuffix(r.stderr, "\nInterrupted.\n"), "stderr ends with Interrupted.:\n%s", r.stderr)
	return succeeded
}

// TestSafetyInterruptAccountsForEveryTarget (items 4 and 11): SIGINT or
// SIGTERM on a 3000-device --query run with calls in flight: the calls in
// flight finish, the rest of the query is still read, every target not
// started is reported skipped in jsonl, json and table output, in the
// summary and in the journal, hubsim delivered exactly the succeeded ones,
// and --resume runs exactly the rest with a whole-rollout summary; dmctl
// journal show prints the rollout's last word in every format.
func TestSafetyInterruptAccountsForEveryTarget(t *testing.T) {
	const n = 3000
	h := startFleetHub(t, fmt.Sprintf(slowFleet, n, "200ms"), "--no-throttle")
	ids := safetyIDs("s-%04d", n)

	t.Run("SIGINT with -o jsonl and a journal, then --resume", func(t *testing.T) {
		journal := filepath.Join(t.TempDir(), "run.journal")
		first := h.startAndStop(t, 40, syscall.SIGINT, "pingJ", "--query", safetyAllDevices, "-c", "16", "-o", "jsonl", "--journal", journal)
		firstRes := jsonlResults(t, first.stdout)
		succeeded := safetyCheckStopped(t, first, ids, firstRes)
		assert.Contains(t, first.stderr, "\nhint: continue with: dmctl invoke --resume "+journal+"\n")
		safetyDeliveredOnce(t, h.deliveries(t, "pingJ"), succeeded)

		// The journal holds every target, with the outcomes stdout had; as
		// long as some were skipped, journal show exits 4 in every format.
		show := runDmctl(t, dmctlCmd{}, "journal", "show", journal, "-o", "jsonl")
		assert.Equal(t, 4, show.code, "skipped targets are not successes; stderr:\n%s", show.stderr)
		journaled := jsonlResults(t, show.stdout)
		require.Equal(t, ids, safetyKeys(journaled), "every target is in the journal")
		for id, r := range firstRes {
			assert.Equal(t, r.Outcome, journaled[id].Outcome, id)
		}
		for _, o := range []string{"json", "table", "name"} {
			assert.Equal(t, 4, runDmctl(t, dmctlCmd{}, "journal", "show", journal, "-o", o).code, "journal show -o %s", o)
		}

		second := h.run(t, "", "--resume", journal, "-o", "jsonl", "-c", "500")
		require.Equal(t, 0, second.code, second.stderr)
		secondRes := jsonlResults(t, second.stdout)
		rest := safetyByOutcome(firstRes, "skipped")
		assert.Equal(t, rest, safetyKeys(secondRes), "the resumed run runs exactly the targets the first skipped")
		assert.Equal(t, map[string]int{"succeeded": len(rest)}, outcomes(secondRes))
		s, k := len(succeeded), len(rest)
		assert.Contains(t, second.stderr, fmt.Sprintf("resumed from %s: %d targets already had a final result and were not run again\n", journal, s))
		assert.Contains(t, second.stderr, fmt.Sprintf("\n%d targets: %d succeeded; device status 200 x%d\n", k, k, k), "this run's targets")
		assert.Regexp(t, fmt.Sprintf(`(?m)^%d calls \(0 retries\) in \S+, \S+ calls/s; latency p50 \S+, p95 \S+, p99 \S+$`, k), second.stderr, "this run's calls and elapsed time")
		assert.Contains(t, second.stderr, fmt.Sprintf("\nwhole rollout (this run and the journal's earlier ones): %d targets: %d succeeded; device status 200 x%d; %d calls\n", n, n, n, n))
		safetyDeliveredOnce(t, h.deliveries(t, "pingJ"), ids) // across both runs, every device exactly once

		// journal show: the whole rollout's last word, in every format, exit 0.
		show = runDmctl(t, dmctlCmd{}, "journal", "show", journal, "-o", "jsonl")
		require.Equal(t, 0, show.code, show.stderr)
		all := jsonlResults(t, show.stdout)
		assert.Equal(t, ids, safetyKeys(all))
		assert.Equal(t, map[string]int{"succeeded": n}, outcomes(all))
		assert.Contains(t, show.stderr, fmt.Sprintf("%d targets: %d succeeded; device status 200 x%d; %d calls\n", n, n, n, n))
		for id, r := range all {
			if prev, ok := secondRes[id]; ok {
				assert.Equal(t, prev.StartTime, r.StartTime, "%s: the resumed run's result", id)
			} else {
				assert.Equal(t, firstRes[id].StartTime, r.StartTime, "%s: the first run's result", id)
			}
		}

		show = runDmctl(t, dmctlCmd{}, "journal", "show", journal, "-o", "json")
		require.Equal(t, 0, show.code, show.stderr)
		js := safetyJSONResults(t, show.stdout)
		assert.Equal(t, ids, safetyKeys(js))
		assert.Equal(t, map[string]int{"succeeded": n}, outcomes(js))

		show = runDmctl(t, dmctlCmd{}, "journal", "show", journal, "-o", "table")
		require.Equal(t, 0, show.code, show.stderr)
		tbl := safetyTableResults(t, show.stdout)
		assert.Equal(t, ids, safetyKeys(tbl))
		assert.Equal(t, map[string]int{"succeeded": n}, outcomes(tbl))

		show = runDmctl(t, dmctlCmd{}, "journal", "show", journal, "-o", "name")
		require.Equal(t, 0, show.code, show.stderr)
		assert.Equal(t, strings.Join(ids, "\n")+"\n", show.stdout, "-o name: every target, sorted")
	})

	t.Run("SIGTERM with -o json", func(t *testing.T) {
		r := safetyStartAndSignal(t, h, 32, syscall.SIGTERM, "pingS", "--query", safetyAllDevices, "-c", "16", "-o", "json")
		succeeded := safetyCheckStopped(t, r, ids, safetyJSONResults(t, r.stdout))
		safetyDeliveredOnce(t, h.deliveries(t, "pingS"), succeeded)
	})

	t.Run("SIGINT with -o table", func(t *testing.T) {
		r := safetyStartAndSignal(t, h, 32, syscall.SIGINT, "pingT", "--query", safetyAllDevices, "-c", "16", "-o", "table")
		succeeded := safetyCheckStopped(t, r, ids, safetyTableResults(t, r.stdout))
		safetyDeliveredOnce(t, h.deliveries(t, "pingT"), succeeded)
	})
}

// TestSafetySecondInterruptStopsAtOnce (item 4): a second SIGINT during the
// grace period stops at once: the calls in flight (devices answer after 5s,
// --grace is 5m) are reported unknown, nothing else was sent, the rest of
// the query is not read and a note says so, exit 130.
func TestSafetySecondInterruptStopsAtOnce(t *testing.T) {
	h := startFleetHub(t, fmt.Sprintf(slowFleet, 200, "5s"), "--no-throttle")
	journal := filepath.Join(t.TempDir(), "run.journal")
	cmd := h.dmctl(t, "slowPing", "--query", safetyAllDevices, "-c", "16", "--grace", "5m", "-o", "jsonl", "--journal", journal)
	var stdout lockedBuffer
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	p := safetyStart(t, cmd)
	safetyWaitInvoked(t, h, 16, p, stderr) // all 16 calls are at their devices, which answer in 5s
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	stderr.waitFor(t, "Stopping: no new calls; waiting up to 5m for 16 calls in flight to answer (Ctrl-C again to stop at once).\n", p.done)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	code := p.exit(t, stderr)
	errText := stderr.String()
	require.Equal(t, 130, code, errText)

	assert.Contains(t, errText, "\nStopping at once: calls still in flight are reported unknown (they may have reached the device).\n")
	rs := jsonlResults(t, stdout.String())
	unknown := safetyByOutcome(rs, "unknown")
	assert.Len(t, unknown, 16, "the calls in flight end as unknown, not waited for")
	for _, id := range unknown {
		if assert.NotNil(t, rs[id].Error, id) {
			assert.Contains(t, rs[id].Error.Message, "interrupted", id)
		}
	}
	skipped := safetyByOutcome(rs, "skipped")
	assert.Equal(t, len(rs), len(unknown)+len(skipped), "every reported target is unknown or skipped: %v", outcomes(rs))
	assert.Less(t, len(rs), 200, "the run stopped before reading the whole query")
	summary := fmt.Sprintf("\n%d targets: 16 unknown\n", len(rs))
	if len(skipped) > 0 {
		summary = fmt.Sprintf("\n%d targets: 16 unknown, %d skipped\n", len(rs), len(skipped))
	}
	assert.Contains(t, errText, summary)
	assert.Contains(t, errText, "\nnote: the run stopped before its targets were read to the end ")
	assert.True(t, strings.HasSuffix(errText, "\nInterrupted.\n"), errText)

	// What reached the devices: only the 16 calls in flight reached hubsim
	// at all, and only those can have been delivered.
	assert.Equal(t, 16, safetyRegistryStat(t, h, "methodsInvoked"), "no call was started after the first SIGINT")
	for id := range h.deliveries(t, "slowPing") {
		assert.Contains(t, unknown, id, "%s was delivered but not reported unknown", id)
	}
	show := runDmctl(t, dmctlCmd{}, "journal", "show", journal, "-o", "jsonl")
	assert.Equal(t, 4, show.code, show.stderr)
	journaled := jsonlResults(t, show.stdout)
	assert.Equal(t, safetyKeys(rs), safetyKeys(journaled), "the journal has the results stdout has")
	assert.Equal(t, unknown, safetyByOutcome(journaled, "unknown"))
}

// safetyIntoClosedPipe runs dmctl invoke args with stdout to a real pipe,
// reads one line from it, closes the read end and waits for dmctl's exit.
func safetyIntoClosedPipe(t *testing.T, h *fleetHub, args ...string) (string, dmctlRun) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd := h.dmctl(t, args...)
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	p := safetyStart(t, cmd)
	require.NoError(t, w.Close()) // dmctl holds the only write end
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(r).ReadString('\n')
		lines <- l
	}()
	var first string
	select {
	case first = <-lines:
	case <-time.After(safetyDeadline):
		t.Fatalf("no result line within %s; stderr:\n%s", safetyDeadline, stderr.String())
	}
	require.NoError(t, r.Close()) // the reader exits, like head -1
	code := p.exit(t, &stderr)
	return first, dmctlRun{stderr: stderr.String(), code: code}
}

var safetyPipeStoppingRe = regexp.MustCompile(`(?m)^Stopping \(stdout was closed\): no new calls(; waiting up to 10s for \d+ calls? in flight to answer \(Ctrl-C again to stop at once\)| are started)\.$`)

// TestSafetyClosedStdout (item 4): a closed stdout (EPIPE on a real pipe
// whose reader exited) stops the run like Ctrl-C: exit 130, not 141 nor
// killed by SIGPIPE; the summary counts every target; the journal holds
// every target and hubsim delivered exactly its succeeded ones.
func TestSafetyClosedStdout(t *testing.T) {
	const n = 3000
	h := startFleetHub(t, fmt.Sprintf(slowFleet, n, "200ms"), "--no-throttle")
	ids := safetyIDs("s-%04d", n)
	const stopped = "\nStopped: stdout was closed (its reader exited): no new calls were started; the summary above counts every target.\n"
	summaryRe := regexp.MustCompile(fmt.Sprintf(`(?m)^%d targets: (\d+) succeeded, (\d+) skipped; device status 200 x(\d+)$`, n))

	t.Run("with --journal", func(t *testing.T) {
		journal := filepath.Join(t.TempDir(), "run.journal")
		first, r := safetyIntoClosedPipe(t, h, "pipeJ", "--query", safetyAllDevices, "-c", "16", "-o", "jsonl", "--journal", journal)
		require.Equal(t, 130, r.code, "exit 130, not 141 or killed by SIGPIPE; stderr:\n%s", r.stderr)
		assert.Regexp(t, safetyPipeStoppingRe, r.stderr)
		assert.True(t, strings.HasSuffix(r.stderr, stopped), r.stderr)
		assert.Contains(t, r.stderr, "\nhint: continue with: dmctl invoke --resume "+journal+"\n")
		m := summaryRe.FindStringSubmatch(r.stderr)
		require.NotNil(t, m, "a summary counting all %d targets; stderr:\n%s", n, r.stderr)

		show := runDmctl(t, dmctlCmd{}, "journal", "show", journal, "-o", "jsonl")
		assert.Equal(t, 4, show.code, show.stderr)
		journaled := jsonlResults(t, show.stdout)
		require.Equal(t, ids, safetyKeys(journaled), "the journal holds every target once")
		succeeded := safetyByOutcome(journaled, "succeeded")
		skipped := safetyByOutcome(journaled, "skipped")
		assert.Equal(t, n, len(succeeded)+len(skipped), "journaled outcomes are succeeded or skipped: %v", outcomes(journaled))
		assert.Equal(t, []string{strconv.Itoa(len(succeeded)), strconv.Itoa(len(skipped)), strconv.Itoa(len(succeeded))}, m[1:], "the summary agrees with the journal")
		assert.Less(t, len(succeeded), n, "the run stopped early")
		safetyDeliveredOnce(t, h.deliveries(t, "pipeJ"), succeeded)

		var res jsonResult
		require.NoError(t, json.Unmarshal([]byte(first), &res), first)
		assert.Equal(t, "succeeded", res.Outcome)
		assert.Contains(t, succeeded, res.DeviceID, "the line the reader took is a delivered target")
	})

	t.Run("without --journal", func(t *testing.T) {
		_, r := safetyIntoClosedPipe(t, h, "pipeN", "--query", safetyAllDevices, "-c", "16", "-o", "jsonl")
		require.Equal(t, 130, r.code, r.stderr)
		assert.Regexp(t, safetyPipeStoppingRe, r.stderr)
		assert.True(t, strings.HasSuffix(r.stderr, stopped), r.stderr)
		assert.Regexp(t, `(?m)^hint: .*--journal`, r.stderr, "says how to keep every result next time")
		m := summaryRe.FindStringSubmatch(r.stderr)
		require.NotNil(t, m, r.stderr)
		s, _ := strconv.Atoi(m[1])
		got := h.deliveries(t, "pipeN")
		assert.Len(t, got, s, "hubsim delivered as many calls as the summary counts succeeded")
		assert.Equal(t, len(got), totalDeliveries(got), "no device got it twice")
	})
}

// TestSafetyResumeRefusesTargetFlags (item 5): --resume with a target flag
// exits 2 and sends nothing; the journal's pending targets are still there
// for a plain --resume.
func TestSafetyResumeRefusesTargetFlags(t *testing.T) {
	h := startFleetHub(t, `{"groups":[
		{"name":"bad","idPattern":"a-bad-%d","count":5,"methods":{"*":{"status":500}}},
		{"name":"good","idPattern":"b-good-%02d","count":20,"methods":{"*":{"status":200}}}]}`, "--no-throttle")
	journal := filepath.Join(t.TempDir(), "run.journal")
	first := h.run(t, "", "update", "--query", safetyAllDevices, "--waves", "5,100%", "--max-failures", "10%", "-o", "jsonl", "--journal", journal)
	require.Equal(t, 5, first.code, first.stderr)
	require.Equal(t, map[string]int{"failed": 5, "skipped": 20}, outcomes(jsonlResults(t, first.stdout)))
	bad := safetyIDs("a-bad-%d", 5)
	good := safetyIDs("b-good-%02d", 20)
	list := filepath.Join(t.TempDir(), "more.txt")
	require.NoError(t, os.WriteFile(list, []byte("b-good-01\n"), 0o600))

	for _, c := range []struct {
		flag, stdin string
		args        []string
	}{
		{"--device", "", []string{"--device", "b-good-01"}},
		{"--query", "", []string{"--query", "SELECT deviceId FROM devices WHERE deviceId = 'b-good-01'"}},
		{"--devices-file", "", []string{"--devices-file", list}},
		{"--devices-file", "b-good-01\n", []string{"--devices-file", "-"}}, // the journaled run did not read stdin
		{"--module", "", []string{"--module", "m1"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := h.run(t, c.stdin, append([]string{"--resume", journal}, c.args...)...)
			assert.Equal(t, 2, r.code, r.stderr)
			assert.Contains(t, r.stderr, "--resume "+journal+" takes its targets from the journal; "+c.flag+" cannot add to or replace them")
			assert.Empty(t, r.stdout)
		})
	}
	safetyDeliveredOnce(t, h.deliveries(t, "update"), bad) // only the first run's wave

	second := h.run(t, "", "--resume", journal, "-o", "jsonl")
	assert.Equal(t, 4, second.code, "the whole rollout has failed targets; stderr:\n%s", second.stderr)
	secondRes := jsonlResults(t, second.stdout)
	assert.Equal(t, good, safetyKeys(secondRes), "the journal's pending targets, none dropped")
	assert.Equal(t, map[string]int{"succeeded": 20}, outcomes(secondRes))
	safetyDeliveredOnce(t, h.deliveries(t, "update"), append(bad, good...))
}

// safetyTerm is dmctl running with stdin and stderr on a pseudo-terminal
// (its controlling terminal) and stdout to a buffer.
type safetyTerm struct {
	p      *safetyProc
	ptmx   *os.File
	screen *lockedBuffer // what dmctl wrote to the terminal, and the echo of what was typed
	copied chan struct{} // closed when the terminal has nothing more to read
	stdout *lockedBuffer
}

func safetyOnTerminal(t *testing.T, h *fleetHub, args ...string) *safetyTerm {
	t.Helper()
	ptmx, tty, err := pty.Open()
	require.NoError(t, err)
	t.Cleanup(func() { _ = ptmx.Close() })
	require.NoError(t, pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 250}))
	cmd := exec.Command(binary(t, "dmctl"), append(args, "--ca-file", h.CAFile)...)
	cmd.Env = append(cleanEnv(t, dmctlCmd{}), append(h.env(), "NO_COLOR=1", "TERM=xterm")...)
	st := &safetyTerm{ptmx: ptmx, screen: &lockedBuffer{}, copied: make(chan struct{}), stdout: &lockedBuffer{}}
	cmd.Stdin, cmd.Stderr, cmd.Stdout = tty, tty, st.stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	st.p = safetyStart(t, cmd)
	require.NoError(t, tty.Close()) // dmctl holds the terminal now; its exit ends the reads (EIO)
	go func() {
		_, _ = io.Copy(st.screen, ptmx)
		close(st.copied)
	}()
	return st
}

func (st *safetyTerm) waitFor(t *testing.T, want string) {
	t.Helper()
	st.screen.waitFor(t, want, st.copied)
}

func (st *safetyTerm) typeText(t *testing.T, s string) {
	t.Helper()
	_, err := st.ptmx.Write([]byte(s))
	require.NoError(t, err)
}

// exit waits for dmctl to exit and for the terminal to be read to its end.
func (st *safetyTerm) exit(t *testing.T) int {
	t.Helper()
	code := st.p.exit(t, st.screen)
	select {
	case <-st.copied:
	case <-time.After(safetyDeadline):
		t.Fatalf("the terminal was not closed within %s after dmctl exited", safetyDeadline)
	}
	return code
}

// TestSafetyPrompt (item 6): on a terminal a run over several targets asks
// first; SIGINT (sent to dmctl, or typed as Ctrl-C) at the question exits
// 130 at once without waiting for Enter and sends nothing; n sends nothing;
// y invokes; one target never asks. jobs create asks too, takes --yes and
// has --dry-run.
func TestSafetyPrompt(t *testing.T) {
	h := startFleetHub(t, `{"groups":[{"name":"d","idPattern":"d-%d","count":4,"methods":{"*":{"status":200}}}]}`, "--no-throttle")
	question := `Invoke "reboot" on 2 targets on hub ` + h.HostName + `? [y/N] `
	invokeTwo := []string{"invoke", "reboot", "--device", "d-1", "--device", "d-2"}

	for _, c := range []struct {
		name      string
		interrupt func(t *testing.T, st *safetyTerm)
	}{
		{"SIGINT sent to dmctl", func(t *testing.T, st *safetyTerm) { require.NoError(t, st.p.cmd.Process.Signal(syscall.SIGINT)) }},
		{"Ctrl-C typed on the terminal", func(t *testing.T, st *safetyTerm) { st.typeText(t, "\x03") }},
	} {
		t.Run(c.name+" at the prompt", func(t *testing.T) {
			st := safetyOnTerminal(t, h, invokeTwo...)
			st.waitFor(t, question)
			st.typeText(t, "y") // a yes half typed, no Enter
			c.interrupt(t, st)
			code := st.exit(t) // at once: nobody presses Enter
			assert.Equal(t, 130, code, st.screen.String())
			assert.Contains(t, st.screen.String(), "Interrupted: nothing was sent.")
			assert.NotContains(t, st.screen.String(), "Cancelled")
			assert.Empty(t, st.stdout.String())
			_, _ = st.ptmx.Write([]byte("\n")) // Enter, too late: there is nobody to take the line
			assert.Empty(t, h.deliveries(t, "reboot"))
		})
	}

	t.Run("n at the prompt", func(t *testing.T) {
		st := safetyOnTerminal(t, h, invokeTwo...)
		st.waitFor(t, question)
		st.typeText(t, "n\r")
		assert.Equal(t, 2, st.exit(t), st.screen.String())
		assert.Contains(t, st.screen.String(), "Cancelled: nothing was sent.")
		assert.Empty(t, st.stdout.String())
		assert.Empty(t, h.deliveries(t, "reboot"))
	})

	t.Run("y at the prompt", func(t *testing.T) {
		st := safetyOnTerminal(t, h, invokeTwo...)
		st.waitFor(t, question)
		st.typeText(t, "y\r")
		require.Equal(t, 0, st.exit(t), st.screen.String())
		rows := safetyTableResults(t, st.stdout.String())
		assert.Equal(t, map[string]int{"succeeded": 2}, outcomes(rows))
		assert.Equal(t, []string{"d-1", "d-2"}, safetyKeys(rows))
		safetyDeliveredOnce(t, h.deliveries(t, "reboot"), []string{"d-1", "d-2"})
	})

	t.Run("one target never asks", func(t *testing.T) {
		st := safetyOnTerminal(t, h, "invoke", "reboot", "--device", "d-3")
		require.Equal(t, 0, st.exit(t), st.screen.String()) // nothing typed: a question would wait until the deadline
		assert.NotContains(t, st.screen.String(), "[y/N]")
		safetyDeliveredOnce(t, h.deliveries(t, "reboot"), []string{"d-1", "d-2", "d-3"})
	})

	t.Run("jobs create asks on a terminal; n creates nothing", func(t *testing.T) {
		st := safetyOnTerminal(t, h, "jobs", "create", "reboot", "--query-condition", "*", "--job-id", "safety-no")
		st.waitFor(t, `Create job safety-no to invoke "reboot" on devices where * on hub `+h.HostName+` (4 devices match now)? [y/N] `)
		st.typeText(t, "n\r")
		assert.Equal(t, 2, st.exit(t), st.screen.String())
		assert.Contains(t, st.screen.String(), "Cancelled: nothing was sent.")
		assert.Empty(t, safetyJobs(t, h), "no job was created")
	})

	t.Run("jobs create --dry-run", func(t *testing.T) {
		r := safetyHubRun(t, h, "", "jobs", "create", "reboot", "--query-condition", "*", "--job-id", "safety-dry", "--dry-run", "-o", "json")
		require.Equal(t, 0, r.code, r.stderr)
		var job struct {
			JobID          string `json:"jobId"`
			Type           string `json:"type"`
			QueryCondition string `json:"queryCondition"`
			Method         string `json:"method"`
			Statistics     struct {
				Devices int `json:"devices"`
				Pending int `json:"pending"`
			} `json:"statistics"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &job), r.stdout)
		assert.Equal(t, "safety-dry", job.JobID)
		assert.Equal(t, "scheduleDeviceMethod", job.Type)
		assert.Equal(t, "*", job.QueryCondition)
		assert.Equal(t, "reboot", job.Method)
		assert.Equal(t, 4, job.Statistics.Devices, "the devices the condition matches now")
		assert.Equal(t, `Dry run: job safety-dry would invoke "reboot" on devices where * on hub `+h.HostName+": 4 devices match now. Nothing was created.\n", r.stderr)
		assert.Empty(t, safetyJobs(t, h), "no job was created")
	})

	t.Run("jobs create --yes on a terminal does not ask", func(t *testing.T) {
		st := safetyOnTerminal(t, h, "jobs", "create", "reboot", "--query-condition", "*", "--job-id", "safety-yes", "--yes")
		require.Equal(t, 0, st.exit(t), st.screen.String()) // nothing typed
		assert.NotContains(t, st.screen.String(), "[y/N]")
		assert.Contains(t, st.screen.String(), "Created job safety-yes (")
		assert.Equal(t, []string{"safety-yes"}, safetyJobs(t, h))
	})
}

// TestSafetyExitCodes (item 7): not found (job, device, twin path) exits 4;
// a condition the hub refuses exits 2 with the hub's message; a query that
// matches nothing exits 0 directly and with --via job; an empty list with
// --via job creates no job.
func TestSafetyExitCodes(t *testing.T) {
	h := startFleetHub(t, `{"groups":[{"name":"e","idPattern":"e-%d","count":3,"reported":{"fw":"1.0"},"methods":{"*":{"status":200}}}]}`, "--no-throttle")

	t.Run("jobs show of a missing job", func(t *testing.T) {
		r := safetyHubRun(t, h, "", "jobs", "show", "no-such-job")
		assert.Equal(t, 4, r.code, r.stderr)
		assert.Contains(t, r.stderr, "hub answered 404")
	})
	t.Run("twin show of a missing device", func(t *testing.T) {
		r := safetyHubRun(t, h, "", "twin", "show", "--device", "no-such-device")
		assert.Equal(t, 4, r.code, r.stderr)
		assert.Contains(t, r.stderr, "hub answered 404")
	})
	t.Run("twin show of a missing path", func(t *testing.T) {
		r := safetyHubRun(t, h, "", "twin", "show", "--device", "e-1", "--path", "properties.reported.nope")
		assert.Equal(t, 4, r.code, r.stderr)
		assert.Contains(t, r.stderr, "properties.reported.nope")
		ok := safetyHubRun(t, h, "", "twin", "show", "--device", "e-1", "--path", "properties.reported.fw")
		assert.Equal(t, 0, ok.code, ok.stderr)
		assert.Contains(t, ok.stdout, "1.0")
	})
	t.Run("jobs create with a condition the hub refuses", func(t *testing.T) {
		r := safetyHubRun(t, h, "", "jobs", "create", "reboot", "--query-condition", "a ==== b")
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, "hub answered 400 400004")
		assert.Empty(t, safetyJobs(t, h))
	})
	t.Run("--via job with an empty devices file", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty.txt")
		require.NoError(t, os.WriteFile(empty, nil, 0o600))
		r := h.run(t, "", "ping", "--via", "job", "--devices-file", empty)
		assert.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stderr, "note: no targets: nothing was sent (no job was created)\n")
		assert.Empty(t, safetyJobs(t, h), "no job was created")
	})
	t.Run("a query matching no device", func(t *testing.T) {
		r := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices WHERE deviceId = 'zzz'")
		assert.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stderr, "note: no targets: nothing was sent\n")
	})
	t.Run("a query matching no device, --via job", func(t *testing.T) {
		r := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices WHERE deviceId = 'zzz'", "--via", "job")
		assert.Equal(t, 0, r.code, "the same code as a direct run; stderr:\n%s", r.stderr)
		m := regexp.MustCompile(`(?m)^job (\S+) completed: 0/0 devices done`).FindStringSubmatch(r.stderr)
		require.NotNil(t, m, "the job completes with no device; stderr:\n%s", r.stderr)
		assert.Equal(t, []string{m[1]}, safetyJobs(t, h))
	})
	assert.Empty(t, h.deliveries(t, "ping"), "no device got anything")
	assert.Empty(t, h.deliveries(t, "reboot"))
}

// safetyQueryOfLength is a query of exactly n ASCII characters selecting
// q-1 and q-2 (padded with spaces inside its IN list).
func safetyQueryOfLength(n int) string {
	head, tail := "SELECT deviceId FROM devices WHERE deviceId IN ['q-1',", "'q-2']"
	return head + strings.Repeat(" ", n-len(head)-len(tail)) + tail
}

// TestSafetyQueryLimit (item 8): a --query over 8192 characters is refused
// before anything is sent; one of exactly 8192 is sent.
func TestSafetyQueryLimit(t *testing.T) {
	h := startFleetHub(t, `{"groups":[{"name":"q","idPattern":"q-%d","count":2,"methods":{"*":{"status":200}}}]}`, "--no-throttle")
	const route = "POST /devices/query"

	long := safetyQueryOfLength(8193)
	require.Len(t, long, 8193)
	r := h.run(t, "", "ping", "--query", long)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "the query has 8193 characters; IoT Hub accepts queries of at most 8192")
	assert.Zero(t, safetyRouteTotal(t, h, route), "the query was not sent")
	assert.Empty(t, h.deliveries(t, "ping"))

	r = h.run(t, "", "ping", "--query", safetyQueryOfLength(8192), "-o", "name")
	assert.Equal(t, 0, r.code, "a query of exactly 8192 characters is within the limit; stderr:\n%s", r.stderr)
	assert.Equal(t, "q-1\nq-2\n", r.stdout)
	assert.Positive(t, safetyRouteTotal(t, h, route))
	safetyDeliveredOnce(t, h.deliveries(t, "ping"), []string{"q-1", "q-2"})
}

// TestSafetyMessagesAndHelp (item 9): --version is dmctl version; help
// writes durations as the docs do; a device's error message is on its
// failure line; config list has a header; -o name prints every target.
func TestSafetyMessagesAndHelp(t *testing.T) {
	t.Run("--version", func(t *testing.T) {
		v := runDmctl(t, dmctlCmd{}, "version")
		require.Equal(t, 0, v.code, v.stderr)
		require.NotEmpty(t, v.stdout)
		flag := runDmctl(t, dmctlCmd{}, "--version")
		assert.Equal(t, 0, flag.code, flag.stderr)
		assert.Equal(t, v.stdout, flag.stdout)
	})

	t.Run("durations in help", func(t *testing.T) {
		r := runDmctl(t, dmctlCmd{}, "invoke", "--help")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Regexp(t, `(?m)^\s+--wait-timeout duration\s.*\(default 10m\)$`, r.stdout)
		assert.Regexp(t, `(?m)^\s+--retry-for duration\s.*\(default 2m\)$`, r.stdout)
		assert.Regexp(t, `(?m)^\s+--grace duration\s.*\(default 10s\)$`, r.stdout)
		assert.NotContains(t, r.stdout, "600s")
		assert.NotContains(t, r.stdout, "120s")
	})

	t.Run("device message on the failure line, -o name prints every target", func(t *testing.T) {
		h := startFleetHub(t, `{"groups":[
			{"name":"good","idPattern":"g-%d","count":2,"methods":{"*":{"status":200}}},
			{"name":"bad","idPattern":"bad-1","count":1,"methods":{"*":{"status":500,"payload":{"message":"disk full"}}}},
			{"name":"off","idPattern":"off-1","count":1,"connection":{"onlineShare":0}}]}`, "--no-throttle")
		r := h.run(t, "", "setLevel", "--device", "g-2", "--device", "off-1", "--device", "bad-1", "--device", "g-1", "-o", "name")
		assert.Equal(t, 4, r.code, r.stderr)
		assert.Equal(t, "bad-1\ng-1\ng-2\noff-1\n", r.stdout, "every target, sorted, whatever its outcome")
		assert.Regexp(t, `(?m)^bad-1: failed: the device answered status 500: disk full$`, r.stderr)
		assert.Regexp(t, `(?m)^off-1: offline`, r.stderr)
		safetyDeliveredOnce(t, h.deliveries(t, "setLevel"), []string{"bad-1", "g-1", "g-2"})
	})

	t.Run("config list has a header", func(t *testing.T) {
		env := dmctlCmd{env: map[string]string{"DMCTL_CONFIG_DIR": t.TempDir()}}
		r := runDmctl(t, env, "config", "set-profile", "prod", "--hub", "myhub.azure-devices.net", "--auth", "azure-cli")
		require.Equal(t, 0, r.code, r.stderr)
		r = runDmctl(t, env, "config", "set-profile", "lab", "--hub", "lab.azure-devices.net")
		require.Equal(t, 0, r.code, r.stderr)
		r = runDmctl(t, env, "config", "list")
		require.Equal(t, 0, r.code, r.stderr)
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		require.Len(t, lines, 3, r.stdout)
		assert.Regexp(t, `^CURRENT +NAME +HUB +AUTH$`, lines[0])
		assert.Regexp(t, `^ +lab +lab\.azure-devices\.net +-$`, lines[1])
		assert.Regexp(t, `^\* +prod +myhub\.azure-devices\.net +azure-cli$`, lines[2], "the first profile saved is the current one")
	})
}

// TestSafetyPrintingCommandIntoClosedPipe: a command that only prints
// (journal show) whose reader exits early (| head -1) ends quietly with
// exit 0, not with an error about a broken pipe nor killed by SIGPIPE.
func TestSafetyPrintingCommandIntoClosedPipe(t *testing.T) {
	const n = 2000
	h := startFleetHub(t, fmt.Sprintf(slowFleet, n, "0ms"), "--no-throttle")
	journal := filepath.Join(t.TempDir(), "run.journal")
	r := h.run(t, "", "pipeShow", "--query", safetyAllDevices, "-o", "name", "--journal", journal)
	require.Equal(t, 0, r.code, r.stderr)

	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	require.NoError(t, pr.Close()) // the reader is gone before dmctl writes: every write is EPIPE
	cmd := exec.Command(binary(t, "dmctl"), "journal", "show", journal, "-o", "jsonl")
	cmd.Env = cleanEnv(t, dmctlCmd{})
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &stderr
	require.NoError(t, cmd.Start())
	require.NoError(t, pw.Close())
	err = cmd.Wait()
	require.NoError(t, err, "exit 0; stderr:\n%s", stderr.String())
	assert.NotContains(t, stderr.String(), "broken pipe")
	assert.NotContains(t, stderr.String(), "Error:")
}

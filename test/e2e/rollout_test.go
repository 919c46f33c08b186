package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rolloutFleet is 200 devices that take 20-150 ms to answer, a fifth of
// them offline (the set fixed by the seed).
const rolloutFleet = `{"groups":[{"name":"field","idPattern":"dev-%03d","count":200,
	"connection":{"onlineShare":0.8},
	"methods":{"*":{"status":200,"latency":{"dist":"uniform","min":"20ms","max":"150ms"}}}}]}`

// TestAbortIfOfflineShareAfterTheMinimumSample: --abort-if 'offline>10%'
// judges the offline share once --min-sample targets have finished, then
// sends nothing new: every target not started is reported skipped (never
// delivered), the summary names the criterion, dmctl exits 5, and --resume
// runs the skipped ones.
func TestAbortIfOfflineShareAfterTheMinimumSample(t *testing.T) {
	h := startFleetHub(t, rolloutFleet, "--no-throttle")
	journal := filepath.Join(t.TempDir(), "run.journal")
	r := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices", "-c", "4",
		"--abort-if", "offline>10%", "--min-sample", "30", "--journal", journal, "-o", "jsonl")
	require.Equal(t, 5, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	require.Len(t, rs, 200, "every target is reported")
	got := outcomes(rs)
	assert.Positive(t, got["skipped"], "the targets not started are skipped")
	assert.Equal(t, 200, got["succeeded"]+got["offline"]+got["skipped"], "%v", got)

	m := regexp.MustCompile(`Stopped: the rollout stopped: (\d+) of (\d+) finished targets ended offline, more than --abort-if offline>10%; (\d+) targets were not started`).FindStringSubmatch(r.stderr)
	require.NotNil(t, m, r.stderr)
	offline, _ := strconv.Atoi(m[1])
	finished, _ := strconv.Atoi(m[2])
	notStarted, _ := strconv.Atoi(m[3])
	assert.GreaterOrEqual(t, finished, 30, "not judged before the minimum sample")
	assert.Greater(t, offline*10, finished, "the share that stopped it is over 10%")
	assert.Equal(t, got["skipped"], notStarted)
	assert.GreaterOrEqual(t, got["offline"]+got["succeeded"], finished, "calls in flight when it stopped finished and were reported too")

	delivered := h.deliveries(t, "ping")
	assert.Len(t, delivered, got["succeeded"], "only the online devices that were called got the method")
	for id, res := range rs {
		if res.Outcome == "skipped" {
			assert.NotContains(t, delivered, id, "%s was skipped but delivered", id)
		}
	}

	// --resume runs exactly the skipped ones, without the criterion.
	again := h.run(t, "", "--resume", journal, "-o", "jsonl")
	assert.Equal(t, 4, again.code, again.stderr) // offline devices remain
	rs2 := jsonlResults(t, again.stdout)
	assert.Len(t, rs2, got["skipped"])
	for id := range rs2 {
		assert.Equal(t, "skipped", rs[id].Outcome, "%s ran twice", id)
	}
	for id, ds := range h.deliveries(t, "ping") {
		assert.Len(t, ds, 1, "%s was invoked more than once", id)
	}
}

// gateFleet is 100 devices that answer in 20-100 ms.
const gateFleet = `{"groups":[{"name":"field","idPattern":"dev-%03d","count":100,
	"methods":{"*":{"status":200,"latency":{"dist":"uniform","min":"20ms","max":"100ms"}}}}]}`

// TestGateStopsAfterTheFirstWave: a --gate that exits non-zero after wave 1
// stops the rollout there (exit 5): wave 2 is never sent, the rest is
// skipped, and the journal records the gate's exit code.
func TestGateStopsAfterTheFirstWave(t *testing.T) {
	h := startFleetHub(t, gateFleet, "--no-throttle")
	journal := filepath.Join(t.TempDir(), "run.journal")
	r := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices", "--waves", "10,50%,100%",
		"--gate", "echo checking wave $DMCTL_WAVE of $DMCTL_WAVES; exit 3", "--journal", journal, "-o", "jsonl")
	require.Equal(t, 5, r.code, r.stderr)
	assert.Equal(t, map[string]int{"succeeded": 10, "skipped": 90}, outcomes(jsonlResults(t, r.stdout)))
	assert.Contains(t, r.stderr, "gate: checking wave 1 of 3\n")
	assert.Contains(t, r.stderr, "Stopped: the rollout stopped after wave 1 of 3: the --gate exited with status 3; 90 targets were not started\n")
	assert.NotContains(t, r.stderr, "wave 2")
	assert.Len(t, h.deliveries(t, "ping"), 10, "only wave 1 was sent")
	b, err := os.ReadFile(journal)
	require.NoError(t, err)
	assert.Regexp(t, `\{"event":"gate","wave":1,"waves":3,"passed":false,"exitCode":3,"reason":"exited with status 3","time":"[^"]+"\}\n`, string(b))
	assert.NotContains(t, string(b), "checking", "the gate's command is not journaled")

	// --resume runs the rest (the gate runs again between the resumed waves).
	again := h.run(t, "", "--resume", journal, "--waves", "50%,100%", "--gate", "true", "-o", "jsonl")
	require.Equal(t, 0, again.code, again.stderr)
	assert.Len(t, jsonlResults(t, again.stdout), 90)
	for id, ds := range h.deliveries(t, "ping") {
		assert.Len(t, ds, 1, id)
	}
}

// TestGateReadsTheWaveResults: a passing gate runs after every wave (and
// the last, with --gate-after-last) with that wave's results and all so far
// in DMCTL_WAVE_RESULTS and DMCTL_RESULTS, in the -o jsonl shape.
func TestGateReadsTheWaveResults(t *testing.T) {
	h := startFleetHub(t, gateFleet, "--no-throttle")
	out := t.TempDir()
	gate := `cp "$DMCTL_WAVE_RESULTS" "` + out + `/wave-$DMCTL_WAVE.jsonl" && ` +
		`echo "$DMCTL_WAVE/$DMCTL_WAVES $(wc -l < "$DMCTL_RESULTS" | tr -d ' ')" >> "` + out + `/gates.txt" && ` +
		`test "$(grep -c '"outcome":"succeeded"' "$DMCTL_WAVE_RESULTS")" -gt 0 && echo wave $DMCTL_WAVE healthy`
	r := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices", "--waves", "10,50%,100%",
		"--gate", gate, "--gate-after-last", "-o", "jsonl")
	require.Equal(t, 0, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	assert.Equal(t, map[string]int{"succeeded": 100}, outcomes(rs))
	for _, w := range []string{"1", "2", "3"} {
		assert.Contains(t, r.stderr, "gate: wave "+w+" healthy\n")
	}
	b, err := os.ReadFile(filepath.Join(out, "gates.txt"))
	require.NoError(t, err)
	assert.Equal(t, "1/3 10\n2/3 50\n3/3 100\n", string(b), "wave/waves and the results so far, at each gate")
	sizes := map[string]int{"1": 10, "2": 40, "3": 50}
	seen := map[string]bool{}
	for w, n := range sizes {
		wave := jsonlResults(t, readFile(t, filepath.Join(out, "wave-"+w+".jsonl")))
		assert.Len(t, wave, n, "wave %s", w)
		for id, res := range wave {
			assert.Equal(t, "succeeded", res.Outcome)
			assert.False(t, seen[id], "%s is in two waves", id)
			seen[id] = true
		}
	}
	assert.Len(t, seen, 100)
}

// TestGateTimeout: a gate that outlives --gate-timeout stops the run.
func TestGateTimeout(t *testing.T) {
	h := startFleetHub(t, gateFleet, "--no-throttle")
	r := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices", "--batch-size", "40",
		"--gate", "sleep 60", "--gate-timeout", "1s", "-o", "jsonl")
	require.Equal(t, 5, r.code, r.stderr)
	assert.Equal(t, map[string]int{"succeeded": 40, "skipped": 60}, outcomes(jsonlResults(t, r.stdout)))
	assert.Contains(t, r.stderr, "the --gate timed out after 1s (--gate-timeout); 60 targets were not started")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// TestLostAnswersResolvedFromTheTwin: under --wait reboot, a 504101 does not
// leave the caller guessing. Devices that got the method but answer after
// --timeout ("late") are seen starting their reboot in the twin and go on
// to the wait; devices whose call hubsim refused with an injected 504101
// before delivering it ("lost") are seen connected with nothing reported
// and are called again, without --idempotent. Every target ends succeeded,
// and by hubsim's method log no device ran the method twice.
func TestLostAnswersResolvedFromTheTwin(t *testing.T) {
	h := startFleetHub(t, `{"groups":[
		{"name":"late","idPattern":"late-%02d","count":8,
		 "methods":{"reboot":{"latency":"7s","downtime":"1s"}}},
		{"name":"lost","idPattern":"lost-%02d","count":12,
		 "methods":{"reboot":{"latency":{"dist":"uniform","min":"50ms","max":"300ms"},"downtime":"1s"}},
		 "faults":{"gatewayTimeout":0.5}},
		{"name":"fine","idPattern":"ok-%02d","count":10,
		 "methods":{"reboot":{"latency":{"dist":"uniform","min":"50ms","max":"300ms"},"downtime":"1s"}}}]}`, "--no-throttle")
	journal := filepath.Join(t.TempDir(), "run.journal")
	r := h.run(t, "", "reboot", "--query", "SELECT deviceId FROM devices", "-c", "30", "--timeout", "5s",
		"--max-attempts", "10", "--wait", "reboot", "--wait-timeout", "2m", "--journal", journal, "-o", "jsonl")
	require.Equal(t, 0, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	require.Len(t, rs, 30)
	assert.Equal(t, map[string]int{"succeeded": 30}, outcomes(rs))

	raw := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		raw[m["deviceId"].(string)] = m
	}
	resent := 0
	for id, m := range raw {
		switch {
		case strings.HasPrefix(id, "late-"):
			assert.Equal(t, "started", m["resolved"], "%s: answered late; the twin showed the reboot started", id)
			assert.EqualValues(t, 1, m["attempts"], id)
			assert.Nil(t, m["status"], "%s never answered", id)
		case strings.HasPrefix(id, "ok-"):
			assert.Nil(t, m["resolved"], id)
		case m["resolved"] == "notRun":
			resent++
			assert.Greater(t, m["attempts"].(float64), 1.0, id)
		}
	}
	assert.Positive(t, resent, "some lost calls were resent once the twin showed they had not run")

	for id, ds := range h.deliveries(t, "reboot") {
		assert.Len(t, ds, 1, "%s ran the method %d times", id, len(ds))
	}
	assert.Len(t, h.deliveries(t, "reboot"), 30, "every device ran it once")
	assert.Contains(t, readFile(t, journal), `"resolved":"notRun"`, "the journal records which it was")
	assert.Contains(t, readFile(t, journal), `"resolved":"started"`)
}

// TestUntilOnlineCallsEveryFlappingDeviceOnce: with --until-online, devices
// found offline are parked and called as soon as their twin says they are
// connected; devices that flap (half the time down, 600 ms on average each
// way) all end succeeded, each delivered the method exactly once by hubsim's
// method log, though some drop again between the twin's answer and their
// call and are parked again. (Devices that never connect end offline:
// TestUntilOnlineParkedTargetsResume.)
func TestUntilOnlineCallsEveryFlappingDeviceOnce(t *testing.T) {
	h := startFleetHub(t, `{"groups":[
		{"name":"flappy","idPattern":"flap-%02d","count":20,
		 "connection":{"flapping":{"meanUp":"600ms","meanDown":"600ms"}},
		 "methods":{"*":{"status":200,"latency":{"dist":"uniform","min":"20ms","max":"100ms"}}}}]}`, "--tier", "S3")
	r := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices", "-c", "8", "--tier", "S3",
		"--until-online", "2m", "-o", "jsonl")
	require.Equal(t, 0, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	require.Len(t, rs, 20)
	assert.Equal(t, map[string]int{"succeeded": 20}, outcomes(rs))
	delivered := h.deliveries(t, "ping")
	assert.Len(t, delivered, 20)
	for id, ds := range delivered {
		assert.Len(t, ds, 1, "%s got the method %d times", id, len(ds))
	}
	m := regexp.MustCompile(`; (\d+) targets? parked offline \(--until-online\), (\d+) calls? once connected`).FindStringSubmatch(r.stderr)
	require.NotNil(t, m, r.stderr)
	parked, _ := strconv.Atoi(m[1])
	called, _ := strconv.Atoi(m[2])
	assert.Positive(t, parked, "some devices were down when first called")
	assert.GreaterOrEqual(t, called, parked, "every parked device was called once connected")
	t.Logf("%d parked, %d calls once connected", parked, called)
}

// TestUntilOnlineParkedTargetsResume: targets parked when the run is
// interrupted are skipped (the device never got the method) and the journal
// says they were parked; --resume parks them again.
func TestUntilOnlineParkedTargetsResume(t *testing.T) {
	h := startFleetHub(t, `{"groups":[
		{"name":"off","idPattern":"a-off-%d","count":4,"connection":{"onlineShare":0}},
		{"name":"on","idPattern":"b-on-%02d","count":10,"methods":{"*":{"status":200,"latency":"20ms"}}}]}`, "--no-throttle")
	journal := filepath.Join(t.TempDir(), "run.journal")
	// -c 1 and the offline devices first: all four are parked before the
	// tenth online result is out.
	first := h.startAndStop(t, 10, syscall.SIGINT, "ping", "--query", "SELECT deviceId FROM devices", "-c", "1",
		"--until-online", "10m", "--journal", journal, "-o", "jsonl")
	assert.Equal(t, 130, first.code, first.stderr)
	rs := jsonlResults(t, first.stdout)
	require.Len(t, rs, 14)
	for i := 1; i <= 4; i++ {
		id := fmt.Sprintf("a-off-%d", i)
		assert.Equal(t, "skipped", rs[id].Outcome, id)
	}
	assert.Equal(t, 4, strings.Count(readFile(t, journal), `"event":"parked"`))

	again := h.run(t, "", "--resume", journal, "--until-online", "3s", "-o", "jsonl")
	assert.Equal(t, 4, again.code, again.stderr)
	rs2 := jsonlResults(t, again.stdout)
	assert.Len(t, rs2, 4, "only the parked ones run again")
	for id, res := range rs2 {
		assert.Equal(t, "offline", res.Outcome, id)
	}
	assert.Contains(t, again.stderr, "4 targets parked offline")
	assert.Len(t, h.deliveries(t, "ping"), 10)
}

package e2e

import (
	"path/filepath"
	"regexp"
	"strconv"
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

package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secondFleet is slowFleet's n devices taking a second to answer, and
// their ids one per line.
func secondFleet(n int) (fleet, ids string) {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "s-%04d\n", i)
	}
	return fmt.Sprintf(slowFleet, n, "1s"), b.String()
}

var upToInFlight = regexp.MustCompile(`up to ([\d,]+) in flight \(([^)]*)\)`)

// inFlightPeak is the "up to N in flight" of dmctl's pace line.
func inFlightPeak(t *testing.T, stderr string) (int, string) {
	t.Helper()
	m := upToInFlight.FindStringSubmatch(stderr)
	require.NotNil(t, m, "a pace line with the calls in flight:\n%s", stderr)
	n, err := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
	require.NoError(t, err)
	return n, m[2]
}

// TestInFlightFollowsThePaceByDefault: devices that take a second to
// answer, on a hub whose throttle is 120 calls/s, need some 120 calls in
// flight. With default flags dmctl has more than the old fixed 32 in flight
// (hubsim's own peak says so), and its summary names what held the pace; a
// fixed --concurrency 32 is named as the limit, with the hint to drop it.
func TestInFlightFollowsThePaceByDefault(t *testing.T) {
	const n = 240
	fleet, ids := secondFleet(n)
	h := startFleetHub(t, fleet, "--tier", "S1", "--units", "3")

	r := h.run(t, ids, "ping", "--devices-file", "-", "--rate", "auto", "--tier", "S1", "--units", "3", "-o", "jsonl")
	require.Equal(t, 0, r.code, r.stderr)
	rs := jsonlResults(t, r.stdout)
	require.Len(t, rs, n)
	assert.Equal(t, map[string]int{"succeeded": n}, outcomes(rs))
	peak, slots := inFlightPeak(t, r.stderr)
	assert.Greater(t, peak, 32, "more calls in flight than the old fixed default")
	assert.Contains(t, slots, "auto")
	hubPeak, ok := h.Settle(t)["registry"].(map[string]any)["peakInFlight"].(float64)
	require.True(t, ok, "hubsim reports its peak of calls in flight")
	assert.Greater(t, int(hubPeak), 32, "hubsim saw more than 32 calls at once")
	assert.LessOrEqual(t, int(hubPeak), peak, "hubsim never saw more than dmctl sent")
	assert.Regexp(t, `(?m)^pace: held by the (pace asked|devices' answer times): `, r.stderr)

	h2 := startFleetHub(t, fleet, "--tier", "S1", "--units", "3")
	r = h2.run(t, ids, "ping", "--devices-file", "-", "--rate", "auto", "--tier", "S1", "--units", "3", "-c", "32", "-o", "jsonl")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, jsonlResults(t, r.stdout), n)
	peak, slots = inFlightPeak(t, r.stderr)
	assert.Equal(t, 32, peak)
	assert.Equal(t, "--concurrency 32", slots)
	assert.Regexp(t, `(?m)^pace: held by the calls in flight \(every one was taken while the run was behind its pace\): [\d.]+ calls/s of the [\d.]+/s asked`, r.stderr)
	assert.Contains(t, r.stderr, "hint: the run was held by --concurrency 32: leave it out")
}

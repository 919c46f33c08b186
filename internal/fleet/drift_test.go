package fleet

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
)

// driftFleet is n planned devices d-0..d-(n-1) at version 1 in twins.
func driftFleet(n int) (*fakeTwins, []PlannedTarget, []Target) {
	twins := &fakeTwins{docs: map[string]map[string]any{}}
	var planned []PlannedTarget
	var targets []Target
	for i := range n {
		id := "d-" + string(rune('a'+i))
		twins.docs[id] = map[string]any{"deviceId": id, "version": 1, "etag": "AAAAAAAAAAE="}
		t := Target{DeviceID: id}
		planned = append(planned, PlannedTarget{Target: t, Twin: TwinVersion{Version: 1, ETag: "AAAAAAAAAAE="}})
		targets = append(targets, t)
	}
	return twins, planned, targets
}

func TestDriftCheckSkipsChangedTwins(t *testing.T) {
	twins, planned, targets := driftFleet(6)
	twins.docs["d-b"]["version"], twins.docs["d-b"]["etag"] = 2, "AAAAAAAAAAI="
	delete(twins.docs, "d-d")
	inv := &fakeInvoker{scripts: answering(targets)}
	d := &DriftCheck{Reader: &VersionReader{Twins: twins, Limiter: &queryCounter{}, Retry: policy(1)}, Planned: planned}
	results, err := NewRunner(inv).RunTargets(context.Background(), targets, RunOptions{Concurrency: 1, Retry: policy(1), Drift: d,
		Request: iothub.MethodRequest{MethodName: "reboot"}})
	require.NoError(t, err)
	got := map[string]Result{}
	for _, r := range results {
		got[r.DeviceID] = r
	}
	assert.Equal(t, OutcomeDrifted, got["d-b"].Outcome)
	assert.Contains(t, got["d-b"].Error.Message, "version 1, etag AAAAAAAAAAE= then, version 2, etag AAAAAAAAAAI= now")
	assert.Zero(t, got["d-b"].Attempts)
	assert.Equal(t, OutcomeNotFound, got["d-d"].Outcome)
	assert.Contains(t, got["d-d"].Error.Message, "no longer exists")
	for _, id := range []string{"d-a", "d-c", "d-e", "d-f"} {
		assert.Equal(t, OutcomeSucceeded, got[id].Outcome, id)
	}
	var called []string
	for _, c := range inv.calls {
		called = append(called, c.DeviceID)
	}
	assert.Equal(t, []string{"d-a", "d-c", "d-e", "d-f"}, called, "drifted and missing targets are not invoked")
	require.Len(t, twins.queries, 1, "one query read every version ahead")
	assert.Equal(t, "SELECT deviceId, version, etag FROM devices WHERE deviceId IN ['d-a', 'd-b', 'd-c', 'd-d', 'd-e', 'd-f']", twins.queries[0])
	assert.Zero(t, twins.gets)
}

func TestDriftCheckRereadsStaleVersions(t *testing.T) {
	twins, planned, targets := driftFleet(3)
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	inv := &fakeInvoker{scripts: answering(targets)}
	inv.onCall = func(tg Target) {
		if tg.DeviceID == "d-a" { // after the first call, time passes and d-c's twin changes
			mu.Lock()
			now = now.Add(DefaultDriftMaxAge + time.Second)
			mu.Unlock()
			twins.mu.Lock()
			twins.docs["d-c"]["version"] = 2
			twins.mu.Unlock()
		}
	}
	d := &DriftCheck{Reader: &VersionReader{Twins: twins, Limiter: &queryCounter{}, Retry: policy(1)}, Planned: planned, Now: clock}
	results, err := NewRunner(inv).RunTargets(context.Background(), targets, RunOptions{Concurrency: 1, Retry: policy(1), Drift: d, Now: clock})
	require.NoError(t, err)
	require.Len(t, results, 3)
	assert.Equal(t, OutcomeSucceeded, results[1].Outcome)
	assert.Equal(t, OutcomeDrifted, results[2].Outcome, "the version read ahead was too old: read again, and changed")
	require.Len(t, twins.queries, 2)
	assert.True(t, strings.HasSuffix(twins.queries[1], "IN ['d-b', 'd-c']"), twins.queries[1])
}

func TestVersionReaderReadsOneTwinWithGet(t *testing.T) {
	twins, _, targets := driftFleet(1)
	r := &VersionReader{Twins: twins, Limiter: &queryCounter{}, Retry: policy(1)}
	got := map[Target]TwinVersion{}
	require.NoError(t, r.Read(context.Background(), append(targets, Target{DeviceID: "gone"}), func(t Target, v TwinVersion) { got[t] = v }))
	assert.Equal(t, map[Target]TwinVersion{targets[0]: {Version: 1, ETag: "AAAAAAAAAAE="}}, got)
	require.NoError(t, r.Read(context.Background(), targets, func(t Target, v TwinVersion) { got[t] = v }))
	assert.Equal(t, 1, twins.gets)
}

func TestCutINBoundsIDsAndLength(t *testing.T) {
	ids := make([]string, 2500)
	for i := range ids {
		ids[i] = strings.Repeat("x", 100)
	}
	for _, b := range cutIN("SELECT deviceId FROM devices WHERE deviceId IN [", "]", len(ids), 1000, func(i int) string { return ids[i] }) {
		assert.LessOrEqual(t, len(b.sql), 8192)
		assert.LessOrEqual(t, b.to-b.from, 1000)
	}
	short := cutIN("[", "]", 2500, 1000, func(int) string { return "a" })
	require.Len(t, short, 3)
	assert.Equal(t, 1000, short[0].to)
}

// answering scripts a 200 for every target.
func answering(targets []Target) map[string][]answer {
	m := map[string][]answer{}
	for _, t := range targets {
		m[t.String()] = []answer{ok(200, "{}")}
	}
	return m
}

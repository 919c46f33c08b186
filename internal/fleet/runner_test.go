package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/testkit"
)

// funcInvoker answers with a function; it is safe for concurrent use when
// the function is.
type funcInvoker func(ctx context.Context, t Target) (iothub.MethodResult, error)

func (f funcInvoker) Invoke(ctx context.Context, t Target, _ iothub.MethodRequest) (iothub.MethodResult, error) {
	return f(ctx, t)
}

func okAnswer() (iothub.MethodResult, error) {
	return iothub.MethodResult{Status: 200, Payload: json.RawMessage(`null`)}, nil
}

func devices(n int) []Target {
	ts := make([]Target, n)
	for i := range ts {
		ts[i] = Target{DeviceID: fmt.Sprintf("d%04d", i+1)}
	}
	return ts
}

func byDevice(results []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range results {
		m[r.Target().String()] = r
	}
	return m
}

func TestRunnerConcurrencyCeiling(t *testing.T) {
	const limit = 8
	var inFlight, peak atomic.Int64
	reached := make(chan struct{})
	var once sync.Once
	inv := funcInvoker(func(ctx context.Context, _ Target) (iothub.MethodResult, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == limit {
			once.Do(func() { close(reached) })
		}
		// Hold the first calls until the ceiling is reached, so the test
		// proves it is reached and never passed.
		select {
		case <-reached:
		case <-time.After(5 * time.Second):
		}
		return okAnswer()
	})
	results, err := NewRunner(inv).RunTargets(context.Background(), devices(200), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: limit,
	})
	require.NoError(t, err)
	require.Len(t, results, 200)
	assert.Equal(t, int64(limit), peak.Load(), "exactly the ceiling: reached, never passed")
	select {
	case <-reached:
	default:
		t.Fatal("the ceiling was never reached")
	}
	seen := map[string]bool{}
	for _, r := range results {
		assert.Equal(t, OutcomeSucceeded, r.Outcome)
		assert.False(t, seen[r.DeviceID], "one result per target")
		seen[r.DeviceID] = true
	}
}

func TestRunnerRetryCountsAndThrottles(t *testing.T) {
	inv := &fakeInvoker{scripts: map[string][]answer{
		"a": {hubErr(429, 429001, "ThrottlingException"), hubErr(429, 429001, "ThrottlingException"), ok(200, `{}`)},
		"b": {hubErr(503, 503001, "ServiceUnavailable"), ok(200, `{}`)},
		"c": {hubErr(500, 500001, "ServerError"), ok(200, `{}`)},
		"d": {answer{err: &iothub.TransportError{Err: errors.New("connection reset"), RequestWritten: true}}, ok(200, `{}`)},
		"e": {answer{err: &iothub.TransportError{Err: errors.New("connection refused")}}, ok(200, `{}`)},
		"f": {hubErr(429, 429001, "ThrottlingException")},
	}}
	lim := &countingLimiter{}
	var sum Summary
	results := []Result{}
	var err error
	sum, err = NewRunner(inv).Run(context.Background(), NewSliceSource([]Target{{DeviceID: "a"}, {DeviceID: "b"}, {DeviceID: "c"}, {DeviceID: "d"}, {DeviceID: "e"}, {DeviceID: "f"}}),
		RunOptions{Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(4), Concurrency: 3, Limiter: lim,
			OnResult: func(r Result) { results = append(results, r) }})
	require.NoError(t, err)
	got := byDevice(results)
	assert.Equal(t, 3, got["a"].Attempts, "429 twice, then ok")
	assert.Equal(t, OutcomeSucceeded, got["a"].Outcome)
	assert.Equal(t, 2, got["b"].Attempts, "503 is resent")
	assert.Equal(t, 1, got["c"].Attempts, "500 is not resent without Idempotent")
	assert.Equal(t, OutcomeError, got["c"].Outcome)
	assert.Equal(t, 1, got["d"].Attempts, "a connection lost after writing is not resent")
	assert.Equal(t, OutcomeUnknown, got["d"].Outcome, "nobody knows whether the device ran it")
	assert.Equal(t, 2, got["e"].Attempts, "a request never written is resent")
	assert.Equal(t, 4, got["f"].Attempts, "bounded by MaxAttempts")
	assert.Equal(t, OutcomeThrottled, got["f"].Outcome)

	assert.Equal(t, 3+2+1+1+2+4, sum.Attempts)
	assert.Equal(t, 2+1+0+0+1+3, sum.Retries)
	assert.Equal(t, 2+4, sum.Throttles)
	assert.Equal(t, int64(13), lim.waits.Load(), "every attempt waits for the limiter")
	assert.Equal(t, int64(6), lim.throttled.Load(), "the limiter hears about every 429")
	assert.Equal(t, int64(7), lim.answered.Load())
}

type countingLimiter struct {
	waits, throttled, answered atomic.Int64
}

func (c *countingLimiter) Wait(ctx context.Context) error { c.waits.Add(1); return ctx.Err() }
func (c *countingLimiter) Observe(throttled bool) {
	if throttled {
		c.throttled.Add(1)
	} else {
		c.answered.Add(1)
	}
}
func (c *countingLimiter) Rate() float64 { return 1 }

func TestRunnerIdempotentResendsAfterLostConnection(t *testing.T) {
	inv := &fakeInvoker{scripts: map[string][]answer{
		"d": {answer{err: &iothub.TransportError{Err: errors.New("EOF"), RequestWritten: true}}, ok(200, `{}`)},
	}}
	p := policy(3)
	p.Idempotent = true
	results, err := NewRunner(inv).RunTargets(context.Background(), []Target{{DeviceID: "d"}}, RunOptions{Request: iothub.MethodRequest{MethodName: "m"}, Retry: p})
	require.NoError(t, err)
	assert.Equal(t, OutcomeSucceeded, results[0].Outcome)
	assert.Equal(t, 2, results[0].Attempts)
}

// TestRunnerInterruptGraceAndUnknown: after Ctrl-C no new target starts,
// calls in flight that answer within the grace period keep their result,
// calls still in flight after it are cancelled and reported unknown (or
// skipped when the request was never written), and the rest are skipped.
func TestRunnerInterruptGraceAndUnknown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan string, 10)
	stopping := make(chan struct{}) // closed when the runner has seen the interrupt
	inv := funcInvoker(func(cctx context.Context, tg Target) (iothub.MethodResult, error) {
		started <- tg.DeviceID
		switch tg.DeviceID {
		case "quick": // answers within the grace period
			<-stopping
			return okAnswer()
		case "hung-written":
			<-cctx.Done()
			return iothub.MethodResult{}, &iothub.TransportError{Err: cctx.Err(), RequestWritten: true}
		case "hung-unsent":
			<-cctx.Done()
			return iothub.MethodResult{}, &iothub.TransportError{Err: cctx.Err(), RequestWritten: false}
		}
		return okAnswer()
	})
	go func() {
		for range 3 {
			<-started
		}
		cancel()
	}()
	ts := []Target{{DeviceID: "quick"}, {DeviceID: "hung-written"}, {DeviceID: "hung-unsent"}, {DeviceID: "later-1"}, {DeviceID: "later-2"}}
	results, err := NewRunner(inv).RunTargets(ctx, ts, RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 3, Grace: 500 * time.Millisecond,
		OnStopping: func(int) { close(stopping) },
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, results, 5)
	got := byDevice(results)
	assert.Equal(t, OutcomeSucceeded, got["quick"].Outcome, "answered within the grace period")
	assert.Equal(t, OutcomeUnknown, got["hung-written"].Outcome)
	assert.Contains(t, got["hung-written"].Error.Message, "interrupted")
	assert.Equal(t, 1, got["hung-written"].Attempts)
	assert.Equal(t, OutcomeSkipped, got["hung-unsent"].Outcome, "never written: the device cannot have run it")
	assert.Equal(t, OutcomeSkipped, got["later-1"].Outcome)
	assert.Equal(t, 0, got["later-1"].Attempts)
	assert.Equal(t, OutcomeSkipped, got["later-2"].Outcome)
	assert.Len(t, started, 0, "later targets were never sent")
}

// TestRunnerInterruptStopsResending: a target waiting to resend after a 429
// when Ctrl-C comes is not resent and is reported skipped (the device never
// ran it), so --resume runs it.
func TestRunnerInterruptStopsResending(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	inv := funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) {
		calls.Add(1)
		cancel()
		return iothub.MethodResult{}, &iothub.ResponseError{StatusCode: 429, ErrorCode: 429001}
	})
	p := policy(5)
	p.Sleep = func(ctx context.Context, d time.Duration) error { // a real wait, cut short by the interrupt
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Minute):
			return nil
		}
	}
	start := time.Now()
	results, err := NewRunner(inv).RunTargets(ctx, []Target{{DeviceID: "d"}}, RunOptions{Request: iothub.MethodRequest{MethodName: "m"}, Retry: p, Grace: time.Minute})
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 30*time.Second, "the backoff wait ended with the interrupt")
	assert.Equal(t, int64(1), calls.Load())
	require.Len(t, results, 1)
	assert.Equal(t, OutcomeSkipped, results[0].Outcome)
	assert.Equal(t, 1, results[0].Attempts)
	assert.Contains(t, results[0].Error.Message, "not resent")
}

func TestRunnerFixedRatePaces(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	inv := funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		return okAnswer()
	})
	start := time.Now()
	_, err := NewRunner(inv).RunTargets(context.Background(), devices(21), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 8, Limiter: NewFixedRate(100),
	})
	require.NoError(t, err)
	// 21 calls at 100/s: the last goes out 200 ms after the first, less the
	// pacer's catch-up slack.
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond-paceSlack, "eight workers did not outrun the pace")
	require.Len(t, times, 21)
}

func TestPacerSpacing(t *testing.T) {
	clk := newClock()
	f := newFixedRate(50, pacerClock{now: clk.Now, sleep: clk.Sleep})
	var at []time.Duration
	t0 := clk.Now()
	for range 6 {
		require.NoError(t, f.Wait(context.Background()))
		at = append(at, clk.Now().Sub(t0))
	}
	assert.Equal(t, []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond, 80 * time.Millisecond, 100 * time.Millisecond}, at)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, f.Wait(ctx), context.Canceled)
}

// newClock returns a fake clock whose Sleep moves time forward at once.
func newClock() *testkit.FakeClock {
	return testkit.NewAutoClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

func TestAdaptiveRateAIMD(t *testing.T) {
	clk := newClock()
	a := NewAdaptiveRate(AdaptiveOptions{Start: 40, Now: clk.Now, Sleep: clk.Sleep})
	// A saturated window (calls at the pace) with no 429: +2.5% of the start (1/s).
	saturateWindow(t, clk, a)
	assert.InDelta(t, 41, a.Rate(), 1e-9, "additive increase")

	a.Observe(true)
	assert.InDelta(t, 41*0.7, a.Rate(), 1e-9, "multiplicative decrease on a 429")
	a.Observe(true)
	assert.InDelta(t, 41*0.7, a.Rate(), 1e-9, "one cut per window: the 429s of calls already in flight do not count again")
	a.Observe(false)
	cuts, raises := a.Changes()
	assert.Equal(t, 1, cuts)
	assert.Equal(t, 1, raises)

	// A window that is not saturated (the concurrency is the limit) does not raise.
	clk.Advance(2 * time.Second)
	require.NoError(t, a.Wait(context.Background()))
	clk.Advance(2 * time.Second)
	require.NoError(t, a.Wait(context.Background()))
	assert.InDelta(t, 41*0.7, a.Rate(), 1e-9)

	// Another cut, a window later.
	a.Observe(true)
	assert.InDelta(t, 41*0.7*0.7, a.Rate(), 1e-9)

	// Never below the floor.
	for range 50 {
		clk.Advance(AdaptiveWindow)
		a.Observe(true)
	}
	assert.Equal(t, AdaptiveMinRate, a.Rate())
}

// saturateWindow calls Wait for one whole window at the limiter's pace (the
// fake clock moves with every wait), then once more, when the window is
// judged.
func saturateWindow(t *testing.T, clk *testkit.FakeClock, a *AdaptiveRate) {
	t.Helper()
	a.mu.Lock()
	start := a.windowStart
	a.mu.Unlock()
	for clk.Now().Sub(start) < AdaptiveWindow {
		require.NoError(t, a.Wait(context.Background()))
	}
	require.NoError(t, a.Wait(context.Background()))
}

func TestAdaptiveRateSlowStart(t *testing.T) {
	clk := newClock()
	a := NewAdaptiveRate(AdaptiveOptions{Start: 10, SlowStart: true, Now: clk.Now, Sleep: clk.Sleep})
	saturate := func() { saturateWindow(t, clk, a) }
	saturate()
	assert.InDelta(t, 20, a.Rate(), 1e-9, "doubles while the throttle is unknown")
	saturate()
	assert.InDelta(t, 40, a.Rate(), 1e-9)
	a.Observe(true)
	assert.InDelta(t, 28, a.Rate(), 1e-9)
	saturate()
	assert.InDelta(t, 29, a.Rate(), 1e-9, "after the first 429: additive steps of 2.5% of the rate then (at least 1)")
}

func TestAdaptiveRateAgainstAThrottlingHub(t *testing.T) {
	// A hub that allows 20 calls per (fake) window and answers 429 past it:
	// the rate falls below the limit after the first 429s and the run ends
	// with every target done.
	clk := newClock()
	a := NewAdaptiveRate(AdaptiveOptions{Start: 40, Now: clk.Now, Sleep: clk.Sleep})
	var windowStart time.Time
	used := 0
	var throttled int
	for range 400 {
		require.NoError(t, a.Wait(context.Background()))
		now := clk.Now()
		if now.Sub(windowStart) >= time.Second {
			windowStart, used = now, 0
		}
		used++
		over := used > 20
		if over {
			throttled++
		}
		a.Observe(over)
	}
	assert.Less(t, a.Rate(), 30.0, "the pace came down towards the hub's 20/s")
	assert.Greater(t, a.Rate(), 10.0)
	assert.Less(t, throttled, 120, "most calls were not throttled")
}

func TestTierRate(t *testing.T) {
	tests := []struct {
		tier    string
		units   int
		payload int
		want    float64
	}{
		{"S1", 1, 0, 40},
		{"s1", 1, 4096, 40},
		{"S1", 1, 4097, 20},
		{"S1", 2, 10, 80},
		{"F1", 1, 10, 40},
		{"S2", 1, 10, 120},
		{"S3", 1, 10, 6144},
		{"S1", 1, 160 * 1024, 1},
	}
	for _, tt := range tests {
		got, err := iothub.TierRate(tt.tier, tt.units, tt.payload)
		require.NoError(t, err, tt.tier)
		assert.InDelta(t, tt.want, got, 1e-9, "%s x%d, %d bytes", tt.tier, tt.units, tt.payload)
	}
	_, err := iothub.TierRate("F1", 2, 0)
	assert.EqualError(t, err, "tier F1 has exactly 1 unit (got 2)")
	_, err = iothub.TierRate("B1", 1, 0)
	assert.EqualError(t, err, `"B1" is not an IoT Hub tier with direct methods (use F1, S1, S2, S3)`)
	_, err = iothub.TierRate("S1", 0, 0)
	assert.Error(t, err)
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		auto bool
	}{
		{"auto", 0, true}, {" AUTO ", 0, true}, {"40", 40, false}, {"40/s", 40, false}, {"2.5/sec", 2.5, false},
		{"2400/m", 40, false}, {"60/min", 1, false},
	}
	for _, tt := range tests {
		r, auto, err := ParseRate(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.auto, auto, tt.in)
		assert.InDelta(t, tt.want, r, 1e-9, tt.in)
	}
	for _, bad := range []string{"", "0", "-5", "fast", "40/h", "1e3", "inf", "40x/s", "/s"} {
		_, _, err := ParseRate(bad)
		assert.Error(t, err, bad)
	}
}

func TestRunnerWaves(t *testing.T) {
	var mu sync.Mutex
	got := 0 // results seen so far
	var violations []string
	var waves [][4]int
	var pauses []time.Duration
	ends := map[int]int{1: 0, 2: 1, 11: 10, 51: 50} // first target of a wave -> results that must be in first
	inv := funcInvoker(func(_ context.Context, tg Target) (iothub.MethodResult, error) {
		var n int
		fmt.Sscanf(tg.DeviceID, "d%d", &n)
		mu.Lock()
		if need, ok := ends[n]; ok && got < need {
			violations = append(violations, fmt.Sprintf("%s started with %d results in", tg.DeviceID, got))
		}
		mu.Unlock()
		return okAnswer()
	})
	plan, err := ParseWaves("1,10%,50%,100%")
	require.NoError(t, err)
	results, err := NewRunner(inv).RunTargets(context.Background(), devices(100), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 16, Waves: plan, WavePause: time.Minute,
		Sleep:  func(_ context.Context, d time.Duration) error { pauses = append(pauses, d); return nil },
		OnWave: func(w, n, from, to int) { waves = append(waves, [4]int{w, n, from, to}) },
		OnResult: func(Result) {
			mu.Lock()
			got++
			mu.Unlock()
		},
	})
	require.NoError(t, err)
	assert.Len(t, results, 100)
	assert.Empty(t, violations, "no wave starts before the previous one is answered")
	assert.Equal(t, [][4]int{{1, 4, 1, 1}, {2, 4, 2, 10}, {3, 4, 11, 50}, {4, 4, 51, 100}}, waves)
	assert.Equal(t, []time.Duration{time.Minute, time.Minute, time.Minute}, pauses, "a pause between waves, none after the last")
}

func TestRunnerBatchSizeOnUnknownTotal(t *testing.T) {
	var waves [][4]int
	inv := funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) { return okAnswer() })
	_, err := NewRunner(inv).Run(context.Background(), NewSliceSource(devices(25)), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 4, Waves: WavePlan{BatchSize: 10},
		OnWave: func(w, n, from, to int) { waves = append(waves, [4]int{w, n, from, to}) },
	})
	require.NoError(t, err)
	assert.Equal(t, [][4]int{{1, 0, 1, 10}, {2, 0, 11, 20}, {3, 0, 21, 30}}, waves, "no total: waves are not counted ahead")
}

func TestRunnerMaxFailuresPercentStopsBeforeNextWave(t *testing.T) {
	var calls atomic.Int64
	inv := funcInvoker(func(_ context.Context, tg Target) (iothub.MethodResult, error) {
		calls.Add(1)
		var n int
		fmt.Sscanf(tg.DeviceID, "d%d", &n)
		if n%2 == 0 {
			return iothub.MethodResult{Status: 500, Payload: json.RawMessage(`null`)}, nil
		}
		return okAnswer()
	})
	plan, err := ParseWaves("10,100%")
	require.NoError(t, err)
	th, err := ParseThreshold("20%")
	require.NoError(t, err)
	results, err := NewRunner(inv).RunTargets(context.Background(), devices(100), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 4, Waves: plan, MaxFailures: th,
	})
	var te *ThresholdError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, int64(10), calls.Load(), "only the first wave ran")
	assert.Equal(t, 5, te.Failed)
	assert.Equal(t, 10, te.Finished)
	assert.Equal(t, 1, te.Wave)
	assert.Equal(t, 2, te.Waves)
	assert.Equal(t, 90, te.Skipped)
	assert.Equal(t, "the rollout stopped after wave 1 of 2: 5 of 10 finished targets failed, more than --max-failures 20%; 90 targets were not started", te.Error())
	require.Len(t, results, 100)
	skipped := 0
	for _, r := range results {
		if r.Outcome == OutcomeSkipped {
			skipped++
		}
	}
	assert.Equal(t, 90, skipped, "untouched targets are reported skipped")
}

func TestRunnerMaxFailuresCountStopsAtOnce(t *testing.T) {
	var calls atomic.Int64
	inv := funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) {
		calls.Add(1)
		return iothub.MethodResult{}, &iothub.ResponseError{StatusCode: 404, ErrorCode: 404103}
	})
	th, err := ParseThreshold("2")
	require.NoError(t, err)
	results, err := NewRunner(inv).RunTargets(context.Background(), devices(50), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 1, MaxFailures: th,
	})
	var te *ThresholdError
	require.ErrorAs(t, err, &te)
	// The third failure goes over. Until the collector goroutine has seen it,
	// the pipeline may hold one more result in the results buffer
	// (Concurrency) and the worker may have taken one more target, so a
	// starved collector allows up to two extra calls; never the rest of the 50.
	assert.GreaterOrEqual(t, calls.Load(), int64(3))
	assert.LessOrEqual(t, calls.Load(), int64(3+2))
	assert.Len(t, results, 50)
	assert.Equal(t, 50-int(calls.Load()), te.Skipped)
}

func TestRunnerNoThresholdWithoutFailures(t *testing.T) {
	th, err := ParseThreshold("0")
	require.NoError(t, err)
	inv := funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) { return okAnswer() })
	results, err := NewRunner(inv).RunTargets(context.Background(), devices(30), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 5, MaxFailures: th, Waves: WavePlan{BatchSize: 7},
	})
	require.NoError(t, err)
	assert.Len(t, results, 30)
}

func TestRunnerJournalAndResume(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.journal")
	j, err := CreateJournal(path, JournalHeader{Method: "reboot", StartTime: time.Now(), Run: json.RawMessage(`{"x":1}`)})
	require.NoError(t, err)
	_, err = CreateJournal(path, JournalHeader{Method: "reboot"})
	require.Error(t, err, "a journal is never overwritten")

	// First run: d0001..d0006 answer, d0007 is "in flight" when the process
	// dies (dispatched, no result), the rest never start.
	inv := &fakeInvoker{scripts: map[string][]answer{"d0001": {ok(200, `1`)}, "d0002": {ok(200, `2`)}, "d0003": {ok(500, `"x"`)},
		"d0004": {hubErr(404, 404103, "DeviceNotOnline")}, "d0005": {ok(200, `5`)}, "d0006": {ok(204, `6`)}}}
	_, err = NewRunner(inv).RunTargets(context.Background(), devices(6), RunOptions{
		Request: iothub.MethodRequest{MethodName: "reboot"}, Retry: policy(1), Concurrency: 3, Journal: j,
	})
	require.NoError(t, err)
	require.NoError(t, j.Dispatched(Target{DeviceID: "d0007"}, time.Now()))
	require.NoError(t, j.Close())

	st, err := ReadJournal(path)
	require.NoError(t, err)
	assert.Equal(t, "reboot", st.Header.Method)
	assert.JSONEq(t, `{"x":1}`, string(st.Header.Run))
	assert.Equal(t, 6, st.Final.Len())
	assert.Equal(t, 6, st.FinalSummary.Targets)
	assert.Equal(t, 4, st.FinalSummary.ByOutcome[OutcomeSucceeded])
	assert.Equal(t, 1, st.FinalSummary.ByOutcome[OutcomeFailed])
	assert.Equal(t, 1, st.FinalSummary.ByOutcome[OutcomeOffline])
	require.Len(t, st.Unknown, 1)
	assert.Equal(t, "d0007", st.Unknown[0].DeviceID)
	assert.Equal(t, OutcomeUnknown, st.Unknown[0].Outcome)
	assert.Equal(t, "reboot", st.Unknown[0].Method)
	assert.False(t, st.Pending(Target{DeviceID: "d0001"}, false), "final results are not run again")
	assert.False(t, st.Pending(Target{DeviceID: "d0001"}, true))
	assert.False(t, st.Pending(Target{DeviceID: "d0007"}, false), "in flight at the crash: not run again...")
	assert.True(t, st.Pending(Target{DeviceID: "d0007"}, true), "...unless idempotent")
	assert.True(t, st.Pending(Target{DeviceID: "d0008"}, false))

	// Resume: the rest run, the unknown one is carried and journaled.
	j2, err := AppendJournal(path)
	require.NoError(t, err)
	inv2 := &fakeInvoker{}
	src := NewFilter(NewSliceSource(devices(10)), func(t Target) bool { return st.Pending(t, false) })
	var results []Result
	sum, err := NewRunner(inv2).Run(context.Background(), src, RunOptions{
		Request: iothub.MethodRequest{MethodName: "reboot"}, Retry: policy(1), Concurrency: 2, Journal: j2, Carried: st.Unknown,
		OnResult: func(r Result) { results = append(results, r) },
	})
	require.NoError(t, err)
	require.NoError(t, j2.Close())
	assert.Equal(t, 7, src.Dropped)
	assert.ElementsMatch(t, []Target{{DeviceID: "d0008"}, {DeviceID: "d0009"}, {DeviceID: "d0010"}}, inv2.calls, "only the pending targets are invoked")
	assert.Equal(t, 4, sum.Targets)
	assert.Equal(t, 1, sum.ByOutcome[OutcomeUnknown])
	assert.Equal(t, OutcomeUnknown, results[0].Outcome, "carried results come first")

	st2, err := ReadJournal(path)
	require.NoError(t, err)
	assert.Equal(t, 9, st2.Final.Len())
	require.Len(t, st2.Unknown, 1, "still unknown: an unknown result is not final")
	assert.Equal(t, "d0007", st2.Unknown[0].DeviceID)
	for _, d := range devices(10) {
		assert.False(t, st2.Pending(d, false), d.DeviceID)
	}
}

func TestRunnerJournalSkippedAfterDispatchIsPending(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j")
	j, err := CreateJournal(path, JournalHeader{Method: "m"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	inv := funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) {
		cancel()
		return iothub.MethodResult{}, &iothub.ResponseError{StatusCode: 429, ErrorCode: 429001}
	})
	results, err := NewRunner(inv).RunTargets(ctx, []Target{{DeviceID: "a"}, {DeviceID: "b"}}, RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(3), Journal: j,
	})
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, j.Close())
	require.Len(t, results, 2)
	st, err := ReadJournal(path)
	require.NoError(t, err)
	assert.True(t, st.Pending(Target{DeviceID: "a"}, false), "throttled then interrupted: the device never ran it, so resume runs it")
	assert.Empty(t, st.Unknown)
	assert.True(t, st.Pending(Target{DeviceID: "b"}, false))
}

func TestRunnerStopsWhenTheJournalFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := CreateJournal(path, JournalHeader{Method: "m"})
	require.NoError(t, err)
	require.NoError(t, j.f.Close()) // every later write fails
	var calls atomic.Int64
	inv := funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) {
		calls.Add(1)
		return okAnswer()
	})
	results, err := NewRunner(inv).RunTargets(context.Background(), devices(20), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 4, Journal: j,
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "journal "+path)
	assert.Equal(t, int64(0), calls.Load(), "nothing is sent that cannot be recorded first")
	assert.Len(t, results, 20)
	for _, r := range results {
		assert.Equal(t, OutcomeSkipped, r.Outcome)
	}
}

// TestRunnerFailedJournalWriteAccountsForEveryTarget: a journal that cannot
// be written (a full disk) stops the run before any call it could not
// record is sent, and every target still gets exactly one result.
func TestRunnerFailedJournalWriteAccountsForEveryTarget(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("needs /dev/full (Linux) to make every journal write fail")
	}
	j, err := AppendJournal("/dev/full")
	require.NoError(t, err)
	defer func() { _ = j.Close() }()
	inv := &fakeInvoker{}
	results, err := NewRunner(inv).RunTargets(context.Background(), devices(50), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 4, Journal: j,
	})
	require.Error(t, err, "the journal's failure is the run's error")
	assert.Contains(t, err.Error(), "/dev/full")
	assert.Empty(t, inv.calls, "no call is sent that the journal could not record")
	require.Len(t, results, 50)
	seen := map[string]bool{}
	for _, r := range results {
		assert.Equal(t, OutcomeSkipped, r.Outcome, r.DeviceID)
		assert.False(t, seen[r.DeviceID], "one result per target")
		seen[r.DeviceID] = true
	}
}

// stoppingSource yields targets, then fails once and then says io.EOF, as
// azcore's pager does after a failed page (More is false from then on).
type stoppingSource struct {
	targets []Target
	err     error
	failed  bool
}

func (s *stoppingSource) Next(context.Context) (Target, error) {
	if len(s.targets) > 0 {
		t := s.targets[0]
		s.targets = s.targets[1:]
		return t, nil
	}
	if !s.failed {
		s.failed = true
		return Target{}, s.err
	}
	return Target{}, io.EOF
}

// TestRunnerFailedSourceIsUnread: when the source fails (a query page the
// hub did not answer), the run returns its error and says the source was
// not read to the end, though the source answers io.EOF afterwards.
func TestRunnerFailedSourceIsUnread(t *testing.T) {
	pageErr := errors.New("page 2: 503")
	inv := funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) { return okAnswer() })
	var results []Result
	sum, err := NewRunner(inv).Run(context.Background(), &stoppingSource{targets: devices(3), err: pageErr}, RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 2,
		OnResult: func(r Result) { results = append(results, r) },
	})
	require.ErrorIs(t, err, pageErr)
	assert.Len(t, results, 3, "the targets read before the failure ran")
	assert.True(t, sum.Unread, "what the source still held is in no result: the summary says so")
}

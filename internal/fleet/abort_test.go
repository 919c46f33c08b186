package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
)

func TestParseCriterion(t *testing.T) {
	for in, want := range map[string]string{
		"offline>10%":     "offline>10%",
		"ANY>5":           "any>5",
		" timeout > 3 ":   "timeout>3",
		"waitTimeout>0":   "waitTimeout>0",
		"unknown>2.5%":    "unknown>2.5%",
		"notfound>1":      "notFound>1",
		"waitfailed>50%":  "waitFailed>50%",
		"unauthorized>0":  "unauthorized>0",
		"throttled>100":   "throttled>100",
		"error>1%":        "error>1%",
		"failed>99.9%":    "failed>99.9%",
		"offline>0000007": "offline>7",
		"drifted>3":       "drifted>3",
	} {
		c, err := ParseCriterion(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, c.String(), in)
	}
	for _, in := range []string{"", "offline", "offline>", ">5", "bogus>1", "succeeded>1", "skipped>1", "offline>100%", "offline>0%", "offline>-1", "offline>x", "offline<5", "offline>>5"} {
		_, err := ParseCriterion(in)
		assert.Error(t, err, in)
	}
	_, err := ParseCriterion("bogus>1")
	assert.ErrorContains(t, err, "offline, timeout")
}

// numbered is an invoker whose n-th device (d0001 = 1) answers as answer says.
func numbered(calls *atomic.Int64, answer func(n int) (iothub.MethodResult, error)) Invoker {
	return funcInvoker(func(_ context.Context, tg Target) (iothub.MethodResult, error) {
		calls.Add(1)
		var n int
		_, _ = fmt.Sscanf(tg.DeviceID, "d%d", &n)
		return answer(n)
	})
}

var offline = &iothub.ResponseError{StatusCode: 404, ErrorCode: 404103}

func TestRunnerAbortIfPercentWaitsForTheMinimumSample(t *testing.T) {
	var calls atomic.Int64
	inv := numbered(&calls, func(n int) (iothub.MethodResult, error) {
		if n%4 == 0 { // 25% offline, the first one fourth
			return iothub.MethodResult{}, offline
		}
		return okAnswer()
	})
	c, err := ParseCriterion("offline>10%")
	require.NoError(t, err)
	results, err := NewRunner(inv).RunTargets(context.Background(), devices(200), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 1, AbortIf: []Criterion{c}, MinSample: 20,
	})
	var te *ThresholdError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, c, te.Criterion)
	assert.Equal(t, 20, te.Finished, "judged first once 20 had finished: 5 of 20 offline is over 10%")
	assert.Equal(t, 5, te.Failed)
	// As for --max-failures, the collector may lag the worker by two calls.
	assert.LessOrEqual(t, calls.Load(), int64(20+2))
	require.Len(t, results, 200)
	skipped := 0
	for _, r := range results {
		if r.Outcome == OutcomeSkipped {
			skipped++
			assert.Zero(t, r.Attempts, "a skipped target was never sent")
		}
	}
	assert.Equal(t, 200-int(calls.Load()), skipped)
	assert.Equal(t, skipped, te.Skipped)
	assert.Contains(t, te.Error(), "5 of 20 finished targets ended offline, more than --abort-if offline>10%")
}

func TestRunnerAbortIfCountsOnlyItsClass(t *testing.T) {
	var calls atomic.Int64
	inv := numbered(&calls, func(n int) (iothub.MethodResult, error) {
		switch {
		case n%2 == 0:
			return iothub.MethodResult{Status: 500, Payload: json.RawMessage(`null`)}, nil // failed, not timeout
		case n == 31 || n == 33:
			return iothub.MethodResult{}, &iothub.ResponseError{StatusCode: 504, ErrorCode: 504101}
		}
		return okAnswer()
	})
	timeout, err := ParseCriterion("timeout>1")
	require.NoError(t, err)
	offlineShare, err := ParseCriterion("offline>1%")
	require.NoError(t, err)
	_, err = NewRunner(inv).RunTargets(context.Background(), devices(60), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 1, AbortIf: []Criterion{offlineShare, timeout},
	})
	var te *ThresholdError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, OutcomeTimeout, te.Criterion.Class, "half the fleet failed, but only the second timeout stops it")
	assert.Equal(t, 2, te.Failed)
	assert.Equal(t, 33, te.Finished)
}

func TestRunnerAbortIfAnyCountsEveryFailure(t *testing.T) {
	var calls atomic.Int64
	inv := numbered(&calls, func(n int) (iothub.MethodResult, error) {
		if n <= 3 {
			return iothub.MethodResult{}, offline
		}
		return okAnswer()
	})
	c, err := ParseCriterion("any>2")
	require.NoError(t, err)
	_, err = NewRunner(inv).RunTargets(context.Background(), devices(40), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 1, AbortIf: []Criterion{c},
	})
	var te *ThresholdError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 3, te.Failed)
	assert.Contains(t, te.Error(), "3 of 3 finished targets failed, more than --abort-if any>2")
}

func TestRunnerAbortIfNotReached(t *testing.T) {
	var calls atomic.Int64
	inv := numbered(&calls, func(n int) (iothub.MethodResult, error) {
		if n%20 == 0 { // 5%, the share never above it in order
			return iothub.MethodResult{}, offline
		}
		return okAnswer()
	})
	c, err := ParseCriterion("offline>5%")
	require.NoError(t, err)
	results, err := NewRunner(inv).RunTargets(context.Background(), devices(100), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 1, AbortIf: []Criterion{c}, MinSample: 20,
	})
	require.NoError(t, err, "5% is not more than 5%")
	assert.Len(t, results, 100)
	assert.Equal(t, int64(100), calls.Load())
}

func TestRunnerAbortIfIsJudgedWithinAWave(t *testing.T) {
	var calls atomic.Int64
	inv := numbered(&calls, func(n int) (iothub.MethodResult, error) {
		if n == 3 || n == 5 {
			return iothub.MethodResult{}, offline
		}
		return okAnswer()
	})
	c, err := ParseCriterion("offline>1")
	require.NoError(t, err)
	plan, err := ParseWaves("50,100%")
	require.NoError(t, err)
	_, err = NewRunner(inv).RunTargets(context.Background(), devices(100), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 1, Waves: plan, AbortIf: []Criterion{c},
	})
	var te *ThresholdError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 5, te.Finished, "stopped inside wave 1, not at its end")
	assert.Equal(t, 1, te.Wave)
	assert.LessOrEqual(t, calls.Load(), int64(5+2))
}

func TestRunnerGateRunsBetweenWavesAndStops(t *testing.T) {
	var calls atomic.Int64
	inv := numbered(&calls, func(int) (iothub.MethodResult, error) { return okAnswer() })
	plan, err := ParseWaves("10,50%,100%")
	require.NoError(t, err)
	var seen []int // results final when each gate ran
	var gates [][2]int
	results := 0
	opts := RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 4, Waves: plan, Total: 100,
		OnResult: func(Result) { results++ },
		Gate: func(_ context.Context, wave, waves int) error {
			gates = append(gates, [2]int{wave, waves})
			seen = append(seen, results)
			return nil
		},
	}
	_, err = NewRunner(inv).Run(context.Background(), NewSliceSource(devices(100)), opts)
	require.NoError(t, err)
	assert.Equal(t, [][2]int{{1, 3}, {2, 3}}, gates, "between waves, not after the last")
	assert.Equal(t, []int{10, 50}, seen, "a gate sees every result of the waves before it")

	gates, seen, results = nil, nil, 0
	opts.GateAfterLast = true
	_, err = NewRunner(inv).Run(context.Background(), NewSliceSource(devices(100)), opts)
	require.NoError(t, err)
	assert.Equal(t, [][2]int{{1, 3}, {2, 3}, {3, 3}}, gates)
	assert.Equal(t, []int{10, 50, 100}, seen)

	calls.Store(0)
	opts.GateAfterLast = false
	opts.Gate = func(_ context.Context, wave, waves int) error {
		return &GateError{Wave: wave, Waves: waves, ExitCode: 3, Reason: "exited with status 3"}
	}
	rs, err := NewRunner(inv).RunTargets(context.Background(), devices(100), opts)
	var ge *GateError
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, int64(10), calls.Load(), "only wave 1 was sent")
	assert.Equal(t, 90, ge.Skipped)
	assert.Equal(t, "the rollout stopped after wave 1 of 3: the --gate exited with status 3; 90 targets were not started", ge.Error())
	skipped := 0
	for _, r := range rs {
		if r.Outcome == OutcomeSkipped {
			skipped++
		}
	}
	assert.Equal(t, 90, skipped)
}

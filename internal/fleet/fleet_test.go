package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
	"github.com/dmctl/dmctl/internal/testkit"
)

type answer struct {
	res iothub.MethodResult
	err error
}

// fakeInvoker answers per device from a script; the last answer repeats.
type fakeInvoker struct {
	mu      sync.Mutex
	scripts map[string][]answer
	calls   []Target
	reqs    []iothub.MethodRequest
	onCall  func(t Target)
}

func (f *fakeInvoker) Invoke(ctx context.Context, t Target, req iothub.MethodRequest) (iothub.MethodResult, error) {
	f.mu.Lock()
	f.calls = append(f.calls, t)
	f.reqs = append(f.reqs, req)
	script := f.scripts[t.String()]
	var a answer
	if len(script) > 0 {
		a = script[0]
		if len(script) > 1 {
			f.scripts[t.String()] = script[1:]
		}
	}
	onCall := f.onCall
	f.mu.Unlock()
	if onCall != nil {
		onCall(t)
	}
	return a.res, a.err
}

func ok(status int, payload string) answer {
	return answer{res: iothub.MethodResult{Status: status, Payload: json.RawMessage(payload)}}
}

func hubErr(status, code int, name string) answer {
	return answer{err: &iothub.ResponseError{StatusCode: status, ErrorCode: code, ErrorCodeName: name, Message: "msg\nsecond line", TrackingID: "trk-1", RequestID: "req-1"}}
}

func noSleep(context.Context, time.Duration) error { return nil }

func policy(maxAttempts int) retry.Policy {
	return retry.Policy{MaxAttempts: maxAttempts, MaxElapsed: time.Minute, Sleep: noSleep}
}

type credFail struct{}

func (credFail) Error() string           { return "no token" }
func (credFail) CredentialFailure() bool { return true }

type netTimeout struct{}

func (netTimeout) Error() string   { return "i/o timeout" }
func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return true }

var _ net.Error = netTimeout{}

func TestOutcomeOf(t *testing.T) {
	only200, err := ParseStatusSet("200")
	require.NoError(t, err)
	tests := []struct {
		name string
		a    answer
		ok   StatusSet
		want Outcome
	}{
		{"200 any 2xx", ok(200, `{}`), StatusSet{}, OutcomeSucceeded},
		{"204 any 2xx", ok(204, `null`), StatusSet{}, OutcomeSucceeded},
		{"202 not in 200", ok(202, `null`), only200, OutcomeFailed},
		{"device 500", ok(500, `{"error":"x"}`), StatusSet{}, OutcomeFailed},
		{"device 404", ok(404, `null`), StatusSet{}, OutcomeFailed},
		{"offline", hubErr(404, 404103, "DeviceNotOnline"), StatusSet{}, OutcomeOffline},
		{"gateway timeout", hubErr(504, 504101, "GatewayTimeout"), StatusSet{}, OutcomeTimeout},
		{"generic 504", hubErr(504, 504000, ""), StatusSet{}, OutcomeTimeout},
		{"408", hubErr(408, 0, ""), StatusSet{}, OutcomeTimeout},
		{"throttled", hubErr(429, 429001, "ThrottlingException"), StatusSet{}, OutcomeThrottled},
		{"throttled no code", hubErr(429, 0, ""), StatusSet{}, OutcomeThrottled},
		{"inflight exceeded", hubErr(403, 403800, "DeviceMaximumInflightMethodExceeded"), StatusSet{}, OutcomeThrottled},
		{"401", hubErr(401, 401002, "IotHubUnauthorizedAccess"), StatusSet{}, OutcomeUnauthorized},
		{"403", hubErr(403, 0, ""), StatusSet{}, OutcomeUnauthorized},
		{"403 quota", hubErr(403, 403002, "IotHubQuotaExceeded"), StatusSet{}, OutcomeError},
		{"device not found", hubErr(404, 404001, "DeviceNotFound"), StatusSet{}, OutcomeNotFound},
		{"module not found", hubErr(404, 404010, "ModuleNotFound"), StatusSet{}, OutcomeNotFound},
		{"bare 404", hubErr(404, 0, ""), StatusSet{}, OutcomeNotFound},
		{"400", hubErr(400, 400004, "ArgumentInvalid"), StatusSet{}, OutcomeError},
		{"500", hubErr(500, 500001, "ServerError"), StatusSet{}, OutcomeError},
		{"credential", answer{err: fmt.Errorf("wrapped: %w", credFail{})}, StatusSet{}, OutcomeUnauthorized},
		{"deadline", answer{err: &iothub.TransportError{Err: context.DeadlineExceeded, RequestWritten: true}}, StatusSet{}, OutcomeTimeout},
		{"net timeout", answer{err: &iothub.TransportError{Err: netTimeout{}}}, StatusSet{}, OutcomeTimeout},
		{"refused", answer{err: &iothub.TransportError{Err: errors.New("connection refused")}}, StatusSet{}, OutcomeError},
		{"cancelled", answer{err: context.Canceled}, StatusSet{}, OutcomeError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, OutcomeOf(tt.a.res, tt.a.err, tt.ok))
		})
	}
}

func TestParseStatusSet(t *testing.T) {
	tests := []struct {
		in      string
		yes, no []int
		text    string
	}{
		{"2xx", []int{200, 201, 299}, []int{199, 300, 500}, "2xx"},
		{"200,202", []int{200, 202}, []int{201, 204}, "200,202"},
		{" 2XX , 404 ", []int{200, 250, 404}, []int{400, 500}, "2XX,404"},
		{"0", []int{0}, []int{200}, "0"},
	}
	for _, tt := range tests {
		s, err := ParseStatusSet(tt.in)
		require.NoError(t, err, tt.in)
		for _, st := range tt.yes {
			assert.True(t, s.Contains(st), "%q should contain %d", tt.in, st)
		}
		for _, st := range tt.no {
			assert.False(t, s.Contains(st), "%q should not contain %d", tt.in, st)
		}
		assert.Equal(t, tt.text, s.String())
	}
	for _, bad := range []string{"", ",", "abc", "2x", "20x", "-1", "1000", "0xx"} {
		_, err := ParseStatusSet(bad)
		assert.Error(t, err, bad)
	}
	assert.Equal(t, "2xx", StatusSet{}.String())
	assert.True(t, StatusSet{}.Contains(200))
	assert.False(t, StatusSet{}.Contains(300))
}

func TestRunnerRecordsEachTarget(t *testing.T) {
	inv := &fakeInvoker{scripts: map[string][]answer{
		"d1":   {ok(200, `{"rebooted":true}`)},
		"d2":   {ok(500, `"boom"`)},
		"d3":   {hubErr(404, 404103, "DeviceNotOnline")},
		"d4/m": {ok(200, ``)},
	}}
	clk := testkit.NewTickingClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)), 10*time.Millisecond) // each reading 10 ms later
	var streamed []string
	targets := []Target{{DeviceID: "d1"}, {DeviceID: "d2"}, {DeviceID: "d3"}, {DeviceID: "d4", ModuleID: "m"}}
	req := iothub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"a":1}`), ResponseTimeout: 30 * time.Second}
	results, err := NewRunner(inv).RunTargets(context.Background(), targets, RunOptions{
		Request:  req,
		Retry:    policy(3),
		Now:      clk.Now,
		OnResult: func(r Result) { streamed = append(streamed, r.Target().String()) },
	})
	require.NoError(t, err)
	require.Len(t, results, 4)
	assert.Equal(t, []string{"d1", "d2", "d3", "d4/m"}, streamed)
	assert.Equal(t, targets, inv.calls, "one call per target, in order")
	for _, r := range inv.reqs {
		assert.Equal(t, req, r)
	}

	r := results[0]
	assert.Equal(t, OutcomeSucceeded, r.Outcome)
	require.NotNil(t, r.Status)
	assert.Equal(t, 200, *r.Status)
	assert.JSONEq(t, `{"rebooted":true}`, string(r.Payload))
	assert.Nil(t, r.Error)
	assert.Equal(t, 1, r.Attempts)
	assert.Equal(t, "reboot", r.Method)
	assert.Equal(t, time.UTC, r.StartTime.Location())
	assert.Equal(t, 10.0, r.DurationMs, "the fake clock moves 10ms between start and end")

	assert.Equal(t, OutcomeFailed, results[1].Outcome)
	assert.Equal(t, 500, *results[1].Status)

	off := results[2]
	assert.Equal(t, OutcomeOffline, off.Outcome)
	assert.Nil(t, off.Status)
	assert.Nil(t, off.Payload)
	require.NotNil(t, off.Error)
	assert.Equal(t, ResultError{HTTPStatus: 404, Code: 404103, CodeName: "DeviceNotOnline", Message: "msg second line", TrackingID: "trk-1", RequestID: "req-1"}, *off.Error)

	mod := results[3]
	assert.Equal(t, "m", mod.ModuleID)
	assert.Equal(t, "null", string(mod.Payload), "an empty device payload is recorded as JSON null")
}

func TestRunnerRetriesThroughRetryPackage(t *testing.T) {
	inv := &fakeInvoker{scripts: map[string][]answer{
		"d1": {hubErr(429, 429001, "ThrottlingException"), ok(200, `{}`)},
		"d2": {hubErr(504, 504101, "GatewayTimeout"), ok(200, `{}`)},
	}}
	results, err := NewRunner(inv).RunTargets(context.Background(), []Target{{DeviceID: "d1"}, {DeviceID: "d2"}},
		RunOptions{Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(3)})
	require.NoError(t, err)
	assert.Equal(t, OutcomeSucceeded, results[0].Outcome)
	assert.Equal(t, 2, results[0].Attempts, "429 is safe to resend")
	assert.Equal(t, OutcomeTimeout, results[1].Outcome)
	assert.Equal(t, 1, results[1].Attempts, "504101 is not resent without Idempotent")
}

func TestRunnerIdempotentResends504(t *testing.T) {
	inv := &fakeInvoker{scripts: map[string][]answer{"d": {hubErr(504, 504101, "GatewayTimeout"), ok(200, `{}`)}}}
	p := policy(3)
	p.Idempotent = true
	results, err := NewRunner(inv).RunTargets(context.Background(), []Target{{DeviceID: "d"}}, RunOptions{Request: iothub.MethodRequest{MethodName: "m"}, Retry: p})
	require.NoError(t, err)
	assert.Equal(t, OutcomeSucceeded, results[0].Outcome)
	assert.Equal(t, 2, results[0].Attempts)
}

func TestRunnerCancellationSkipsTheRest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inv := &fakeInvoker{scripts: map[string][]answer{"a": {ok(200, `1`)}, "b": {ok(200, `2`)}, "c": {ok(200, `3`)}}}
	inv.onCall = func(t Target) {
		if t.DeviceID == "b" {
			cancel()
		}
	}
	var streamed []Outcome
	results, err := NewRunner(inv).RunTargets(ctx, []Target{{DeviceID: "a"}, {DeviceID: "b"}, {DeviceID: "c"}},
		RunOptions{Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), OnResult: func(r Result) { streamed = append(streamed, r.Outcome) }})
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, results, 3)
	assert.Equal(t, OutcomeSucceeded, results[0].Outcome)
	assert.Equal(t, OutcomeSucceeded, results[1].Outcome, "b answered before the cancellation was noticed")
	assert.Equal(t, OutcomeSkipped, results[2].Outcome)
	assert.Equal(t, 0, results[2].Attempts)
	assert.Len(t, inv.calls, 2, "c was never called")
	assert.Equal(t, []Outcome{OutcomeSucceeded, OutcomeSucceeded, OutcomeSkipped}, streamed)
}

func TestResultJSONShape(t *testing.T) {
	status := 200
	r := Result{
		DeviceID: "d1", Method: "reboot", Outcome: OutcomeSucceeded, Status: &status,
		Payload: json.RawMessage(`{"ok":true}`), Attempts: 1,
		StartTime:  time.Date(2026, 1, 2, 4, 4, 5, 123456789, time.FixedZone("X", 3600)),
		DurationMs: 12.345,
	}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"deviceId":"d1","method":"reboot","outcome":"succeeded","status":200,"payload":{"ok":true},
		"attempts":1,"startTime":"2026-01-02T03:04:05.123456789Z","durationMs":12.345}`, string(b))

	e := Result{DeviceID: "d1", ModuleID: "m1", Method: "reboot", Outcome: OutcomeOffline, Attempts: 1,
		Error:     &ResultError{HTTPStatus: 404, Code: 404103, CodeName: "DeviceNotOnline", Message: "not online", TrackingID: "t", RequestID: "r"},
		StartTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	b, err = json.Marshal(e)
	require.NoError(t, err)
	assert.JSONEq(t, `{"deviceId":"d1","moduleId":"m1","method":"reboot","outcome":"offline",
		"error":{"httpStatus":404,"code":404103,"codeName":"DeviceNotOnline","message":"not online","trackingId":"t","requestId":"r"},
		"attempts":1,"startTime":"2026-01-02T03:04:05Z","durationMs":0}`, string(b))

	var back Result
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, e, back, "results round-trip (journals and --resume read them back)")
}

func TestResultErrorString(t *testing.T) {
	e := &ResultError{HTTPStatus: 404, Code: 404103, CodeName: "DeviceNotOnline", Message: "The device is\n not online.", TrackingID: "abc"}
	assert.Equal(t, "404 404103 DeviceNotOnline: The device is not online. (tracking id abc)", e.String())
	assert.Equal(t, "connection refused", (&ResultError{Message: "connection refused"}).String())
	assert.Equal(t, "401 IotHubUnauthorizedAccess: Unauthorized", (&ResultError{HTTPStatus: 401, CodeName: "IotHubUnauthorizedAccess", Message: "Unauthorized"}).String())
	assert.Equal(t, "", (&ResultError{}).CodeText())
}

func TestSummarize(t *testing.T) {
	s200, s500 := 200, 500
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	results := []Result{
		{Outcome: OutcomeSucceeded, Status: &s200, Attempts: 1, StartTime: t0, DurationMs: 100},
		{Outcome: OutcomeSucceeded, Status: &s200, Attempts: 2, StartTime: t0.Add(100 * time.Millisecond), DurationMs: 50},
		{Outcome: OutcomeFailed, Status: &s500, Attempts: 1, StartTime: t0.Add(150 * time.Millisecond), DurationMs: 250},
		{Outcome: OutcomeOffline, Attempts: 1, StartTime: t0.Add(400 * time.Millisecond), DurationMs: 10},
		{Outcome: OutcomeSkipped, StartTime: t0.Add(time.Hour)},
	}
	s := Summarize(results)
	assert.Equal(t, 5, s.Targets)
	assert.Equal(t, map[Outcome]int{OutcomeSucceeded: 2, OutcomeFailed: 1, OutcomeOffline: 1, OutcomeSkipped: 1}, s.ByOutcome)
	assert.Equal(t, map[int]int{200: 2, 500: 1}, s.ByStatus)
	assert.Equal(t, 5, s.Attempts)
	assert.Equal(t, 410*time.Millisecond, s.Elapsed, "skipped targets do not stretch the elapsed time")
	assert.False(t, s.AllSucceeded())
	assert.False(t, s.AllUnauthorized())
	assert.Equal(t, 3, s.NotSucceeded())

	assert.True(t, Summarize([]Result{{Outcome: OutcomeSucceeded}}).AllSucceeded())
	assert.True(t, Summarize([]Result{{Outcome: OutcomeUnauthorized}, {Outcome: OutcomeUnauthorized}}).AllUnauthorized())
	assert.False(t, Summarize([]Result{{Outcome: OutcomeUnauthorized}, {Outcome: OutcomeSucceeded}}).AllUnauthorized())
	assert.False(t, Summarize(nil).AllSucceeded(), "no targets is not success")
}

func TestTargetString(t *testing.T) {
	assert.Equal(t, "d", Target{DeviceID: "d"}.String())
	assert.Equal(t, "d/m", Target{DeviceID: "d", ModuleID: "m"}.String())
}

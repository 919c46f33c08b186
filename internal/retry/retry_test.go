package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/testkit"
)

func hubErr(status, code int) error {
	return &iothub.ResponseError{StatusCode: status, ErrorCode: code, ErrorCodeName: iothub.ErrorCodeName(code), Message: "m"}
}

func transportErr(written bool) error {
	return &iothub.TransportError{Err: io.ErrUnexpectedEOF, RequestWritten: written}
}

// expect lists the verdict for the four policies
// {plain, idempotent, waitOnline, idempotent+waitOnline}.
type expect [4]Verdict

var (
	always = expect{Resend, Resend, Resend, Resend}
	never  = expect{Stop, Stop, Stop, Stop}
	idemp  = expect{Stop, Resend, Stop, Resend}
	online = expect{Stop, Stop, Resend, Resend}
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want expect
	}{
		{"429 without code", hubErr(429, 0), always},
		{"429001 throttling", hubErr(429, 429001), always},
		{"429002 backlog", hubErr(429, 429002), always},
		{"429005 device throttling", hubErr(429, 429005), always},
		{"429 code on another status", hubErr(400, 429001), always},
		{"503 without code", hubErr(503, 0), always},
		{"503001 unavailable", hubErr(503, 503001), always},
		{"503005 busy", hubErr(503, 503005), always},
		{"refused before write", transportErr(false), always},
		{"404103 offline", hubErr(404, 404103), online},
		{"504101 gateway timeout", hubErr(504, 504101), idemp},
		{"504 without code", hubErr(504, 0), idemp},
		{"504000 generic gateway timeout", hubErr(504, 504000), idemp},
		{"500 without code", hubErr(500, 0), idemp},
		{"500001 server error", hubErr(500, 500001), idemp},
		{"502 bad gateway", hubErr(502, 0), idemp},
		{"lost after write", transportErr(true), idemp},
		{"per-attempt deadline after write", &iothub.TransportError{Err: context.DeadlineExceeded, RequestWritten: true}, idemp},
		{"per-attempt deadline before write", &iothub.TransportError{Err: context.DeadlineExceeded, RequestWritten: false}, always},
		{"400 without code", hubErr(400, 0), never},
		{"400004 argument invalid", hubErr(400, 400004), never},
		{"401002 unauthorized", hubErr(401, 401002), never},
		{"401003 unauthorized", hubErr(401, 401003), never},
		{"403002 quota", hubErr(403, 403002), never},
		{"404001 device not found", hubErr(404, 404001), never},
		{"404010 module not found", hubErr(404, 404010), never},
		{"404 without code", hubErr(404, 0), never},
		{"408", hubErr(408, 0), never},
		{"409001 exists", hubErr(409, 409001), never},
		{"412001 precondition", hubErr(412, 412001), never},
		{"413001 too large", hubErr(413, 413001), never},
		{"context cancelled", context.Canceled, never},
		{"cancelled inside transport error", &iothub.TransportError{Err: fmt.Errorf("dial: %w", context.Canceled)}, never},
		{"bare deadline", context.DeadlineExceeded, never},
		{"input error", &iothub.InputError{Input: "device id", Reason: "empty"}, never},
		{"unreadable answer", fmt.Errorf("%w: x", iothub.ErrUnreadableAnswer), never},
		{"unknown", errors.New("something else"), never},
		{"nil", nil, never},
		{"wrapped 429", fmt.Errorf("invoke on d: %w", hubErr(429, 429001)), always},
		{"wrapped 504101", fmt.Errorf("invoke on d: %w", hubErr(504, 504101)), idemp},
		{"wrapped written transport", fmt.Errorf("invoke: %w", transportErr(true)), idemp},
	}
	policies := [4]Policy{
		{},
		{Idempotent: true},
		{WaitOnline: time.Minute},
		{Idempotent: true, WaitOnline: time.Minute},
	}
	for _, tc := range cases {
		for i, p := range policies {
			t.Run(fmt.Sprintf("%s/idempotent=%v/waitOnline=%v", tc.name, p.Idempotent, p.WaitOnline > 0), func(t *testing.T) {
				v, reason := Classify(tc.err, p)
				assert.Equal(t, tc.want[i], v, "reason: %s", reason)
				assert.NotEmpty(t, reason)
			})
		}
	}
}

func TestClassifyWaitOnlineBudget(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return start.Add(d) } }
	err := hubErr(404, 404103)

	v, reason := Classify(err, Policy{WaitOnline: time.Minute, FirstAttempt: start, Now: at(59 * time.Second)})
	assert.Equal(t, Resend, v, reason)
	assert.Contains(t, reason, "waiting up to 1m0s")

	v, reason = Classify(err, Policy{WaitOnline: time.Minute, FirstAttempt: start, Now: at(time.Minute)})
	assert.Equal(t, Stop, v)
	assert.Contains(t, reason, "still offline after waiting 1m0s")

	v, reason = Classify(err, Policy{Idempotent: true, FirstAttempt: start, Now: at(time.Second)})
	assert.Equal(t, Stop, v)
	assert.Contains(t, reason, "device offline (404103 DeviceNotOnline)")
}

func TestClassifyReasons(t *testing.T) {
	_, r := Classify(hubErr(504, 504101), Policy{})
	assert.Equal(t, "504101 GatewayTimeout: the device may have run the method, so it is not resent without --idempotent", r)
	_, r = Classify(hubErr(429, 0), Policy{})
	assert.Equal(t, "throttled (HTTP 429)", r)
	_, r = Classify(transportErr(false), Policy{})
	assert.Equal(t, "the request was not sent", r)
	assert.Equal(t, "resend", Resend.String())
	assert.Equal(t, "stop", Stop.String())
}

// fake is a clock and sleeper: Sleep records the wait and moves the clock.
type fake struct{ *testkit.FakeClock }

func newFake() *fake {
	return &fake{testkit.NewAutoClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))}
}

func (f *fake) policy(p Policy) Policy {
	p.Now, p.Sleep = f.Now, f.Sleep
	return p
}

// script returns a call that fails with errs in turn and then succeeds,
// recording the attempt numbers it was given.
func script(seen *[]int, errs ...error) func(context.Context, int) error {
	i := 0
	return func(_ context.Context, attempt int) error {
		*seen = append(*seen, attempt)
		if i < len(errs) {
			i++
			return errs[i-1]
		}
		return nil
	}
}

func TestDoThrottledThenSuccess(t *testing.T) {
	f := newFake()
	var seen []int
	n, err := Do(context.Background(), f.policy(Policy{}), script(&seen, hubErr(429, 429001), hubErr(429, 0)))
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, []int{1, 2, 3}, seen)
	assert.Len(t, f.Slept(), 2)
}

func TestDoStopsAtMaxAttempts(t *testing.T) {
	for _, max := range []int{0, 1, 3} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			f := newFake()
			calls := 0
			n, err := Do(context.Background(), f.policy(Policy{MaxAttempts: max}), func(context.Context, int) error {
				calls++
				return hubErr(503, 503001)
			})
			want := max
			if max == 0 {
				want = DefaultMaxAttempts
			}
			assert.Equal(t, want, n)
			assert.Equal(t, want, calls)
			assert.Len(t, f.Slept(), want-1)
			re, ok := iothub.AsResponseError(err)
			require.True(t, ok)
			assert.Equal(t, 503001, re.ErrorCode)
		})
	}
}

func TestDoHonoursRetryAfter(t *testing.T) {
	f := newFake()
	first := &iothub.ResponseError{StatusCode: 429, ErrorCode: 429001, RetryAfter: 7 * time.Second}
	second := &iothub.ResponseError{StatusCode: 503, RetryAfter: 3 * time.Second}
	var seen []int
	n, err := Do(context.Background(), f.policy(Policy{MaxInterval: time.Second}), script(&seen, first, second))
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, []time.Duration{7 * time.Second, 3 * time.Second}, f.Slept(), "Retry-After wins over backoff and MaxInterval")
}

func TestDoBackoffGrowsWithJitter(t *testing.T) {
	f := newFake()
	p := f.policy(Policy{MaxAttempts: 7, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second})
	n, err := Do(context.Background(), p, func(context.Context, int) error { return hubErr(429, 0) })
	require.Error(t, err)
	assert.Equal(t, 7, n)
	require.Len(t, f.Slept(), 6)
	interval := 100 * time.Millisecond
	for i, d := range f.Slept() {
		assert.GreaterOrEqual(t, d, interval/2, "sleep %d", i)
		assert.LessOrEqual(t, d, interval*3/2, "sleep %d", i)
		interval = min(interval*2, time.Second)
	}
}

func TestDoStopsOnMaxElapsed(t *testing.T) {
	f := newFake()
	start := f.Now()
	p := f.policy(Policy{MaxAttempts: 100, MaxElapsed: 10 * time.Second})
	n, err := Do(context.Background(), p, func(context.Context, int) error {
		f.Advance(time.Second) // each attempt takes a second
		return &iothub.ResponseError{StatusCode: 429, RetryAfter: 4 * time.Second}
	})
	require.Error(t, err)
	// t=0..1 fail, wait to 5; 5..6 fail, wait to 10 (= limit, allowed);
	// 10..11 fail, a wait to 15 would pass 10s: stop.
	assert.Equal(t, 3, n)
	assert.Equal(t, []time.Duration{4 * time.Second, 4 * time.Second}, f.Slept())
	assert.Equal(t, 11*time.Second, f.Now().Sub(start))
}

func TestDoRetryAfterBeyondMaxElapsed(t *testing.T) {
	f := newFake()
	n, err := Do(context.Background(), f.policy(Policy{MaxElapsed: time.Minute}), func(context.Context, int) error {
		return &iothub.ResponseError{StatusCode: 429, RetryAfter: 2 * time.Minute}
	})
	require.Error(t, err)
	assert.Equal(t, 1, n)
	assert.Empty(t, f.Slept())
}

func TestDoGatewayTimeoutNeedsIdempotent(t *testing.T) {
	for _, idem := range []bool{false, true} {
		t.Run(fmt.Sprint("idempotent=", idem), func(t *testing.T) {
			f := newFake()
			calls := 0
			n, err := Do(context.Background(), f.policy(Policy{Idempotent: idem, MaxAttempts: 4}), func(context.Context, int) error {
				calls++
				return hubErr(504, 504101)
			})
			want := 1
			if idem {
				want = 4
			}
			assert.Equal(t, want, n)
			assert.Equal(t, want, calls)
			re, ok := iothub.AsResponseError(err)
			require.True(t, ok)
			assert.Equal(t, iothub.CodeGatewayTimeout, re.ErrorCode)
		})
	}
}

func TestDoTransportErrors(t *testing.T) {
	f := newFake()
	var seen []int
	n, err := Do(context.Background(), f.policy(Policy{}), script(&seen, transportErr(false), transportErr(false)))
	require.NoError(t, err)
	assert.Equal(t, 3, n)

	seen = nil
	n, err = Do(context.Background(), f.policy(Policy{}), script(&seen, transportErr(true)))
	assert.Equal(t, 1, n, "a written request is not resent without Idempotent")
	var te *iothub.TransportError
	assert.ErrorAs(t, err, &te)
}

func TestDoWaitOnline(t *testing.T) {
	f := newFake()
	start := f.Now()
	p := f.policy(Policy{WaitOnline: 10 * time.Second, MaxAttempts: 2, InitialInterval: 3 * time.Second, MaxInterval: 3 * time.Second})
	calls := 0
	n, err := Do(context.Background(), p, func(context.Context, int) error {
		calls++
		return hubErr(404, 404103)
	})
	re, ok := iothub.AsResponseError(err)
	require.True(t, ok)
	assert.Equal(t, iothub.CodeDeviceNotOnline, re.ErrorCode)
	assert.Greater(t, n, 2, "offline resends do not count against MaxAttempts")
	assert.Equal(t, calls, n)
	assert.Equal(t, 10*time.Second, f.Now().Sub(start), "the last wait ends when the budget does")
	var total time.Duration
	for _, d := range f.Slept() {
		total += d
		assert.Greater(t, d, time.Duration(0))
	}
	assert.Equal(t, 10*time.Second, total)

	// The device comes online on the third attempt.
	f = newFake()
	var seen []int
	n, err = Do(context.Background(), f.policy(Policy{WaitOnline: time.Minute}), script(&seen, hubErr(404, 404103), hubErr(404, 404103)))
	require.NoError(t, err)
	assert.Equal(t, 3, n)

	// Without WaitOnline an offline device is tried once.
	f = newFake()
	seen = nil
	n, err = Do(context.Background(), f.policy(Policy{Idempotent: true}), script(&seen, hubErr(404, 404103)))
	require.Error(t, err)
	assert.Equal(t, 1, n)
}

func TestDoStopsOnNonRetryable(t *testing.T) {
	f := newFake()
	var seen []int
	n, err := Do(context.Background(), f.policy(Policy{Idempotent: true}), script(&seen, hubErr(404, 404001)))
	assert.Equal(t, 1, n)
	re, ok := iothub.AsResponseError(err)
	require.True(t, ok)
	assert.Equal(t, 404001, re.ErrorCode)
	assert.Empty(t, f.Slept())
}

func TestDoContextCancel(t *testing.T) {
	t.Run("cancelled before the first attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		called := false
		n, err := Do(ctx, Policy{}, func(context.Context, int) error { called = true; return nil })
		assert.Equal(t, 0, n)
		assert.ErrorIs(t, err, context.Canceled)
		assert.False(t, called)
	})
	t.Run("cancelled during an attempt", func(t *testing.T) {
		f := newFake()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n, err := Do(ctx, f.policy(Policy{}), func(_ context.Context, attempt int) error {
			if attempt == 2 {
				cancel()
			}
			return hubErr(503, 0) // would be resent
		})
		assert.Equal(t, 2, n)
		assert.ErrorIs(t, err, context.Canceled)
		re, ok := iothub.AsResponseError(err)
		require.True(t, ok, "the last hub error is still there")
		assert.Equal(t, 503, re.StatusCode)
		assert.Len(t, f.Slept(), 1)
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := Policy{Now: time.Now, Sleep: func(ctx context.Context, d time.Duration) error {
			cancel()
			return ctx.Err()
		}}
		n, err := Do(ctx, p, func(context.Context, int) error { return hubErr(429, 0) })
		assert.Equal(t, 1, n)
		assert.ErrorIs(t, err, context.Canceled)
		_, ok := iothub.AsResponseError(err)
		assert.True(t, ok)
		assert.Contains(t, err.Error(), "stopped retrying: context canceled")
	})
	t.Run("real timer honours the context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		// An hour-long backoff: the test would hang if the timer ignored ctx.
		n, err := Do(ctx, Policy{InitialInterval: time.Hour, MaxInterval: time.Hour, MaxElapsed: 3 * time.Hour}, func(context.Context, int) error {
			return hubErr(503, 0)
		})
		assert.Equal(t, 1, n)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("the call's own context error is not doubled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		n, err := Do(ctx, Policy{}, func(context.Context, int) error {
			cancel()
			return &iothub.TransportError{Err: context.Canceled}
		})
		assert.Equal(t, 1, n)
		var te *iothub.TransportError
		assert.ErrorAs(t, err, &te)
		assert.NotContains(t, err.Error(), "stopped retrying")
	})
}

func TestDoNilCall(t *testing.T) {
	n, err := Do(context.Background(), Policy{}, nil)
	assert.Equal(t, 0, n)
	assert.Error(t, err)
}

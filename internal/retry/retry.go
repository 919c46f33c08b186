// Package retry is the one place that decides whether a failed IoT Hub call
// may be sent again, and when (design.md §3, "One owner for retries").
//
// Direct methods are not idempotent: a gateway timeout, a 500 or a
// connection lost after the request was written may mean the device already
// ran the method. Classify therefore resends those only when the caller
// declares the call idempotent; failures where the device cannot have run
// anything (throttling, an unavailable hub, a request that never left) are
// always safe to resend. Reads (twins, queries, job status) pass
// Idempotent=true.
package retry

import (
	"context"
	"errors"
	"fmt"
	"github.com/dmctl/dmctl/internal/ctxtime"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/dmctl/dmctl/internal/iothub"
)

// Defaults for a zero Policy.
const (
	DefaultMaxAttempts     = 5
	DefaultMaxElapsed      = 2 * time.Minute
	DefaultInitialInterval = 500 * time.Millisecond
	DefaultMaxInterval     = 30 * time.Second
)

// backoffMultiplier doubles the wait after each failure; backoff/v4 adds
// ±50% jitter around it.
const backoffMultiplier = 2

// Policy says how persistently to resend a call. The zero value is usable.
type Policy struct {
	// MaxAttempts is the total number of attempts including the first;
	// 0 or less means DefaultMaxAttempts. Resends of an offline device
	// while WaitOnline lasts are not counted.
	MaxAttempts int
	// MaxElapsed stops retrying when the next wait would end later than this
	// long after the first attempt; 0 or less means DefaultMaxElapsed. When
	// WaitOnline is longer, WaitOnline is the bound instead.
	MaxElapsed time.Duration
	// Idempotent is the caller's declaration that the call is safe to repeat
	// (--idempotent). Reads always set it.
	Idempotent bool
	// WaitOnline, when > 0, resends a call that failed with 404103
	// DeviceNotOnline until this long after the first attempt has passed
	// (--wait-online); the last wait is shortened to end at that moment.
	WaitOnline time.Duration
	// InitialInterval and MaxInterval shape the exponential backoff;
	// 0 means DefaultInitialInterval and DefaultMaxInterval.
	InitialInterval, MaxInterval time.Duration
	// Sleep waits d or until ctx ends, returning ctx's error then; nil means
	// a real timer. Tests inject a fake.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// FirstAttempt is when the first attempt started. Do sets it; Classify
	// measures the WaitOnline budget from it, and a zero value means no
	// time has been used yet.
	FirstAttempt time.Time
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = DefaultMaxElapsed
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = DefaultMaxInterval
	}
	if p.MaxInterval < p.InitialInterval {
		p.MaxInterval = p.InitialInterval
	}
	if p.Sleep == nil {
		p.Sleep = ctxtime.Sleep
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return p
}

// Verdict is Classify's decision.
type Verdict int

// The verdicts.
const (
	Stop   Verdict = iota // do not send the call again
	Resend                // sending it again is allowed
)

func (v Verdict) String() string {
	if v == Resend {
		return "resend"
	}
	return "stop"
}

// Classify decides whether the call that failed with err may be sent again
// under p, and says why in a short phrase fit for a log line or a result.
//
//   - always resend: any 429 (throttled), any 503, a *TransportError whose
//     request was not written, and 404103 DeviceNotOnline while p.WaitOnline
//     lasts;
//   - resend only when p.Idempotent: 500, 502, 504 (including 504101), and a
//     *TransportError whose request was written (the device may have run it);
//   - never: other 4xx, context cancellation, and anything else.
//
// A *TransportError carrying context.DeadlineExceeded is one attempt's own
// time limit and follows the rules above; Do itself stops as soon as its
// own context ends.
func Classify(err error, p Policy) (v Verdict, reason string) {
	if err == nil {
		return Stop, "succeeded"
	}
	if errors.Is(err, context.Canceled) {
		return Stop, "cancelled"
	}
	if re, ok := iothub.AsResponseError(err); ok {
		return classifyResponse(re, p)
	}
	var te *iothub.TransportError
	if errors.As(err, &te) {
		switch {
		case !te.RequestWritten:
			return Resend, "the request was not sent"
		case p.Idempotent:
			return Resend, "connection lost after the request was sent; the call is idempotent"
		default:
			return Stop, "connection lost after the request was sent; the device may have run the method, so it is not resent without --idempotent"
		}
	}
	var ie *iothub.InputError
	if errors.As(err, &ie) {
		return Stop, "invalid input"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Stop, "timed out"
	}
	return Stop, "not a retryable failure"
}

func classifyResponse(re *iothub.ResponseError, p Policy) (Verdict, string) {
	what := describe(re)
	codeClass := 0
	if re.ErrorCode >= 100000 && re.ErrorCode <= 999999 {
		codeClass = re.ErrorCode / 1000
	}
	is := func(status int) bool { return re.StatusCode == status || codeClass == status }
	switch {
	case is(429):
		return Resend, "throttled (" + what + ")"
	case is(503):
		return Resend, "hub unavailable (" + what + ")"
	case re.ErrorCode == iothub.CodeDeviceNotOnline:
		if p.WaitOnline <= 0 {
			return Stop, "device offline (" + what + ")"
		}
		if !p.FirstAttempt.IsZero() && now(p).Sub(p.FirstAttempt) >= p.WaitOnline {
			return Stop, fmt.Sprintf("device still offline after waiting %s (%s)", p.WaitOnline, what)
		}
		return Resend, fmt.Sprintf("device offline (%s); waiting up to %s for it", what, p.WaitOnline)
	case is(500), is(502), is(504):
		if p.Idempotent {
			return Resend, what + "; the call is idempotent"
		}
		return Stop, what + ": the device may have run the method, so it is not resent without --idempotent"
	}
	return Stop, what + " is not retryable"
}

func describe(re *iothub.ResponseError) string {
	switch {
	case re.ErrorCode != 0 && re.ErrorCodeName != "":
		return fmt.Sprintf("%d %s", re.ErrorCode, re.ErrorCodeName)
	case re.ErrorCode != 0:
		return fmt.Sprint(re.ErrorCode)
	case re.ErrorCodeName != "":
		return fmt.Sprintf("HTTP %d %s", re.StatusCode, re.ErrorCodeName)
	}
	return fmt.Sprintf("HTTP %d", re.StatusCode)
}

func now(p Policy) time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func isOfflineWait(err error, p Policy) bool {
	re, ok := iothub.AsResponseError(err)
	return ok && p.WaitOnline > 0 && re.ErrorCode == iothub.CodeDeviceNotOnline
}

// Do calls call until it succeeds or Classify says Stop, waiting between
// attempts with exponential backoff and jitter, or for the hub's Retry-After
// when the error carries one. It stops at MaxAttempts, or when the next wait
// would end past MaxElapsed since the first attempt. attempt counts from 1.
// Do returns the number of attempts made and the last error (nil on
// success). When ctx ends, Do stops at once; the error then matches both
// ctx's error and the last call's error with errors.Is/As.
func Do(ctx context.Context, p Policy, call func(ctx context.Context, attempt int) error) (attempts int, err error) {
	if call == nil {
		return 0, errors.New("retry: Do needs a call")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p = p.withDefaults()
	p.FirstAttempt = p.Now()
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.InitialInterval),
		backoff.WithMaxInterval(p.MaxInterval),
		backoff.WithMultiplier(backoffMultiplier),
		backoff.WithMaxElapsedTime(0), // bounded here, by MaxElapsed
	)
	elapsedLimit := max(p.MaxElapsed, p.WaitOnline)
	counted := 0 // attempts that count against MaxAttempts
	for {
		attempts++
		err = call(ctx, attempts)
		if err == nil {
			return attempts, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return attempts, stopped(ctxErr, err)
		}
		if v, _ := Classify(err, p); v == Stop {
			return attempts, err
		}
		wait := bo.NextBackOff()
		if re, ok := iothub.AsResponseError(err); ok && re.RetryAfter > 0 {
			wait = re.RetryAfter
		}
		elapsedAfterWait := p.Now().Add(wait).Sub(p.FirstAttempt)
		if isOfflineWait(err, p) {
			// Classify said the budget is not used up; end the last wait
			// exactly when it is.
			if over := elapsedAfterWait - p.WaitOnline; over > 0 {
				wait -= over
			}
		} else {
			counted++
			if counted >= p.MaxAttempts || elapsedAfterWait > elapsedLimit {
				return attempts, err
			}
		}
		if serr := p.Sleep(ctx, wait); serr != nil {
			return attempts, stopped(serr, err)
		}
	}
}

// stopped joins the reason Do stopped early (ctx's error) with the last
// call's error, unless the latter already carries it.
func stopped(cause, last error) error {
	if errors.Is(last, cause) {
		return last
	}
	return &stoppedError{cause: cause, last: last}
}

type stoppedError struct{ cause, last error }

func (e *stoppedError) Error() string {
	return fmt.Sprintf("%v (stopped retrying: %v)", e.last, e.cause)
}

func (e *stoppedError) Unwrap() []error { return []error{e.cause, e.last} }

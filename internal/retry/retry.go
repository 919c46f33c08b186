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
	"time"

	"github.com/dmctl/dmctl/internal/ctxtime"

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

// MaxAttemptsOf is p's bound on attempts, its default applied.
func MaxAttemptsOf(p Policy) int { return p.withDefaults().MaxAttempts }

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
// It is a table over iothub.KindOf:
//
//   - always resend: throttled (429, but not 429004: a job slot frees only
//     when a job ends), unavailable (503), a request that was never sent, and
//     offline (404103) while p.WaitOnline lasts;
//   - resend only when p.Idempotent: a timeout (504, 504101, the attempt's
//     own deadline after writing), a server error (500, 502), and a
//     connection lost after the request was written (the device may have run
//     it);
//   - never: every other kind (bad request, unauthorized, not found, quota,
//     cancellation, ...).
//
// Do itself stops as soon as its own context ends.
func Classify(err error, p Policy) (v Verdict, reason string) {
	k := iothub.KindOf(err)
	what := "HTTP error"
	if re, ok := iothub.AsResponseError(err); ok {
		what = describe(re)
	}
	switch k {
	case iothub.KindNone:
		return Stop, "succeeded"
	case iothub.KindCanceled:
		return Stop, "cancelled"
	case iothub.KindThrottled:
		return Resend, "throttled (" + what + ")"
	case iothub.KindTooManyJobs:
		return Stop, "the hub runs its maximum of jobs (" + what + "); a slot frees only when a job ends"
	case iothub.KindUnavailable:
		return Resend, "hub unavailable (" + what + ")"
	case iothub.KindNotSent, iothub.KindConnectTimeout:
		return Resend, "the request was not sent"
	case iothub.KindOffline:
		if p.WaitOnline <= 0 {
			return Stop, "device offline (" + what + ")"
		}
		if !p.FirstAttempt.IsZero() && now(p).Sub(p.FirstAttempt) >= p.WaitOnline {
			return Stop, fmt.Sprintf("device still offline after waiting %s (%s)", p.WaitOnline, what)
		}
		return Resend, fmt.Sprintf("device offline (%s); waiting up to %s for it", what, p.WaitOnline)
	case iothub.KindLostAfterWrite:
		if p.Idempotent {
			return Resend, "connection lost after the request was sent; the call is idempotent"
		}
		return Stop, "connection lost after the request was sent; the device may have run the method, so it is not resent without --idempotent"
	case iothub.KindTimeout, iothub.KindServerError:
		re, isAnswer := iothub.AsResponseError(err)
		var te *iothub.TransportError
		switch {
		case isAnswer && re.StatusCode == 408:
			return Stop, what + " is not retryable" // the hub's own timeout of the request, not of the device
		case !isAnswer && !errors.As(err, &te):
			return Stop, "timed out" // the caller's deadline, not an attempt's
		case !isAnswer:
			what = "timed out after the request was sent"
		}
		if p.Idempotent {
			return Resend, what + "; the call is idempotent"
		}
		return Stop, what + ": the device may have run the method, so it is not resent without --idempotent"
	case iothub.KindInput:
		return Stop, "invalid input"
	}
	if _, ok := iothub.AsResponseError(err); ok {
		return Stop, what + " is not retryable"
	}
	return Stop, "not a retryable failure"
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
	return p.WaitOnline > 0 && iothub.KindOf(err) == iothub.KindOffline
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

// Pages is an iothub.PageRetry that resends a page fetch under p, as an
// idempotent read (a page can be asked for again).
func Pages(p Policy) iothub.PageRetry {
	p.Idempotent = true
	return func(ctx context.Context, fetch func(context.Context) error) error {
		_, err := Do(ctx, p, func(ctx context.Context, _ int) error { return fetch(ctx) })
		return err
	}
}

package fleet

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/ctxtime"
)

// Limiter paces the calls of a run: every attempt (first sends and
// resends alike, since the hub meters both) waits for it.
type Limiter interface {
	// Wait blocks until the next call may be sent, or until ctx ends (then
	// it returns ctx's error and the call is not sent).
	Wait(ctx context.Context) error
	// Observe is told about every answered attempt: throttled is true for
	// an HTTP 429 from the hub.
	Observe(throttled bool)
	// Rate is the current pace in calls per second.
	Rate() float64
}

// pacerClock is what pacers need of time; tests replace it.
type pacerClock struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func (c pacerClock) withDefaults() pacerClock {
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = ctxtime.Sleep
	}
	return c
}

// paceSlack is how far behind schedule the pacer lets calls catch up (timer
// wake-ups are late by a fraction of a millisecond; without slack those
// fractions would add up to a slower pace than asked).
const paceSlack = 20 * time.Millisecond

// pacer hands out send times rate apart (virtual scheduling: no goroutine,
// no ticker). It is safe for concurrent use.
type pacer struct {
	pacerClock
	mu   sync.Mutex
	next time.Time
	// calls counts reservations, for AdaptiveRate's saturation check.
	calls int
}

// reserve returns when the next call may go at rate calls/s.
func (p *pacer) reserve(rate float64) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	t := p.next
	if t.IsZero() {
		t = now // the first call: no catching up to do
	} else if earliest := now.Add(-paceSlack); t.Before(earliest) {
		t = earliest
	}
	p.next = t.Add(time.Duration(float64(time.Second) / rate))
	p.calls++
	if t.Before(now) {
		return now
	}
	return t
}

func (p *pacer) wait(ctx context.Context, rate float64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	at := p.reserve(rate)
	return p.sleep(ctx, at.Sub(p.now()))
}

// FixedRate paces calls at a constant rate (--rate N/s).
type FixedRate struct {
	pacer
	rate float64
}

// NewFixedRate returns a Limiter sending perSecond calls per second.
func NewFixedRate(perSecond float64) *FixedRate {
	return newFixedRate(perSecond, pacerClock{})
}

func newFixedRate(perSecond float64, c pacerClock) *FixedRate {
	return &FixedRate{pacer: pacer{pacerClock: c.withDefaults()}, rate: perSecond}
}

// Wait implements Limiter.
func (f *FixedRate) Wait(ctx context.Context) error { return f.wait(ctx, f.rate) }

// Observe implements Limiter; a fixed rate does not adapt.
func (f *FixedRate) Observe(bool) {}

// Rate implements Limiter.
func (f *FixedRate) Rate() float64 { return f.rate }

// AIMD tuning of AdaptiveRate.
const (
	// AdaptiveDecrease multiplies the rate on a 429.
	AdaptiveDecrease = 0.7
	// AdaptiveWindow is how often the rate may change: one cut per window
	// (the 429s of calls already in flight belong to the same congestion),
	// one raise per window without a 429.
	AdaptiveWindow = time.Second
	// AdaptiveStepShare is the additive increase per window, as a share of
	// the starting rate (or of the rate at the first 429 after a slow start).
	AdaptiveStepShare = 0.025
	// AdaptiveDefaultStart is where --rate auto starts without --tier: one
	// S1 unit's throttle for payloads up to 4 KB.
	AdaptiveDefaultStart = 40.0
	// AdaptiveMinRate is the floor the rate is never cut below.
	AdaptiveMinRate = 1.0
	// adaptiveSaturated is the share of the rate a window must have used
	// for a raise: when the concurrency, not the rate, bounds the run,
	// raising the rate would only store up a burst.
	adaptiveSaturated = 0.9
	adaptiveMaxRate   = 1e6
)

// AdaptiveRate paces calls and adapts to the hub's throttle (--rate auto):
// additive increase while no call is throttled and the pace is the limit,
// multiplicative decrease on a 429. Started from a known throttle (--tier),
// it only probes upwards by small steps; started without one it first
// doubles every window until the first 429 (a slow start), then switches to
// additive steps.
type AdaptiveRate struct {
	pacer
	mu          sync.Mutex
	rate        float64
	step        float64
	slowStart   bool
	windowStart time.Time
	windowCalls int
	throttled   bool
	lastCut     time.Time
	cuts        int
	raises      int
}

// AdaptiveOptions configure NewAdaptiveRate.
type AdaptiveOptions struct {
	// Start is the starting rate in calls/s; 0 means AdaptiveDefaultStart.
	Start float64
	// SlowStart doubles the rate every window until the first 429; use it
	// when the hub's throttle is not known.
	SlowStart bool
	// Now and Sleep replace the clock (tests); nil means real time.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// NewAdaptiveRate returns an AIMD Limiter.
func NewAdaptiveRate(o AdaptiveOptions) *AdaptiveRate {
	start := o.Start
	if start <= 0 {
		start = AdaptiveDefaultStart
	}
	a := &AdaptiveRate{
		pacer:     pacer{pacerClock: pacerClock{now: o.Now, sleep: o.Sleep}.withDefaults()},
		rate:      start,
		step:      math.Max(1, start*AdaptiveStepShare),
		slowStart: o.SlowStart,
	}
	a.windowStart = a.now()
	return a
}

// Wait implements Limiter.
func (a *AdaptiveRate) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	a.adjustLocked(a.now())
	rate := a.rate
	a.windowCalls++
	a.mu.Unlock()
	return a.wait(ctx, rate)
}

// adjustLocked raises the rate at the end of a window with no 429 in which
// the pace was the limit.
func (a *AdaptiveRate) adjustLocked(now time.Time) {
	elapsed := now.Sub(a.windowStart)
	if elapsed < AdaptiveWindow {
		return
	}
	used := float64(a.windowCalls) / elapsed.Seconds()
	if !a.throttled && used >= adaptiveSaturated*a.rate {
		if a.slowStart {
			a.rate *= 2
		} else {
			a.rate += a.step
		}
		a.rate = math.Min(a.rate, adaptiveMaxRate)
		a.raises++
	}
	a.windowStart, a.windowCalls, a.throttled = now, 0, false
}

// Observe implements Limiter: a 429 cuts the rate, at most once per window.
func (a *AdaptiveRate) Observe(throttled bool) {
	if !throttled {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.throttled = true
	if !a.lastCut.IsZero() && now.Sub(a.lastCut) < AdaptiveWindow {
		return
	}
	if a.slowStart {
		a.slowStart = false
		a.step = math.Max(1, a.rate*AdaptiveStepShare)
	}
	a.rate = math.Max(AdaptiveMinRate, a.rate*AdaptiveDecrease)
	a.lastCut = now
	a.cuts++
	// A fresh window: no raise until a whole window has passed without a 429.
	a.windowStart, a.windowCalls, a.throttled = now, 0, false
}

// Rate implements Limiter.
func (a *AdaptiveRate) Rate() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rate
}

// Changes returns how many times the rate was cut and raised so far.
func (a *AdaptiveRate) Changes() (cuts, raises int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cuts, a.raises
}

// ParseRate reads --rate: "auto", or a number of calls per second written
// N, N/s, N/m or N/min (e.g. 40, 40/s, 2400/m). It returns auto=true for
// "auto", else the rate in calls per second.
func ParseRate(s string) (perSecond float64, auto bool, err error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "auto" {
		return 0, true, nil
	}
	num, unit, _ := strings.Cut(v, "/")
	div := 1.0
	switch strings.TrimSpace(unit) {
	case "", "s", "sec":
	case "m", "min":
		div = 60
	default:
		return 0, false, fmt.Errorf("%q: the unit after / must be s or m (e.g. 40/s, 2400/m)", s)
	}
	num = strings.TrimSpace(num)
	n, perr := strconv.ParseFloat(num, 64)
	if perr != nil || !validNumber(num) {
		return 0, false, fmt.Errorf("%q is not a rate (use auto, or calls per second like 40 or 40/s, or 2400/m)", s)
	}
	if n <= 0 {
		return 0, false, fmt.Errorf("%q: the rate must be more than 0", s)
	}
	return n / div, false, nil
}

// validNumber accepts plain decimal numbers only (ParseFloat also takes
// "inf", "1e3" and hexadecimal).
func validNumber(s string) bool {
	dot := false
	digits := 0
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.' && !dot:
			dot = true
		case r == '+' && i == 0:
		default:
			return false
		}
	}
	return digits > 0
}

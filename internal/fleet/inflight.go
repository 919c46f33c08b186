package fleet

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// In-flight sizing (--concurrency auto). By Little's law a run that sends
// R calls/s to devices answering in W seconds has R×W calls in flight, so
// a fixed number of slots, not the hub, sets the pace once devices take
// real time to answer (32 slots / 1.1 s = 29 calls/s). The auto rule keeps
// the slots at the pace times a high percentile of the measured answer
// time, with headroom, and grows them when the dispatcher waits for a slot
// while the run is behind its pace.
const (
	// InFlightTick is how often the auto rule looks again.
	InFlightTick = 100 * time.Millisecond
	// InFlightMin is the fewest slots the auto rule keeps (the old fixed
	// default: fast devices never get fewer than before).
	InFlightMin = 32
	// InFlightPercentile is the answer-time percentile the rule sizes for.
	InFlightPercentile = 0.90
	// InFlightHeadroom multiplies pace × percentile (and pace × elapsed
	// time before the first answers).
	InFlightHeadroom = 1.25
	// inFlightBehind: a tick whose attempts were below this share of the
	// pace, while the dispatcher waited for a slot, grows the slots.
	inFlightBehind = 0.9
	// inFlightGrowth is the most the slots grow per second (as a share)
	// once calls have answered.
	inFlightGrowth = 0.2
	// inFlightStartup is how long the slots may follow pace × elapsed
	// time before any call has answered.
	inFlightStartup = time.Second
	// inFlightTickCalls: a tick lasts at least as long as the pace takes
	// to send this many calls, so that a slow pace is not judged behind
	// on the rounding of a few calls.
	inFlightTickCalls = 25
	// capacityWindow is how often the answers per second are compared
	// with the best so far (capacity check).
	capacityWindow = time.Second
	// capacityGain is how much more answers/s a window must bring to count
	// as a gain.
	capacityGain = 1.05
	// capacityHeadroom: once more slots brought no more answers, the slots
	// stay within this multiple of those that gave the best answers/s.
	capacityHeadroom = 1.5
	// inFlightWindow is how many recent answer times the percentile is
	// taken over.
	inFlightWindow = 512
	// inFlightMinSamples: fewer answers than this and the rule only grows
	// on waiting (no percentile yet).
	inFlightMinSamples = 64
)

// InFlightOptions configure a run's in-flight slots.
type InFlightOptions struct {
	// Fixed, when > 0, is a fixed number of slots (--concurrency N).
	Fixed int
	// Max bounds the auto rule (--max-concurrency, the open-file limit);
	// <= 0 means InFlightMin.
	Max int
	// Pace is the calls/s the slots are sized for: the limiter's rate, the
	// tier's throttle, or an assumed one. nil or 0: the auto rule keeps
	// InFlightMin slots (Max if lower).
	Pace func() float64
	// Opening, when set, says how many connections are being opened (TLS
	// handshakes under way): while more than a sixteenth of the slots (and
	// at least InFlightMin) are, the slots do not grow.
	Opening func() int
	// OnResize, when set, is told every new number of slots (for a memory
	// limit that follows them). It is called with the controller's lock
	// held: it must not call back.
	OnResize func(limit int)
}

// inFlight hands out call slots. One goroutine (the dispatcher) acquires;
// any goroutine releases.
type inFlight struct {
	opts     InFlightOptions
	now      func() time.Time
	attempts func() int64

	mu    sync.Mutex
	limit int
	inUse int
	freed chan struct{} // signalled when a waiting acquire may go on

	// answer times, a ring of the last inFlightWindow
	lat  []time.Duration
	latN int

	tickAt       time.Time
	tickAttempts int64
	waited       bool // the dispatcher waited for a slot since the last tick
	lastBehind   bool // the last tick waited for slots while behind the pace

	paceSum  float64 // pace × seconds, for the mean
	paceTime time.Duration

	started                    bool
	dispatchAttempts           int64
	dispatchStart, dispatchEnd time.Time

	// capacity check: answers/s per capacityWindow while behind the pace
	answers    int64
	winStart   time.Time
	winAnswers int64
	winBehind  bool
	bestRate   float64
	bestLimit  int
	lastGain   time.Time
	capped     bool
	opening    bool // the last tick held the slots back for handshakes

	stats Pacing
}

// Pacing says how the slots went, for the summary's "what limited the
// pace".
type Pacing struct {
	// Auto is true for --concurrency auto.
	Auto bool
	// Limit is the number of slots at the end; Peak the most calls that
	// were in flight at once; Max the bound of the auto rule.
	Limit, Peak, Max int
	// Waited is how long the dispatcher waited for a free slot while the
	// run was behind its pace; AtMax how much of that was with the slots at
	// Max (the bound, not the rule, held the run); Capped how much was with
	// the slots held back because more of them had brought no more answers
	// (the hub, or this machine, at its capacity).
	Waited, AtMax, Capped time.Duration
	// Opening is how much of Waited was with the slots held back because
	// connections were still being opened (TLS handshakes under way).
	Opening time.Duration
	// Dispatching is how long targets were handed out (first acquire to
	// the last).
	Dispatching time.Duration
	// Paced says a limiter paced the calls; Pace is the mean calls/s the
	// slots were sized for (the limiter's rate, or the assumed pace of an
	// unpaced run).
	Paced bool
	Pace  float64
	// Attempts is how many calls were sent while targets were handed out.
	Attempts int64
}

func newInFlight(o InFlightOptions, now func() time.Time, attempts func() int64) *inFlight {
	f := &inFlight{opts: o, now: now, attempts: attempts, freed: make(chan struct{}, 1)}
	if o.Fixed > 0 {
		f.limit = o.Fixed
		f.opts.Max = o.Fixed
	} else {
		if f.opts.Max <= 0 {
			f.opts.Max = InFlightMin
		}
		f.limit = min(InFlightMin, f.opts.Max)
		f.lat = make([]time.Duration, inFlightWindow)
		f.stats.Auto = true
	}
	f.stats.Max = f.opts.Max
	if f.opts.OnResize != nil {
		f.opts.OnResize(f.limit)
	}
	return f
}

// acquire waits for a slot; while it waits, the rule looks again every
// InFlightTick.
func (f *inFlight) acquire(ctx context.Context) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var start time.Time
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		f.mu.Lock()
		now := f.now()
		if !f.started {
			f.started = true
			f.tickAt, f.tickAttempts, f.dispatchStart = now, f.attempts(), now
		}
		f.adjustLocked(now)
		if f.inUse < f.limit {
			f.inUse++
			f.stats.Peak = max(f.stats.Peak, f.inUse)
			f.dispatchEnd, f.dispatchAttempts = now, f.attempts()
			if !start.IsZero() {
				f.countWaitLocked(start, now)
			}
			f.mu.Unlock()
			return nil
		}
		if start.IsZero() {
			start = now
		}
		f.waited = true
		f.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(InFlightTick)
		} else {
			timer.Reset(InFlightTick)
		}
		select {
		case <-f.freed:
		case <-timer.C:
		case <-ctx.Done():
			f.mu.Lock()
			f.countWaitLocked(start, f.now())
			f.mu.Unlock()
			return ctx.Err()
		}
	}
}

// countWaitLocked adds a wait for a slot to the stats, when the run was
// behind its pace (a wait while the pacer holds calls back is the pace).
func (f *inFlight) countWaitLocked(start, now time.Time) {
	if !f.lastBehind {
		return
	}
	d := now.Sub(start)
	f.stats.Waited += d
	switch {
	case f.limit >= f.opts.Max:
		f.stats.AtMax += d
	case f.capped:
		f.stats.Capped += d
	case f.opening:
		f.stats.Opening += d
	}
}

// release frees a slot; answered is the call's answer time (0 when it got
// none worth measuring).
func (f *inFlight) release(answered time.Duration) {
	f.mu.Lock()
	f.inUse--
	if f.stats.Auto && answered > 0 {
		f.lat[f.latN%len(f.lat)] = answered
		f.latN++
		f.answers++
	}
	free := f.inUse < f.limit
	f.mu.Unlock()
	if free {
		select {
		case f.freed <- struct{}{}:
		default:
		}
	}
}

// adjustLocked is the auto rule, once per InFlightTick.
func (f *inFlight) adjustLocked(now time.Time) {
	pace := 0.0
	if f.opts.Pace != nil {
		pace = f.opts.Pace()
	}
	dt := now.Sub(f.tickAt)
	tick := InFlightTick
	if pace > 0 {
		tick = max(tick, time.Duration(inFlightTickCalls/pace*float64(time.Second)))
	}
	if dt < tick {
		return
	}
	attempts := f.attempts()
	achieved := float64(attempts-f.tickAttempts) / dt.Seconds()
	f.paceSum += pace * dt.Seconds()
	f.paceTime += dt
	f.lastBehind = f.waited && (pace <= 0 || achieved < inFlightBehind*pace)
	f.tickAt, f.tickAttempts, f.waited = now, attempts, false
	if !f.stats.Auto {
		return
	}
	target := 0
	var p50 time.Duration
	if n := min(f.latN, len(f.lat)); n >= inFlightMinSamples && pace > 0 {
		var w time.Duration
		p50, w = f.percentilesLocked(n)
		target = int(math.Ceil(pace * w.Seconds() * InFlightHeadroom))
	}
	ceiling := f.capacityLocked(now, p50)
	limit := f.limit
	switch {
	case f.lastBehind && pace > 0 && f.latN < inFlightMinSamples:
		// Behind the pace before enough calls have answered: none has
		// answered sooner than the time since the first was sent, so the
		// pace needs at least pace × that many slots.
		// That holds for inFlightStartup: an answer later than that may be
		// late because the hub or this machine is busy making the
		// connections and calls it already has, so the slots wait for
		// answers to size from.
		elapsed := min(now.Sub(f.dispatchStart), inFlightStartup).Seconds()
		limit = max(limit, int(math.Ceil(pace*elapsed*InFlightHeadroom)))
	case f.lastBehind && pace > 0:
		// Waiting for slots and behind the pace: the slots hold the run.
		limit = max(target, limit+max(1, int(float64(limit)*inFlightGrowth*dt.Seconds())))
	case target > 0:
		// On pace, or nothing waiting: glide towards the target (latency
		// fell, or an earlier growth overshot).
		if target < limit {
			limit -= (limit - target + 3) / 4
		} else {
			limit = target
		}
	}
	f.opening = false
	if limit > f.limit && f.opts.Opening != nil && f.opts.Opening() > max(InFlightMin, f.limit/16) {
		f.opening = true
		// Connections are still being opened for the slots there are: the
		// hub or this machine is busy with handshakes, answers are late
		// for that, and more slots would open more.
		limit = f.limit
	}
	if f.latN >= inFlightMinSamples && limit > f.limit {
		// Once calls answer, the slots grow by at most inFlightGrowth per
		// second: the answer times lag behind a change, and a hub (or a
		// CPU) already at its capacity answers more slowly the more calls
		// it is given, which growing fast would feed before the capacity
		// check can see it.
		limit = min(limit, f.limit+max(1, int(float64(f.limit)*inFlightGrowth*dt.Seconds())))
	}
	limit = min(max(limit, InFlightMin), f.opts.Max, ceiling)
	if limit != f.limit {
		f.limit = limit
		if f.opts.OnResize != nil {
			f.opts.OnResize(limit)
		}
		if f.inUse < f.limit {
			select {
			case f.freed <- struct{}{}:
			default:
			}
		}
	}
}

// capacityLocked is the most slots the capacity check allows. More slots
// bring more answers per second until the hub (or this machine) is at its
// capacity; past that they only make every call wait longer, which makes
// the answer times, and so the target, grow without end. So the answers
// per second are compared, window by window while the run is behind its
// pace, with the best so far; when two windows (or two median answer times,
// if longer) pass without a gain, the slots stay within capacityHeadroom
// of those that brought the best.
func (f *inFlight) capacityLocked(now time.Time, p50 time.Duration) int {
	if f.winStart.IsZero() {
		f.winStart, f.lastGain = now, now
	}
	f.winBehind = f.winBehind || f.lastBehind
	if d := now.Sub(f.winStart); d >= capacityWindow {
		rate := float64(f.answers-f.winAnswers) / d.Seconds()
		switch {
		case !f.winBehind:
			// On pace: nothing to learn about capacity.
			f.lastGain = now
			f.capped = false
		case rate > f.bestRate*capacityGain:
			f.bestRate, f.bestLimit, f.lastGain = rate, f.limit, now
			f.capped = false
		}
		f.winStart, f.winAnswers, f.winBehind = now, f.answers, false
	}
	if f.bestLimit > 0 && now.Sub(f.lastGain) >= 2*max(capacityWindow, p50) {
		f.capped = true
	}
	if !f.capped {
		return math.MaxInt
	}
	return max(InFlightMin, int(float64(f.bestLimit)*capacityHeadroom))
}

// percentilesLocked are the median and InFlightPercentile of the last n
// answer times.
func (f *inFlight) percentilesLocked(n int) (p50, high time.Duration) {
	s := slices.Clone(f.lat[:n])
	slices.Sort(s)
	return s[n/2], s[min(n-1, int(float64(n)*InFlightPercentile))]
}

// snapshot returns the slots in use, their limit, and whether the last
// tick was held by them at the bound.
func (f *inFlight) snapshot() (inUse, limit int, held bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inUse, f.limit, f.lastBehind && f.limit >= f.opts.Max
}

// finish returns the stats.
func (f *inFlight) finish() Pacing {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.Limit = f.limit
	s.Dispatching = f.dispatchEnd.Sub(f.dispatchStart)
	s.Attempts = f.dispatchAttempts
	if f.paceTime > 0 {
		s.Pace = f.paceSum / f.paceTime.Seconds()
	} else if f.opts.Pace != nil {
		s.Pace = f.opts.Pace()
	}
	return s
}

// What held a run's pace back (Pacing.HeldBy).
const (
	HeldByThrottle = "throttle"  // the hub answered 429s
	HeldByCapacity = "capacity"  // more calls in flight brought no more answers (the hub, or this machine, at capacity)
	HeldByInFlight = "in-flight" // every slot was taken while the run was behind its pace, at the bound
	HeldByPace     = "pace"      // the run kept the pace it was given
	HeldByLatency  = "latency"   // the devices' answer times, with the slots the run had
)

// HeldBy says what limited a run's pace, from its pacing and its counts of
// attempts and 429s: the hub's throttle when at least 1% of the calls got
// a 429; in-flight when the dispatcher waited for a slot at the bound for
// a tenth of the dispatch time or more; capacity when it waited that long
// with the slots held back by the capacity check or by connections still
// being opened; the pace when calls went at 90% of
// it or more; otherwise the devices' answer times. "" for runs too short
// to tell (under a second of dispatching or fewer than 20 calls).
func (p Pacing) HeldBy(attempts, throttles int) string {
	if attempts < 20 {
		return ""
	}
	if throttles*100 >= attempts {
		return HeldByThrottle
	}
	if p.Dispatching < time.Second {
		return ""
	}
	if p.AtMax*10 >= p.Dispatching {
		return HeldByInFlight
	}
	if (p.Capped+p.Opening)*10 >= p.Dispatching {
		return HeldByCapacity
	}
	if p.Paced && p.Achieved() >= inFlightBehind*p.Pace {
		return HeldByPace
	}
	return HeldByLatency
}

// Achieved is the calls/s sent while targets were handed out.
func (p Pacing) Achieved() float64 {
	if p.Dispatching <= 0 {
		return 0
	}
	return float64(p.Attempts) / p.Dispatching.Seconds()
}

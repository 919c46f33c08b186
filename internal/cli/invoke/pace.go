package invoke

import (
	"fmt"

	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/output"
)

// paceView is the summary's pace line for a run, and a hint when the run
// fell short of the pace it asked for; ok is false for runs too short to
// tell.
func paceView(sum fleet.Summary, opts *Options, pc pace) (v output.PaceView, hint string, ok bool) {
	p := sum.Pacing
	held := p.HeldBy(sum.Attempts, sum.Throttles)
	if held == "" {
		return v, "", false
	}
	v = output.PaceView{HeldBy: held, Achieved: p.Achieved(), PaceSource: pc.source, Peak: p.Peak,
		Throttles: sum.Throttles, Attempts: sum.Attempts, Latency: sum.Latency}
	if p.Paced {
		v.Pace = p.Pace
	}
	if v.PaceSource == "" {
		v.PaceSource = "no --rate or --tier; the calls in flight are sized for one S1 unit's 40 calls/s"
	}
	switch {
	case !p.Auto:
		v.Slots = fmt.Sprintf("--concurrency %d", p.Max)
	case opts.fdBound:
		v.Slots = fmt.Sprintf("auto, at most %s: the open-file limit", output.Thousands(p.Max))
	default:
		v.Slots = fmt.Sprintf("auto, at most %s", output.Thousands(p.Max))
	}
	short := p.Paced && p.Achieved() < 0.9*p.Pace
	switch {
	case held == fleet.HeldByInFlight && !p.Auto:
		hint = fmt.Sprintf("the run was held by --concurrency %d: leave it out (auto sizes the calls in flight from the pace and the answer times) or raise it.", p.Max)
	case held == fleet.HeldByInFlight && opts.fdBound:
		hint = fmt.Sprintf("the open-file limit allows %s calls in flight: raise it (ulimit -n) to let more calls wait on slow devices.", output.Thousands(p.Max))
	case held == fleet.HeldByInFlight:
		hint = fmt.Sprintf("the calls in flight reached --max-concurrency %d: raise it to let more calls wait on slow devices.", p.Max)
	case held == fleet.HeldByCapacity:
		hint = "the answers per second stopped growing with the calls in flight: the hub (or this machine's CPU) is at its capacity; a lower --rate keeps the answer times short."
	case held == fleet.HeldByThrottle && opts.Rate > 0:
		hint = "the hub throttled calls at this --rate: lower it, or use --rate auto --tier T --units N to follow the hub's throttle."
	case held == fleet.HeldByThrottle && !opts.RateAuto:
		hint = "the hub throttled an unpaced run: --rate auto --tier T --units N paces calls at the hub's throttle."
	case short && held == fleet.HeldByLatency:
		hint = fmt.Sprintf("the run reached %.0f%% of the pace asked: the devices' answer times (and retries) kept calls in flight longer than the slots allowed for.", 100*p.Achieved()/p.Pace)
	}
	return v, hint, true
}

package fleet

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// WaveSize is one entry of --waves: a number of targets, or a percentage
// of all targets. Waves are cumulative: "1,10%,100%" is one target, then up
// to 10% of the fleet, then the rest.
type WaveSize struct {
	Count   int     // used when Percent is 0
	Percent float64 // 0 < Percent <= 100
}

// String is the size as written: "5" or "10%".
func (w WaveSize) String() string {
	if w.Percent > 0 {
		return strconv.FormatFloat(w.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(w.Count)
}

// resolve is the cumulative number of targets at the end of the wave,
// for total targets: percentages round up, so 1% of 150 is 2.
func (w WaveSize) resolve(total int) int {
	if w.Percent > 0 {
		return int(math.Ceil(w.Percent * float64(total) / 100))
	}
	return min(w.Count, total)
}

// WavePlan splits a rollout into waves. Between waves the runner waits for
// every call of the wave to be answered, checks the failure threshold and
// pauses. The zero value is one wave of everything.
type WavePlan struct {
	// Sizes are the cumulative ends of the waves (--waves); the last is 100%.
	Sizes []WaveSize
	// BatchSize, when > 0, makes waves of this many targets (--batch-size).
	BatchSize int
}

// IsZero reports whether the plan is one wave of everything.
func (p WavePlan) IsZero() bool { return len(p.Sizes) == 0 && p.BatchSize <= 0 }

// NeedsTotal reports whether the wave ends depend on the number of targets
// (a percentage), which must then be known before the first wave.
func (p WavePlan) NeedsTotal() bool {
	for _, s := range p.Sizes {
		if s.Percent > 0 {
			return true
		}
	}
	return false
}

// String is the plan as the flags wrote it.
func (p WavePlan) String() string {
	if p.BatchSize > 0 {
		return fmt.Sprintf("batches of %d", p.BatchSize)
	}
	parts := make([]string, len(p.Sizes))
	for i, s := range p.Sizes {
		parts[i] = s.String()
	}
	return strings.Join(parts, ",")
}

// ends returns the cumulative end of every wave for total targets (total <
// 0: unknown, only for batch sizes, where it returns nil). Empty waves
// (10% of 5 targets is no more than a first wave of 1) are dropped.
func (p WavePlan) ends(total int) []int {
	if p.IsZero() || p.BatchSize > 0 || total < 0 {
		return nil
	}
	var out []int
	prev := 0
	for i, s := range p.Sizes {
		end := s.resolve(total)
		if i == len(p.Sizes)-1 {
			end = total
		}
		if end > prev {
			out = append(out, end)
			prev = end
		}
	}
	return out
}

// ParseWaves reads --waves: comma-separated cumulative sizes, each a count
// (1, 50) or a percentage (10%), increasing, the last 100%.
func ParseWaves(s string) (WavePlan, error) {
	var plan WavePlan
	lastPct, lastCount := 0.0, 0
	fields := strings.Split(s, ",")
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			return WavePlan{}, fmt.Errorf("%q: an empty wave (write sizes like 1,10%%,50%%,100%%)", s)
		}
		var w WaveSize
		if num, ok := strings.CutSuffix(f, "%"); ok {
			p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || !validNumber(strings.TrimSpace(num)) || p <= 0 || p > 100 {
				return WavePlan{}, fmt.Errorf("%q is not a percentage between 0 and 100", f)
			}
			if p <= lastPct {
				return WavePlan{}, fmt.Errorf("%q: waves are cumulative, so each percentage must be larger than the one before", f)
			}
			w.Percent, lastPct = p, p
		} else {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				return WavePlan{}, fmt.Errorf("%q is not a number of targets (1 or more) or a percentage", f)
			}
			if n <= lastCount {
				return WavePlan{}, fmt.Errorf("%q: waves are cumulative, so each count must be larger than the one before", f)
			}
			w.Count, lastCount = n, n
		}
		if i == len(fields)-1 && w.Percent != 100 {
			return WavePlan{}, fmt.Errorf("the last wave must be 100%% so that every target is covered (waves are cumulative, e.g. 1,10%%,50%%,100%%)")
		}
		plan.Sizes = append(plan.Sizes, w)
	}
	return plan, nil
}

// Threshold is --max-failures: a number of failed targets, or a share of
// the targets finished so far. A target failed when its outcome is neither
// succeeded nor skipped. The zero value never stops a run.
type Threshold struct {
	// Count: stop when more than Count targets failed (0 stops at the first).
	Count int
	// Percent, when > 0: stop when more than Percent% of the finished
	// targets failed (checked at the end of each wave).
	Percent float64
	set     bool
}

// IsSet reports whether a threshold was given.
func (t Threshold) IsSet() bool { return t.set }

// String is the threshold as written.
func (t Threshold) String() string {
	if !t.set {
		return ""
	}
	if t.Percent > 0 {
		return strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(t.Count)
}

// ParseThreshold reads --max-failures: N (0 or more) or P% (0 < P < 100).
func ParseThreshold(s string) (Threshold, error) {
	f := strings.TrimSpace(s)
	if num, ok := strings.CutSuffix(f, "%"); ok {
		num = strings.TrimSpace(num)
		p, err := strconv.ParseFloat(num, 64)
		if err != nil || !validNumber(num) || p <= 0 || p >= 100 {
			return Threshold{}, fmt.Errorf("%q is not a percentage above 0 and below 100", s)
		}
		return Threshold{Percent: p, set: true}, nil
	}
	n, err := strconv.Atoi(f)
	if err != nil || n < 0 {
		return Threshold{}, fmt.Errorf("%q is not a number of failures (0 or more) or a percentage like 5%%", s)
	}
	return Threshold{Count: n, set: true}, nil
}

// Exceeded reports whether failed of done finished targets is over the
// threshold.
func (t Threshold) Exceeded(failed, done int) bool {
	switch {
	case !t.set:
		return false
	case t.Percent > 0:
		return done > 0 && float64(failed)*100 > t.Percent*float64(done)
	}
	return failed > t.Count
}

// Failed reports whether an outcome counts against --max-failures.
func Failed(o Outcome) bool { return o != OutcomeSucceeded && o != OutcomeSkipped }

package fleet

import (
	"math"
	"sort"
	"time"
)

// Summary counts a run's results.
type Summary struct {
	// Targets is the number of results.
	Targets int `json:"targets"`
	// ByOutcome counts results per outcome; outcomes with no result are absent.
	ByOutcome map[Outcome]int `json:"outcomes"`
	// ByStatus counts device answers per device status (targets that got an answer).
	ByStatus map[int]int `json:"statuses"`
	// Attempts is the total number of calls sent.
	Attempts int `json:"attempts"`
	// Retries is the number of calls sent again after a first attempt.
	Retries int `json:"retries"`
	// Throttles is the number of calls the hub answered with 429 (resent
	// or not); set by Runner.Run, 0 from Summarize.
	Throttles int `json:"throttles"`
	// Parked is how many targets were parked (their device offline, with
	// --until-online) and Unparked how many calls were made to them once
	// they connected; set by Runner.Run.
	Parked   int `json:"parked,omitempty"`
	Unparked int `json:"unparked,omitempty"`
	// Elapsed is from the first start to the last end.
	Elapsed time.Duration `json:"-"`
	// Unread says that the run stopped before its source was read to the
	// end (a second Ctrl-C while a query's remaining pages were read, or
	// the source failed: a page the hub did not answer, a file that could
	// not be read): targets it still held are in no result. --resume reads
	// them again.
	Unread bool `json:"-"`
	// Latency holds percentiles of the targets' durations (first attempt to
	// final answer, resends and their waits included); zero when no target
	// was sent.
	Latency Percentiles `json:"-"`
	// Pacing says how the calls in flight went (set by Runner.Run): what
	// limited the pace.
	Pacing Pacing `json:"-"`
}

// Percentiles of a set of durations.
type Percentiles struct {
	P50, P95, P99 time.Duration
	// N is how many durations they are taken from.
	N int
}

// CallsPerSecond is Attempts over Elapsed; 0 when nothing took time.
func (s Summary) CallsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Attempts) / s.Elapsed.Seconds()
}

// Summarize counts results.
func Summarize(results []Result) Summary {
	t := NewTally()
	for _, r := range results {
		t.Add(r)
	}
	return t.Summary()
}

// AllSucceeded reports whether there was at least one target and every one succeeded.
func (s Summary) AllSucceeded() bool {
	return s.Targets > 0 && s.ByOutcome[OutcomeSucceeded] == s.Targets
}

// AllUnauthorized reports whether there was at least one target and the hub
// (or the credential) refused every one.
func (s Summary) AllUnauthorized() bool {
	return s.Targets > 0 && s.ByOutcome[OutcomeUnauthorized] == s.Targets
}

// NotSucceeded is the number of targets that did not succeed.
func (s Summary) NotSucceeded() int { return s.Targets - s.ByOutcome[OutcomeSucceeded] }

// Merge adds o's counts to s (for a resumed run: the journal's earlier
// results and this run's). Elapsed and Latency stay s's.
func (s Summary) Merge(o Summary) Summary {
	out := s
	out.ByOutcome = map[Outcome]int{}
	out.ByStatus = map[int]int{}
	for _, m := range []Summary{s, o} {
		for k, v := range m.ByOutcome {
			out.ByOutcome[k] += v
		}
		for k, v := range m.ByStatus {
			out.ByStatus[k] += v
		}
	}
	out.Targets = s.Targets + o.Targets
	out.Attempts = s.Attempts + o.Attempts
	out.Retries = s.Retries + o.Retries
	out.Throttles = s.Throttles + o.Throttles
	return out
}

// Tally builds a Summary one result at a time in memory that does not grow
// with the fleet: counts, and a latency histogram (exact up to
// exactSamples durations, then within 1%).
type Tally struct {
	s           Summary
	first, last time.Time
	exact       []time.Duration
	hist        []uint32
	n           int
}

// exactSamples is how many durations are kept exactly before percentiles
// come from the histogram alone.
const exactSamples = 4096

// Histogram buckets: bucket i holds durations of [γ^i, γ^(i+1)) µs.
const (
	histGamma   = 1.02
	histBuckets = 1400 // γ^1400 µs is about 300 hours
)

var logGamma = math.Log(histGamma)

// NewTally returns an empty Tally.
func NewTally() *Tally {
	return &Tally{s: Summary{ByOutcome: map[Outcome]int{}, ByStatus: map[int]int{}}}
}

// Add counts r. Targets that were never sent (skipped without attempts)
// do not count towards elapsed time or latency.
func (t *Tally) Add(r Result) {
	t.Count(r)
	if r.Attempts == 0 || r.StartTime.IsZero() {
		return
	}
	end := r.StartTime.Add(r.Duration())
	if t.first.IsZero() || r.StartTime.Before(t.first) {
		t.first = r.StartTime
	}
	if end.After(t.last) {
		t.last = end
	}
	if r.Outcome == OutcomeSkipped {
		return
	}
	d := r.Duration()
	t.n++
	if len(t.exact) < exactSamples {
		t.exact = append(t.exact, d)
	}
	if t.hist == nil {
		t.hist = make([]uint32, histBuckets)
	}
	t.hist[bucketOf(d)]++
}

// Count counts r's outcome, status and attempts only: for results that were
// not timed in this run (found in a journal).
func (t *Tally) Count(r Result) {
	t.s.Targets++
	t.s.ByOutcome[r.Outcome]++
	if r.Status != nil {
		t.s.ByStatus[*r.Status]++
	}
	t.s.Attempts += r.Attempts
	if r.Attempts > 1 {
		t.s.Retries += r.Attempts - 1
	}
}

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	i := int(math.Log(us) / logGamma)
	return min(max(i, 0), histBuckets-1)
}

// Summary returns the counts so far.
func (t *Tally) Summary() Summary {
	s := t.s
	s.ByOutcome = make(map[Outcome]int, len(t.s.ByOutcome))
	for k, v := range t.s.ByOutcome {
		s.ByOutcome[k] = v
	}
	s.ByStatus = make(map[int]int, len(t.s.ByStatus))
	for k, v := range t.s.ByStatus {
		s.ByStatus[k] = v
	}
	if !t.first.IsZero() {
		s.Elapsed = t.last.Sub(t.first)
	}
	s.Latency = t.percentiles()
	return s
}

func (t *Tally) percentiles() Percentiles {
	if t.n == 0 {
		return Percentiles{}
	}
	p := Percentiles{N: t.n}
	if t.n <= len(t.exact) {
		sorted := append([]time.Duration(nil), t.exact...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		at := func(q float64) time.Duration { return sorted[rank(q, t.n)-1] }
		p.P50, p.P95, p.P99 = at(0.50), at(0.95), at(0.99)
		return p
	}
	at := func(q float64) time.Duration {
		want := uint64(rank(q, t.n))
		var seen uint64
		for i, c := range t.hist {
			seen += uint64(c)
			if seen >= want {
				// The bucket's geometric middle: within 1% of any duration in it.
				us := math.Pow(histGamma, float64(i)+0.5)
				if i == 0 {
					us = 1
				}
				return time.Duration(us * float64(time.Microsecond))
			}
		}
		return 0
	}
	p.P50, p.P95, p.P99 = at(0.50), at(0.95), at(0.99)
	return p
}

// rank is the nearest-rank position (1-based) of quantile q among n values.
func rank(q float64, n int) int {
	r := int(math.Ceil(q * float64(n)))
	return min(max(r, 1), n)
}

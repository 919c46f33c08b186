package fleet

import "time"

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
	// Elapsed is from the first start to the last end.
	Elapsed time.Duration `json:"-"`
}

// Summarize counts results.
func Summarize(results []Result) Summary {
	s := Summary{Targets: len(results), ByOutcome: map[Outcome]int{}, ByStatus: map[int]int{}}
	var first, last time.Time
	for _, r := range results {
		s.ByOutcome[r.Outcome]++
		if r.Status != nil {
			s.ByStatus[*r.Status]++
		}
		s.Attempts += r.Attempts
		if r.Outcome == OutcomeSkipped {
			continue
		}
		end := r.StartTime.Add(r.Duration())
		if first.IsZero() || r.StartTime.Before(first) {
			first = r.StartTime
		}
		if end.After(last) {
			last = end
		}
	}
	if !first.IsZero() {
		s.Elapsed = last.Sub(first)
	}
	return s
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

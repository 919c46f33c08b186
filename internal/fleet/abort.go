package fleet

import (
	"fmt"
	"strings"
)

// ClassAny is the abort class that counts every outcome but succeeded and
// skipped (what --max-failures counts).
const ClassAny Outcome = "any"

// abortClasses are the classes --abort-if takes: the outcomes a finished
// target can end in, besides succeeded, and any.
var abortClasses = []Outcome{
	OutcomeFailed, OutcomeOffline, OutcomeTimeout, OutcomeThrottled, OutcomeUnauthorized, OutcomeNotFound,
	OutcomeError, OutcomeUnknown, OutcomeWaitFailed, OutcomeWaitTimeout, OutcomeDrifted, ClassAny,
}

// DefaultMinSample is how many targets must have finished before an
// --abort-if percentage is judged: below it, one early failure would be a
// large share of a handful.
const DefaultMinSample = 10

// Criterion is one --abort-if: stop the run when more than Count targets,
// or more than Percent% of the finished ones (once the run's minimum sample
// has finished), ended in Class.
type Criterion struct {
	Class Outcome
	Threshold
}

// String is the criterion as written: "offline>10%", "any>5".
func (c Criterion) String() string { return string(c.Class) + ">" + c.Threshold.String() }

// Counts reports whether an outcome counts for c's class.
func (c Criterion) Counts(o Outcome) bool {
	if c.Class == ClassAny {
		return Failed(o)
	}
	return o == c.Class
}

// ParseCriterion reads --abort-if: CLASS>N or CLASS>P% (CLASS an outcome
// such as offline or timeout, or any).
func ParseCriterion(s string) (Criterion, error) {
	class, limit, ok := strings.Cut(s, ">")
	class = strings.TrimSpace(class)
	if !ok || class == "" || strings.TrimSpace(limit) == "" {
		return Criterion{}, fmt.Errorf("%q is not CLASS>N or CLASS>P%% (for example offline>10%% or timeout>5)", s)
	}
	var c Criterion
	for _, k := range abortClasses {
		if strings.EqualFold(class, string(k)) {
			c.Class = k
		}
	}
	if c.Class == "" {
		names := make([]string, len(abortClasses))
		for i, k := range abortClasses {
			names[i] = string(k)
		}
		return Criterion{}, fmt.Errorf("%q: class %q is not one of %s", s, class, strings.Join(names, ", "))
	}
	t, err := ParseThreshold(limit)
	if err != nil {
		return Criterion{}, fmt.Errorf("%q: %w", s, err)
	}
	c.Threshold = t
	return c, nil
}

// abortJudge applies the criteria to the counts as results arrive.
type abortJudge struct {
	criteria  []Criterion
	minSample int
	counts    []int // per criterion
}

func newAbortJudge(criteria []Criterion, minSample int) *abortJudge {
	if len(criteria) == 0 {
		return nil
	}
	if minSample <= 0 {
		minSample = DefaultMinSample
	}
	return &abortJudge{criteria: criteria, minSample: minSample, counts: make([]int, len(criteria))}
}

// add counts a final result and returns the first criterion that holds
// after it, if one does (finished counts the targets finished so far).
func (j *abortJudge) add(o Outcome, finished int) (Criterion, int, bool) {
	if j == nil || o == OutcomeSkipped {
		return Criterion{}, 0, false
	}
	for i, c := range j.criteria {
		if c.Counts(o) {
			j.counts[i]++
		}
	}
	for i, c := range j.criteria {
		n := j.counts[i]
		if c.Percent > 0 && finished < j.minSample {
			continue
		}
		if c.Exceeded(n, finished) {
			return c, n, true
		}
	}
	return Criterion{}, 0, false
}

package output

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/dmctl/dmctl/internal/fleet"
)

// WriteSummary writes the run's summary as one line (for stderr), e.g.
//
//	3 targets: 2 succeeded, 1 offline; device statuses 200 x2; 3 attempts in 1.2s
func WriteSummary(w io.Writer, s fleet.Summary, color bool) error {
	var b strings.Builder
	b.WriteString(plural(s.Targets, "target"))
	b.WriteString(": ")
	var parts []string
	for _, o := range fleet.Outcomes {
		if n := s.ByOutcome[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, colorOutcome(o, color)))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing to do")
	}
	b.WriteString(strings.Join(parts, ", "))
	if len(s.ByStatus) > 0 {
		statuses := make([]int, 0, len(s.ByStatus))
		for st := range s.ByStatus {
			statuses = append(statuses, st)
		}
		sort.Ints(statuses)
		var sp []string
		for _, st := range statuses {
			sp = append(sp, fmt.Sprintf("%d x%d", st, s.ByStatus[st]))
		}
		word := "device status "
		if len(statuses) > 1 {
			word = "device statuses "
		}
		b.WriteString("; " + word + strings.Join(sp, ", "))
	}
	fmt.Fprintf(&b, "; %s in %s\n", plural(s.Attempts, "attempt"), FormatDuration(s.Elapsed))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteProblems writes one line per target that did not succeed (for
// stderr), at most max lines (max <= 0: all), then how many were left out.
// Skipped targets are counted by the summary, not listed.
func WriteProblems(w io.Writer, results []fleet.Result, max int, color bool) error {
	var b strings.Builder
	shown, hidden := 0, 0
	for _, r := range results {
		if r.Outcome == fleet.OutcomeSucceeded || r.Outcome == fleet.OutcomeSkipped {
			continue
		}
		if max > 0 && shown == max {
			hidden++
			continue
		}
		shown++
		b.WriteString(cell(r.Target().String()))
		b.WriteString(": ")
		b.WriteString(colorOutcome(r.Outcome, color))
		switch {
		case r.Error != nil:
			b.WriteString(": " + cell(r.Error.String()))
		case r.Status != nil:
			fmt.Fprintf(&b, ": the device answered status %d", *r.Status)
		}
		if r.Attempts > 1 {
			fmt.Fprintf(&b, " (after %d attempts)", r.Attempts)
		}
		b.WriteByte('\n')
	}
	if hidden > 0 {
		fmt.Fprintf(&b, "... and %d more; use -o wide or -o json to see every result\n", hidden)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

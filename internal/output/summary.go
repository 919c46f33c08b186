package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/dmctl/dmctl/internal/fleet"
)

// WriteSummary writes the run's summary (for stderr) on two lines: what
// happened to the targets, then the calls and their timing, e.g.
//
//	3 targets: 2 succeeded, 1 offline; device statuses 200 x2
//	3 calls (0 retries) in 1.2s, 2.5 calls/s; latency p50 12ms, p95 40ms, p99 41ms
func WriteSummary(w io.Writer, s fleet.Summary, color bool) error {
	var b strings.Builder
	writeTargets(&b, s, color)
	fmt.Fprintf(&b, "%s (%s", plural(s.Attempts, "call"), retries(s.Retries))
	if s.Throttles > 0 {
		fmt.Fprintf(&b, ", %d throttled with 429", s.Throttles)
	}
	fmt.Fprintf(&b, ") in %s", FormatDuration(s.Elapsed))
	if s.Elapsed > 0 && s.Attempts > 0 {
		fmt.Fprintf(&b, ", %s calls/s", formatRate(s.CallsPerSecond()))
	}
	if l := s.Latency; l.N > 0 {
		fmt.Fprintf(&b, "; latency p50 %s, p95 %s, p99 %s", FormatDuration(l.P50), FormatDuration(l.P95), FormatDuration(l.P99))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteTotals writes one line of totals after prefix: the targets by
// outcome and device status, and the calls (for a resumed run, the whole
// rollout's results: this run's and the journal's earlier ones), e.g.
//
//	whole rollout: 2000 targets: 1990 succeeded, 10 offline; device status 200 x1990; 2004 calls
func WriteTotals(w io.Writer, prefix string, s fleet.Summary, color bool) error {
	var b strings.Builder
	b.WriteString(prefix)
	writeTargets(&b, s, color)
	line := strings.TrimSuffix(b.String(), "\n") + "; " + plural(s.Attempts, "call") + "\n"
	_, err := io.WriteString(w, line)
	return err
}

// writeTargets writes the targets line: counts by outcome, then by device status.
func writeTargets(b *strings.Builder, s fleet.Summary, color bool) {
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
	if s.Parked > 0 {
		fmt.Fprintf(b, "; %s parked offline (--until-online), %s once connected", plural(s.Parked, "target"), plural(s.Unparked, "call"))
	}
	b.WriteByte('\n')
}

// formatRate shows calls per second with three significant digits at most
// below 100 ("2.5", "40.0", "812", "20311").
func formatRate(r float64) string {
	switch {
	case r >= 100:
		return strconv.FormatFloat(math.Round(r), 'f', 0, 64)
	case r >= 10:
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

// MaxProblemLines is how many targets that did not succeed a command lists
// on stderr before counting the rest.
const MaxProblemLines = 10

// Problems keeps the first few targets that did not succeed, and counts the
// rest, so a run of any size can list its problems on stderr at the end.
// Skipped targets are counted by the summary, not listed.
type Problems struct {
	max    int
	shown  []fleet.Result
	msgs   []string // the device's message, per shown result
	hidden int
}

// NewProblems keeps at most max problems (max <= 0: all).
func NewProblems(max int) *Problems { return &Problems{max: max} }

// Add looks at one result.
func (p *Problems) Add(r fleet.Result) {
	if r.Outcome == fleet.OutcomeSucceeded || r.Outcome == fleet.OutcomeSkipped {
		return
	}
	if p.max > 0 && len(p.shown) == p.max {
		p.hidden++
		return
	}
	p.msgs = append(p.msgs, DeviceMessage(r.Payload))
	r.Payload = nil
	p.shown = append(p.shown, r)
}

// maxDeviceMessage bounds the device's message on a problem line.
const maxDeviceMessage = 200

// DeviceMessage is what a device said with its answer, for a problem line:
// a "message" (or "error", or "error.message") string member of the
// payload, a payload that is a JSON string, or else the payload itself,
// compacted; "" for none. It is cut to maxDeviceMessage characters.
func DeviceMessage(payload json.RawMessage) string {
	if len(payload) == 0 || string(payload) == "null" {
		return ""
	}
	var v any
	if json.Unmarshal(payload, &v) != nil {
		return ""
	}
	msg := ""
	switch x := v.(type) {
	case string:
		msg = x
	case map[string]any:
		if s, ok := x["message"].(string); ok {
			msg = s
		} else if s, ok := x["error"].(string); ok {
			msg = s
		} else if e, ok := x["error"].(map[string]any); ok {
			msg, _ = e["message"].(string)
		}
	}
	if msg == "" {
		var b bytes.Buffer
		if json.Compact(&b, payload) != nil {
			return ""
		}
		msg = b.String()
	}
	return truncate(strings.Join(strings.Fields(msg), " "), maxDeviceMessage)
}

// Write writes one line per kept problem, then how many were left out.
func (p *Problems) Write(w io.Writer, color bool) error {
	var b strings.Builder
	for i, r := range p.shown {
		b.WriteString(cell(r.Target().String()))
		b.WriteString(": ")
		b.WriteString(colorOutcome(r.Outcome, color))
		switch {
		case r.Error != nil:
			b.WriteString(": " + cell(r.Error.String()))
		case r.Status != nil:
			fmt.Fprintf(&b, ": the device answered status %d", *r.Status)
			if m := p.msgs[i]; m != "" {
				b.WriteString(": " + cell(m))
			}
		}
		if r.Attempts > 1 {
			fmt.Fprintf(&b, " (after %d attempts)", r.Attempts)
		}
		b.WriteByte('\n')
	}
	if p.hidden > 0 {
		fmt.Fprintf(&b, "... and %d more; use -o wide or -o json to see every result\n", p.hidden)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteProblems writes one line per target that did not succeed (for
// stderr), at most max lines (max <= 0: all), then how many were left out.
// Skipped targets are counted by the summary, not listed.
func WriteProblems(w io.Writer, results []fleet.Result, max int, color bool) error {
	p := NewProblems(max)
	for _, r := range results {
		p.Add(r)
	}
	return p.Write(w, color)
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func retries(n int) string {
	if n == 1 {
		return "1 retry"
	}
	return fmt.Sprintf("%d retries", n)
}

package output

import (
	"fmt"
	"io"
	"strings"

	"github.com/dmctl/dmctl/internal/fleet"
)

// PaceView is what the summary's pace line says: what limited the pace of a
// fleet run (fleet.Pacing.HeldBy) and the figures behind it.
type PaceView struct {
	// HeldBy is one of fleet's HeldBy values.
	HeldBy string
	// Achieved is the calls/s sent while targets were handed out; Pace the
	// calls/s asked (0 for an unpaced run); PaceSource says where it came
	// from ("--rate", "--rate auto", "tier S1, 1 unit"...).
	Achieved, Pace float64
	PaceSource     string
	// Peak is the most calls in flight at once; Slots describes how they
	// were sized ("auto, at most 16,384", "--concurrency 32").
	Peak  int
	Slots string
	// Throttles and Attempts count the 429s among the calls.
	Throttles, Attempts int
	// Latency are the targets' answer times.
	Latency fleet.Percentiles
}

// WritePace writes the pace line, e.g.
//
//	pace: held by the calls in flight: 29.1 calls/s of the 240/s asked (tier S2, 2 units); up to 32 in flight (--concurrency 32); answers p50 1.1s, p99 1.9s
func WritePace(w io.Writer, v PaceView) error {
	var b strings.Builder
	b.WriteString("pace: held by ")
	switch v.HeldBy {
	case fleet.HeldByThrottle:
		fmt.Fprintf(&b, "the hub's throttle (%s of %s calls answered 429, %.1f%%)", Thousands(v.Throttles), Thousands(v.Attempts),
			100*float64(v.Throttles)/float64(max(v.Attempts, 1)))
	case fleet.HeldByInFlight:
		b.WriteString("the calls in flight (every one was taken while the run was behind its pace)")
	case fleet.HeldByCapacity:
		b.WriteString("the hub's or this machine's capacity (more calls in flight brought no more answers per second)")
	case fleet.HeldByPace:
		b.WriteString("the pace asked")
	default:
		b.WriteString("the devices' answer times")
	}
	fmt.Fprintf(&b, ": %s calls/s", formatRate(v.Achieved))
	if v.Pace > 0 {
		fmt.Fprintf(&b, " of the %s/s asked (%s)", formatRate(v.Pace), v.PaceSource)
	} else {
		fmt.Fprintf(&b, ", not paced (%s)", v.PaceSource)
	}
	fmt.Fprintf(&b, "; up to %s in flight (%s)", Thousands(v.Peak), v.Slots)
	if l := v.Latency; l.N > 0 {
		fmt.Fprintf(&b, "; answers p50 %s, p99 %s", FormatDuration(l.P50), FormatDuration(l.P99))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

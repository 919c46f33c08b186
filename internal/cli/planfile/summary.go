package planfile

import (
	"fmt"
	"io"
	"strings"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
)

// summarySample is how many targets the summary names.
const summarySample = 5

// WriteSummary writes a short account of a plan just written to path, for
// stderr: what it will do, to how many targets, on which hub, under which
// waves and stop criteria, and how to apply it.
func WriteSummary(w io.Writer, p *Plan, path string) error {
	n := len(p.Targets)
	var b strings.Builder
	fmt.Fprintf(&b, "plan written to %s (format %d, mode 0600): %q on %d %s of hub %s; nothing was sent\n",
		path, p.Format, p.Method, n, cmdutil.Plural(n, "target", "targets"), p.Hub)
	if n > 0 {
		var names []string
		for _, t := range p.Targets[:min(n, summarySample)] {
			name := t.DeviceID
			if t.ModuleID != "" {
				name += "/" + t.ModuleID
			}
			names = append(names, name)
		}
		more := ""
		if n > summarySample {
			more = fmt.Sprintf(", ... (%d more)", n-summarySample)
		}
		fmt.Fprintf(&b, "  targets: %s%s\n", strings.Join(names, ", "), more)
	}
	r := p.Run
	waves := "one wave"
	switch {
	case r.Waves != "":
		waves = "waves " + r.Waves
	case r.BatchSize > 0:
		waves = fmt.Sprintf("waves of %d", r.BatchSize)
	}
	if r.WavePause != "" && r.WavePause != "0" && r.WavePause != "0s" {
		waves += ", " + r.WavePause + " between them"
	}
	var stops []string
	if r.MaxFailures != "" {
		stops = append(stops, "--max-failures "+r.MaxFailures)
	}
	for _, c := range r.AbortIf {
		stops = append(stops, "--abort-if "+c)
	}
	if len(stops) == 0 {
		stops = []string{"none"}
	}
	fmt.Fprintf(&b, "  run: %s; stop criteria: %s\n", waves, strings.Join(stops, ", "))
	var waits []string
	if r.Wait != "" {
		waits = append(waits, "--wait "+r.Wait)
	}
	waits = append(waits, r.WaitUntil...)
	if len(waits) > 0 {
		fmt.Fprintf(&b, "  then waits for: %s (at most %s per target)\n", strings.Join(waits, " and "), r.WaitTimeout)
	}
	fmt.Fprintf(&b, "  apply it with: dmctl apply %s (a target whose twin has changed by then is reported drifted and not invoked)\n", path)
	_, err := io.WriteString(w, b.String())
	return err
}

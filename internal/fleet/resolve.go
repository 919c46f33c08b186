package fleet

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// ResolveSkew is how close before the call a report must not be for dmctl
// to conclude that the method did not run: the call's start is dmctl's
// clock, a twin's $lastUpdated the hub's, and they may differ by seconds.
const ResolveSkew = 10 * time.Second

// resolution is what a twin says of a call whose answer was lost.
type resolution int

const (
	resolveAmbiguous resolution = iota // nothing tells: the outcome is unknown
	resolveStarted                     // the method started at or after the call
	resolveNotRun                      // it did not: resending is safe
)

// answerLost reports whether err leaves the caller not knowing whether the
// device ran the method: 504101 (or a client-side timeout), or the
// connection lost after the request was written.
func answerLost(err error) bool {
	switch iothub.KindOf(err) {
	case iothub.KindTimeout, iothub.KindLostAfterWrite:
		return true
	}
	return false
}

// evidence reads a twin for signs that the awaited method ran since start:
// started when one of the properties the wait reads was reported at or
// after start, near when one was reported within ResolveSkew before it
// (too close to tell).
//
//   - --wait reboot: iothubDM.reboot.startedRebootTime or lastReboot (the
//     device's own times, as the wait reads them), or a report under
//     iothubDM.reboot ($metadata.$lastUpdated, the hub's time);
//   - --wait firmware: a report under iothubDM.firmwareUpdate;
//   - --wait-until and --fail-if: a report of a property they read under
//     properties.reported.
func (w *Wait) evidence(doc map[string]any, start time.Time) (started, near bool) {
	var paths [][]string // under properties.reported
	switch w.Preset {
	case PresetReboot:
		if reportedSince(doc, pathStartedReboot, start) || reportedSince(doc, pathLastReboot, start) {
			return true, false
		}
		paths = append(paths, []string{"iothubDM", "reboot"})
	case PresetFirmware:
		paths = append(paths, []string{"iothubDM", "firmwareUpdate"})
	}
	for _, cs := range [][]Condition{w.Until, w.FailIf} {
		for _, c := range cs {
			if len(c.Path) > 2 && c.Path[0] == "properties" && c.Path[1] == "reported" {
				paths = append(paths, c.Path[2:])
			}
		}
	}
	for _, p := range paths {
		meta := append([]string{"properties", "reported", "$metadata"}, p...)
		meta = append(meta, "$lastUpdated")
		v, ok := Lookup(doc, meta)
		if !ok {
			continue
		}
		s, _ := v.(string)
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
		if err != nil {
			continue
		}
		switch {
		case !t.Before(start):
			return true, false
		case !t.Before(start.Add(-ResolveSkew)):
			near = true
		}
	}
	return false, near
}

// resolve looks at t's twin, every Interval for up to look, after a call
// sent at start whose answer was lost. Evidence that the method started
// settles it at once; a device seen connected at the end of the look,
// with no report since well before the call, did not run it; anything
// else (offline, a report too close to the call, the twin unreadable) is
// ambiguous. why says what was seen, for the result's message.
func (w *Wait) resolve(ctx context.Context, t Target, start time.Time, look time.Duration, now func() time.Time, sleep func(context.Context, time.Duration) error) (resolution, string) {
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultWaitInterval
	}
	policy := w.Retry
	policy.Idempotent = true
	end := now().Add(look)
	var doc map[string]any
	var lastErr error
	for {
		var raw []byte
		_, err := retry.Do(ctx, policy, func(ctx context.Context, _ int) error {
			var err error
			raw, err = w.Twins.GetTwin(ctx, t.DeviceID, t.ModuleID)
			return err
		})
		if err == nil {
			if d, derr := decodeDoc(raw); derr == nil {
				doc, lastErr = d, nil
				if started, _ := w.evidence(doc, start); started {
					return resolveStarted, "the twin shows the method started"
				}
			} else {
				lastErr = derr
			}
		} else {
			lastErr = err
		}
		left := end.Sub(now())
		if left <= 0 || ctx.Err() != nil {
			break
		}
		if sleep(ctx, min(interval, left)) != nil {
			break
		}
	}
	if doc == nil {
		return resolveAmbiguous, fmt.Sprintf("the twin could not be read (%v)", lastErr)
	}
	_, near := w.evidence(doc, start)
	state, _ := Lookup(doc, pathConnection)
	connected := strings.EqualFold(fmt.Sprint(state), "Connected")
	switch {
	case near:
		return resolveAmbiguous, fmt.Sprintf("the twin was reported within %s before the call: too close to tell", ResolveSkew)
	case !connected:
		return resolveAmbiguous, fmt.Sprintf("the device was not connected when dmctl looked (%s later) and reported nothing", look)
	}
	return resolveNotRun, fmt.Sprintf("the device stayed connected for %s and reported nothing", look)
}

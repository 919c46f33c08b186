package invoke

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// Defaults and bounds of the wait flags.
const (
	// DefaultWaitTimeout is --wait-timeout's default: how long each target
	// may take to report its outcome once the method succeeded.
	DefaultWaitTimeout = 10 * time.Minute
	// MinWaitTimeout is the shortest --wait-timeout.
	MinWaitTimeout = time.Second
)

// waitFlags are the raw values of --wait, --wait-until, --fail-if and
// --wait-timeout.
type waitFlags struct {
	preset  string
	until   []string
	failIf  []string
	timeout time.Duration
}

// addWaitOutcomeFlags adds the flags of the wait phase to invoke.
func addWaitOutcomeFlags(flags *pflag.FlagSet, fl *waitFlags) {
	flags.StringVar(&fl.preset, "wait", "", "After the method succeeds, wait for the device to report the outcome: reboot or firmware")
	flags.StringArrayVar(&fl.until, "wait-until", nil, "After the method succeeds, wait until this twin condition holds, e.g. \"properties.reported.fw.status == done\" (repeatable: all must hold)")
	flags.StringArrayVar(&fl.failIf, "fail-if", nil, "While waiting, end as waitFailed when this twin condition holds (repeatable: any)")
	cmdutil.DurationFlag(flags, &fl.timeout, "wait-timeout", DefaultWaitTimeout, false, "How long each target may take to report its outcome (waitTimeout after it)")
}

// checkWaitOutcome turns the wait flags into opts.Wait (nil without a
// wait); the hub reader is filled in by the run.
func checkWaitOutcome(opts *Options, fl *waitFlags, timeoutGiven bool) error {
	opts.Wait = nil
	if fl.preset == "" && len(fl.until) == 0 {
		if len(fl.failIf) > 0 {
			return cmdutil.FlagErrorf("--fail-if needs something to wait for: add --wait reboot|firmware or --wait-until COND")
		}
		if timeoutGiven {
			return cmdutil.FlagErrorf("--wait-timeout needs something to wait for: add --wait reboot|firmware or --wait-until COND")
		}
		return nil
	}
	w := &fleet.Wait{Timeout: fl.timeout}
	if fl.preset != "" {
		p := fleet.Preset(strings.ToLower(strings.TrimSpace(fl.preset)))
		known := false
		var names []string
		for _, k := range fleet.Presets {
			names = append(names, string(k))
			known = known || p == k
		}
		if !known {
			return cmdutil.FlagErrorf("--wait: %q is not a preset: use %s, or --wait-until COND for any other outcome", fl.preset, strings.Join(names, " or "))
		}
		w.Preset = p
	}
	for _, s := range fl.until {
		c, err := fleet.ParseCondition(s)
		if err != nil {
			return cmdutil.FlagErrorf("--wait-until: %v", err)
		}
		w.Until = append(w.Until, c)
	}
	for _, s := range fl.failIf {
		c, err := fleet.ParseCondition(s)
		if err != nil {
			return cmdutil.FlagErrorf("--fail-if: %v", err)
		}
		w.FailIf = append(w.FailIf, c)
	}
	if fl.timeout < MinWaitTimeout || fl.timeout > MaxWait {
		return cmdutil.FlagErrorf("--wait-timeout: %s is out of range: use %s to %s", fl.timeout, MinWaitTimeout, MaxWait)
	}
	opts.Wait = w
	return nil
}

// queriesPerMinute is the hub's query throttle for --tier/--units (the
// iothub limits table); one S1 unit when the tier is unknown.
func queriesPerMinute(tier string, units int) float64 {
	l, err := iothub.TierLimits(tier, max(units, 1))
	if err != nil {
		return iothub.DefaultLimits().QueriesPerMinute()
	}
	return l.QueriesPerMinute()
}

// waitFor is the run's wait with its hub reader, pace and retries; nil
// without --wait or --wait-until.
func (opts *Options) waitFor() (*fleet.Wait, error) {
	if opts.Wait == nil {
		return nil, nil
	}
	w := *opts.Wait
	twins, err := opts.twins()
	if err != nil {
		return nil, err
	}
	w.Twins = twins
	w.QueriesPerMinute = queriesPerMinute(opts.Tier, opts.Units)
	w.Retry = opts.readPolicy()
	return &w, nil
}

// parkFor is the run's --until-online parking with its hub reader and
// retries, paced with the wait's queries by one limiter; nil without it.
func (opts *Options) parkFor(w *fleet.Wait) (*fleet.Park, error) {
	if opts.UntilOnline <= 0 {
		return nil, nil
	}
	twins, err := opts.twins()
	if err != nil {
		return nil, err
	}
	qpm := queriesPerMinute(opts.Tier, opts.Units)
	var limiter fleet.Limiter = fleet.NewFixedRate(qpm / 60)
	if w != nil {
		if w.Limiter == nil {
			w.Limiter = limiter
		} else {
			limiter = w.Limiter
		}
	}
	return &fleet.Park{For: opts.UntilOnline, Twins: twins, QueriesPerMinute: qpm, Limiter: limiter, Retry: opts.readPolicy()}, nil
}

// readPolicy resends twin reads as idempotent calls.
func (opts *Options) readPolicy() retry.Policy {
	p := opts.retryPolicy()
	p.Idempotent = true
	p.WaitOnline = 0
	return p
}

// twins is the TwinReader of the run's hub.
func (opts *Options) twins() (fleet.TwinReader, error) {
	if opts.Twins != nil {
		return opts.Twins()
	}
	c, _, err := opts.hub()
	if err != nil {
		return nil, err
	}
	return fleet.ClientTwins{Client: c}, nil
}

// hub is the REST client of the run's hub: the factory's one lazy client
// (the invoker's too), or a test's.
func (opts *Options) hub() (*iothub.Client, *auth.Credential, error) {
	if opts.Hub == nil {
		return nil, nil, fmt.Errorf("no hub client to read twins or run jobs with")
	}
	return opts.Hub()
}

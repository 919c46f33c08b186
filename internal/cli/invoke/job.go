package invoke

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/jobs/shared"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
)

// Values of --via.
const (
	ViaDirect = "direct" // dmctl calls each device (the default)
	ViaJob    = "job"    // an IoT Hub scheduleDeviceMethod job calls them
)

// viaJobMaxExecution is the maxExecutionTimeInSeconds of a --via job job:
// long enough for a large fleet at S1's jobs pace (10 devices/s is 36,000
// devices an hour); a job ends as soon as it has reached every device.
const viaJobMaxExecution = 24 * time.Hour

// viaJobRefused are the invoke flags a job cannot honour, and why.
var viaJobRefused = []struct{ flag, why string }{
	{"module", "IoT Hub jobs invoke device methods, not module methods"},
	{"rate", "the hub paces a job itself, at its jobs throttle (S1: 10 devices/s)"},
	{"concurrency", "the hub decides how many calls a job has in flight"},
	{"max-concurrency", "the hub decides how many calls a job has in flight"},
	{"waves", "a job runs every device it selects; split the fleet with tags and run one job per wave"},
	{"batch-size", "a job runs every device it selects; split the fleet with tags and run one job per wave"},
	{"wave-pause", "a job has no waves"},
	{"max-failures", "a job cannot be stopped by a failure count (dmctl jobs cancel stops it)"},
	{"abort-if", "a job cannot be stopped by a failure count (dmctl jobs cancel stops it)"},
	{"min-sample", "a job cannot be stopped by a failure count (dmctl jobs cancel stops it)"},
	{"gate", "a job has no waves"},
	{"gate-timeout", "a job has no waves"},
	{"gate-after-last", "a job has no waves"},
	{"journal", "the hub keeps a job's per-device records (dmctl jobs results JOB-ID reads them again)"},
	{"resume", "the hub keeps a job's per-device records (dmctl jobs results JOB-ID reads them again)"},
	{"idempotent", "the hub decides what a job resends"},
	{"wait-online", "use --connect-timeout: the hub waits that long for each disconnected device"},
	{"until-online", "use --connect-timeout: the hub waits that long for each disconnected device"},
	{"max-attempts", "the hub decides what a job resends"},
	{"retry-for", "the hub decides what a job resends"},
	{"grace", "Ctrl-C stops waiting, not the job (dmctl jobs cancel stops it)"},
}

// checkViaJob refuses the flags a job cannot express, and checks that the
// --query is one a job's queryCondition can hold.
func checkViaJob(opts *Options, flags *pflag.FlagSet) error {
	for _, r := range viaJobRefused {
		if flags.Changed(r.flag) {
			return cmdutil.FlagErrorf("--via job cannot be combined with --%s: %s", r.flag, r.why)
		}
	}
	if opts.QuerySQL != "" {
		if _, err := jobConditionOf(opts.QuerySQL); err != nil {
			return err
		}
	}
	return nil
}

var (
	queryWhere      = regexp.MustCompile(`(?is)^\s*select\s+.*?\sfrom\s+devices\s*(?:\swhere\s+(.*?))?\s*$`)
	queryNotForAJob = regexp.MustCompile(`(?is)(^\s*select\s+top\s)|(\sgroup\s+by\s)|(\sorder\s+by\s)`)
)

// jobConditionOf turns --query into a job's queryCondition: its WHERE
// clause, or * for every device.
func jobConditionOf(sql string) (string, error) {
	if (&fleet.Plan{Query: sql}).QueryNamesModules() {
		return "", cmdutil.FlagErrorf("--via job: --query selects modules (FROM devices.modules); IoT Hub jobs invoke device methods only")
	}
	if queryNotForAJob.MatchString(sql) {
		return "", cmdutil.FlagErrorf("--via job: a job selects devices with a WHERE clause only; --query %q uses TOP, GROUP BY or ORDER BY", sql)
	}
	m := queryWhere.FindStringSubmatch(sql)
	if m == nil {
		return "", cmdutil.FlagErrorf("--via job: --query %q is not SELECT ... FROM devices [WHERE ...]", sql)
	}
	cond := strings.TrimSpace(m[1])
	if cond == "" {
		return "*", nil
	}
	if err := iothub.ValidateQueryCondition(cond); err != nil {
		return "", cmdutil.FlagErrorf("--via job: --query's WHERE clause: %v", err)
	}
	return cond, nil
}

// errNoTargets says that --device and --devices-file named no target.
var errNoTargets = errors.New("no targets")

// jobCondition is the run's queryCondition: the ids of --device and
// --devices-file as deviceId IN [...], OR the WHERE clause of --query.
// ids is how many ids it names.
func (opts *Options) jobCondition() (cond string, ids int, err error) {
	var list []string
	p := opts.targetPlan()
	_, err = p.Listed(func(t fleet.Target) error {
		if t.ModuleID != "" {
			return cmdutil.FlagErrorf("--via job: --devices-file names module %s; IoT Hub jobs invoke device methods only (run it without --via job)", t)
		}
		list = append(list, t.DeviceID)
		return nil
	})
	var ie *fleet.InputError
	if errors.As(err, &ie) {
		return "", 0, cmdutil.FlagErrorWrap(err)
	}
	if err != nil {
		return "", 0, err
	}
	where := ""
	if opts.QuerySQL != "" {
		if where, err = jobConditionOf(opts.QuerySQL); err != nil {
			return "", 0, err
		}
	}
	switch {
	case where == "*":
		return "*", 0, nil
	case len(list) == 0 && where == "":
		return "", 0, errNoTargets
	case len(list) == 0:
		cond = where
	case where == "":
		cond = iothub.DeviceIDCondition(list)
	default:
		cond = iothub.DeviceIDCondition(list) + " OR (" + where + ")"
	}
	if n := len(cond); n > iothub.MaxQueryConditionLength {
		return "", 0, cmdutil.FlagErrorf("--via job: %d device ids make a queryCondition of %d characters; IoT Hub accepts queries of at most %d characters. "+
			"Select the devices with --query \"SELECT deviceId FROM devices WHERE tags.wave = 3\", or run without --via job",
			len(list), n, iothub.MaxQueryLength)
	}
	return cond, len(list), nil
}

// jobsRate is the hub's jobs device-operation throttle for --tier/--units
// (the iothub limits table), and how to describe it.
func jobsRate(tier string, units int) (float64, string) {
	l, err := iothub.TierLimits(tier, max(units, 1))
	if err != nil || tier == "" {
		return iothub.DefaultLimits().JobsRate(), "the jobs throttle of tier S1 (give --tier for another)"
	}
	what := "the jobs throttle of tier " + l.Tier
	if l.Tier == "S2" || l.Tier == "S3" {
		what += fmt.Sprintf(", %d units", l.Units)
	}
	return l.JobsRate(), what
}

// invokeViaJob runs the fan-out as a scheduleDeviceMethod job: it creates
// the job, follows it, reads the per-device results, waits for the
// outcomes when asked, and prints the results as a direct run does.
func invokeViaJob(ctx context.Context, opts *Options) error {
	_, cred, err := opts.Invoker()
	if err != nil {
		return err
	}
	hubName := ""
	if cred != nil {
		hubName = cred.Host
	}
	if opts.DryRun || opts.wouldPrompt() {
		// The same targets a direct run would resolve (the query runs once).
		ts, err := opts.resolveTargets(ctx, true)
		defer ts.close()
		if err != nil {
			return err
		}
		if opts.DryRun {
			rate, source := jobsRate(opts.Tier, opts.Units)
			return opts.dryRun(ts, hubName, pace{rate: rate, source: "--via job: " + source})
		}
		if ts.Total > 1 {
			yes, err := opts.confirmRun(ctx, ts.Total, hubName)
			if err != nil {
				return err
			}
			if !yes {
				return cmdutil.ErrCancelled
			}
		}
	}
	cond, _, err := opts.jobCondition()
	if errors.Is(err, errNoTargets) {
		// As for a direct run: no targets is not an error (a retry
		// pipeline with nothing left to retry), and no job is created.
		_, _ = fmt.Fprintln(opts.IO.ErrOut, "note: no targets: nothing was sent (no job was created)")
		return nil
	}
	if err != nil {
		return err
	}
	wait, err := opts.waitFor()
	if err != nil {
		return err
	}
	c, _, err := opts.hub()
	if err != nil {
		return err
	}
	deps := cmdutil.HubDeps{IO: opts.IO, Client: opts.hub, Now: opts.Now, Sleep: opts.Sleep, Output: opts.Output}
	req := iothub.JobRequest{
		JobID:          shared.NewJobID(opts.now()),
		Type:           iothub.JobTypeDeviceMethod,
		QueryCondition: cond,
		Method: &iothub.MethodRequest{
			MethodName:      opts.Method,
			Payload:         opts.Payload,
			ResponseTimeout: opts.Timeout,
			ConnectTimeout:  opts.ConnectTimeout,
		},
		MaxExecutionTime: viaJobMaxExecution,
	}
	job, err := shared.CreateJob(ctx, deps, c, cred, req)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "Created job %s (%s): %s on devices where %s.\n", job.JobID, job.Status, opts.Method, cmdutil.ShortText(cond, 200))
	follow := &shared.FollowOptions{HubDeps: deps, JobID: job.JobID, OKStatus: opts.OKStatus, PollInterval: shared.DefaultPollInterval}
	job, results, err := shared.CollectJob(ctx, follow, c, cred)
	if err != nil {
		return err
	}
	if wait != nil {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "Waiting for %s on the devices that succeeded.\n", wait.Describe())
		results = fleet.AwaitResults(ctx, results, wait, opts.Now, opts.Sleep)
	}
	werr := shared.WriteResults(follow, job, results)
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", cmdutil.ErrInterrupted, ctx.Err())
	}
	return werr
}

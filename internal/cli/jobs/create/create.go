// Package create is `dmctl jobs create`.
package create

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/jobs/shared"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
)

// Options are `dmctl jobs create`'s inputs, checked before
// anything is sent.
type Options struct {
	cmdutil.HubDeps

	Method         string
	QueryCondition string   // the job's queryCondition (from --query-condition or --device)
	Devices        []string // --device, duplicates removed
	Duplicates     int      // --device ids given more than once
	Payload        json.RawMessage
	Timeout        time.Duration
	ConnectTimeout time.Duration
	StartTime      time.Time // zero: now
	MaxExecution   time.Duration
	JobID          string
	Wait           bool
	Follow         shared.FollowOptions // how --wait follows the job and judges its results
	// DryRun prints the job and how many devices its condition selects
	// now, and creates nothing; Yes skips the confirmation on a terminal.
	DryRun bool
	Yes    bool
}

type createFlags struct {
	devices   []string
	payload   string
	startTime string
	okStatus  string
}

// NewCmdCreate returns `dmctl jobs create`.
func NewCmdCreate(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{HubDeps: cmdutil.NewHubDeps(f)}
	var fl createFlags
	cmd := &cobra.Command{
		Use:   "create METHOD (--query-condition COND | --device ID ...) [flags]",
		Short: "Schedule a job that invokes a direct method on the devices a condition selects",
		Long: cmdutil.Heredoc(`
			Schedule an IoT Hub job (scheduleDeviceMethod) that invokes METHOD on every
			device --query-condition selects: a WHERE clause without WHERE, such as
			"tags.site = 'plant-a'" or "properties.reported.fw = '1.2'", or * for
			every device. --device ID (repeatable) selects devices by id instead
			(deviceId IN [...]; a device named twice is sent once, and a note counts
			it); the hub limits a query to 8192 characters, so a list
			longer than that is refused: select such fleets with a tag instead.

			The hub evaluates the condition when the job starts (--start-time, default
			now) and runs the method on each matching device at its jobs pace, for at
			most --max-execution-time (default 1h). --timeout and --connect-timeout
			are sent as given (the connect timeout lets the hub wait for a
			disconnected device, as with dmctl invoke).

			Without --wait the job is printed (-o table, wide, json, jsonl or name)
			and dmctl exits 0 once the hub accepted it. With --wait dmctl follows the
			job (live progress on a terminal) and then prints the per-device results
			like dmctl invoke, with the same exit codes. Ctrl-C stops waiting, not the
			job: dmctl jobs cancel stops it.

			The hub runs a limited number of jobs at once (S1: 1, S2: 5, S3: 10,
			scheduled ones included); past it the hub answers 429004 and dmctl says so.

			Safety: --dry-run prints the job it would create and how many devices its
			condition selects now (a COUNT query), and creates nothing. On a terminal,
			dmctl asks before creating a job (--yes skips the question); nothing ever
			prompts when stdin is not a terminal.
		`),
		Example: cmdutil.Example(`
			$ dmctl jobs create reboot --query-condition "tags.site = 'plant-a'" --wait
			$ dmctl jobs create reboot --device gw-1 --device gw-2 --connect-timeout 60 --wait -o json
			$ dmctl jobs create firmwareUpdate --query-condition "tags.ring = 'canary'" --payload @fw.json --start-time +2h --job-id fw-canary-3
			$ dmctl jobs create reboot --query-condition '*' --dry-run
		`),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.FlagErrorf("jobs create needs exactly one METHOD argument (got %d), e.g. dmctl jobs create reboot --query-condition \"tags.site = 'a'\"", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Method = args[0]
			format, err := cmdutil.ResultFormats.Format(cmd, f)
			if err != nil {
				return err
			}
			opts.Output = format
			opts.Follow.HubDeps = opts.HubDeps
			if err := checkCreate(opts, &fl, cmd.Flags().Changed("payload"), cmd.Flags().Changed("query-condition")); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.QueryCondition, "query-condition", "", "Devices to run on: a WHERE clause without WHERE, e.g. \"tags.site = 'a'\", or * for all")
	flags.StringArrayVar(&fl.devices, "device", nil, "Device `ID` to run on (repeatable; becomes deviceId IN [...])")
	flags.StringVar(&fl.payload, "payload", "", "Method payload: JSON text, @FILE, or - for stdin (default null)")
	cmdutil.DurationFlag(flags, &opts.Timeout, "timeout", iothub.DefaultResponseTimeout, true, "How long the hub waits for each device's answer (5s..300s)")
	cmdutil.DurationFlag(flags, &opts.ConnectTimeout, "connect-timeout", 0, true, "How long the hub waits for a disconnected device to connect (0..300s)")
	flags.StringVar(&fl.startTime, "start-time", "", "When the job starts: RFC 3339 time (2026-03-05T02:00:00Z) or +DURATION from now (default now)")
	cmdutil.DurationFlag(flags, &opts.MaxExecution, "max-execution-time", shared.DefaultMaxExecutionTime, true, "Longest the job may run once started (1s..720h)")
	flags.StringVar(&opts.JobID, "job-id", "", "Job `ID` (default: dmctl-<UTC time>-<random>)")
	flags.BoolVar(&opts.Wait, "wait", false, "Wait for the job to end, then print the per-device results")
	flags.BoolVar(&opts.DryRun, "dry-run", false, "Print the job and how many devices its condition selects now; create nothing")
	flags.BoolVarP(&opts.Yes, "yes", "y", false, "Do not ask for confirmation on a terminal")
	shared.AddFollowFlags(cmd, &opts.Follow, &fl.okStatus)
	_ = cmd.RegisterFlagCompletionFunc("device", cmdutil.CompleteDeviceIDs(f))
	_ = cmd.RegisterFlagCompletionFunc("query-condition", cobra.NoFileCompletions)
	return cmd
}

// checkCreate checks every input; problems are *cmdutil.FlagError.
func checkCreate(opts *Options, fl *createFlags, payloadGiven, condGiven bool) error {
	if err := iothub.ValidateMethodName(opts.Method); err != nil {
		return cmdutil.FlagErrorf("METHOD: %v", err)
	}
	switch {
	case condGiven && len(fl.devices) > 0:
		return cmdutil.FlagErrorf("--query-condition and --device cannot be combined: select the devices one way")
	case !condGiven && len(fl.devices) == 0:
		return cmdutil.FlagErrorf("name the devices: --query-condition \"tags.site = 'a'\" (or * for every device), or --device ID (repeatable)")
	case condGiven:
		cond := strings.TrimSpace(opts.QueryCondition)
		if len(cond) >= 6 && strings.EqualFold(cond[:6], "where ") {
			return cmdutil.FlagErrorf("--query-condition: give the condition without WHERE, e.g. %q", strings.TrimSpace(cond[6:]))
		}
		if err := iothub.ValidateQueryCondition(cond); err != nil {
			return cmdutil.FlagErrorf("--query-condition: %v", err)
		}
		opts.QueryCondition = cond
	default:
		// The one target rule (fleet.Plan): ids checked, a device named
		// twice is sent once, and counted.
		plan := fleet.Plan{Devices: fl.devices}
		if err := plan.Check(); err != nil {
			return cmdutil.FlagErrorWrap(err)
		}
		opts.Devices = nil
		dupes, err := plan.Listed(func(t fleet.Target) error { opts.Devices = append(opts.Devices, t.DeviceID); return nil })
		if err != nil {
			return cmdutil.FlagErrorWrap(err)
		}
		opts.Duplicates = dupes
		fl.devices = opts.Devices
		opts.QueryCondition = iothub.DeviceIDCondition(fl.devices)
		if n := len(opts.QueryCondition); n > iothub.MaxQueryConditionLength {
			return cmdutil.FlagErrorf("--device: %d devices make a queryCondition of %d characters; IoT Hub accepts queries of at most %d characters (about %d ids of this length). "+
				"Select the devices with --query-condition (a tag, e.g. \"tags.wave = 3\"), or use dmctl invoke --devices-file for an explicit list",
				len(fl.devices), n, iothub.MaxQueryLength, len(fl.devices)*iothub.MaxQueryConditionLength/n)
		}
	}
	payload, err := cmdutil.ReadPayload(fl.payload, payloadGiven, opts.IO)
	if err != nil {
		return err
	}
	opts.Payload = payload
	if err := cmdutil.CheckMethodTimeouts(opts.Timeout, opts.ConnectTimeout); err != nil {
		return err
	}
	if opts.MaxExecution < time.Second || opts.MaxExecution > iothub.MaxJobExecutionTime {
		return cmdutil.FlagErrorf("--max-execution-time: %s is out of range: use 1s to %s", cmdutil.FormatDuration(opts.MaxExecution), iothub.MaxJobExecutionTime)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if fl.startTime != "" {
		t, err := parseStartTime(fl.startTime, now())
		if err != nil {
			return cmdutil.FlagErrorf("--start-time: %v", err)
		}
		opts.StartTime = t
	}
	if opts.JobID == "" {
		opts.JobID = shared.NewJobID(now())
	} else if err := iothub.ValidateJobID(opts.JobID); err != nil {
		return cmdutil.FlagErrorf("--job-id: %v", err)
	}
	return shared.CheckFollow(&opts.Follow, fl.okStatus, opts.JobID)
}

// parseStartTime reads --start-time: an RFC 3339 time, "now", or
// +DURATION (also DURATION) from now.
func parseStartTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "now") {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	d, err := cmdutil.ParseDuration(strings.TrimPrefix(s, "+"))
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-03-05T02:00:00Z) nor +DURATION from now (+2h)", s)
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

// createRun schedules the job, then prints it, or (--wait) follows it
// and prints its per-device results.
func createRun(ctx context.Context, opts *Options) error {
	c, cred, err := opts.Client()
	if err != nil {
		return err
	}
	req := iothub.JobRequest{
		JobID:          opts.JobID,
		Type:           iothub.JobTypeDeviceMethod,
		QueryCondition: opts.QueryCondition,
		Method: &iothub.MethodRequest{
			MethodName:      opts.Method,
			Payload:         opts.Payload,
			ResponseTimeout: opts.Timeout,
			ConnectTimeout:  opts.ConnectTimeout,
		},
		StartTime:        opts.StartTime,
		MaxExecutionTime: opts.MaxExecution,
	}
	what := fmt.Sprintf("%d devices selected by --device", len(opts.Devices))
	if len(opts.Devices) == 0 {
		what = "devices where " + opts.QueryCondition
	}
	prompt := !opts.Yes && !opts.DryRun && opts.IO.IsStdinTTY() && opts.IO.IsStderrTTY()
	if opts.DryRun || prompt {
		matches := "the number of devices it selects now is unknown"
		n, err := shared.CountDevices(ctx, opts.HubDeps, c, opts.QueryCondition)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %w", cmdutil.ErrInterrupted, ctx.Err())
			}
			if e := opts.HubFailure(ctx, err, cred, "--query-condition: counting the devices it selects"); cmdutil.ExitCode(e) == cmdutil.ExitUsage || cmdutil.ExitCode(e) == cmdutil.ExitAuth {
				return e // a condition the hub refuses, or a refused credential
			}
			matches += " (" + cmdutil.OneLine(err.Error()) + ")"
		} else {
			matches = fmt.Sprintf("%d %s %s now", n, cmdutil.Plural(n, "device", "devices"), cmdutil.Plural(n, "matches", "match"))
		}
		on := ""
		if cred != nil {
			on = " on hub " + cred.Host
		}
		if opts.DryRun {
			_, _ = fmt.Fprintf(opts.IO.ErrOut, "Dry run: job %s would invoke %q on %s%s: %s. Nothing was created.\n", req.JobID, opts.Method, what, on, matches)
			// The job as it would be created, its statistics the devices
			// the condition selects now (all pending).
			return shared.PrintJobs(opts.HubDeps, []iothub.Job{{JobID: req.JobID, Type: req.Type, QueryCondition: req.QueryCondition,
				Method: req.Method, StartTime: req.StartTime, MaxExecutionTime: req.MaxExecutionTime,
				Statistics: iothub.DeviceJobStatistics{DeviceCount: n, PendingCount: n}}}, true)
		}
		yes, err := cmdutil.Confirm(ctx, opts.IO, fmt.Sprintf("Create job %s to invoke %q on %s%s (%s)?", req.JobID, opts.Method, what, on, matches))
		if err != nil {
			return err
		}
		if !yes {
			return cmdutil.ErrCancelled
		}
	}
	job, err := shared.CreateJob(ctx, opts.HubDeps, c, cred, req)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "Created job %s (%s): %s on %s.\n", job.JobID, job.Status, opts.Method, what)
	if n := opts.Duplicates; n > 0 {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "note: %d duplicate %s removed\n", n, cmdutil.Plural(n, "device", "devices"))
	}
	if !opts.Wait {
		if err := shared.PrintJobs(opts.HubDeps, []iothub.Job{job}, true); err != nil {
			return err
		}
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "Follow it with: dmctl jobs wait %s\n", job.JobID)
		return nil
	}
	return shared.FollowJob(ctx, &opts.Follow, c, cred)
}

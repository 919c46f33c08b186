package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
)

// Defaults of the jobs commands.
const (
	// DefaultPollInterval is how often `jobs wait` asks for the job's
	// status: 30 job operations a minute, well inside S1's 100 per unit.
	DefaultPollInterval = 2 * time.Second
	// MinPollInterval keeps --poll-interval from hammering the hub.
	MinPollInterval = 100 * time.Millisecond
	// DefaultMaxExecutionTime is what `jobs create` sends when
	// --max-execution-time is not given (the SDKs' and the hub's default).
	DefaultMaxExecutionTime = time.Hour
)

// NewCmdJobs returns `dmctl jobs` and its subcommands.
func NewCmdJobs(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs <command>",
		Short: "Schedule and follow IoT Hub jobs that invoke a method on many devices",
		Long: cmdutil.Heredoc(`
			IoT Hub jobs run a direct method on every device a query selects, inside
			the hub: the fan-out keeps going while your machine sleeps, paced by the
			hub's jobs throttle (S1: 10 devices a second; S3: 50 a second per unit).

			dmctl jobs create schedules one; wait follows it and then lists the
			per-device results in the same shape, formats and exit codes as
			dmctl invoke (0: every device succeeded, 4: some did not, 3: refused).
			See docs/jobs.md for when a job beats a direct fan-out.
		`),
		Example: cmdutil.Example(`
			$ dmctl jobs create reboot --query-condition "tags.site = 'plant-a'" --wait
			$ dmctl jobs create firmwareUpdate --device gw-1 --device gw-2 --payload @fw.json --start-time 2026-03-05T02:00:00Z
			$ dmctl jobs list --status running
			$ dmctl jobs wait dmctl-20260304-050607-1a2b3c4d -o jsonl
			$ dmctl jobs results dmctl-20260304-050607-1a2b3c4d -o json
			$ dmctl jobs cancel dmctl-20260304-050607-1a2b3c4d
		`),
	}
	cmdutil.GroupCommand(cmd)
	cmd.AddCommand(NewCmdJobsCreate(f, nil))
	cmd.AddCommand(NewCmdJobsShow(f, nil))
	cmd.AddCommand(NewCmdJobsList(f, nil))
	cmd.AddCommand(NewCmdJobsCancel(f, nil))
	cmd.AddCommand(NewCmdJobsWait(f, nil))
	cmd.AddCommand(NewCmdJobsResults(f, nil))
	return cmd
}

// jobIDArg checks the one JOB-ID argument of show, cancel, wait and results.
func jobIDArg(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return cmdutil.FlagErrorf("jobs %s needs exactly one JOB-ID argument (got %d), e.g. dmctl jobs %s dmctl-20260304-050607-1a2b3c4d", name, len(args), name)
		}
		if err := iothub.ValidateJobID(args[0]); err != nil {
			return cmdutil.FlagErrorf("JOB-ID: %v", err)
		}
		return nil
	}
}

// JobsCreateOptions are `dmctl jobs create`'s inputs, checked before
// anything is sent.
type JobsCreateOptions struct {
	cmdutil.HubDeps

	Method         string
	QueryCondition string   // the job's queryCondition (from --query-condition or --device)
	Devices        []string // --device, for messages
	Payload        json.RawMessage
	Timeout        time.Duration
	ConnectTimeout time.Duration
	StartTime      time.Time // zero: now
	MaxExecution   time.Duration
	JobID          string
	Wait           bool
	Follow         JobsWaitOptions // how --wait follows the job and judges its results
	// DryRun prints the job and how many devices its condition selects
	// now, and creates nothing; Yes skips the confirmation on a terminal.
	DryRun bool
	Yes    bool
}

type jobsCreateFlags struct {
	devices   []string
	payload   string
	startTime string
	okStatus  string
}

// NewCmdJobsCreate returns `dmctl jobs create`.
func NewCmdJobsCreate(f *cmdutil.Factory, runF func(*JobsCreateOptions) error) *cobra.Command {
	opts := &JobsCreateOptions{HubDeps: cmdutil.NewHubDeps(f)}
	var fl jobsCreateFlags
	cmd := &cobra.Command{
		Use:   "create METHOD (--query-condition COND | --device ID ...) [flags]",
		Short: "Schedule a job that invokes a direct method on the devices a condition selects",
		Long: cmdutil.Heredoc(`
			Schedule an IoT Hub job (scheduleDeviceMethod) that invokes METHOD on every
			device --query-condition selects: a WHERE clause without WHERE, such as
			"tags.site = 'plant-a'" or "properties.reported.fw = '1.2'", or * for
			every device. --device ID (repeatable) selects devices by id instead
			(deviceId IN [...]); the hub limits a query to 8192 characters, so a list
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
			format, err := cmdutil.ParseOutput(f)
			if err != nil {
				return err
			}
			opts.Output = format
			opts.Follow.HubDeps = opts.HubDeps
			if err := checkJobsCreate(opts, &fl, cmd.Flags().Changed("payload"), cmd.Flags().Changed("query-condition")); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return JobsCreateRun(cmd.Context(), opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.QueryCondition, "query-condition", "", "Devices to run on: a WHERE clause without WHERE, e.g. \"tags.site = 'a'\", or * for all")
	flags.StringArrayVar(&fl.devices, "device", nil, "Device `ID` to run on (repeatable; becomes deviceId IN [...])")
	flags.StringVar(&fl.payload, "payload", "", "Method payload: JSON text, @FILE, or - for stdin (default null)")
	cmdutil.DurationFlag(flags, &opts.Timeout, "timeout", iothub.DefaultResponseTimeout, true, "How long the hub waits for each device's answer (5s..300s)")
	cmdutil.DurationFlag(flags, &opts.ConnectTimeout, "connect-timeout", 0, true, "How long the hub waits for a disconnected device to connect (0..300s)")
	flags.StringVar(&fl.startTime, "start-time", "", "When the job starts: RFC 3339 time (2026-03-05T02:00:00Z) or +DURATION from now (default now)")
	cmdutil.DurationFlag(flags, &opts.MaxExecution, "max-execution-time", DefaultMaxExecutionTime, true, "Longest the job may run once started (1s..720h)")
	flags.StringVar(&opts.JobID, "job-id", "", "Job `ID` (default: dmctl-<UTC time>-<random>)")
	flags.BoolVar(&opts.Wait, "wait", false, "Wait for the job to end, then print the per-device results")
	flags.BoolVar(&opts.DryRun, "dry-run", false, "Print the job and how many devices its condition selects now; create nothing")
	flags.BoolVarP(&opts.Yes, "yes", "y", false, "Do not ask for confirmation on a terminal")
	addWaitFlags(cmd, &opts.Follow, &fl.okStatus)
	_ = cmd.RegisterFlagCompletionFunc("device", cmdutil.CompleteDeviceIDs(f))
	_ = cmd.RegisterFlagCompletionFunc("query-condition", cobra.NoFileCompletions)
	return cmd
}

// addWaitFlags adds what waiting and results need: --ok-status and --poll-interval.
func addWaitFlags(cmd *cobra.Command, opts *JobsWaitOptions, okStatus *string) {
	flags := cmd.Flags()
	flags.StringVar(okStatus, "ok-status", "2xx", "Device statuses that count as success, e.g. 200,202 or 2xx")
	cmdutil.DurationFlag(flags, &opts.PollInterval, "poll-interval", DefaultPollInterval, false, "How often to ask the hub for the job's progress")
}

// checkJobsCreate checks every input; problems are *cmdutil.FlagError.
func checkJobsCreate(opts *JobsCreateOptions, fl *jobsCreateFlags, payloadGiven, condGiven bool) error {
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
		seen := map[string]bool{}
		for _, d := range fl.devices {
			if err := iothub.ValidateDeviceID(d); err != nil {
				return cmdutil.FlagErrorf("--device: %v", err)
			}
			if seen[d] {
				return cmdutil.FlagErrorf("--device: %q is given more than once", d)
			}
			seen[d] = true
		}
		opts.Devices = fl.devices
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
		opts.JobID = newJobID(now())
	} else if err := iothub.ValidateJobID(opts.JobID); err != nil {
		return cmdutil.FlagErrorf("--job-id: %v", err)
	}
	return checkWait(&opts.Follow, fl.okStatus, opts.JobID)
}

// checkWait checks the waiting flags.
func checkWait(opts *JobsWaitOptions, okStatus, jobID string) error {
	ok, err := fleet.ParseStatusSet(okStatus)
	if err != nil {
		return cmdutil.FlagErrorf("--ok-status: %v", err)
	}
	opts.OKStatus = ok
	if opts.PollInterval < MinPollInterval {
		return cmdutil.FlagErrorf("--poll-interval: %s is too short: use at least %s", opts.PollInterval, MinPollInterval)
	}
	opts.JobID = jobID
	return nil
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

// newJobID is dmctl-<UTC time>-<8 random hex digits>: sortable, readable,
// unique.
func newJobID(now time.Time) string {
	return "dmctl-" + now.UTC().Format("20060102-150405") + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
}

// JobsShowOptions are `dmctl jobs show`'s inputs.
type JobsShowOptions struct {
	cmdutil.HubDeps
	JobID string
}

// NewCmdJobsShow returns `dmctl jobs show`.
func NewCmdJobsShow(f *cmdutil.Factory, runF func(*JobsShowOptions) error) *cobra.Command {
	opts := &JobsShowOptions{HubDeps: cmdutil.NewHubDeps(f)}
	return &cobra.Command{
		Use:   "show JOB-ID",
		Short: "Show a job's status and device counts",
		Example: cmdutil.Example(`
			$ dmctl jobs show fw-canary-3
			$ dmctl jobs show fw-canary-3 -o json | jq .statistics
		`),
		Args: jobIDArg("show"),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := cmdutil.ParseOutput(f)
			if err != nil {
				return err
			}
			opts.Output, opts.JobID = format, args[0]
			if runF != nil {
				return runF(opts)
			}
			return JobsShowRun(cmd.Context(), opts)
		},
	}
}

// JobsListOptions are `dmctl jobs list`'s inputs.
type JobsListOptions struct {
	cmdutil.HubDeps
	Type   iothub.JobType
	Status iothub.JobStatus
	Limit  int // 0: all
}

// NewCmdJobsList returns `dmctl jobs list`.
func NewCmdJobsList(f *cmdutil.Factory, runF func(*JobsListOptions) error) *cobra.Command {
	opts := &JobsListOptions{HubDeps: cmdutil.NewHubDeps(f)}
	var typ, status string
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List the hub's jobs",
		Long: cmdutil.Heredoc(`
			List the jobs the hub knows (hubs keep a job's history for 30 days), oldest
			first as the hub returns them, optionally only one type or status.
		`),
		Example: cmdutil.Example(`
			$ dmctl jobs list
			$ dmctl jobs list --status running -o name
			$ dmctl jobs list --type scheduleDeviceMethod --status failed -o wide
		`),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return cmdutil.FlagErrorf("jobs list takes no arguments (got %q); filter with --type and --status", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := cmdutil.ParseOutput(f)
			if err != nil {
				return err
			}
			opts.Output = format
			opts.Type, opts.Status = iothub.JobType(typ), iothub.JobStatus(status)
			if opts.Limit < 0 {
				return cmdutil.FlagErrorf("--limit: %d is negative (0 lists every job)", opts.Limit)
			}
			if runF != nil {
				return runF(opts)
			}
			return JobsListRun(cmd.Context(), opts)
		},
	}
	statuses := make([]string, 0, len(iothub.JobStatuses))
	for _, s := range iothub.JobStatuses {
		statuses = append(statuses, string(s))
	}
	cmdutil.StringEnumFlag(cmd, cmd.Flags(), &typ, "type", "", "", []string{string(iothub.JobTypeDeviceMethod), string(iothub.JobTypeUpdateTwin)}, "Only jobs of this type")
	cmdutil.StringEnumFlag(cmd, cmd.Flags(), &status, "status", "", "", statuses, "Only jobs with this status")
	cmd.Flags().IntVar(&opts.Limit, "limit", 0, "List at most this many jobs (0: all)")
	return cmd
}

// JobsCancelOptions are `dmctl jobs cancel`'s inputs.
type JobsCancelOptions struct {
	cmdutil.HubDeps
	JobID string
}

// NewCmdJobsCancel returns `dmctl jobs cancel`.
func NewCmdJobsCancel(f *cmdutil.Factory, runF func(*JobsCancelOptions) error) *cobra.Command {
	opts := &JobsCancelOptions{HubDeps: cmdutil.NewHubDeps(f)}
	return &cobra.Command{
		Use:   "cancel JOB-ID",
		Short: "Cancel a scheduled or running job",
		Long: cmdutil.Heredoc(`
			Cancel a job: a scheduled job never starts; a running one stops sending the
			method to devices it has not reached yet (calls already sent finish). A job
			that already ended is shown as it is.
		`),
		Example: cmdutil.Example(`
			$ dmctl jobs cancel fw-canary-3
		`),
		Args: jobIDArg("cancel"),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := cmdutil.ParseOutput(f)
			if err != nil {
				return err
			}
			opts.Output, opts.JobID = format, args[0]
			if runF != nil {
				return runF(opts)
			}
			return JobsCancelRun(cmd.Context(), opts)
		},
	}
}

// JobsWaitOptions are `dmctl jobs wait`'s inputs (and `results`', which
// does not wait).
type JobsWaitOptions struct {
	cmdutil.HubDeps
	JobID        string
	OKStatus     fleet.StatusSet
	PollInterval time.Duration
	// NoWait prints the results as they are now (`dmctl jobs results`).
	NoWait bool
}

// NewCmdJobsWait returns `dmctl jobs wait`.
func NewCmdJobsWait(f *cmdutil.Factory, runF func(*JobsWaitOptions) error) *cobra.Command {
	return newJobsWaitCmd(f, runF, false)
}

// NewCmdJobsResults returns `dmctl jobs results`.
func NewCmdJobsResults(f *cmdutil.Factory, runF func(*JobsWaitOptions) error) *cobra.Command {
	return newJobsWaitCmd(f, runF, true)
}

func newJobsWaitCmd(f *cmdutil.Factory, runF func(*JobsWaitOptions) error, noWait bool) *cobra.Command {
	opts := &JobsWaitOptions{HubDeps: cmdutil.NewHubDeps(f), NoWait: noWait}
	var okStatus string
	cmd := &cobra.Command{
		Use:   "wait JOB-ID",
		Short: "Wait for a job to end, then print its per-device results",
		Long: cmdutil.Heredoc(`
			Follow a job until it is completed, failed or cancelled (live progress on a
			terminal; a line per status change otherwise), then print one result per
			device in dmctl invoke's shape: -o table, wide, json, jsonl or name, a
			summary on stderr, and exit 0 when every device succeeded, 4 when some did
			not. A device that answered is succeeded or failed by --ok-status; one the
			hub could not reach is offline, timeout, notFound or error; one the job
			never reached (cancelled, or past its maximum execution time) is skipped.
			Ctrl-C stops waiting, not the job.
		`),
		Example: cmdutil.Example(`
			$ dmctl jobs wait fw-canary-3
			$ dmctl jobs wait fw-canary-3 -o jsonl | jq -c 'select(.outcome != "succeeded")'
		`),
		Args: jobIDArg("wait"),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := cmdutil.ParseOutput(f)
			if err != nil {
				return err
			}
			opts.Output = format
			if err := checkWait(opts, okStatus, args[0]); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return JobsWaitRun(cmd.Context(), opts)
		},
	}
	if noWait {
		cmd.Use = "results JOB-ID"
		cmd.Short = "Print a job's per-device results"
		cmd.Long = cmdutil.Heredoc(`
			Print one result per device of a job, as it stands now, in dmctl invoke's
			shape (see dmctl jobs wait): devices the job has not reached yet are
			skipped. Exit 0 when every device succeeded, 4 when some did not.
		`)
		cmd.Example = cmdutil.Example(`
			$ dmctl jobs results fw-canary-3 -o json
		`)
		cmd.Args = jobIDArg("results")
	}
	addWaitFlags(cmd, opts, &okStatus)
	if noWait {
		_ = cmd.Flags().MarkHidden("poll-interval")
	}
	return cmd
}

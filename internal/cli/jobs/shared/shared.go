// Package shared holds what the jobs commands (and dmctl invoke --via job)
// share: creating, following and reading jobs, and their results in
// dmctl invoke's shape.
package shared

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
	"github.com/dmctl/dmctl/internal/retry"
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

// JobIDArg checks the one JOB-ID argument of show, cancel, wait and results.
func JobIDArg(name string) cobra.PositionalArgs {
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

// JobRunE is the RunE of a jobs command over one JOB-ID in the result
// formats (show, cancel): it reads -o into deps.Output and the argument into
// *jobID, then calls runF (a test's) or run.
func JobRunE[O any](f *cmdutil.Factory, opts *O, deps *cmdutil.HubDeps, jobID *string, runF func(*O) error, run func(context.Context, *O) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		format, err := cmdutil.ResultFormats.Format(cmd, f)
		if err != nil {
			return err
		}
		deps.Output, *jobID = format, args[0]
		if runF != nil {
			return runF(opts)
		}
		return run(cmd.Context(), opts)
	}
}

// FollowOptions say how to follow a job and judge its results: `dmctl jobs
// wait`'s inputs (and `results`', which does not wait, and create --wait's).
type FollowOptions struct {
	cmdutil.HubDeps
	JobID        string
	OKStatus     fleet.StatusSet
	PollInterval time.Duration
	// NoWait prints the results as they are now (`dmctl jobs results`).
	NoWait bool
}

// AddFollowFlags adds what waiting and results need: --ok-status and --poll-interval.
func AddFollowFlags(cmd *cobra.Command, opts *FollowOptions, okStatus *string) {
	flags := cmd.Flags()
	flags.StringVar(okStatus, "ok-status", "2xx", "Device statuses that count as success, e.g. 200,202 or 2xx")
	cmdutil.DurationFlag(flags, &opts.PollInterval, "poll-interval", DefaultPollInterval, false, "How often to ask the hub for the job's progress")
}

// CheckFollow checks the waiting flags.
func CheckFollow(opts *FollowOptions, okStatus, jobID string) error {
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

// NewJobID is dmctl-<UTC time>-<8 random hex digits>: sortable, readable,
// unique.
func NewJobID(now time.Time) string {
	return "dmctl-" + now.UTC().Format("20060102-150405") + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
}

// deviceJobsPageSize is the page size asked for device-job results (the
// hub's maximum): few pages, so few queries against the query throttle.
const deviceJobsPageSize = 1000

// JobView turns the hub's job into dmctl's public view.
func JobView(j iothub.Job) output.JobView {
	v := output.JobView{
		JobID:               j.JobID,
		Type:                string(j.Type),
		Status:              string(j.Status),
		QueryCondition:      j.QueryCondition,
		UpdateTwin:          j.UpdateTwin,
		MaxExecutionSeconds: int64(j.MaxExecutionTime / time.Second),
		FailureReason:       j.FailureReason,
		StatusMessage:       j.StatusMessage,
		Statistics: output.JobStatistics{
			Devices:   j.Statistics.DeviceCount,
			Succeeded: j.Statistics.SucceededCount,
			Failed:    j.Statistics.FailedCount,
			Running:   j.Statistics.RunningCount,
			Pending:   j.Statistics.PendingCount,
		},
	}
	if m := j.Method; m != nil {
		v.Method = m.MethodName
		v.Payload = m.Payload
		v.ResponseTimeoutSeconds = int64(m.ResponseTimeout / time.Second)
		v.ConnectTimeoutSeconds = int64(m.ConnectTimeout / time.Second)
	}
	tp := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	v.CreatedTime, v.StartTime, v.EndTime = tp(j.CreatedTime), tp(j.StartTime), tp(j.EndTime)
	return v
}

func PrintJobs(d cmdutil.HubDeps, jobs []iothub.Job, single bool) error {
	p, err := output.NewJobPrinter(d.Output, d.IO, single)
	if err != nil {
		return cmdutil.FlagErrorf("-o/--output: %v", err)
	}
	for _, j := range jobs {
		if err := p.Add(JobView(j)); err != nil {
			return fmt.Errorf("write jobs: %w", err)
		}
	}
	if err := p.Flush(); err != nil {
		return fmt.Errorf("write jobs: %w", err)
	}
	return nil
}

// CountDevices asks the hub how many devices a job's queryCondition
// selects now (a COUNT query, retried like any read).
func CountDevices(ctx context.Context, d cmdutil.HubDeps, c *iothub.Client, cond string) (int, error) {
	sql := "SELECT COUNT() AS numberOfDevices FROM devices"
	if cond != "*" {
		sql += " WHERE " + cond
	}
	page, err := c.NewQueryPager(sql, &iothub.QueryOptions{Retry: retry.Pages(d.ReadPolicy())}).NextPage(ctx)
	if err != nil {
		return 0, err
	}
	if len(page.Items) == 0 {
		return 0, nil
	}
	var row struct {
		N *int `json:"numberOfDevices"`
	}
	if err := json.Unmarshal(page.Items[0], &row); err != nil || row.N == nil {
		return 0, fmt.Errorf("%w: the COUNT query answered %s", iothub.ErrUnreadableAnswer, cmdutil.ShortText(string(page.Items[0]), 100))
	}
	return *row.N, nil
}

// CreateJob schedules req, resending only what the hub refused before
// doing anything, and explains 429004 (too many jobs).
func CreateJob(ctx context.Context, d cmdutil.HubDeps, c *iothub.Client, cred *auth.Credential, req iothub.JobRequest) (iothub.Job, error) {
	var job iothub.Job
	// Creating is not idempotent in general, but a refusal the hub gives
	// before doing anything (429, 503, a request never sent) is safe to
	// send again; retry.Do's non-idempotent classification says exactly that.
	// 429004 (too many jobs) is not resent: a slot frees only when a job
	// ends, which may be an hour away.
	policy := retry.Policy{Sleep: d.Sleep, Now: d.Now}
	_, err := retry.Do(ctx, policy, func(ctx context.Context, _ int) error {
		var e error
		job, e = c.CreateJob(ctx, req)
		return e
	})
	if iothub.KindOf(err) == iothub.KindTooManyJobs {
		_, _ = fmt.Fprintln(d.IO.ErrOut, "hint: the hub runs a limited number of jobs at once (S1: 1, S2: 5, S3: 10, scheduled jobs included); "+
			"see them with `dmctl jobs list --status running` and `--status scheduled`, wait for one to end or cancel it.")
		return job, fmt.Errorf("create job %s: %w", req.JobID, err)
	}
	if err != nil {
		return job, d.HubFailure(ctx, err, cred, "create job "+req.JobID)
	}
	return job, nil
}

func GetJob(ctx context.Context, d cmdutil.HubDeps, c *iothub.Client, id string) (iothub.Job, error) {
	var job iothub.Job
	_, err := retry.Do(ctx, d.ReadPolicy(), func(ctx context.Context, _ int) error {
		var e error
		job, e = c.GetJob(ctx, id)
		return e
	})
	return job, err
}

func FollowJob(ctx context.Context, opts *FollowOptions, c *iothub.Client, cred *auth.Credential) error {
	job, results, err := CollectJob(ctx, opts, c, cred)
	if err != nil {
		return err
	}
	return WriteResults(opts, job, results)
}

// CollectJob follows the job until it ends (unless NoWait) and reads its
// per-device results.
func CollectJob(ctx context.Context, opts *FollowOptions, c *iothub.Client, cred *auth.Credential) (iothub.Job, []fleet.Result, error) {
	var job iothub.Job
	var err error
	if opts.NoWait {
		job, err = GetJob(ctx, opts.HubDeps, c, opts.JobID)
	} else {
		job, err = waitJob(ctx, opts, c)
	}
	if err != nil {
		if errors.Is(err, cmdutil.ErrInterrupted) {
			return job, nil, err
		}
		return job, nil, opts.HubFailure(ctx, err, cred, "job "+opts.JobID)
	}
	results, err := deviceJobResults(ctx, opts.HubDeps, c, job, opts.OKStatus)
	if err != nil {
		return job, nil, opts.HubFailure(ctx, err, cred, "results of job "+opts.JobID)
	}
	return job, results, nil
}

// waitJob polls the job until it ends, showing progress on stderr.
func waitJob(ctx context.Context, opts *FollowOptions, c *iothub.Client) (iothub.Job, error) {
	progress := output.NewJobProgress(opts.IO.ErrOut, opts.IO.IsStderrTTY())
	start := opts.TimeNow()
	for {
		job, err := GetJob(ctx, opts.HubDeps, c, opts.JobID)
		if err != nil {
			progress.Clear()
			if ctx.Err() != nil {
				return iothub.Job{}, interruptedWait(opts, err)
			}
			return iothub.Job{}, err
		}
		elapsed := opts.TimeNow().Sub(start)
		if job.Status.Terminal() {
			progress.Done(JobView(job), elapsed)
			return job, nil
		}
		progress.Update(JobView(job), elapsed)
		if err := opts.Pause(ctx, opts.PollInterval); err != nil {
			progress.Clear()
			return iothub.Job{}, interruptedWait(opts, err)
		}
	}
}

func interruptedWait(opts *FollowOptions, err error) error {
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "Stopped waiting; the job keeps running on the hub. Resume with: dmctl jobs wait %s (or stop it: dmctl jobs cancel %s)\n",
		opts.JobID, opts.JobID)
	return fmt.Errorf("%w: waiting for job %s: %w", cmdutil.ErrInterrupted, opts.JobID, err)
}

// deviceJobResults reads the job's devices.jobs records and turns each into
// a result in dmctl invoke's shape.
func deviceJobResults(ctx context.Context, d cmdutil.HubDeps, c *iothub.Client, job iothub.Job, ok fleet.StatusSet) ([]fleet.Result, error) {
	pager := c.NewDeviceJobsPager(job.JobID, &iothub.QueryOptions{PageSize: deviceJobsPageSize, Retry: retry.Pages(d.ReadPolicy())})
	method := ""
	if job.Method != nil {
		method = job.Method.MethodName
	}
	var results []fleet.Result
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, item := range page.Items {
			dj, err := iothub.ParseDeviceJob(item)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", iothub.ErrUnreadableAnswer, err)
			}
			if dj.JobID != "" && dj.JobID != job.JobID {
				continue // a hub that ignored the filter
			}
			results = append(results, DeviceJobResult(dj, method, job, ok))
		}
	}
	return results, nil
}

// DeviceJobResult turns one device job into a result in dmctl invoke's
// shape. The outcome comes from fleet.OutcomeOf, as for a direct call:
//   - completed with the device's answer: succeeded or failed by ok (a twin
//     job's completed device, which has no answer, succeeded);
//   - failed: the hub's error code decides (DeviceNotOnline is offline,
//     GatewayTimeout timeout, DeviceNotFound notFound, anything else error);
//   - canceled, or not reached yet (pending, scheduled, running): skipped,
//     with no attempt counted.
func DeviceJobResult(dj iothub.DeviceJob, method string, job iothub.Job, ok fleet.StatusSet) fleet.Result {
	r := fleet.Result{DeviceID: dj.DeviceID, ModuleID: dj.ModuleID, Method: method, StartTime: dj.StartTime}
	if r.StartTime.IsZero() {
		r.StartTime = dj.CreatedTime
	}
	if !dj.StartTime.IsZero() && dj.EndTime.After(dj.StartTime) {
		r.DurationMs = float64(dj.EndTime.Sub(dj.StartTime)) / float64(time.Millisecond)
	}
	answered := func(res iothub.MethodResult) {
		st := res.Status
		r.Status, r.Payload = &st, res.Payload
		r.Outcome = fleet.OutcomeOf(res, nil, ok)
	}
	switch dj.Status {
	case iothub.DeviceJobCompleted:
		r.Attempts = 1
		if dj.Response != nil {
			answered(*dj.Response)
		} else {
			r.Outcome = fleet.OutcomeSucceeded
		}
	case iothub.DeviceJobFailed:
		r.Attempts = 1
		if dj.Response != nil && dj.Error == nil {
			answered(*dj.Response)
			break
		}
		code := dj.Error.ErrorCode()
		msg := "the job's call failed"
		if dj.Error != nil && dj.Error.Description != "" {
			msg = dj.Error.Description
		}
		// No HTTP exchange is behind a device job: the code alone says what
		// the failure was.
		r.Outcome = fleet.OutcomeError
		if code != 0 {
			r.Outcome = fleet.OutcomeOfKind(iothub.KindOfAnswer(0, code))
		}
		r.Error = fleet.NewResultError(code, dj.Error.ErrorCodeName(), msg)
	default:
		r.Outcome = fleet.OutcomeSkipped
		msg := "the job has not reached this device yet (" + string(dj.Status) + ")"
		switch {
		case dj.Status == iothub.DeviceJobCanceled && job.Status == iothub.JobStatusFailed:
			msg = "the job ended before reaching this device: " + job.FailureReason
		case dj.Status == iothub.DeviceJobCanceled:
			msg = "the job was cancelled before reaching this device"
		}
		r.Error = fleet.NewResultError(0, "", msg)
	}
	return r
}

// WriteResults prints the results like dmctl invoke: stdout in the
// chosen format, problems, hints and a summary on stderr; a *cmdutil.TargetsError
// when not every device succeeded.
func WriteResults(opts *FollowOptions, job iothub.Job, results []fleet.Result) error {
	printer, err := output.NewResultPrinter(opts.Output, opts.IO)
	if err != nil {
		return cmdutil.FlagErrorf("-o/--output: %v", err)
	}
	for _, r := range results {
		if err := printer.Add(r); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	if err := printer.Flush(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	errOut := opts.IO.ErrOut
	color := opts.IO.ErrColorEnabled()
	if err := output.WriteProblems(errOut, results, output.MaxProblemLines, color); err != nil {
		return err
	}
	var offline, unreached bool
	for _, r := range results {
		offline = offline || r.Outcome == fleet.OutcomeOffline
		unreached = unreached || r.Outcome == fleet.OutcomeSkipped
	}
	if !job.Status.Terminal() {
		_, _ = fmt.Fprintf(errOut, "note: job %s is %s: devices it has not reached yet are reported skipped; dmctl jobs wait %s waits for the end.\n",
			job.JobID, job.Status, job.JobID)
	} else if unreached && job.Status == iothub.JobStatusCancelled {
		_, _ = fmt.Fprintf(errOut, "note: job %s was cancelled; the devices it had not reached are reported skipped.\n", job.JobID)
	}
	if job.FailureReason != "" {
		_, _ = fmt.Fprintf(errOut, "note: job %s %s: %s\n", job.JobID, job.Status, job.FailureReason)
	}
	switch {
	case len(results) > 0:
	case job.Status == iothub.JobStatusCancelled && job.Statistics.DeviceCount == 0:
		_, _ = fmt.Fprintf(errOut, "note: job %s was cancelled before it started; it reached no device.\n", job.JobID)
	case job.Status == iothub.JobStatusCompleted:
		_, _ = fmt.Fprintf(errOut, "note: job %s reached no device: its queryCondition (%s) matched none when it started.\n", job.JobID, job.QueryCondition)
	}
	if offline && job.Method != nil && job.Method.ConnectTimeout == 0 {
		_, _ = fmt.Fprintln(errOut, "hint: offline devices may connect later: a job with --connect-timeout 60 lets the hub wait for each one.")
	}
	summary := fleet.Summarize(results)
	if err := output.WriteSummary(errOut, summary, color); err != nil {
		return err
	}
	// No result is success only when the job completed (its condition
	// matched no device, as a direct run with no targets); a job cancelled
	// or failed before it reached any device did not do what it was asked.
	if summary.Targets == 0 && job.Status != iothub.JobStatusCompleted && job.Status.Terminal() {
		return &cmdutil.TargetsError{Summary: summary}
	}
	if summary.Targets > 0 && !summary.AllSucceeded() {
		return &cmdutil.TargetsError{Summary: summary}
	}
	return nil
}

// NewWaitCmd builds `dmctl jobs wait` (noWait false) or `results` (true).
func NewWaitCmd(f *cmdutil.Factory, runF func(*FollowOptions) error, noWait bool) *cobra.Command {
	opts := &FollowOptions{HubDeps: cmdutil.NewHubDeps(f), NoWait: noWait}
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
		Args: JobIDArg("wait"),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := cmdutil.ResultFormats.Format(cmd, f)
			if err != nil {
				return err
			}
			opts.Output = format
			if err := CheckFollow(opts, okStatus, args[0]); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return WaitRun(cmd.Context(), opts)
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
		cmd.Args = JobIDArg("results")
	}
	AddFollowFlags(cmd, opts, &okStatus)
	if noWait {
		_ = cmd.Flags().MarkHidden("poll-interval")
	}
	return cmd
}

// WaitRun follows the job until it ends (unless NoWait) and prints its
// per-device results.
func WaitRun(ctx context.Context, opts *FollowOptions) error {
	c, cred, err := opts.Client()
	if err != nil {
		return err
	}
	return FollowJob(ctx, opts, c, cred)
}

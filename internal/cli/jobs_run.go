package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
	"github.com/dmctl/dmctl/internal/retry"
)

// deviceJobsPageSize is the page size asked for device-job results (the
// hub's maximum): few pages, so few queries against the query throttle.
const deviceJobsPageSize = 1000

// jobView turns the hub's job into dmctl's public view.
func jobView(j iothub.Job) output.JobView {
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

func printJobs(d cmdutil.HubDeps, jobs []iothub.Job, single bool) error {
	p, err := output.NewJobPrinter(d.Output, d.IO, single)
	if err != nil {
		return cmdutil.FlagErrorf("-o/--output: %v", err)
	}
	for _, j := range jobs {
		if err := p.Add(jobView(j)); err != nil {
			return fmt.Errorf("write jobs: %w", err)
		}
	}
	if err := p.Flush(); err != nil {
		return fmt.Errorf("write jobs: %w", err)
	}
	return nil
}

// JobsCreateRun schedules the job, then prints it, or (--wait) follows it
// and prints its per-device results.
func JobsCreateRun(ctx context.Context, opts *JobsCreateOptions) error {
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
		n, err := countDevices(ctx, opts.HubDeps, c, opts.QueryCondition)
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
			return printJobs(opts.HubDeps, []iothub.Job{{JobID: req.JobID, Type: req.Type, QueryCondition: req.QueryCondition,
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
	job, err := createJob(ctx, opts.HubDeps, c, cred, req)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "Created job %s (%s): %s on %s.\n", job.JobID, job.Status, opts.Method, what)
	if !opts.Wait {
		if err := printJobs(opts.HubDeps, []iothub.Job{job}, true); err != nil {
			return err
		}
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "Follow it with: dmctl jobs wait %s\n", job.JobID)
		return nil
	}
	return followJob(ctx, &opts.Follow, c, cred)
}

// countDevices asks the hub how many devices a job's queryCondition
// selects now (a COUNT query, retried like any read).
func countDevices(ctx context.Context, d cmdutil.HubDeps, c *iothub.Client, cond string) (int, error) {
	sql := "SELECT COUNT() AS numberOfDevices FROM devices"
	if cond != "*" {
		sql += " WHERE " + cond
	}
	pager := c.NewQueryPager(sql, nil)
	var page iothub.QueryPage
	_, err := retry.Do(ctx, d.ReadPolicy(), func(ctx context.Context, _ int) error {
		var e error
		page, e = pager.NextPage(ctx)
		return e
	})
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

// createJob schedules req, resending only what the hub refused before
// doing anything, and explains 429004 (too many jobs).
func createJob(ctx context.Context, d cmdutil.HubDeps, c *iothub.Client, cred *auth.Credential, req iothub.JobRequest) (iothub.Job, error) {
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

// JobsShowRun prints one job.
func JobsShowRun(ctx context.Context, opts *JobsShowOptions) error {
	c, cred, err := opts.Client()
	if err != nil {
		return err
	}
	job, err := getJob(ctx, opts.HubDeps, c, opts.JobID)
	if err != nil {
		return opts.HubFailure(ctx, err, cred, "show job "+opts.JobID)
	}
	return printJobs(opts.HubDeps, []iothub.Job{job}, true)
}

func getJob(ctx context.Context, d cmdutil.HubDeps, c *iothub.Client, id string) (iothub.Job, error) {
	var job iothub.Job
	_, err := retry.Do(ctx, d.ReadPolicy(), func(ctx context.Context, _ int) error {
		var e error
		job, e = c.GetJob(ctx, id)
		return e
	})
	return job, err
}

// JobsListRun prints the hub's jobs, page by page.
func JobsListRun(ctx context.Context, opts *JobsListOptions) error {
	c, cred, err := opts.Client()
	if err != nil {
		return err
	}
	pager := c.NewJobsPager(&iothub.JobsQueryOptions{Type: opts.Type, Status: opts.Status})
	var jobs []iothub.Job
	for pager.More() && (opts.Limit == 0 || len(jobs) < opts.Limit) {
		var page iothub.JobsPage
		_, err := retry.Do(ctx, opts.ReadPolicy(), func(ctx context.Context, _ int) error {
			var e error
			page, e = pager.NextPage(ctx)
			return e
		})
		if err != nil {
			return opts.HubFailure(ctx, err, cred, "list jobs")
		}
		jobs = append(jobs, page.Jobs...)
	}
	if opts.Limit > 0 && len(jobs) > opts.Limit {
		jobs = jobs[:opts.Limit]
	}
	if len(jobs) == 0 && opts.IO.IsStderrTTY() {
		_, _ = fmt.Fprintln(opts.IO.ErrOut, "No jobs.")
	}
	return printJobs(opts.HubDeps, jobs, false)
}

// JobsCancelRun cancels a job and prints it.
func JobsCancelRun(ctx context.Context, opts *JobsCancelOptions) error {
	c, cred, err := opts.Client()
	if err != nil {
		return err
	}
	var job iothub.Job
	// Cancelling twice is harmless, so it is retried like a read.
	_, err = retry.Do(ctx, opts.ReadPolicy(), func(ctx context.Context, _ int) error {
		var e error
		job, e = c.CancelJob(ctx, opts.JobID)
		return e
	})
	if err != nil {
		return opts.HubFailure(ctx, err, cred, "cancel job "+opts.JobID)
	}
	if job.Status != iothub.JobStatusCancelled {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "Job %s had already ended (%s); nothing to cancel.\n", job.JobID, job.Status)
	} else {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "Cancelled job %s.\n", job.JobID)
	}
	return printJobs(opts.HubDeps, []iothub.Job{job}, true)
}

// JobsWaitRun follows the job until it ends (unless NoWait) and prints its
// per-device results.
func JobsWaitRun(ctx context.Context, opts *JobsWaitOptions) error {
	c, cred, err := opts.Client()
	if err != nil {
		return err
	}
	return followJob(ctx, opts, c, cred)
}

func followJob(ctx context.Context, opts *JobsWaitOptions, c *iothub.Client, cred *auth.Credential) error {
	job, results, err := collectJob(ctx, opts, c, cred)
	if err != nil {
		return err
	}
	return writeJobResults(opts, job, results)
}

// collectJob follows the job until it ends (unless NoWait) and reads its
// per-device results.
func collectJob(ctx context.Context, opts *JobsWaitOptions, c *iothub.Client, cred *auth.Credential) (iothub.Job, []fleet.Result, error) {
	var job iothub.Job
	var err error
	if opts.NoWait {
		job, err = getJob(ctx, opts.HubDeps, c, opts.JobID)
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
func waitJob(ctx context.Context, opts *JobsWaitOptions, c *iothub.Client) (iothub.Job, error) {
	progress := output.NewJobProgress(opts.IO.ErrOut, opts.IO.IsStderrTTY())
	start := opts.TimeNow()
	for {
		job, err := getJob(ctx, opts.HubDeps, c, opts.JobID)
		if err != nil {
			progress.Clear()
			if ctx.Err() != nil {
				return iothub.Job{}, interruptedWait(opts, err)
			}
			return iothub.Job{}, err
		}
		elapsed := opts.TimeNow().Sub(start)
		if job.Status.Terminal() {
			progress.Done(jobView(job), elapsed)
			return job, nil
		}
		progress.Update(jobView(job), elapsed)
		if err := opts.Pause(ctx, opts.PollInterval); err != nil {
			progress.Clear()
			return iothub.Job{}, interruptedWait(opts, err)
		}
	}
}

func interruptedWait(opts *JobsWaitOptions, err error) error {
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "Stopped waiting; the job keeps running on the hub. Resume with: dmctl jobs wait %s (or stop it: dmctl jobs cancel %s)\n",
		opts.JobID, opts.JobID)
	return fmt.Errorf("%w: waiting for job %s: %w", cmdutil.ErrInterrupted, opts.JobID, err)
}

// deviceJobResults reads the job's devices.jobs records and turns each into
// a result in dmctl invoke's shape.
func deviceJobResults(ctx context.Context, d cmdutil.HubDeps, c *iothub.Client, job iothub.Job, ok fleet.StatusSet) ([]fleet.Result, error) {
	pager := c.NewDeviceJobsPager(job.JobID, &iothub.QueryOptions{PageSize: deviceJobsPageSize})
	method := ""
	if job.Method != nil {
		method = job.Method.MethodName
	}
	var results []fleet.Result
	for pager.More() {
		var page iothub.QueryPage
		_, err := retry.Do(ctx, d.ReadPolicy(), func(ctx context.Context, _ int) error {
			var e error
			page, e = pager.NextPage(ctx)
			return e
		})
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
		r.Error = &fleet.ResultError{Code: code, CodeName: dj.Error.ErrorCodeName(), Message: msg}
	default:
		r.Outcome = fleet.OutcomeSkipped
		msg := "the job has not reached this device yet (" + string(dj.Status) + ")"
		switch {
		case dj.Status == iothub.DeviceJobCanceled && job.Status == iothub.JobStatusFailed:
			msg = "the job ended before reaching this device: " + job.FailureReason
		case dj.Status == iothub.DeviceJobCanceled:
			msg = "the job was cancelled before reaching this device"
		}
		r.Error = &fleet.ResultError{Message: msg}
	}
	return r
}

// writeJobResults prints the results like dmctl invoke: stdout in the
// chosen format, problems, hints and a summary on stderr; a *cmdutil.TargetsError
// when not every device succeeded.
func writeJobResults(opts *JobsWaitOptions, job iothub.Job, results []fleet.Result) error {
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

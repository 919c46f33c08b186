// Package cancel is `dmctl jobs cancel`.
package cancel

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/jobs/shared"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// Options are `dmctl jobs cancel`'s inputs.
type Options struct {
	cmdutil.HubDeps
	JobID string
}

// NewCmdCancel returns `dmctl jobs cancel`.
func NewCmdCancel(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{HubDeps: cmdutil.NewHubDeps(f)}
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
		Args: shared.JobIDArg("cancel"),
		RunE: shared.JobRunE(f, opts, &opts.HubDeps, &opts.JobID, runF, cancelRun),
	}
}

// cancelRun cancels a job and prints it.
func cancelRun(ctx context.Context, opts *Options) error {
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
	return shared.PrintJobs(opts.HubDeps, []iothub.Job{job}, true)
}

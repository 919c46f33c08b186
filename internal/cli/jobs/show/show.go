// Package show is `dmctl jobs show`.
package show

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/jobs/shared"
	"github.com/dmctl/dmctl/internal/iothub"
)

// Options are `dmctl jobs show`'s inputs.
type Options struct {
	cmdutil.HubDeps
	JobID string
}

// NewCmdShow returns `dmctl jobs show`.
func NewCmdShow(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{HubDeps: cmdutil.NewHubDeps(f)}
	return &cobra.Command{
		Use:   "show JOB-ID",
		Short: "Show a job's status and device counts",
		Example: cmdutil.Example(`
			$ dmctl jobs show fw-canary-3
			$ dmctl jobs show fw-canary-3 -o json | jq .statistics
		`),
		Args: shared.JobIDArg("show"),
		RunE: shared.JobRunE(f, opts, &opts.HubDeps, &opts.JobID, runF, showRun),
	}
}

// showRun prints one job.
func showRun(ctx context.Context, opts *Options) error {
	c, cred, err := opts.Client()
	if err != nil {
		return err
	}
	job, err := shared.GetJob(ctx, opts.HubDeps, c, opts.JobID)
	if err != nil {
		return opts.HubFailure(ctx, err, cred, "show job "+opts.JobID)
	}
	return shared.PrintJobs(opts.HubDeps, []iothub.Job{job}, true)
}

// Package list is `dmctl jobs list`.
package list

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/jobs/shared"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// Options are `dmctl jobs list`'s inputs.
type Options struct {
	cmdutil.HubDeps
	Type   iothub.JobType
	Status iothub.JobStatus
	Limit  int // 0: all
}

// NewCmdList returns `dmctl jobs list`.
func NewCmdList(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{HubDeps: cmdutil.NewHubDeps(f)}
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
			format, err := cmdutil.ResultFormats.Format(cmd, f)
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
			return listRun(cmd.Context(), opts)
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

// listRun prints the hub's jobs, page by page.
func listRun(ctx context.Context, opts *Options) error {
	c, cred, err := opts.Client()
	if err != nil {
		return err
	}
	pager := c.NewJobsPager(&iothub.JobsQueryOptions{Type: opts.Type, Status: opts.Status, Retry: retry.Pages(opts.ReadPolicy())})
	var jobs []iothub.Job
	for pager.More() && (opts.Limit == 0 || len(jobs) < opts.Limit) {
		page, err := pager.NextPage(ctx)
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
	return shared.PrintJobs(opts.HubDeps, jobs, false)
}

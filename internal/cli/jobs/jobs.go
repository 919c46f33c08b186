// Package jobs is `dmctl jobs`: IoT Hub jobs that invoke a method on many
// devices.
package jobs

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/jobs/cancel"
	"github.com/dmctl/dmctl/internal/cli/jobs/create"
	"github.com/dmctl/dmctl/internal/cli/jobs/list"
	"github.com/dmctl/dmctl/internal/cli/jobs/results"
	"github.com/dmctl/dmctl/internal/cli/jobs/show"
	"github.com/dmctl/dmctl/internal/cli/jobs/wait"
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
	cmd.AddCommand(create.NewCmdCreate(f, nil))
	cmd.AddCommand(show.NewCmdShow(f, nil))
	cmd.AddCommand(list.NewCmdList(f, nil))
	cmd.AddCommand(cancel.NewCmdCancel(f, nil))
	cmd.AddCommand(wait.NewCmdWait(f, nil))
	cmd.AddCommand(results.NewCmdResults(f, nil))
	return cmd
}

// Package journal is `dmctl journal`: reading the journal of a fleet run.
package journal

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/journal/show"
)

// NewCmdJournal returns `dmctl journal` and its subcommands.
func NewCmdJournal(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "journal <command>",
		Short: "Read the journal of a fleet run (dmctl invoke --journal)",
	}
	cmdutil.GroupCommand(cmd)
	cmd.AddCommand(show.NewCmdShow(f, nil))
	return cmd
}

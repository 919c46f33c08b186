// Package twin is `dmctl twin`: reading device and module twins.
package twin

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/twin/show"
)

// NewCmdTwin returns `dmctl twin` and its subcommands.
func NewCmdTwin(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "twin <command>",
		Short: "Read device and module twins",
	}
	cmdutil.GroupCommand(cmd)
	cmd.AddCommand(show.NewCmdShow(f, nil))
	return cmd
}

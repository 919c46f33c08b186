// Package list is `dmctl config list`.
package list

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/config/shared"
	"github.com/dmctl/dmctl/internal/output"
)

// Options are the command's inputs.
type Options = shared.ProfileCmdOptions

// NewCmdList returns `dmctl config list`.
func NewCmdList(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	return shared.NewProfileCmd(f, &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the saved profiles (* marks the current one)",
		Example: cmdutil.Example(`
			$ dmctl config list
			$ dmctl config list -o json
		`),
	}, "", false, &Options{}, func(opts *Options) error {
		if runF != nil {
			return runF(opts)
		}
		return listRun(opts)
	})
}

func listRun(opts *Options) error {
	f := opts.F
	c, _, err := f.LoadConfig()
	if err != nil {
		return err
	}
	views := output.ProfileList{}
	for _, n := range c.Names() {
		views = append(views, shared.ViewProfile(c, n))
	}
	if len(views) == 0 && opts.Format == output.FormatTable {
		_, err := fmt.Fprintln(f.IOStreams.ErrOut, "No profiles. Save one with: dmctl config set-profile NAME --hub HOST")
		return err
	}
	return output.PrintView(f.IOStreams.Out, opts.Format, views)
}

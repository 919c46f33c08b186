// Package list is `dmctl config list`.
package list

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/output"
)

// Options are the command's inputs.
type Options struct {
	F      *cmdutil.Factory
	Args   []string
	Format output.Format
}

// NewCmdList returns `dmctl config list`.
func NewCmdList(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{F: f}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the saved profiles (* marks the current one)",
		Example: cmdutil.Example(`
			$ dmctl config list
			$ dmctl config list -o json
		`),
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Args, opts.Format = args, cmdutil.ConfigFormat(cmd, f)
			if runF != nil {
				return runF(opts)
			}
			return listRun(opts)
		},
	}
}

func listRun(opts *Options) error {
	f := opts.F
	c, _, err := f.LoadConfig()
	if err != nil {
		return err
	}
	views := []output.ProfileView{}
	for _, n := range c.Names() {
		views = append(views, cmdutil.ViewProfile(c, n))
	}
	switch format := opts.Format; format {
	case output.FormatJSON, output.FormatJSONL:
		return output.WriteJSON(f.IOStreams.Out, views, format == output.FormatJSON)
	case output.FormatName:
		for _, v := range views {
			if _, err := fmt.Fprintln(f.IOStreams.Out, v.Name); err != nil {
				return err
			}
		}
		return nil
	}
	if len(views) == 0 {
		_, err := fmt.Fprintln(f.IOStreams.ErrOut, "No profiles. Save one with: dmctl config set-profile NAME --hub HOST")
		return err
	}
	rows := make([][]string, 0, len(views))
	for _, v := range views {
		mark := ""
		if v.Current {
			mark = "*"
		}
		what := v.Hub
		if what == "" && v.ConnectionString != "" {
			what = "(connection string)"
		}
		rows = append(rows, []string{mark, v.Name, orDash(what), orDash(v.Auth)})
	}
	return output.WriteTable(f.IOStreams.Out, []string{"CURRENT", "NAME", "HUB", "AUTH"}, rows)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

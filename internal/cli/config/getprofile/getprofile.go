// Package getprofile is `dmctl config get-profile`.
package getprofile

import (
	"fmt"
	"strings"

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

// NewCmdGetProfile returns `dmctl config get-profile`.
func NewCmdGetProfile(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{F: f}
	return &cobra.Command{
		Use:   "get-profile [NAME]",
		Short: "Show a profile (the current one by default)",
		Example: cmdutil.Example(`
			$ dmctl config get-profile
			$ dmctl config get-profile prod -o json
		`),
		Args:              cmdutil.ProfileNameArg("get-profile", true),
		ValidArgsFunction: cmdutil.CompleteProfileNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Args, opts.Format = args, cmdutil.ConfigFormat(cmd, f)
			if runF != nil {
				return runF(opts)
			}
			return getProfileRun(opts)
		},
	}
}

func getProfileRun(opts *Options) error {
	f, args := opts.F, opts.Args
	c, path, err := f.LoadConfig()
	if err != nil {
		return err
	}
	name := c.Current
	if len(args) == 1 {
		name = args[0]
	}
	if name == "" {
		return cmdutil.FlagErrorf("no current profile: name one (dmctl config list shows them)")
	}
	if c.Profiles[name] == nil {
		return cmdutil.FlagErrorf("no profile %q in %s", name, path)
	}
	v := cmdutil.ViewProfile(c, name)
	switch format := opts.Format; format {
	case output.FormatJSON, output.FormatJSONL:
		return output.WriteJSON(f.IOStreams.Out, v, format == output.FormatJSON)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\ncurrent: %t\n", v.Name, v.Current)
	for _, kv := range [][2]string{{"hub", v.Hub}, {"auth", v.Auth}, {"caFile", v.CAFile}, {"output", v.Output}, {"connectionString", v.ConnectionString}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
		}
	}
	_, err = fmt.Fprint(f.IOStreams.Out, b.String())
	return err
}

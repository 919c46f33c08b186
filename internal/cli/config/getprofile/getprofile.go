// Package getprofile is `dmctl config get-profile`.
package getprofile

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/config/shared"
	"github.com/dmctl/dmctl/internal/output"
)

// Options are the command's inputs.
type Options = shared.ProfileCmdOptions

// NewCmdGetProfile returns `dmctl config get-profile`.
func NewCmdGetProfile(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	return shared.NewProfileCmd(f, &cobra.Command{
		Use:   "get-profile [NAME]",
		Short: "Show a profile (the current one by default)",
		Example: cmdutil.Example(`
			$ dmctl config get-profile
			$ dmctl config get-profile prod -o json
		`),
	}, "get-profile", true, &Options{}, func(opts *Options) error {
		if runF != nil {
			return runF(opts)
		}
		return getProfileRun(opts)
	})
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
	return output.PrintView(f.IOStreams.Out, opts.Format, shared.ViewProfile(c, name))
}

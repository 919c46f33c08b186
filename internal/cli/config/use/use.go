// Package use is `dmctl config use`.
package use

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/config/shared"
)

// Options are the command's inputs.
type Options = shared.ProfileCmdOptions

// NewCmdUse returns `dmctl config use`.
func NewCmdUse(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	return shared.NewProfileCmd(f, &cobra.Command{
		Use:     "use NAME",
		Short:   "Make a profile the current one",
		Example: cmdutil.Example(`$ dmctl config use prod`),
	}, "use", false, &Options{}, func(opts *Options) error {
		if runF != nil {
			return runF(opts)
		}
		return useRun(opts)
	})
}

func useRun(opts *Options) error {
	f, args := opts.F, opts.Args
	c, path, err := f.LoadConfig()
	if err != nil {
		return err
	}
	if c.Profiles[args[0]] == nil {
		return cmdutil.FlagErrorf("no profile %q in %s (dmctl config list shows them)", args[0], path)
	}
	c.Current = args[0]
	if err := cmdutil.SaveConfig(path, c); err != nil {
		return err
	}
	_, err = fmt.Fprintf(f.IOStreams.ErrOut, "Using profile %q.\n", args[0])
	return err
}

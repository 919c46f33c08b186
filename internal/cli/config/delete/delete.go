// Package delete is `dmctl config delete`.
package delete

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/config/shared"
)

// Options are the command's inputs.
type Options = shared.ProfileCmdOptions

// NewCmdDelete returns `dmctl config delete`.
func NewCmdDelete(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	return shared.NewProfileCmd(f, &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a profile",
		Example: cmdutil.Example(`$ dmctl config delete lab`),
	}, "delete", false, &Options{}, func(opts *Options) error {
		if runF != nil {
			return runF(opts)
		}
		return deleteRun(opts)
	})
}

func deleteRun(opts *Options) error {
	f, args := opts.F, opts.Args
	c, path, err := f.LoadConfig()
	if err != nil {
		return err
	}
	if c.Profiles[args[0]] == nil {
		return cmdutil.FlagErrorf("no profile %q in %s", args[0], path)
	}
	delete(c.Profiles, args[0])
	if c.Current == args[0] {
		c.Current = ""
	}
	if err := cmdutil.SaveConfig(path, c); err != nil {
		return err
	}
	_, err = fmt.Fprintf(f.IOStreams.ErrOut, "Deleted profile %q.\n", args[0])
	return err
}

// Package setprofile is `dmctl config set-profile`.
package setprofile

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/config/shared"
)

// Options are the inputs of `dmctl config set-profile`: which global flags
// were given on the command line (their values are in the factory's
// global options).
type Options struct {
	F    *cmdutil.Factory
	Name string
	// Hub, Auth, CAFile and Output say which of those global flags to save.
	Hub, Auth, CAFile, Output bool
	// StoreConnectionString also saves the connection string in use.
	StoreConnectionString bool
}

// NewCmdSetProfile returns `dmctl config set-profile`.
func NewCmdSetProfile(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "set-profile NAME [--hub HOST] [--auth METHOD] [--ca-file PATH] [-o FORMAT] [--store-connection-string]",
		Short: "Create or update a profile from the flags given",
		Long: cmdutil.Heredoc(`
			Save the global flags given on this command line (--hub, --auth, --ca-file,
			-o) under NAME, creating the profile or updating only those fields. The
			first profile saved becomes the current one.

			With --store-connection-string, the service connection string in use
			(--connection-string, --connection-string-file or IOTHUB_CONNECTION_STRING)
			is stored too. It is a secret: prefer Entra ID (--auth) or keep the
			connection string in a file or a secret store.
		`),
		Example: cmdutil.Example(`
			$ dmctl config set-profile prod --hub myhub.azure-devices.net --auth azure-cli -o json
			$ IOTHUB_CONNECTION_STRING=... dmctl config set-profile lab --store-connection-string
		`),
		Args:              shared.ProfileNameArg("set-profile", false),
		ValidArgsFunction: cmdutil.CompleteProfileNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			flags := cmd.Flags()
			opts.Hub, opts.Auth, opts.CAFile, opts.Output = flags.Changed("hub"), flags.Changed("auth"), flags.Changed("ca-file"), flags.Changed("output")
			if runF != nil {
				return runF(opts)
			}
			return setProfileRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.StoreConnectionString, "store-connection-string", false, "Also store the connection string in use (a secret, kept in the 0600 config file, never printed)")
	return cmd
}

func setProfileRun(opts *Options) error {
	f, name := opts.F, opts.Name
	c, path, err := f.LoadConfig()
	if err != nil {
		return err
	}
	p := c.Profiles[name]
	if p == nil {
		p = &cmdutil.Profile{}
	}
	g := f.Global
	changed := 0
	if opts.Hub {
		h, err := auth.NormalizeHub(g.Hub)
		if err != nil {
			return err
		}
		p.Hub, changed = h, changed+1
	}
	if opts.Auth {
		p.Auth, changed = g.Auth, changed+1
	}
	if opts.CAFile {
		if _, err := cmdutil.NewHTTPClient(g.CAFile, f.ReadFile); err != nil {
			return err
		}
		p.CAFile, changed = g.CAFile, changed+1
	}
	if opts.Output {
		p.Output, changed = g.Output, changed+1
	}
	if opts.StoreConnectionString {
		cs, source, err := auth.ConnectionStringInUse(f.AuthOptions(nil))
		if err != nil {
			return err
		}
		if cs == nil {
			return cmdutil.FlagErrorf("--store-connection-string: no connection string given (set %s, or give --connection-string-file PATH)", auth.EnvConnectionString)
		}
		if cs.SharedAccessKey == "" {
			return cmdutil.FlagErrorf("--store-connection-string: the connection string from %s carries no SharedAccessKey; dmctl needs the key", source)
		}
		p.ConnectionString, changed = cs.Secret(), changed+1
	}
	if changed == 0 && c.Profiles[name] != nil {
		return cmdutil.FlagErrorf("set-profile %s: nothing to change: give --hub, --auth, --ca-file, -o or --store-connection-string", name)
	}
	c.Profiles[name] = p
	if c.Current == "" {
		c.Current = name
	}
	if err := cmdutil.SaveConfig(path, c); err != nil {
		return err
	}
	_, err = fmt.Fprintf(f.IOStreams.ErrOut, "Saved profile %q in %s.\n", name, path)
	return err
}

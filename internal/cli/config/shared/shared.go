// Package shared holds what the config subcommands over profile names
// share: the NAME argument check, the command skeleton and the public view
// of a saved profile.
package shared

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/output"
)

// ProfileNameArg checks the profile NAME argument of the config commands.
func ProfileNameArg(verb string, optional bool) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 1 || (len(args) == 0 && !optional) {
			return cmdutil.FlagErrorf("config %s needs one profile NAME argument (got %d)", verb, len(args))
		}
		if len(args) == 1 {
			return cmdutil.CheckProfileName(args[0])
		}
		return nil
	}
}

// ViewProfile is the public view of a saved profile, its secrets and any
// value that is not what its field holds redacted.
func ViewProfile(c *cmdutil.Config, name string) output.ProfileView {
	p := c.Profiles[name]
	v := output.ProfileView{Name: name, Current: c.Current == name, Hub: p.Hub, Auth: p.Auth, CAFile: p.CAFile, Output: p.Output}
	// A hand-edited config file may hold anything, a secret in the wrong
	// field too: show only values that are what the field holds.
	if p.Hub != "" {
		if _, err := auth.NormalizeHub(p.Hub); err != nil {
			v.Hub = "(stored, not a host name)"
		}
	}
	if p.Auth != "" {
		if _, err := auth.ParseMethod(p.Auth); err != nil {
			v.Auth = "(stored, not an auth method)"
		}
	}
	if p.CAFile != "" && connstr.HasSecret(p.CAFile) {
		v.CAFile = "(stored, REDACTED)"
	}
	if p.Output != "" && connstr.HasSecret(p.Output) {
		v.Output = "(stored, REDACTED)"
	}
	if p.ConnectionString != "" {
		cs, err := connstr.ParseService(p.ConnectionString)
		ce, isConnstr := err.(*connstr.Error)
		switch {
		case err == nil:
			v.ConnectionString = cs.Redacted()
		case isConnstr:
			// connstr's reasons name the part and the key, never the text.
			v.ConnectionString = "(stored, unreadable: " + ce.Reason + ")"
		default:
			v.ConnectionString = "(stored, unreadable)"
		}
	}
	return v
}

// ProfileCmdOptions are the inputs of the config commands that take
// profile NAME arguments (get-profile, list, use, delete).
type ProfileCmdOptions struct {
	F      *cmdutil.Factory
	Args   []string
	Format output.Format
}

// NewProfileCmd completes cmd as a config command over profile names:
// NAME arguments checked (optional or not; none for verb ""), names
// completed, the text formats; RunE fills opts and calls run.
func NewProfileCmd(f *cmdutil.Factory, cmd *cobra.Command, verb string, optional bool, opts *ProfileCmdOptions, run func(*ProfileCmdOptions) error) *cobra.Command {
	if verb != "" {
		cmd.Args = ProfileNameArg(verb, optional)
		cmd.ValidArgsFunction = cmdutil.CompleteProfileNames(f)
	} else {
		cmd.Args = cmdutil.NoArgs
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		format, err := cmdutil.TextFormats.Format(cmd, f)
		if err != nil {
			return err
		}
		opts.F, opts.Args, opts.Format = f, args, format
		return run(opts)
	}
	return cmd
}

package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/output"
)

// isConfigCommand reports whether cmd is `dmctl config` or one of its
// subcommands: those manage profiles and never apply one.
func isConfigCommand(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Name() == "config" && c.Parent() != nil && c.Parent().Parent() == nil {
			return true
		}
	}
	return false
}

// NewCmdConfig returns `dmctl config` and its subcommands.
func NewCmdConfig(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config <command>",
		Short: "Save and select named hub profiles",
		Long: cmdutil.Heredoc(`
			A profile saves the hub setup you would otherwise repeat on every command:
			the hub host (--hub), the auth method (--auth), a CA file (--ca-file) and
			a default output format (-o). Profiles live in config.yaml in your config
			directory ($DMCTL_CONFIG_DIR, else ~/.config/dmctl on Linux,
			~/Library/Application Support/dmctl on macOS, %AppData%\dmctl on
			Windows), written with mode 0600.

			The profile in use is the one named by --profile, else $DMCTL_PROFILE,
			else the current profile set with 'dmctl config use'. A flag or
			environment variable still wins over the profile's value. When a
			connection string comes from --connection-string, --connection-string-file
			or IOTHUB_CONNECTION_STRING, the profile's hub and auth are not used.

			A connection string is stored only with --store-connection-string, and is
			never printed afterwards (get-profile shows it redacted).
		`),
		Example: cmdutil.Example(`
			$ dmctl config set-profile prod --hub myhub.azure-devices.net --auth azure-cli
			$ dmctl config set-profile lab --connection-string-file ./lab.cs --store-connection-string --ca-file ./hubsim-ca.pem
			$ dmctl config use prod
			$ dmctl invoke reboot --device thermostat-17 --profile lab
		`),
	}
	cmdutil.GroupCommand(cmd)
	cmd.AddCommand(newCmdConfigSetProfile(f))
	cmd.AddCommand(newCmdConfigGetProfile(f))
	cmd.AddCommand(newCmdConfigList(f))
	cmd.AddCommand(newCmdConfigUse(f))
	cmd.AddCommand(newCmdConfigDelete(f))
	return cmd
}

func profileNameArg(verb string, optional bool) cobra.PositionalArgs {
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

func completeProfileNames(f *cmdutil.Factory) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		c, _, err := f.LoadConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return c.Names(), cobra.ShellCompDirectiveNoFileComp
	}
}

func newCmdConfigSetProfile(f *cmdutil.Factory) *cobra.Command {
	var storeConn bool
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
		Args:              profileNameArg("set-profile", false),
		ValidArgsFunction: completeProfileNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, path, err := f.LoadConfig()
			if err != nil {
				return err
			}
			p := c.Profiles[name]
			if p == nil {
				p = &cmdutil.Profile{}
			}
			g := f.Global
			flags := cmd.Flags()
			changed := 0
			if flags.Changed("hub") {
				h, err := auth.NormalizeHub(g.Hub)
				if err != nil {
					return err
				}
				p.Hub, changed = h, changed+1
			}
			if flags.Changed("auth") {
				p.Auth, changed = g.Auth, changed+1
			}
			if flags.Changed("ca-file") {
				if _, err := cmdutil.NewHTTPClient(g.CAFile, f.ReadFile); err != nil {
					return err
				}
				p.CAFile, changed = g.CAFile, changed+1
			}
			if flags.Changed("output") {
				p.Output, changed = g.Output, changed+1
			}
			if storeConn {
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
		},
	}
	cmd.Flags().BoolVar(&storeConn, "store-connection-string", false, "Also store the connection string in use (a secret, kept in the 0600 config file, never printed)")
	return cmd
}

// profileView is the JSON shape of a profile (the connection string
// redacted).
type profileView struct {
	Name             string `json:"name"`
	Current          bool   `json:"current"`
	Hub              string `json:"hub,omitempty"`
	Auth             string `json:"auth,omitempty"`
	CAFile           string `json:"caFile,omitempty"`
	Output           string `json:"output,omitempty"`
	ConnectionString string `json:"connectionString,omitempty"`
}

func viewProfile(c *cmdutil.Config, name string) profileView {
	p := c.Profiles[name]
	v := profileView{Name: name, Current: c.Current == name, Hub: p.Hub, Auth: p.Auth, CAFile: p.CAFile, Output: p.Output}
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
	if p.CAFile != "" && connstr.Redact(p.CAFile) != p.CAFile {
		v.CAFile = "(stored, REDACTED)"
	}
	if p.Output != "" && connstr.Redact(p.Output) != p.Output {
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

// configFormat is the output format for config commands: text unless
// -o json or jsonl was given on the command line.
func configFormat(cmd *cobra.Command, f *cmdutil.Factory) output.Format {
	if cmd.Flags().Changed("output") {
		return output.Format(f.Global.Output)
	}
	return output.FormatTable
}

func newCmdConfigGetProfile(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "get-profile [NAME]",
		Short: "Show a profile (the current one by default)",
		Example: cmdutil.Example(`
			$ dmctl config get-profile
			$ dmctl config get-profile prod -o json
		`),
		Args:              profileNameArg("get-profile", true),
		ValidArgsFunction: completeProfileNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			v := viewProfile(c, name)
			switch format := configFormat(cmd, f); format {
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
		},
	}
}

func newCmdConfigList(f *cmdutil.Factory) *cobra.Command {
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
			c, _, err := f.LoadConfig()
			if err != nil {
				return err
			}
			views := []profileView{}
			for _, n := range c.Names() {
				views = append(views, viewProfile(c, n))
			}
			switch format := configFormat(cmd, f); format {
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
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newCmdConfigUse(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:               "use NAME",
		Short:             "Make a profile the current one",
		Example:           cmdutil.Example(`$ dmctl config use prod`),
		Args:              profileNameArg("use", false),
		ValidArgsFunction: completeProfileNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
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
		},
	}
}

func newCmdConfigDelete(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Short:             "Delete a profile",
		Example:           cmdutil.Example(`$ dmctl config delete lab`),
		Args:              profileNameArg("delete", false),
		ValidArgsFunction: completeProfileNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
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
		},
	}
}

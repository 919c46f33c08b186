// Package config is `dmctl config`: named hub profiles.
package config

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/config/delete"
	"github.com/dmctl/dmctl/internal/cli/config/getprofile"
	"github.com/dmctl/dmctl/internal/cli/config/list"
	"github.com/dmctl/dmctl/internal/cli/config/setprofile"
	"github.com/dmctl/dmctl/internal/cli/config/use"
)

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
	cmd.AddCommand(setprofile.NewCmdSetProfile(f, nil))
	cmd.AddCommand(getprofile.NewCmdGetProfile(f, nil))
	cmd.AddCommand(list.NewCmdList(f, nil))
	cmd.AddCommand(use.NewCmdUse(f, nil))
	cmd.AddCommand(delete.NewCmdDelete(f, nil))
	return cmd
}

package cli

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/config"
	"github.com/dmctl/dmctl/internal/cli/doctor"
	"github.com/dmctl/dmctl/internal/cli/invoke"
	"github.com/dmctl/dmctl/internal/cli/jobs"
	"github.com/dmctl/dmctl/internal/cli/journal"
	"github.com/dmctl/dmctl/internal/cli/twin"
	"github.com/dmctl/dmctl/internal/cli/version"
)

// NewCmdRoot returns the dmctl command tree: cmdutil's root with every
// command, the help topics and --version.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.NewRootCmd(f)
	cmd.Long = cmdutil.Heredoc(`
		dmctl invokes Azure IoT Hub direct methods on one device, one module or a
		fleet, and tells you what each device answered, with exit codes a script
		can trust.

		Authenticate with a service connection string (IOTHUB_CONNECTION_STRING,
		--connection-string-file or --connection-string) or with Microsoft Entra ID
		(--hub HOST and --auth default|azure-cli|environment|managed-identity|
		workload-identity; the identity needs the "IoT Hub Data Contributor" role).
	`)
	cmd.Example = cmdutil.Example(`
		$ export IOTHUB_CONNECTION_STRING='HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=...'
		$ dmctl invoke reboot --device thermostat-17
		$ dmctl invoke reboot --device thermostat-17 --device thermostat-18 -o json
		$ dmctl invoke reboot --hub myhub.azure-devices.net --auth azure-cli --device thermostat-17
	`)
	var showVersion bool
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if showVersion {
			format, err := cmdutil.TextFormats.Format(cmd, f)
			if err != nil {
				return err
			}
			return version.Print(&version.Options{IO: f.IOStreams, Output: format})
		}
		return cmd.Help()
	}
	cmd.Flags().BoolVar(&showVersion, "version", false, "Show dmctl's version (as dmctl version does)")

	cmd.AddCommand(invoke.NewCmdInvoke(f, nil))
	cmd.AddCommand(jobs.NewCmdJobs(f))
	cmd.AddCommand(twin.NewCmdTwin(f))
	cmd.AddCommand(journal.NewCmdJournal(f))
	cmd.AddCommand(version.NewCmdVersion(f, nil))
	cmd.AddCommand(config.NewCmdConfig(f))
	cmd.AddCommand(doctor.NewCmdDoctor(f, nil))
	for _, t := range helpTopics {
		cmd.AddCommand(newHelpTopic(t.name, t.short, t.long))
	}
	cmdutil.AddDynamicCompletions(cmd, f)
	cmdutil.GuardFlags(cmd)
	return cmd
}

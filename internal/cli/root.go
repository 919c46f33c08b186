package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/config"
	"github.com/dmctl/dmctl/internal/cli/doctor"
	"github.com/dmctl/dmctl/internal/cli/journal"
	"github.com/dmctl/dmctl/internal/cli/twin"
	"github.com/dmctl/dmctl/internal/cli/version"
	"github.com/dmctl/dmctl/internal/output"
)

// NewCmdRoot returns the dmctl command tree.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	g := f.Global
	var showVersion bool
	cmd := &cobra.Command{
		Use:   "dmctl <command> [flags]",
		Short: "Invoke Azure IoT Hub direct methods on devices and fleets",
		Long: cmdutil.Heredoc(`
			dmctl invokes Azure IoT Hub direct methods on one device, one module or a
			fleet, and tells you what each device answered, with exit codes a script
			can trust.

			Authenticate with a service connection string (IOTHUB_CONNECTION_STRING,
			--connection-string-file or --connection-string) or with Microsoft Entra ID
			(--hub HOST and --auth default|azure-cli|environment|managed-identity|
			workload-identity; the identity needs the "IoT Hub Data Contributor" role).
		`),
		Example: cmdutil.Example(`
			$ export IOTHUB_CONNECTION_STRING='HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=...'
			$ dmctl invoke reboot --device thermostat-17
			$ dmctl invoke reboot --device thermostat-17 --device thermostat-18 -o json
			$ dmctl invoke reboot --hub myhub.azure-devices.net --auth azure-cli --device thermostat-17
		`),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cmdutil.FlagErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return version.Print(&version.Options{IO: f.IOStreams, Output: output.Format(g.Output)})
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			flags := cmd.Flags()
			if err := f.CheckEnvDefaults(flags); err != nil {
				return err
			}
			g.OutputSource = cmdutil.DescribeSource("-o/--output", cmdutil.EnvOutput, flags.Changed("output"))
			g.AuthSource = cmdutil.DescribeSource("--auth", cmdutil.EnvAuth, flags.Changed("auth"))
			// config manages profiles and applies none. version still runs
			// with a broken config file (it talks to no hub).
			if !isConfigCommand(cmd) {
				versionDespiteStore := cmd.Name() == "version" && !f.ProfileAsked()
				if err := f.ApplyProfile(flags); err != nil && (!versionDespiteStore || !errors.Is(err, cmdutil.ErrConfigFile)) {
					return err
				}
			}
			if err := f.CheckGlobal(); err != nil {
				return err
			}
			if g.Debug && f.Debug == nil {
				f.Debug = cmdutil.NewRedactingWriter(f.IOStreams.ErrOut)
				auth.LogTo(f.Debug)
			}
			return nil
		},
	}
	cmd.SetOut(f.IOStreams.Out)
	cmd.SetErr(f.IOStreams.ErrOut)
	cmd.SetIn(f.IOStreams.In)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return cmdutil.FlagParseError(err)
	})

	env := func(k string) string {
		if f.LookupEnv == nil {
			return ""
		}
		v, _ := f.LookupEnv(k)
		return strings.TrimSpace(v)
	}
	pf := cmd.PersistentFlags()
	cmdutil.StringEnumFlag(cmd, pf, &g.Auth, "auth", "", "", auth.Methods(),
		"How to authenticate (default: sas with a connection string, else default with --hub)")
	if v := env(cmdutil.EnvAuth); v != "" {
		g.Auth = v // validated in cmdutil.CheckGlobal, naming DMCTL_AUTH
	}
	pf.StringVar(&g.Hub, "hub", env(cmdutil.EnvHub), "IoT Hub host name, e.g. myhub.azure-devices.net (for Entra ID auth)")
	pf.StringVar(&g.ConnectionString, "connection-string", "", "Service connection string (prefer IOTHUB_CONNECTION_STRING or --connection-string-file: argv is visible to other users)")
	cmdutil.MarkSecret(pf, "connection-string")
	pf.StringVar(&g.ConnectionStringFile, "connection-string-file", "", "Read the service connection string from `PATH`")
	pf.StringVar(&g.CAFile, "ca-file", "", "Also trust the CA certificates in this PEM `PATH`")
	pf.StringVar(&g.APIVersion, "api-version", "", "IoT Hub REST api-version (default 2021-04-12)")
	pf.StringVar(&g.Profile, "profile", "", "Use the saved profile `NAME` (dmctl config list; default: $DMCTL_PROFILE, else the current profile)")
	pf.BoolVar(&g.Debug, "debug", false, "Log HTTP requests and responses to stderr (secrets redacted)")
	def := string(output.FormatTable)
	if v := env(cmdutil.EnvOutput); v != "" {
		def = v
	}
	cmdutil.StringEnumFlag(cmd, pf, &g.Output, "output", "o", string(output.FormatTable), output.Formats(), "Output format")
	g.Output = def // validated in cmdutil.CheckGlobal, naming DMCTL_OUTPUT

	_ = cmd.RegisterFlagCompletionFunc("hub", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("profile", cmdutil.CompleteProfileNames(f))

	cmd.AddCommand(NewCmdInvoke(f, nil))
	cmd.AddCommand(NewCmdJobs(f))
	cmd.AddCommand(twin.NewCmdTwin(f))
	cmd.AddCommand(journal.NewCmdJournal(f))
	cmd.AddCommand(version.NewCmdVersion(f, nil))
	cmd.AddCommand(config.NewCmdConfig(f))
	cmd.AddCommand(doctor.NewCmdDoctor(f, nil))
	for _, t := range helpTopics {
		cmd.AddCommand(newHelpTopic(t.name, t.short, t.long))
	}
	cmd.Flags().BoolVar(&showVersion, "version", false, "Show dmctl's version (as dmctl version does)")
	cmdutil.AddDynamicCompletions(cmd, f)
	cmdutil.GuardFlags(cmd)
	return cmd
}

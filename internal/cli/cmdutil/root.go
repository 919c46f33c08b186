package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/output"
)

// NewRootCmd returns dmctl's root command without its subcommands: the
// global flags (hub, credential, transport, output; their environment
// defaults and profile applied once, before any command runs) and the
// usage-error handling every command shares. Execute runs a tree built on
// it; tests build one with only the command they test.
func NewRootCmd(f *Factory) *cobra.Command {
	g := f.Global
	cmd := &cobra.Command{
		Use:   "dmctl <command> [flags]",
		Short: "Invoke Azure IoT Hub direct methods on devices and fleets",
		Long: Heredoc(`
			dmctl invokes Azure IoT Hub direct methods on one device, one module or a
			fleet, and tells you what each device answered, with exit codes a script
			can trust.

			Authenticate with a service connection string (IOTHUB_CONNECTION_STRING,
			--connection-string-file or --connection-string) or with Microsoft Entra ID
			(--hub HOST and --auth default|azure-cli|environment|managed-identity|
			workload-identity; the identity needs the "IoT Hub Data Contributor" role).
		`),
		Example: Example(`
			$ export IOTHUB_CONNECTION_STRING='HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=...'
			$ dmctl invoke reboot --device thermostat-17
			$ dmctl invoke reboot --device thermostat-17 --device thermostat-18 -o json
			$ dmctl invoke reboot --hub myhub.azure-devices.net --auth azure-cli --device thermostat-17
		`),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return FlagErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			flags := cmd.Flags()
			if err := f.CheckEnvDefaults(flags); err != nil {
				return err
			}
			g.OutputSource = DescribeSource("-o/--output", EnvOutput, flags.Changed("output"))
			g.AuthSource = DescribeSource("--auth", EnvAuth, flags.Changed("auth"))
			// config manages profiles and applies none. version still runs
			// with a broken config file (it talks to no hub).
			if !isConfigCommand(cmd) {
				versionDespiteStore := cmd.Name() == "version" && !f.ProfileAsked()
				if err := f.ApplyProfile(flags); err != nil && (!versionDespiteStore || !errors.Is(err, ErrConfigFile)) {
					return err
				}
			}
			if err := f.CheckGlobal(); err != nil {
				return err
			}
			if g.Debug && f.Debug == nil {
				f.Debug = NewRedactingWriter(f.IOStreams.ErrOut)
				auth.LogTo(f.Debug)
			}
			return nil
		},
	}
	cmd.SetOut(f.IOStreams.Out)
	cmd.SetErr(f.IOStreams.ErrOut)
	cmd.SetIn(f.IOStreams.In)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return FlagParseError(err)
	})

	addGlobalFlags(cmd, f)

	return cmd
}

// addGlobalFlags defines the root's persistent flags, their environment
// defaults (DMCTL_AUTH, DMCTL_HUB, DMCTL_OUTPUT; checked by CheckGlobal,
// which names the variable) and completions.
func addGlobalFlags(cmd *cobra.Command, f *Factory) {
	g := f.Global
	env := func(k string) string {
		if f.LookupEnv == nil {
			return ""
		}
		v, _ := f.LookupEnv(k)
		return strings.TrimSpace(v)
	}
	pf := cmd.PersistentFlags()
	StringEnumFlag(cmd, pf, &g.Auth, "auth", "", "", auth.Methods(),
		"How to authenticate (default: sas with a connection string, else default with --hub)")
	if v := env(EnvAuth); v != "" {
		g.Auth = v // validated in CheckGlobal, naming DMCTL_AUTH
	}
	pf.StringVar(&g.Hub, "hub", env(EnvHub), "IoT Hub host name, e.g. myhub.azure-devices.net (for Entra ID auth)")
	pf.StringVar(&g.ConnectionString, "connection-string", "", "Service connection string (prefer IOTHUB_CONNECTION_STRING or --connection-string-file: argv is visible to other users)")
	MarkSecret(pf, "connection-string")
	pf.StringVar(&g.ConnectionStringFile, "connection-string-file", "", "Read the service connection string from `PATH`")
	pf.StringVar(&g.CAFile, "ca-file", "", "Also trust the CA certificates in this PEM `PATH`")
	pf.StringVar(&g.APIVersion, "api-version", "", "IoT Hub REST api-version (default 2021-04-12)")
	pf.StringVar(&g.Profile, "profile", "", "Use the saved profile `NAME` (dmctl config list; default: $DMCTL_PROFILE, else the current profile)")
	pf.BoolVar(&g.Debug, "debug", false, "Log HTTP requests and responses to stderr (secrets redacted)")
	def := string(output.FormatTable)
	if v := env(EnvOutput); v != "" {
		def = v
	}
	StringEnumFlag(cmd, pf, &g.Output, "output", "o", string(output.FormatTable), output.Formats(), "Output format")
	g.Output = def // validated in CheckGlobal, naming DMCTL_OUTPUT

	_ = cmd.RegisterFlagCompletionFunc("hub", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("profile", CompleteProfileNames(f))
}

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

// Execute runs one command line on the tree root (built on NewRootCmd)
// with the factory's streams and returns the exit code: the flag layer is
// applied to the whole tree first (GuardFlags), and errors are printed once
// to stderr as "Error: ...", without a stack trace.
func Execute(ctx context.Context, f *Factory, root *cobra.Command, args []string) int {
	GuardFlags(root)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if f.Debug != nil {
		_ = f.Debug.Flush()
		auth.LogTo(nil)
	}
	if err != nil && IsCobraUsageError(err) {
		err = FlagErrorWrap(err)
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, ErrInterrupted) {
		err = fmt.Errorf("%w: %w", ErrInterrupted, err)
	}
	if IsBrokenPipe(err) && !errors.Is(err, ErrInterrupted) {
		// A reader that stopped reading (dmctl jobs list | head -1) is not
		// a failure of a command that only prints; a fleet run handles it
		// itself, as an interrupt.
		return ExitOK
	}
	printError(f.IOStreams.ErrOut, cmd, err)
	return ExitCode(err)
}

// printError writes err for a person: one line, then a hint where one helps.
func printError(w io.Writer, cmd *cobra.Command, err error) {
	if err == nil {
		return
	}
	var (
		targets   *TargetsError
		flagErr   *FlagError
		credErr   *auth.CredentialError
		threshold *fleet.ThresholdError
		gateErr   *fleet.GateError
	)
	switch {
	case errors.As(err, &targets):
		return // the per-target lines and the summary are already on stderr
	case errors.Is(err, ErrPromptInterrupted):
		_, _ = fmt.Fprintln(w, "Interrupted: nothing was sent.")
		return
	case errors.Is(err, ErrStdoutClosed):
		_, _ = fmt.Fprintln(w, "Stopped: stdout was closed (its reader exited): no new calls were started; the summary above counts every target.")
		return
	case errors.Is(err, ErrInterrupted):
		_, _ = fmt.Fprintln(w, "Interrupted.")
		return
	case errors.As(err, &threshold):
		_, _ = fmt.Fprintf(w, "Stopped: %s\n", threshold.Error())
		return
	case errors.As(err, &gateErr):
		_, _ = fmt.Fprintf(w, "Stopped: %s\n", gateErr.Error())
		return
	case errors.Is(err, ErrCancelled):
		_, _ = fmt.Fprintln(w, "Cancelled: nothing was sent.")
		return
	}
	_, _ = fmt.Fprintf(w, "Error: %s\n", OneLine(err.Error()))
	switch {
	case errors.As(err, &flagErr), ExitCode(err) == ExitUsage:
		if cmd != nil {
			_, _ = fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	case errors.As(err, &credErr):
		_, _ = fmt.Fprintf(w, "hint: %s\n", credErr.Hint())
	}
}

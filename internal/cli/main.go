// Package cli is dmctl's command line: cobra commands built gh-style (an
// XOptions struct, NewCmdX(f, runF) and xRun(opts) per command), the
// factory that holds streams and a lazily built hub client, and the one
// mapping from errors to exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/version"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

// Main runs dmctl with the process's arguments, streams and environment and
// returns the exit code.
func Main() int {
	tuneGC(os.LookupEnv)
	ctx, hard, stop := cmdutil.WatchSignals()
	defer stop()
	if version.Version != "0.0.0-dev" && iothub.Version == "0.0.0-dev" {
		iothub.Version = version.Version // one -X flag sets both the CLI's and the User-Agent's version
	}
	ios := output.System(os.LookupEnv)
	f := cmdutil.NewFactory(ios, os.LookupEnv)
	f.HardStop = hard
	return Run(ctx, f, os.Args[1:])
}

// gcPercent is dmctl's GOGC when the environment sets none. A fleet run
// allocates a little per call and keeps little alive (results stream out),
// so collecting less often saves about a fifth of the CPU per call
// (docs/fleets.md) for a few more megabytes of heap; gcMemoryLimit keeps the
// heap well under the 64 MB a run of any size is meant to stay within.
const (
	gcPercent     = 400
	gcMemoryLimit = 40 << 20
)

func tuneGC(lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	if _, set := lookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(gcMemoryLimit)
	}
}

// Run executes one command line with the factory's streams and returns the
// exit code. Errors are printed once to stderr as "Error: ...", without a
// stack trace.
func Run(ctx context.Context, f *cmdutil.Factory, args []string) int {
	root := NewCmdRoot(f)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if f.Debug != nil {
		_ = f.Debug.Flush()
		auth.LogTo(nil)
	}
	if err != nil && cmdutil.IsCobraUsageError(err) {
		err = cmdutil.FlagErrorWrap(err)
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, cmdutil.ErrInterrupted) {
		err = fmt.Errorf("%w: %w", cmdutil.ErrInterrupted, err)
	}
	if cmdutil.IsBrokenPipe(err) && !errors.Is(err, cmdutil.ErrInterrupted) {
		// A reader that stopped reading (dmctl jobs list | head -1) is not
		// a failure of a command that only prints; a fleet run handles it
		// itself, as an interrupt.
		return cmdutil.ExitOK
	}
	printError(f.IOStreams.ErrOut, cmd, err)
	return cmdutil.ExitCode(err)
}

// printError writes err for a person: one line, then a hint where one helps.
func printError(w io.Writer, cmd *cobra.Command, err error) {
	if err == nil {
		return
	}
	var (
		targets   *cmdutil.TargetsError
		flagErr   *cmdutil.FlagError
		credErr   *auth.CredentialError
		threshold *fleet.ThresholdError
	)
	switch {
	case errors.As(err, &targets):
		return // the per-target lines and the summary are already on stderr
	case errors.Is(err, cmdutil.ErrPromptInterrupted):
		_, _ = fmt.Fprintln(w, "Interrupted: nothing was sent.")
		return
	case errors.Is(err, cmdutil.ErrStdoutClosed):
		_, _ = fmt.Fprintln(w, "Stopped: stdout was closed (its reader exited): no new calls were started; the summary above counts every target.")
		return
	case errors.Is(err, cmdutil.ErrInterrupted):
		_, _ = fmt.Fprintln(w, "Interrupted.")
		return
	case errors.As(err, &threshold):
		_, _ = fmt.Fprintf(w, "Stopped: %s\n", threshold.Error())
		return
	case errors.Is(err, cmdutil.ErrCancelled):
		_, _ = fmt.Fprintln(w, "Cancelled: nothing was sent.")
		return
	}
	_, _ = fmt.Fprintf(w, "Error: %s\n", cmdutil.OneLine(err.Error()))
	switch {
	case errors.As(err, &flagErr), cmdutil.ExitCode(err) == cmdutil.ExitUsage:
		if cmd != nil {
			_, _ = fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	case errors.As(err, &credErr):
		_, _ = fmt.Fprintf(w, "hint: %s\n", credErr.Hint())
	}
}

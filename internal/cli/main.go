// Package cli is dmctl's command line: cobra commands built gh-style (an
// XOptions struct, NewCmdX(f, runF) and xRun(opts) per command), the
// factory that holds streams and a lazily built hub client, and the one
// mapping from errors to exit codes.
package cli

import (
	"context"
	"os"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/proc"
	"github.com/dmctl/dmctl/internal/cli/version"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

// Main runs dmctl with the process's arguments, streams and environment and
// returns the exit code.
func Main() int {
	proc.TuneGC(os.LookupEnv, fleet.InFlightMin)
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

// Run executes one command line with the factory's streams and returns the
// exit code (cmdutil.Execute on the whole tree).
func Run(ctx context.Context, f *cmdutil.Factory, args []string) int {
	return cmdutil.Execute(ctx, f, NewCmdRoot(f), args)
}

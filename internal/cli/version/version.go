// Package version is `dmctl version` and the build information the release
// build sets.
package version

import (
	"runtime"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/output"
)

// Build information, set by the release build:
//
//	-ldflags "-X github.com/dmctl/dmctl/internal/cli/version.Version=1.2.3 -X github.com/dmctl/dmctl/internal/cli/version.Commit=abc1234 -X github.com/dmctl/dmctl/internal/cli/version.Date=2026-01-02T03:04:05Z"
var (
	Version = "0.0.0-dev"
	Commit  = "none"
	Date    = "unknown"
)

// Options are the inputs of `dmctl version`.
type Options struct {
	IO     *output.IOStreams
	Output output.Format
}

// Info is the JSON shape of `dmctl version -o json`.
type Info = output.VersionView

// NewCmdVersion returns `dmctl version`.
func NewCmdVersion(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams}
	return &cobra.Command{
		Use:   "version",
		Short: "Show dmctl's version",
		Example: cmdutil.Example(`
			$ dmctl version
			$ dmctl version -o json
		`),
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := cmdutil.TextFormats.Format(cmd, f)
			if err != nil {
				return err
			}
			opts.Output = format
			if runF != nil {
				return runF(opts)
			}
			return Print(opts)
		},
	}
}

// Print writes the version in opts.Output (dmctl version, dmctl --version).
func Print(opts *Options) error {
	info := Info{Version: Version, Commit: Commit, Date: Date, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	return output.PrintView(opts.IO.Out, opts.Output, info)
}

package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/dmctl/dmctl/internal/hubsim/hubenv"
	"github.com/spf13/cobra"
)

// newWaitCmd is `hubsim wait --dir DIR`: it returns once the hubsim serving
// DIR is ready. That is race-free because a starting hubsim removes a stale
// DIR/hubsim.env before it listens and writes the new one (atomically) only
// once it serves (after the ready line), and because readiness is also
// checked by a TLS handshake with the address in the file, verified against
// the CA in it.
func newWaitCmd(_, stderr io.Writer) *cobra.Command {
	var dir string
	timeout := hubenv.DefaultWaitTimeout
	cmd := &cobra.Command{
		Use:   "wait --dir DIR [--timeout 30s]",
		Short: "Wait until the hubsim serving DIR is ready",
		Long: `wait returns once the hubsim started with --dir DIR is ready: DIR/hubsim.env
exists and hubsim's HTTPS address named in it completes a TLS handshake
verified with DIR's CA. It exits 0 then, 1 when that did not happen within
--timeout, 2 for bad flags.

A starting hubsim removes a DIR/hubsim.env left by an earlier run before it
listens and writes the new one (atomically) only once it serves and has
printed its ready line, so wait never takes an old file for the new hub, and
once it returns both hubsim.env and the ready line are complete. Start hubsim
in the background, then wait:

  mkdir -p ./hub
  hubsim --dir ./hub --devices 100 > ./hub/ready.json &
  hubsim wait --dir ./hub
  source ./hub/hubsim.env`,
		Example: `  $ hubsim wait --dir ./hub
  $ hubsim wait --dir "$RUNNER_TEMP/hub" --timeout 1m`,
		Args:          noArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("dir") {
				return usagef("--dir is required: the directory the hubsim to wait for was started with")
			}
			if timeout <= 0 {
				return usagef("--timeout %s: must be more than 0", timeout)
			}
			addr, err := hubenv.WaitReady(cmd.Context(), dir, timeout)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(stderr, "hubsim: ready on https://%s; environment in %s\n", addr, filepath.Join(dir, hubenv.File))
			return nil
		},
	}
	cmd.SetFlagErrorFunc(flagError)
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&dir, "dir", "", "the `DIR` the hubsim to wait for was started with (--dir)")
	fl.DurationVar(&timeout, "timeout", hubenv.DefaultWaitTimeout, "give up after this long (exit 1)")
	return cmd
}

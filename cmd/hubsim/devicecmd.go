package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/hubsim/agent"
)

// newDeviceCmd is `hubsim device`, the device agent (internal/hubsim/agent);
// its input errors exit 2 like hubsim's own.
func newDeviceCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := agent.NewCommand(stdout, stderr)
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		err := run(c, args)
		var ue *agent.UsageError
		if errors.As(err, &ue) {
			return &usageError{err}
		}
		return err
	}
	args := cmd.Args
	cmd.Args = func(c *cobra.Command, a []string) error {
		if err := args(c, a); err != nil {
			return &usageError{err}
		}
		return nil
	}
	return cmd
}

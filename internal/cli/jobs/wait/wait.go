// Package wait is `dmctl jobs wait`.
package wait

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/jobs/shared"
)

// NewCmdWait returns `dmctl jobs wait`.
func NewCmdWait(f *cmdutil.Factory, runF func(*shared.FollowOptions) error) *cobra.Command {
	return shared.NewWaitCmd(f, runF, false)
}

// Package results is `dmctl jobs results`.
package results

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/jobs/shared"
)

// NewCmdResults returns `dmctl jobs results`.
func NewCmdResults(f *cmdutil.Factory, runF func(*shared.FollowOptions) error) *cobra.Command {
	return shared.NewWaitCmd(f, runF, true)
}

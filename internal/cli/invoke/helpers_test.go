package invoke

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
	"github.com/dmctl/dmctl/internal/cli/journal"
)

// newTestEnv runs invoke (and journal, to read what a run journaled).
func newTestEnv(t *testing.T, scripts map[string][]cmdtest.Answer) *cmdtest.Env {
	t.Helper()
	return cmdtest.New(t, scripts, func(f *cmdutil.Factory) *cobra.Command {
		return cmdtest.Root(f, NewCmdInvoke(f, nil), journal.NewCmdJournal(f))
	})
}

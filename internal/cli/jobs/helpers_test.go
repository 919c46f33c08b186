package jobs

import (
	"testing"

	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
)

func newTestEnv(t *testing.T, scripts map[string][]cmdtest.Answer) *cmdtest.Env {
	t.Helper()
	return cmdtest.NewUnderRoot(t, scripts, NewCmdJobs)
}

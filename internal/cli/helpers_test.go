package cli

import (
	"testing"

	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
)

// newTestEnv runs command lines on the whole dmctl tree.
func newTestEnv(t *testing.T, scripts map[string][]cmdtest.Answer) *cmdtest.Env {
	t.Helper()
	return cmdtest.New(t, scripts, NewCmdRoot)
}

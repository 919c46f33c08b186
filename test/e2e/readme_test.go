package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/test/testbin"
)

// TestReadmeCommands keeps the README's two commands true: `make demo` runs
// the main job against hubsim and `make test` is what CI runs.
func TestReadmeCommands(t *testing.T) {
	root, err := testbin.ModuleRoot()
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	assert.Contains(t, string(readme), "make demo")
	assert.Contains(t, string(readme), "make test")

	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^make test$`, string(ci), ".ci/run must run the README's test command")

	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	for _, target := range []string{"demo", "test", "build", "bench"} {
		assert.Regexp(t, regexp.MustCompile(`(?m)^`+target+`:`), string(makefile), "Makefile target %s", target)
	}

	// Run the demo for real, with binaries built into a temporary BIN so the
	// test does not touch the working tree's bin/.
	if testing.Short() {
		return
	}
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "demo", "BIN="+bin)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make demo failed:\n%s", out)
	text := string(out)
	assert.Equal(t, 5, strings.Count(text, "succeeded   200"), "five devices rebooted:\n%s", text)
	assert.Contains(t, text, "dmctl exited 0")
	assert.NotContains(t, text, "SharedAccessKey=")
}

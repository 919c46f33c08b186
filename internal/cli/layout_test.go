package cli

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxPackageLines is the size no package under internal/cli may reach
// (design.md §2): a package that grows past it is split by concern.
const maxPackageLines = 2000

// TestNoCliPackageOf2000Lines counts the lines of each package's non-test
// files under internal/cli.
func TestNoCliPackageOf2000Lines(t *testing.T) {
	lines := map[string]int{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines[filepath.Dir(path)] += bytes.Count(b, []byte("\n"))
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, len(lines), 10, "the walk found the command packages")
	for dir, n := range lines {
		assert.Less(t, n, maxPackageLines, "internal/cli/%s has %d lines", dir, n)
	}
}

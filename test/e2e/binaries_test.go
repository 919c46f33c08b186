// Package e2e runs the built dmctl and hubsim binaries against local hubs
// on loopback and asserts what a user or a script would see: stdout,
// stderr and exit codes.
package e2e

import (
	"os"
	"testing"

	"github.com/dmctl/dmctl/test/testbin"
)

// TestMain removes the directory the binaries were built into once every
// test of the package has run.
func TestMain(m *testing.M) { os.Exit(testbin.Run(m)) }

// binary returns the path of ./cmd/<name> built once per test process (a
// sync.Once per name, `go build -o` into a temporary directory from the
// module root that `go env GOMOD` reports). A build failure fails t with the
// compiler's output.
func binary(t testing.TB, name string) string {
	t.Helper()
	return testbin.Build(t, name)
}

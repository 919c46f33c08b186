//go:build unix

package proc

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenFileLimitRaisesTheSoftLimit: the soft limit ends at the hard one
// and is what OpenFileLimit answers.
func TestOpenFileLimitRaisesTheSoftLimit(t *testing.T) {
	var l syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l))
	lowered := l
	lowered.Cur = min(l.Cur, 256)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered))
	defer func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l) }()

	got := OpenFileLimit()
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l))
	assert.Equal(t, l.Max, l.Cur, "raised to the hard limit")
	assert.EqualValues(t, min(l.Cur, 1<<30), got)
}

package proc

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMemoryLimitFollowsTheCallsInFlight(t *testing.T) {
	assert.EqualValues(t, 40<<20, MemoryLimitFor(64), "64 in flight: the 40 MiB of before")
	assert.EqualValues(t, 32<<20+1024*128<<10, MemoryLimitFor(1024))
	assert.EqualValues(t, 32<<20, MemoryLimitFor(-1))

	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer memoryLimitSet.Store(false)

	// GOMEMLIMIT set: the environment wins, the limit is not moved.
	memoryLimitSet.Store(false)
	TuneGC(func(k string) (string, bool) { return "1GiB", k == "GOMEMLIMIT" || k == "GOGC" }, 64)
	FollowInFlight(6000)
	assert.Equal(t, before, debug.SetMemoryLimit(-1))

	// Unset: the limit follows the calls in flight.
	TuneGC(func(string) (string, bool) { return "", false }, 64)
	assert.Equal(t, MemoryLimitFor(64), debug.SetMemoryLimit(-1))
	FollowInFlight(6000)
	assert.Equal(t, MemoryLimitFor(6000), debug.SetMemoryLimit(-1))
}

// Package proc holds what dmctl sets on its own process: the garbage
// collector's settings, which follow the calls in flight, and the limit on
// open files, which bounds them.
package proc

import (
	"runtime/debug"
	"sync/atomic"
)

// The garbage collector's settings for dmctl (docs/fleets.md, "cost per
// call"). A fleet run allocates a little per call and keeps alive what its
// calls in flight hold (a connection's buffers, a request, an answer), so
// GOGC 400 saves CPU, and the soft memory limit follows the calls in
// flight instead of being fixed: a fixed 40 MB made the collector run
// without pause at 1,024 in flight (6.3 s of CPU for 20,000 calls instead
// of 1.2 s). The limit is MemoryBase plus MemoryPerCall for each call that
// may be in flight. The environment's GOGC and GOMEMLIMIT win when set.
const (
	GCPercent = 400
	// MemoryBase is the soft limit's share that does not depend on the
	// calls in flight (the binary, the target spool's buffers, the result
	// printer).
	MemoryBase = 32 << 20
	// MemoryPerCall is the soft limit's share per call in flight: what a
	// keep-alive TLS connection, its goroutines and one call's request and
	// answer hold, measured at about 40 KB; three times that leaves the collector room (at 6,000 in flight a limit of twice the live heap made it run without pause).
	MemoryPerCall = 128 << 10
)

// memoryLimitSet is false when GOMEMLIMIT is in the environment.
var memoryLimitSet atomic.Bool

// TuneGC applies GCPercent and the memory limit for a first InFlightStart
// calls in flight, unless GOGC or GOMEMLIMIT are set.
func TuneGC(lookupEnv func(string) (string, bool), inFlight int) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(GCPercent)
	}
	if _, set := lookupEnv("GOMEMLIMIT"); !set {
		memoryLimitSet.Store(true)
		FollowInFlight(inFlight)
	}
}

// FollowInFlight moves the soft memory limit to what n calls in flight
// need (MemoryBase + n × MemoryPerCall); it does nothing when GOMEMLIMIT
// is set or TuneGC has not run (tests).
func FollowInFlight(n int) {
	if memoryLimitSet.Load() {
		debug.SetMemoryLimit(MemoryLimitFor(n))
	}
}

// MemoryLimitFor is the soft memory limit for n calls in flight.
func MemoryLimitFor(n int) int64 { return MemoryBase + int64(max(n, 0))*MemoryPerCall }

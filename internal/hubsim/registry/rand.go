package registry

import "hash/maphash"

// The registry's random streams (sim.Draw and the like): one per simulated
// behaviour, so that one behaviour's draws never shift another's.
const (
	streamLatency uint64 = iota + 1
	streamFailure
	streamFlap
	streamFault
	streamFailPhase
)

var shardSeed = maphash.MakeSeed()

func shardOf(id string) int {
	return int(maphash.String(shardSeed, id) & (numShards - 1))
}

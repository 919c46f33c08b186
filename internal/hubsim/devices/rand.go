package devices

import (
	"hash/maphash"
	"math"
)

// Simulation randomness is counter based: a draw is a pure function of the
// seed, the identity, a stream and the identity's call counter, so results
// do not depend on how calls to different devices interleave.

const (
	streamLatency uint64 = iota + 1
	streamFailure
	streamFlap
	streamFault
	streamFailPhase
)

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hashString is a seed-independent FNV-1a hash, stable across runs (unlike
// maphash), used to derive per-identity keys.
func hashString(h uint64, s string) uint64 {
	if h == 0 {
		h = 14695981039346656037
	}
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// identityHash derives an identity's random key from the seed and its ids.
func identityHash(seed int64, deviceID, moduleID string) uint64 {
	h := hashString(splitmix64(uint64(seed)), deviceID)
	h = hashString(h^0xff, moduleID)
	return splitmix64(h)
}

// draw returns the n-th 64-bit value of a stream for an identity.
func draw(key, stream, n uint64) uint64 {
	return splitmix64(key ^ splitmix64(stream*0x632be59bd9b4e019+n))
}

// uniform returns the n-th value in [0,1) of a stream.
func uniform(key, stream, n uint64) float64 {
	return float64(draw(key, stream, n)>>11) / (1 << 53)
}

// normal returns a standard normal value (Box-Muller over two draws).
func normal(key, stream, n uint64) float64 {
	u1 := uniform(key, stream, 2*n)
	u2 := uniform(key, stream, 2*n+1)
	if u1 < 1e-300 {
		u1 = 1e-300
	}
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// exponential returns an exponentially distributed value with mean 1.
func exponential(key, stream, n uint64) float64 {
	u := uniform(key, stream, n)
	return -math.Log(1 - u)
}

var shardSeed = maphash.MakeSeed()

func shardOf(id string) int {
	return int(maphash.String(shardSeed, id) & (numShards - 1))
}

package sim

import "math"

// Simulation randomness is counter based: a draw is a pure function of the
// seed, the identity, a stream and the identity's call counter, so results
// do not depend on how calls to different devices interleave. The registry
// keeps an identity's key (IdentityHash) and counters and names the
// streams; these functions are the arithmetic.

// SplitMix64 is the SplitMix64 finalizer: a fixed bijective mix of x.
func SplitMix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// HashString continues a seed-independent FNV-1a hash h (0 starts one) over
// s. It is stable across runs (unlike maphash), for deriving per-identity
// keys.
func HashString(h uint64, s string) uint64 {
	if h == 0 {
		h = 14695981039346656037
	}
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// IdentityHash derives an identity's random key from the seed and its ids
// (moduleID "" for a device).
func IdentityHash(seed int64, deviceID, moduleID string) uint64 {
	h := HashString(SplitMix64(uint64(seed)), deviceID)
	h = HashString(h^0xff, moduleID)
	return SplitMix64(h)
}

// Draw returns the n-th 64-bit value of a stream for a key.
func Draw(key, stream, n uint64) uint64 {
	return SplitMix64(key ^ SplitMix64(stream*0x632be59bd9b4e019+n))
}

// Uniform returns the n-th value in [0,1) of a stream.
func Uniform(key, stream, n uint64) float64 {
	return float64(Draw(key, stream, n)>>11) / (1 << 53)
}

// Normal returns the n-th standard normal value of a stream (Box-Muller
// over draws 2n and 2n+1).
func Normal(key, stream, n uint64) float64 {
	u1 := Uniform(key, stream, 2*n)
	u2 := Uniform(key, stream, 2*n+1)
	if u1 < 1e-300 {
		u1 = 1e-300
	}
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// Exponential returns the n-th exponentially distributed value with mean 1
// of a stream.
func Exponential(key, stream, n uint64) float64 {
	u := Uniform(key, stream, n)
	return -math.Log(1 - u)
}

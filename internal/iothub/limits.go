package iothub

import (
	"fmt"
	"strings"
)

// This file is the one table of IoT Hub's published per-tier limits that
// dmctl paces itself by (iothub-contract.md §6; Microsoft's "IoT Hub quotas
// and throttling"). hubsim keeps its own reading of the same page, so a
// mistake in one shows up against the other.

// MethodMeterBytes is IoT Hub's direct-method meter: a call costs its
// request payload rounded up to 4 KB, and at least 4 KB.
const MethodMeterBytes = 4096

// tierLimits are one tier's limits per unit.
type tierLimits struct {
	name string
	// methodBytesPerSecond is the direct-method throttle per unit.
	methodBytesPerSecond float64
	// queriesPerMinute is the query throttle per unit.
	queriesPerMinute float64
	// jobOps says the jobs device-operation throttle for a unit count.
	jobOps func(units int) float64
	// maxActiveJobs is how many jobs may be scheduled or running at once.
	maxActiveJobs int
	// oneUnit: the tier has exactly one unit (F1).
	oneUnit bool
}

var tiers = []tierLimits{
	{name: "F1", methodBytesPerSecond: 160 << 10, queriesPerMinute: 20, jobOps: func(int) float64 { return 10 }, maxActiveJobs: 1, oneUnit: true},
	{name: "S1", methodBytesPerSecond: 160 << 10, queriesPerMinute: 20, jobOps: func(int) float64 { return 10 }, maxActiveJobs: 1},
	{name: "S2", methodBytesPerSecond: 480 << 10, queriesPerMinute: 20, jobOps: func(u int) float64 { return max(10, float64(u)) }, maxActiveJobs: 5},
	{name: "S3", methodBytesPerSecond: 24 << 20, queriesPerMinute: 1000, jobOps: func(u int) float64 { return 50 * float64(u) }, maxActiveJobs: 10},
}

// DefaultTier is the tier assumed when none is given: one S1 unit.
const DefaultTier = "S1"

// TierNames lists the tiers with direct methods, in order.
func TierNames() []string {
	names := make([]string, len(tiers))
	for i, t := range tiers {
		names[i] = t.name
	}
	return names
}

// Limits are the published throttles of a hub of some tier and units.
type Limits struct {
	Tier  string
	Units int
	t     tierLimits
}

// TierLimits returns the limits of tier (case-insensitive) with units units.
func TierLimits(tier string, units int) (Limits, error) {
	if units < 1 {
		return Limits{}, fmt.Errorf("%d units: a hub has at least 1 unit", units)
	}
	name := strings.ToUpper(strings.TrimSpace(tier))
	for _, t := range tiers {
		if t.name != name {
			continue
		}
		if t.oneUnit && units != 1 {
			return Limits{}, fmt.Errorf("tier %s has exactly 1 unit (got %d)", t.name, units)
		}
		return Limits{Tier: t.name, Units: units, t: t}, nil
	}
	return Limits{}, fmt.Errorf("%q is not an IoT Hub tier with direct methods (use %s)", tier, strings.Join(TierNames(), ", "))
}

// MethodRate is the direct-method throttle in calls per second for calls
// whose request payload is payloadBytes long (metered in 4 KB): one S1 unit
// allows 40 calls/s of payloads up to 4 KB.
func (l Limits) MethodRate(payloadBytes int) float64 {
	cost := max(payloadBytes, 1)
	cost = (cost + MethodMeterBytes - 1) / MethodMeterBytes * MethodMeterBytes
	return l.t.methodBytesPerSecond * float64(l.Units) / float64(cost)
}

// QueriesPerMinute is the query throttle: 20 a minute per unit below S3,
// 1,000 on S3.
func (l Limits) QueriesPerMinute() float64 { return l.t.queriesPerMinute * float64(l.Units) }

// JobsRate is the jobs device-operation throttle in devices per second:
// S1 10, S2 the higher of 10 and 1 per unit, S3 50 per unit.
func (l Limits) JobsRate() float64 { return l.t.jobOps(l.Units) }

// MaxActiveJobs is how many jobs the hub runs (or holds scheduled) at once.
func (l Limits) MaxActiveJobs() int { return l.t.maxActiveJobs }

// TierRate is TierLimits(tier, units).MethodRate(payloadBytes).
func TierRate(tier string, units, payloadBytes int) (float64, error) {
	l, err := TierLimits(tier, units)
	if err != nil {
		return 0, err
	}
	return l.MethodRate(payloadBytes), nil
}

// DefaultLimits are one S1 unit's limits, for a hub whose tier is not given.
func DefaultLimits() Limits {
	l, _ := TierLimits(DefaultTier, 1)
	return l
}

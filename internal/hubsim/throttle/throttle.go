// Package throttle implements IoT Hub's published per-hub throttles
// (iothub-contract.md §6) as token buckets with traffic shaping.
//
// Each operation class is a bucket refilled at the published rate. A bucket
// holds a burst of one second of budget (one minute for the classes the hub
// publishes per minute: queries and job operations). Past the burst, calls
// are shaped: Allow* returns ok with a wait, the time the caller must delay
// before serving the call, as long as that wait stays within the backlog
// (2 s, or one call's worth if that is longer). Past the backlog a call is
// refused (ok=false) and the caller answers 429 / 429001. A refused call
// costs nothing.
//
// The buckets use virtual scheduling (GCRA): the state is one theoretical
// arrival time per class, updated with compare-and-swap, so the hot path
// takes no lock.
package throttle

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
)

// MethodMeterBytes is the direct-method meter: a call costs
// ceil(max(payload,1)/4096)*4096 bytes of the method budget.
const MethodMeterBytes = 4096

// Backlog is the longest wait a shaped call may be given before calls are
// refused (raised to one call's interval for slow classes).
const Backlog = 2 * time.Second

// Limits are the published per-hub limits for a tier and unit count. A zero
// rate means that class is not limited.
type Limits struct {
	MethodBytesPerSec  float64 // direct methods, metered in MethodMeterBytes
	QueriesPerMin      float64 // device queries (each page counts)
	TwinReadsPerSec    float64 // device and module twin reads
	TwinUpdatesPerSec  float64 // twin patches and replacements
	JobDeviceOpsPerSec float64 // per-device operations of jobs
	JobOpsPerSec       float64 // job create/get/cancel/list
	RegistryOpsPerSec  float64 // identity registry operations (get, list, create, update, delete)
	MaxConcurrentJobs  int     // active jobs (429004 past it)
}

const kib = 1024

// LimitsFor returns the published limits of tier (F1, S1, S2 or S3, any case)
// with units purchased units. F1 has exactly one unit.
func LimitsFor(tier string, units int) (Limits, error) {
	t := strings.ToUpper(strings.TrimSpace(tier))
	if units < 1 {
		return Limits{}, fmt.Errorf("units %d: must be at least 1", units)
	}
	u := float64(units)
	switch t {
	case "F1", "S1":
		if t == "F1" && units != 1 {
			return Limits{}, fmt.Errorf("units %d: tier F1 has exactly 1 unit", units)
		}
		return Limits{
			MethodBytesPerSec:  160 * kib * u,
			QueriesPerMin:      20 * u,
			TwinReadsPerSec:    100,
			TwinUpdatesPerSec:  50,
			JobDeviceOpsPerSec: 10,
			JobOpsPerSec:       100.0 / 60 * u,
			RegistryOpsPerSec:  100.0 / 60 * u,
			MaxConcurrentJobs:  1,
		}, nil
	case "S2":
		return Limits{
			MethodBytesPerSec:  480 * kib * u,
			QueriesPerMin:      20 * u,
			TwinReadsPerSec:    math.Max(100, 10*u),
			TwinUpdatesPerSec:  math.Max(50, 5*u),
			JobDeviceOpsPerSec: math.Max(10, u),
			JobOpsPerSec:       100.0 / 60 * u,
			RegistryOpsPerSec:  100.0 / 60 * u,
			MaxConcurrentJobs:  5,
		}, nil
	case "S3":
		return Limits{
			MethodBytesPerSec:  24 * kib * kib * u,
			QueriesPerMin:      1000 * u,
			TwinReadsPerSec:    500 * u,
			TwinUpdatesPerSec:  250 * u,
			JobDeviceOpsPerSec: 50 * u,
			JobOpsPerSec:       5000.0 / 60 * u,
			RegistryOpsPerSec:  5000.0 / 60 * u,
			MaxConcurrentJobs:  10,
		}, nil
	}
	return Limits{}, fmt.Errorf("tier %q: must be one of F1, S1, S2, S3", tier)
}

// MethodCost returns the bytes a call with a payload of payloadBytes costs:
// payloads are metered in 4 KB chunks, an empty payload counts as one chunk.
func MethodCost(payloadBytes int) int {
	if payloadBytes < 1 {
		payloadBytes = 1
	}
	return (payloadBytes + MethodMeterBytes - 1) / MethodMeterBytes * MethodMeterBytes
}

// Limiter rate-limits a hub's operation classes. It is safe for concurrent
// use. A nil *Limiter allows everything (--no-throttle).
type Limiter struct {
	limits       Limits
	now          func() time.Time
	methods      *bucket
	queries      *bucket
	twinReads    *bucket
	twinUpdates  *bucket
	jobDeviceOps *bucket
	jobOps       *bucket
	registryOps  *bucket
}

// New returns a Limiter enforcing l; now nil means time.Now.
func New(l Limits, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		limits:       l,
		now:          now,
		methods:      newBucket(l.MethodBytesPerSec, time.Second),
		queries:      newBucket(l.QueriesPerMin/60, time.Minute),
		twinReads:    newBucket(l.TwinReadsPerSec, time.Second),
		twinUpdates:  newBucket(l.TwinUpdatesPerSec, time.Second),
		jobDeviceOps: newBucket(l.JobDeviceOpsPerSec, time.Second),
		jobOps:       newBucket(l.JobOpsPerSec, time.Minute),
		registryOps:  newBucket(l.RegistryOpsPerSec, time.Minute),
	}
}

// NewUnlimited returns a Limiter that allows everything (a nil *Limiter).
func NewUnlimited() *Limiter { return nil }

// Limits returns the limits l enforces (zero for an unlimited Limiter).
func (l *Limiter) Limits() Limits {
	if l == nil {
		return Limits{}
	}
	return l.limits
}

// AllowMethod charges a direct method call with a request payload of
// payloadBytes (see MethodCost). ok=false: answer 429001; otherwise delay
// the call by wait first.
func (l *Limiter) AllowMethod(payloadBytes int) (wait time.Duration, ok bool) {
	if l == nil {
		return 0, true
	}
	return l.methods.take(l.now(), float64(MethodCost(payloadBytes)))
}

// AllowQuery charges one query request (one page).
func (l *Limiter) AllowQuery() (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	return l.queries.take(l.now(), 1)
}

// AllowTwinRead charges one device or module twin read.
func (l *Limiter) AllowTwinRead() (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	return l.twinReads.take(l.now(), 1)
}

// AllowTwinUpdate charges one twin update (PATCH or PUT).
func (l *Limiter) AllowTwinUpdate() (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	return l.twinUpdates.take(l.now(), 1)
}

// AllowJobDeviceOp charges one per-device operation of a job.
func (l *Limiter) AllowJobDeviceOp() (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	return l.jobDeviceOps.take(l.now(), 1)
}

// AllowJobOp charges one jobs operation (create, get, cancel, list).
func (l *Limiter) AllowJobOp() (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	return l.jobOps.take(l.now(), 1)
}

// AllowRegistryOp charges one identity registry operation.
func (l *Limiter) AllowRegistryOp() (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	return l.registryOps.take(l.now(), 1)
}

// bucket is a GCRA token bucket: tat is the theoretical arrival time (unix
// nanoseconds) of the next call once the budget spent so far is paid back.
type bucket struct {
	nsPerToken float64 // 1e9 / rate
	tau        int64   // burst tolerance in ns (burst window)
	maxWait    int64   // longest shaping delay in ns
	tat        atomic.Int64
}

func newBucket(rate float64, window time.Duration) *bucket {
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return nil
	}
	b := &bucket{nsPerToken: 1e9 / rate, tau: int64(window)}
	b.maxWait = int64(Backlog)
	if one := int64(math.Ceil(b.nsPerToken)); one > b.maxWait {
		b.maxWait = one
	}
	return b
}

// take charges cost tokens at time now.
func (b *bucket) take(now time.Time, cost float64) (time.Duration, bool) {
	if b == nil {
		return 0, true
	}
	n := now.UnixNano()
	// Rounding down keeps whole-number budgets exact (150/s allows 150
	// calls in the burst, not 149).
	inc := int64(math.Floor(cost * b.nsPerToken))
	for {
		old := b.tat.Load()
		start := old
		if start < n {
			start = n
		}
		next := start + inc
		over := next - n - b.tau
		if over > b.maxWait {
			return 0, false
		}
		if b.tat.CompareAndSwap(old, next) {
			if over < 0 {
				over = 0
			}
			return time.Duration(over), true
		}
	}
}

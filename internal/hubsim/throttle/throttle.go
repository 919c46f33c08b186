// Package throttle implements IoT Hub's published per-hub throttles
// (iothub-contract.md §6) as token buckets with traffic shaping.
package throttle

import (
	"errors"
	"time"
)

// MethodMeterBytes is the direct-method meter: a call costs
// ceil(max(payload,1)/4096)*4096 bytes of the method budget.
const MethodMeterBytes = 4096

// Limits are the published per-hub limits for a tier and unit count.
type Limits struct {
	MethodBytesPerSec  float64
	QueriesPerMin      float64
	TwinReadsPerSec    float64
	TwinUpdatesPerSec  float64
	JobDeviceOpsPerSec float64
	JobOpsPerSec       float64
	MaxConcurrentJobs  int
}

// LimitsFor returns the limits of tier (F1, S1, S2, S3) with units units.
func LimitsFor(tier string, units int) (Limits, error) {
	return Limits{}, errors.New("throttle: not implemented yet")
}

// Limiter rate-limits a hub's operation classes. A nil *Limiter allows everything.
type Limiter struct{}

// New returns a Limiter for l; now nil means time.Now.
func New(l Limits, now func() time.Time) *Limiter { return &Limiter{} }

// NewUnlimited returns a Limiter that allows everything.
func NewUnlimited() *Limiter { return nil }

// AllowMethod charges a direct method call.
func (l *Limiter) AllowMethod(payloadBytes int) (wait time.Duration, ok bool) { return 0, true }

// AllowQuery charges a query page.
func (l *Limiter) AllowQuery() (time.Duration, bool) { return 0, true }

// AllowTwinRead charges a twin read.
func (l *Limiter) AllowTwinRead() (time.Duration, bool) { return 0, true }

// AllowTwinUpdate charges a twin update.
func (l *Limiter) AllowTwinUpdate() (time.Duration, bool) { return 0, true }

// AllowJobDeviceOp charges one per-device job operation.
func (l *Limiter) AllowJobDeviceOp() (time.Duration, bool) { return 0, true }

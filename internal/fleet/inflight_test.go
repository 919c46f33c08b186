package fleet

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
)

// slotsRig drives an inFlight on a fake clock: acquires never have to wait
// (the rig marks the waits itself), attempts are counted by hand.
type slotsRig struct {
	f        *inFlight
	at       time.Time
	attempts atomic.Int64
	resized  []int
}

func newSlotsRig(o InFlightOptions) *slotsRig {
	r := &slotsRig{at: time.Unix(1_700_000_000, 0)}
	o.OnResize = func(n int) { r.resized = append(r.resized, n) }
	r.f = newInFlight(o, func() time.Time { return r.at }, r.attempts.Load)
	return r
}

// fill takes every free slot, counting one attempt each.
func (r *slotsRig) fill(t *testing.T) {
	t.Helper()
	for {
		in, limit, _ := r.f.snapshot()
		if in >= limit {
			return
		}
		require.NoError(t, r.f.acquire(context.Background()))
		r.attempts.Add(1)
	}
}

// tick advances the clock by one tick with the dispatcher having waited (or
// not) and looks again.
func (r *slotsRig) tick(waited bool) int {
	r.at = r.at.Add(InFlightTick)
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.f.waited = r.f.waited || waited
	r.f.adjustLocked(r.at)
	return r.f.limit
}

func constPace(r float64) func() float64 { return func() float64 { return r } }

func TestInFlightGrowsWhileBehindThePace(t *testing.T) {
	r := newSlotsRig(InFlightOptions{Max: 100000, Pace: constPace(10000)})
	require.NoError(t, r.f.acquire(context.Background())) // starts the clock
	r.attempts.Add(1)
	r.fill(t)
	assert.Equal(t, InFlightMin, r.f.limit)
	// Every slot taken, 32 calls in a tick of a 10,000/s pace (1,000 per
	// tick asked): behind. No answer yet after 0.1 s: the pace needs
	// 10,000 × 0.1 s × 1.25 slots.
	assert.Equal(t, 1250, r.tick(true))
	r.fill(t)
	// 1,218 more calls in the next tick: on pace; with no answer times
	// there is nothing to size from, so the slots stay.
	assert.Equal(t, 1250, r.tick(true))
	// Behind again (no calls at all in a tick) at 0.3 s.
	assert.Equal(t, 3750, r.tick(true))
	assert.Equal(t, []int{32, 1250, 3750}, r.resized, "OnResize hears every change")

	// With answer times, behind the pace grows by a fifth per second, 2%
	// per tick (answers of 100 ms: the target is 1,250, under the slots).
	for range inFlightWindow {
		r.f.inUse++
		r.f.release(100 * time.Millisecond)
	}
	assert.Equal(t, 3750+3750/50, r.tick(true))
	// Answers of 2 s: the target (25,000) is reached at that pace too.
	for range inFlightWindow {
		r.f.inUse++
		r.f.release(2 * time.Second)
	}
	assert.Equal(t, 3825+3825/50, r.tick(true))
}

func TestInFlightHoldsWhenThePaceIsKept(t *testing.T) {
	r := newSlotsRig(InFlightOptions{Max: 10000, Pace: constPace(100)})
	require.NoError(t, r.f.acquire(context.Background()))
	r.fill(t)
	// 32 attempts in a tick against 10 asked: the pacer, not the slots,
	// holds the calls back, so waiting for a slot does not grow them.
	assert.Equal(t, InFlightMin, r.tick(true))
	r.f.mu.Lock()
	assert.False(t, r.f.lastBehind)
	r.f.mu.Unlock()
}

func TestInFlightSizesFromThePaceAndTheAnswerTimes(t *testing.T) {
	r := newSlotsRig(InFlightOptions{Max: 10000, Pace: constPace(1000)})
	require.NoError(t, r.f.acquire(context.Background()))
	for range inFlightWindow {
		r.f.inUse++
		r.f.release(time.Second)
	}
	r.f.inUse = 1
	// 1,000 calls/s × p90 1 s × headroom 1.25 = 1,250 slots, reached at
	// 20% per second at most (2% per tick, at least one slot).
	assert.Equal(t, 33, r.tick(false))
	for range 300 {
		r.tick(false)
	}
	assert.Equal(t, 1250, r.f.limit)

	// The devices get faster: the slots glide down to the floor, a quarter
	// of the way per tick.
	for range inFlightWindow {
		r.f.inUse++
		r.f.release(10 * time.Millisecond)
	}
	prev := r.f.limit
	for range 40 {
		n := r.tick(false)
		assert.LessOrEqual(t, n, prev)
		prev = n
	}
	assert.Equal(t, InFlightMin, prev, "1,000/s × 10 ms needs fewer than the floor")
}

func TestInFlightDoesNotGrowWhileConnectionsOpen(t *testing.T) {
	var opening atomic.Int64
	r := newSlotsRig(InFlightOptions{Max: 100000, Pace: constPace(10000), Opening: func() int { return int(opening.Load()) }})
	require.NoError(t, r.f.acquire(context.Background()))
	r.fill(t)
	opening.Store(InFlightMin + 1) // every slot is still opening its connection
	assert.Equal(t, InFlightMin, r.tick(true))
	opening.Store(0)
	assert.Equal(t, 2500, r.tick(true), "once they are open, pace × 0.2 s × 1.25")
}

func TestInFlightStaysWithinItsBound(t *testing.T) {
	r := newSlotsRig(InFlightOptions{Max: 100, Pace: constPace(5000)})
	require.NoError(t, r.f.acquire(context.Background()))
	for range 3 {
		r.fill(t)
		r.tick(true)
	}
	assert.Equal(t, 100, r.f.limit)
	_, _, held := r.f.snapshot()
	assert.True(t, held, "behind the pace at the bound")
}

func TestInFlightFixed(t *testing.T) {
	r := newSlotsRig(InFlightOptions{Fixed: 7, Pace: constPace(5000)})
	require.NoError(t, r.f.acquire(context.Background()))
	for range 5 {
		r.fill(t)
		assert.Equal(t, 7, r.tick(true))
	}
	st := r.f.finish()
	assert.False(t, st.Auto)
	assert.Equal(t, 7, st.Max)
	assert.Equal(t, 7, st.Peak)
}

func TestInFlightAcquireEndsWithItsContext(t *testing.T) {
	r := newSlotsRig(InFlightOptions{Fixed: 1})
	require.NoError(t, r.f.acquire(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.f.acquire(ctx) }()
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	r.f.release(0)
	require.NoError(t, r.f.acquire(context.Background()), "the freed slot is there")
}

func TestPacingHeldBy(t *testing.T) {
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	tests := []struct {
		name                string
		p                   Pacing
		attempts, throttles int
		want                string
	}{
		{"too few calls", Pacing{Dispatching: sec(10)}, 10, 0, ""},
		{"429s", Pacing{Dispatching: sec(10), Attempts: 400}, 400, 4, HeldByThrottle},
		{"too short", Pacing{Dispatching: sec(0.5), Attempts: 400}, 400, 0, ""},
		{"at the bound", Pacing{Dispatching: sec(10), AtMax: sec(2), Attempts: 290, Paced: true, Pace: 240}, 290, 0, HeldByInFlight},
		{"on pace", Pacing{Dispatching: sec(10), Attempts: 400, Paced: true, Pace: 40}, 400, 0, HeldByPace},
		{"below pace, slots free", Pacing{Dispatching: sec(10), Attempts: 200, Paced: true, Pace: 40}, 200, 0, HeldByLatency},
		{"unpaced", Pacing{Dispatching: sec(10), Attempts: 200}, 200, 0, HeldByLatency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.p.HeldBy(tt.attempts, tt.throttles))
		})
	}
}

// blockingInvoker holds every call until release is closed, and counts the
// calls under way.
type blockingInvoker struct {
	mu      sync.Mutex
	now     int
	peak    int
	reached chan struct{}
	want    int
	release chan struct{}
}

func (b *blockingInvoker) Invoke(ctx context.Context, _ Target, _ iothub.MethodRequest) (iothub.MethodResult, error) {
	b.mu.Lock()
	b.now++
	b.peak = max(b.peak, b.now)
	if b.now == b.want {
		close(b.reached)
	}
	b.mu.Unlock()
	select {
	case <-b.release:
	case <-ctx.Done():
		return iothub.MethodResult{}, ctx.Err()
	}
	return iothub.MethodResult{Status: 200}, nil
}

func (b *blockingInvoker) max() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// TestRunAutoGoesPastTheOldFixed32: calls that do not answer while the run
// is behind its pace make the auto rule open more slots than the old fixed
// default of 32.
func TestRunAutoGoesPastTheOldFixed32(t *testing.T) {
	targets := make([]Target, 300)
	for i := range targets {
		targets[i] = Target{DeviceID: "d" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
	}
	inv := &blockingInvoker{reached: make(chan struct{}), want: 100, release: make(chan struct{})}
	var sum Summary
	done := make(chan error, 1)
	go func() {
		var err error
		sum, err = NewRunner(inv).Run(context.Background(), NewSliceSource(targets), RunOptions{
			Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1),
			InFlight: InFlightOptions{Max: 1000, Pace: constPace(10000)},
		})
		done <- err
	}()
	select {
	case <-inv.reached: // 100 calls under way at once
	case err := <-done:
		t.Fatalf("the run ended (%v) without 100 calls under way at once", err)
	case <-time.After(30 * time.Second):
		close(inv.release)
		t.Fatalf("no 100 calls under way at once within 30 s (%d at most): the slots did not grow", inv.max())
	}
	close(inv.release)
	require.NoError(t, <-done)
	assert.Equal(t, 300, sum.ByOutcome[OutcomeSucceeded])
	assert.True(t, sum.Pacing.Auto)
	assert.GreaterOrEqual(t, sum.Pacing.Peak, 100)
}

package testkit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// FakeClock is a clock a test drives. Now returns its time; Sleep either
// blocks until Advance moves the time past the sleep's end (NewFakeClock) or
// moves the time forward itself at once (NewAutoClock, for code that only
// needs time to pass); NewTickingClock's readings also step forward by
// themselves. It is safe for concurrent use.
type FakeClock struct {
	mu       sync.Mutex
	now      time.Time
	auto     bool          // Sleep advances the clock instead of blocking
	step     time.Duration // each Now reads this much later than the last
	sleepers []*sleeper    // blocked in Sleep, in arrival order
	slept    []time.Duration
	changed  chan struct{} // closed when sleepers changes; made only when someone waits
}

type sleeper struct {
	until time.Time
	wake  chan struct{}
}

// NewFakeClock returns a clock at start whose Sleep blocks until Advance
// reaches the end of the sleep or the sleep's context ends.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// NewAutoClock returns a clock at start whose Sleep advances the clock by d
// at once: nothing waits, and Slept tells what the code asked for.
func NewAutoClock(start time.Time) *FakeClock { return &FakeClock{now: start, auto: true} }

// NewTickingClock returns a clock whose every reading is step later than the
// one before (the first is start+step), for code that measures durations
// between readings; its Sleep advances like NewAutoClock's.
func NewTickingClock(start time.Time, step time.Duration) *FakeClock {
	return &FakeClock{now: start, auto: true, step: step}
}

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

// Advance moves the clock forward by d (d <= 0 does nothing) and wakes every
// sleeper whose end it reaches, before it returns.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked(d)
}

func (c *FakeClock) advanceLocked(d time.Duration) {
	if d <= 0 {
		return
	}
	c.now = c.now.Add(d)
	kept := c.sleepers[:0]
	for _, s := range c.sleepers {
		if s.until.After(c.now) {
			kept = append(kept, s)
		} else {
			close(s.wake)
		}
	}
	if len(kept) != len(c.sleepers) {
		clear(c.sleepers[len(kept):])
		c.sleepers = kept
		c.notifyLocked()
	}
}

// Sleep records d and waits for the clock to pass now+d, returning nil, or
// for ctx to end, returning ctx.Err(). A ctx that has already ended, or a
// d <= 0, returns at once (ctx.Err()), as ctxtime.Sleep does. On an auto or
// ticking clock Sleep advances the clock by d instead of blocking.
func (c *FakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.slept = append(c.slept, d)
	if err := ctx.Err(); err != nil || d <= 0 {
		c.mu.Unlock()
		return err
	}
	if c.auto {
		c.advanceLocked(d)
		c.mu.Unlock()
		return nil
	}
	s := &sleeper{until: c.now.Add(d), wake: make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.notifyLocked()
	c.mu.Unlock()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		select {
		case <-s.wake: // Advance reached it first
			return nil
		default:
		}
		for i, x := range c.sleepers {
			if x == s {
				c.sleepers = append(c.sleepers[:i], c.sleepers[i+1:]...)
				c.notifyLocked()
				break
			}
		}
		return ctx.Err()
	}
}

// SleepOK is Sleep for callers that only ask whether the wait completed (the
// shape of ctxtime.SleepOK).
func (c *FakeClock) SleepOK(ctx context.Context, d time.Duration) bool { return c.Sleep(ctx, d) == nil }

// Slept returns every d passed to Sleep so far, in order.
func (c *FakeClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.slept...)
}

// Sleepers returns how many goroutines are blocked in Sleep now.
func (c *FakeClock) Sleepers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

// WaitForSleepers waits until exactly n goroutines are blocked in Sleep
// (woken by each arrival and departure, never polled), failing t after
// timeout. Once it returns, an Advance acts on a known set of sleepers.
func (c *FakeClock) WaitForSleepers(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		have := len(c.sleepers)
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		if have == n {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("%d goroutines are blocked in FakeClock.Sleep after %s, want %d", c.Sleepers(), timeout, n)
			return
		}
	}
}

func (c *FakeClock) notifyLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

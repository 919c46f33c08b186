package throttle

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/testkit"
)

// newFakeClock returns a clock that moves only when the test advances it.
func newFakeClock() *testkit.FakeClock {
	return testkit.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

func TestLimitsFor(t *testing.T) {
	tests := []struct {
		tier  string
		units int
		want  Limits
	}{
		{"F1", 1, Limits{160 * 1024, 20, 100, 50, 10, 100.0 / 60, 100.0 / 60, 1}},
		{"S1", 1, Limits{160 * 1024, 20, 100, 50, 10, 100.0 / 60, 100.0 / 60, 1}},
		{"s1", 3, Limits{3 * 160 * 1024, 60, 100, 50, 10, 300.0 / 60, 300.0 / 60, 1}},
		{"S2", 1, Limits{480 * 1024, 20, 100, 50, 10, 100.0 / 60, 100.0 / 60, 5}},
		{"S2", 20, Limits{20 * 480 * 1024, 400, 200, 100, 20, 2000.0 / 60, 2000.0 / 60, 5}},
		{"S3", 2, Limits{2 * 24 * 1024 * 1024, 2000, 1000, 500, 100, 10000.0 / 60, 10000.0 / 60, 10}},
	}
	for _, tt := range tests {
		got, err := LimitsFor(tt.tier, tt.units)
		require.NoError(t, err, "%s x%d", tt.tier, tt.units)
		assert.InDelta(t, tt.want.MethodBytesPerSec, got.MethodBytesPerSec, 1e-9, "%s x%d methods", tt.tier, tt.units)
		assert.InDelta(t, tt.want.QueriesPerMin, got.QueriesPerMin, 1e-9, "%s x%d queries", tt.tier, tt.units)
		assert.InDelta(t, tt.want.TwinReadsPerSec, got.TwinReadsPerSec, 1e-9, "%s x%d twin reads", tt.tier, tt.units)
		assert.InDelta(t, tt.want.TwinUpdatesPerSec, got.TwinUpdatesPerSec, 1e-9, "%s x%d twin updates", tt.tier, tt.units)
		assert.InDelta(t, tt.want.JobDeviceOpsPerSec, got.JobDeviceOpsPerSec, 1e-9, "%s x%d job device ops", tt.tier, tt.units)
		assert.InDelta(t, tt.want.JobOpsPerSec, got.JobOpsPerSec, 1e-9, "%s x%d job ops", tt.tier, tt.units)
		assert.InDelta(t, tt.want.RegistryOpsPerSec, got.RegistryOpsPerSec, 1e-9, "%s x%d registry ops", tt.tier, tt.units)
		assert.Equal(t, tt.want.MaxConcurrentJobs, got.MaxConcurrentJobs, "%s x%d jobs", tt.tier, tt.units)
	}
}

func TestLimitsForErrors(t *testing.T) {
	for _, tt := range []struct {
		tier  string
		units int
		msg   string
	}{
		{"F1", 2, "F1 has exactly 1 unit"},
		{"S1", 0, "at least 1"},
		{"S3", -1, "at least 1"},
		{"B1", 1, `tier "B1"`},
		{"", 1, `tier ""`},
	} {
		_, err := LimitsFor(tt.tier, tt.units)
		require.Error(t, err, "%s x%d", tt.tier, tt.units)
		assert.Contains(t, err.Error(), tt.msg)
	}
}

func TestMethodCost(t *testing.T) {
	for in, want := range map[int]int{-5: 4096, 0: 4096, 1: 4096, 4096: 4096, 4097: 8192, 8192: 8192, 128 * 1024: 128 * 1024, 156*1024 + 1: 160 * 1024} {
		assert.Equal(t, want, MethodCost(in), "payload %d", in)
	}
}

// countImmediate counts calls allowed without a wait at a frozen clock.
func countImmediate(allow func() (time.Duration, bool)) int {
	n := 0
	for {
		w, ok := allow()
		if !ok || w > 0 {
			return n
		}
		n++
	}
}

// requireImmediate makes n calls that must all pass without a wait.
func requireImmediate(t *testing.T, n int, allow func() (time.Duration, bool)) {
	t.Helper()
	for i := 0; i < n; i++ {
		w, ok := allow()
		require.True(t, ok, "call %d refused", i+1)
		require.Zero(t, w, "call %d shaped", i+1)
	}
}

func TestMethodBudgetS1(t *testing.T) {
	l, err := LimitsFor("S1", 1)
	require.NoError(t, err)

	clk := newFakeClock()
	lim := New(l, clk.Now)
	// One second of budget: 40 calls at <=4 KB (the 41st is shaped) ...
	assert.Equal(t, 40, countImmediate(func() (time.Duration, bool) { return lim.AllowMethod(100) }))

	clk2 := newFakeClock()
	lim2 := New(l, clk2.Now)
	assert.Equal(t, 20, countImmediate(func() (time.Duration, bool) { return lim2.AllowMethod(5000) }))

	// Steady state: the budget refills at 40 calls per second at 4 KB, 20 at 8 KB.
	clk3 := newFakeClock()
	lim3 := New(l, clk3.Now)
	requireImmediate(t, 40, func() (time.Duration, bool) { return lim3.AllowMethod(4096) })
	for sec := 0; sec < 3; sec++ {
		clk3.Advance(time.Second)
		requireImmediate(t, 20, func() (time.Duration, bool) { return lim3.AllowMethod(8000) })
		w, ok := lim3.AllowMethod(1)
		require.True(t, ok)
		assert.Equal(t, 25*time.Millisecond, w, "second %d: the next call is shaped", sec)
		clk3.Advance(25 * time.Millisecond) // pay it back
	}
	clk3.Advance(time.Second)
	requireImmediate(t, 40, func() (time.Duration, bool) { return lim3.AllowMethod(4096) })
}

func TestMethodBudgetS3x2(t *testing.T) {
	l, err := LimitsFor("S3", 2)
	require.NoError(t, err)
	lim := New(l, newFakeClock().Now)
	// 48 MB/s in 4 KB chunks = 12288 calls in the first second's burst.
	assert.Equal(t, 2*24*1024*1024/4096, countImmediate(func() (time.Duration, bool) { return lim.AllowMethod(10) }))
}

func TestShapingThenRefusal(t *testing.T) {
	l, err := LimitsFor("S1", 1)
	require.NoError(t, err)
	clk := newFakeClock()
	lim := New(l, clk.Now)
	require.Equal(t, 40, countImmediate(func() (time.Duration, bool) { return lim.AllowMethod(1) }))

	// The 41st call is the one countImmediate saw with a wait (25 ms). The
	// next ones queue 25 ms apart up to the 2 s backlog.
	var waits []time.Duration
	for {
		w, ok := lim.AllowMethod(1)
		if !ok {
			break
		}
		waits = append(waits, w)
		require.Less(t, len(waits), 1000, "never refused")
	}
	require.Len(t, waits, 79) // 80 queued in total (2 s at 25 ms), the first taken by countImmediate
	assert.Equal(t, 50*time.Millisecond, waits[0])
	for i := 1; i < len(waits); i++ {
		assert.Equal(t, 25*time.Millisecond, waits[i]-waits[i-1], "gap %d", i)
	}
	assert.Equal(t, 2*time.Second, waits[len(waits)-1])

	// Refusals cost nothing: once the queue drains by 25 ms one more fits.
	_, ok := lim.AllowMethod(1)
	assert.False(t, ok)
	clk.Advance(25 * time.Millisecond)
	w, ok := lim.AllowMethod(1)
	assert.True(t, ok)
	assert.Equal(t, 2*time.Second, w)
	_, ok = lim.AllowMethod(1)
	assert.False(t, ok)

	// After the backlog and the burst window pass, the full burst is back.
	clk.Advance(4 * time.Second)
	assert.Equal(t, 40, countImmediate(func() (time.Duration, bool) { return lim.AllowMethod(1) }))
}

func TestQueriesPerMinute(t *testing.T) {
	l, err := LimitsFor("S1", 1)
	require.NoError(t, err)
	clk := newFakeClock()
	lim := New(l, clk.Now)
	// A minute of budget as burst: 20 queries.
	assert.Equal(t, 20, countImmediate(lim.AllowQuery))
	// The 21st was queued for one interval (3 s, longer than the 2 s
	// backlog, so the backlog holds exactly one call); the next is refused.
	_, ok := lim.AllowQuery()
	assert.False(t, ok)
	clk.Advance(3 * time.Second)
	w, ok := lim.AllowQuery()
	assert.True(t, ok)
	assert.Equal(t, 3*time.Second, w)
}

func TestTwinAndJobClasses(t *testing.T) {
	l, err := LimitsFor("S2", 30)
	require.NoError(t, err)
	lim := New(l, newFakeClock().Now)
	assert.Equal(t, 300, countImmediate(lim.AllowTwinRead))
	assert.Equal(t, 150, countImmediate(lim.AllowTwinUpdate))
	assert.Equal(t, 30, countImmediate(lim.AllowJobDeviceOp))
	assert.Equal(t, 3000, countImmediate(lim.AllowJobOp)) // 100/min/unit, a minute of burst
}

func TestUnlimited(t *testing.T) {
	for name, lim := range map[string]*Limiter{"nil": nil, "NewUnlimited": NewUnlimited(), "zero limits": New(Limits{}, nil)} {
		for i := 0; i < 10000; i++ {
			for _, f := range []func() (time.Duration, bool){
				func() (time.Duration, bool) { return lim.AllowMethod(128 * 1024) },
				lim.AllowQuery, lim.AllowTwinRead, lim.AllowTwinUpdate, lim.AllowJobDeviceOp, lim.AllowJobOp,
			} {
				w, ok := f()
				require.True(t, ok, name)
				require.Zero(t, w, name)
			}
		}
	}
	assert.Equal(t, Limits{}, (*Limiter)(nil).Limits())
}

func TestConcurrentBudgetIsExact(t *testing.T) {
	l, err := LimitsFor("S1", 1)
	require.NoError(t, err)
	lim := New(l, newFakeClock().Now)
	var mu sync.Mutex
	immediate, queued, refused := 0, 0, 0
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				w, ok := lim.AllowMethod(1)
				mu.Lock()
				switch {
				case !ok:
					refused++
				case w == 0:
					immediate++
				default:
					queued++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 40, immediate)
	assert.Equal(t, 80, queued)
	assert.Equal(t, 400-120, refused)
}

func BenchmarkAllowMethod(b *testing.B) {
	lim := New(Limits{MethodBytesPerSec: 1e15}, nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			lim.AllowMethod(100)
		}
	})
}

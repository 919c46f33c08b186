package testkit

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records a Fatalf instead of ending the test.
type recorder struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fatal = format
}

func TestSyncBufferWaitsForWrites(t *testing.T) {
	var b SyncBuffer
	go func() {
		for _, s := range []string{"one ", "two ", "three\n"} {
			_, _ = b.Write([]byte(s))
		}
	}()
	text := b.WaitFor(t, "three\n", 10*time.Second)
	assert.Equal(t, "one two three\n", text)
	assert.Equal(t, "one two three\n", b.String())
	assert.Equal(t, []byte("one two three\n"), b.Bytes())
	assert.Equal(t, 14, b.Len())
	got := b.Bytes()
	got[0] = 'X'
	assert.Equal(t, "one two three\n", b.String(), "Bytes is a copy")
}

func TestSyncBufferAwaitStopsAndTimesOut(t *testing.T) {
	var b SyncBuffer
	stop := make(chan struct{})
	go func() {
		_, _ = b.Write([]byte("last words"))
		close(stop)
	}()
	text, ok := b.Await(time.Hour, stop, func(s string) bool { return strings.Contains(s, "never") })
	assert.False(t, ok, "stop ends the wait")
	assert.Equal(t, "last words", text, "what was written before stop is returned")

	var empty SyncBuffer
	_, ok = empty.Await(time.Millisecond, nil, func(s string) bool { return s != "" })
	assert.False(t, ok, "the timeout ends the wait")

	rec := &recorder{TB: t}
	empty.WaitFor(rec, "x", time.Millisecond)
	assert.Contains(t, rec.fatal, "no %s within %s", "WaitFor fails its test on timeout")
}

func TestFakeClockSleepBlocksUntilAdvanced(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewFakeClock(start)
	done := make(chan error, 2)
	go func() { done <- c.Sleep(context.Background(), time.Minute) }()
	go func() { done <- c.Sleep(context.Background(), time.Hour) }()
	c.WaitForSleepers(t, 2, 10*time.Second)

	c.Advance(59 * time.Second)
	assert.Equal(t, 2, c.Sleepers(), "a minute has not passed: both still blocked")
	c.Advance(time.Second)
	require.NoError(t, <-done, "the minute sleeper wakes")
	assert.Equal(t, 1, c.Sleepers(), "Advance removes the sleepers it wakes before it returns")
	c.Advance(time.Hour)
	require.NoError(t, <-done)
	c.WaitForSleepers(t, 0, 10*time.Second)
	assert.Equal(t, start.Add(time.Hour+time.Minute), c.Now())
	assert.Equal(t, []time.Duration{time.Minute, time.Hour}, sortedDurations(c.Slept()))

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- c.Sleep(ctx, time.Hour) }()
	c.WaitForSleepers(t, 1, 10*time.Second)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	c.WaitForSleepers(t, 0, 10*time.Second)
	assert.ErrorIs(t, c.Sleep(ctx, time.Hour), context.Canceled, "an ended context returns at once")
	assert.NoError(t, c.Sleep(context.Background(), 0), "d <= 0 returns at once")
	assert.False(t, c.SleepOK(ctx, time.Second))

	rec := &recorder{TB: t}
	c.WaitForSleepers(rec, 3, time.Millisecond)
	assert.Contains(t, rec.fatal, "blocked in FakeClock.Sleep")
}

func TestAutoAndTickingClocks(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := NewAutoClock(start)
	require.NoError(t, a.Sleep(context.Background(), 3*time.Second))
	assert.True(t, a.SleepOK(context.Background(), 2*time.Second))
	assert.Equal(t, start.Add(5*time.Second), a.Now())
	assert.Equal(t, start.Add(5*time.Second), a.Now(), "an auto clock stands still between sleeps")
	assert.Equal(t, []time.Duration{3 * time.Second, 2 * time.Second}, a.Slept())
	assert.Zero(t, a.Sleepers())

	k := NewTickingClock(start, 10*time.Millisecond)
	assert.Equal(t, start.Add(10*time.Millisecond), k.Now())
	assert.Equal(t, start.Add(20*time.Millisecond), k.Now())
	k.Advance(time.Second)
	assert.Equal(t, start.Add(time.Second+30*time.Millisecond), k.Now())
}

func sortedDurations(ds []time.Duration) []time.Duration {
	out := append([]time.Duration(nil), ds...)
	slices.Sort(out)
	return out
}

// TestOnlyTestsImportTestkit: testkit reaches no binary. A package of the
// module imports it outside its _test.go files only when that package is
// itself a test helper (cmdtest): one no package imports outside its tests.
func TestOnlyTestsImportTestkit(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "github.com/dmctl/dmctl/...").Output()
	require.NoError(t, err, "go list")
	const self = "github.com/dmctl/dmctl/internal/testkit"
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Greater(t, len(lines), 10, "go list found the module's packages")
	importedBy := map[string][]string{} // package -> the packages importing it outside tests
	var helpers []string                // packages importing testkit outside tests
	for _, line := range lines {
		fields := strings.Fields(line)
		for _, imp := range fields[1:] {
			importedBy[imp] = append(importedBy[imp], fields[0])
			if imp == self {
				helpers = append(helpers, fields[0])
			}
		}
	}
	for _, h := range helpers {
		assert.Empty(t, importedBy[h], "%s imports testkit outside its tests, and is imported outside tests itself", h)
	}
}

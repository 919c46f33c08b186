package testkit

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes buffer that is safe for concurrent use: a child
// process or a goroutine writes, the test reads and waits. The zero value is
// ready to use; a SyncBuffer must not be copied after first use.
type SyncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed by the next Write; made only when someone waits
}

// Write appends p and wakes every waiter.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return n, err
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bytes returns a copy of everything written so far.
func (s *SyncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// Len returns the number of bytes written so far.
func (s *SyncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// snapshot returns the contents and a channel the next Write closes.
func (s *SyncBuffer) snapshot() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.b.String(), s.changed
}

// Await waits until cond holds for the contents, checking them once now and
// again after every Write (never on a timer). It gives up when timeout passes
// or stop is closed (nil: never), checking once more then, so text written
// just before the writer went away still counts. It returns the contents it
// checked last and whether cond held for them. cond runs on the caller's
// goroutine and may be called many times.
func (s *SyncBuffer) Await(timeout time.Duration, stop <-chan struct{}, cond func(contents string) bool) (string, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		text, changed := s.snapshot()
		if cond(text) {
			return text, true
		}
		select {
		case <-changed:
		case <-stop:
			text = s.String()
			return text, cond(text)
		case <-timer.C:
			text = s.String()
			return text, cond(text)
		}
	}
}

// WaitUntil is Await without a stop channel that fails t (naming what and
// showing the contents) when cond does not hold within timeout.
func (s *SyncBuffer) WaitUntil(t testing.TB, timeout time.Duration, what string, cond func(contents string) bool) string {
	t.Helper()
	text, ok := s.Await(timeout, nil, cond)
	if !ok {
		t.Fatalf("no %s within %s; the buffer holds:\n%s", what, timeout, text)
	}
	return text
}

// WaitFor waits until the buffer contains substr, failing t after timeout,
// and returns the contents.
func (s *SyncBuffer) WaitFor(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	return s.WaitUntil(t, timeout, strconv.Quote(substr), func(text string) bool { return strings.Contains(text, substr) })
}

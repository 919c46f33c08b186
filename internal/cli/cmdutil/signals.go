package cmdutil

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// interruptCause is why the run's context ended: a signal. It wraps
// context.Canceled, so everything that checks for cancellation still does.
type interruptCause struct{ sig os.Signal }

func (c *interruptCause) Error() string { return fmt.Sprintf("interrupted by %s", signalName(c.sig)) }
func (c *interruptCause) Unwrap() error { return context.Canceled }

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "Ctrl-C (SIGINT)"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// WatchSignals turns SIGINT and SIGTERM into two stages: the first ends
// soft (stop starting calls, let calls in flight finish within --grace,
// account for every target), the second ends hard (stop at once: calls in
// flight are reported unknown). A third gets Go's default handling, which
// kills the process. It also asks for SIGPIPE, so that writing to a closed
// stdout (`dmctl ... | head -1`) returns EPIPE, which a run handles like an
// interrupt, instead of killing dmctl mid-rollout with nothing reported.
func WatchSignals() (soft, hard context.Context, stop func()) {
	soft, cancelSoft := context.WithCancelCause(context.Background())
	hard, cancelHard := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case s := <-sigs:
				n++
				if n == 1 {
					cancelSoft(&interruptCause{sig: s})
					continue
				}
				cancelHard()
				signal.Reset(os.Interrupt, syscall.SIGTERM)
				return
			case <-done:
				return
			}
		}
	}()
	return soft, hard, func() {
		close(done)
		signal.Stop(sigs)
		cancelSoft(nil)
		cancelHard()
	}
}

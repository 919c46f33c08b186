// Package ctxtime provides the one context-aware sleep the project uses.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d unless ctx ends first, and returns ctx's error in that case
// (nil when the full wait passed). A d <= 0 returns at once with ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SleepOK is Sleep for callers that only ask "did the wait complete?".
func SleepOK(ctx context.Context, d time.Duration) bool { return Sleep(ctx, d) == nil }

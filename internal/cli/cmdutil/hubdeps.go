package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/ctxtime"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
	"github.com/dmctl/dmctl/internal/retry"
)

// HubDeps are what the jobs and twin commands depend on.
type HubDeps struct {
	IO *output.IOStreams
	// Client returns the hub client and the credential it uses (for hints).
	Client func() (*iothub.Client, *auth.Credential, error)
	Now    func() time.Time
	// Sleep waits between polls and retries; nil means a real, cancellable sleep.
	Sleep  func(context.Context, time.Duration) error
	Output output.Format
}

func NewHubDeps(f *Factory) HubDeps {
	return HubDeps{IO: f.IOStreams, Client: f.HubClient, Now: f.Now, Sleep: f.Sleep}
}

func (d HubDeps) TimeNow() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d HubDeps) Pause(ctx context.Context, wait time.Duration) error {
	if d.Sleep != nil {
		return d.Sleep(ctx, wait)
	}
	return ctxtime.Sleep(ctx, wait)
}

// ReadPolicy resends reads (job status, pages) on anything retry allows
// for idempotent calls.
func (d HubDeps) ReadPolicy() retry.Policy {
	return retry.Policy{Idempotent: true, Sleep: d.Sleep, Now: d.Now}
}

// HubFailure shapes an error from the hub for a jobs or twin command: an
// answer of the hub becomes a *HubError (ExitCode maps its status; a
// refusal of who is asking also gets a hint on stderr), a cancelled
// context is an interruption, anything else keeps its message.
func (d HubDeps) HubFailure(ctx context.Context, err error, cred *auth.Credential, what string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s: %w", ErrInterrupted, what, err)
	}
	if _, isHub := iothub.AsResponseError(err); isHub {
		if iothub.KindOf(err) == iothub.KindUnauthorized && cred != nil {
			_, _ = fmt.Fprintf(d.IO.ErrOut, "hint: %s\n", cred.RefusedHint())
		}
		return &HubError{What: what, Err: err}
	}
	var cf interface{ CredentialFailure() bool }
	if errors.As(err, &cf) && cf.CredentialFailure() {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

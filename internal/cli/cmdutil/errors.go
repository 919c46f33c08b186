package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
)

// Exit codes (design.md §3; `dmctl help exit-codes`).
const (
	ExitOK          = 0   // every target succeeded
	ExitError       = 1   // an unexpected error (a bug, an I/O failure)
	ExitUsage       = 2   // usage or input error: nothing was sent
	ExitAuth        = 3   // authentication or authorization refused
	ExitTargets     = 4   // at least one target did not succeed
	ExitThreshold   = 5   // the run was stopped by its failure threshold (--max-failures, --abort-if) or a --gate
	ExitInterrupted = 130 // interrupted (Ctrl-C or SIGTERM)
)

// FlagError is a usage or input error found before anything was sent: a bad
// flag, argument, payload or id. It exits 2.
type FlagError struct{ err error }

// Error is the message, naming the input.
func (e *FlagError) Error() string { return e.err.Error() }

// Unwrap returns the underlying error.
func (e *FlagError) Unwrap() error { return e.err }

// FlagErrorf returns a *FlagError with a formatted message.
func FlagErrorf(format string, args ...any) error {
	return &FlagError{err: fmt.Errorf(format, args...)}
}

// FlagErrorWrap marks err as a usage error.
func FlagErrorWrap(err error) error { return &FlagError{err: err} }

// TargetsError says that some targets did not succeed. The per-target lines
// and the summary are already on stderr, so Main prints nothing more.
type TargetsError struct {
	Summary fleet.Summary
}

// Error says how many targets did not succeed.
func (e *TargetsError) Error() string {
	return fmt.Sprintf("%d of %d targets did not succeed", e.Summary.NotSucceeded(), e.Summary.Targets)
}

// ErrInterrupted is returned when the run stopped because of Ctrl-C or
// SIGTERM; the results so far have been written.
var ErrInterrupted = errors.New("interrupted")

// ErrStdoutClosed is the cause of a run stopped because its stdout was
// closed (a reader such as `head` exited): handled like Ctrl-C, exit 130.
var ErrStdoutClosed = fmt.Errorf("stdout was closed: %w", context.Canceled)

// ErrPromptInterrupted is returned for Ctrl-C at the confirmation prompt:
// nothing was sent.
var ErrPromptInterrupted = fmt.Errorf("%w at the confirmation prompt: nothing was sent", ErrInterrupted)

// HubError is a request the hub refused, for a command whose request is
// the work itself (jobs, twin show, a --query read before any call): the
// exit code follows what the hub said (ExitCode): 400 is bad input (2), 401
// or 403 a refused credential (3), 404 a device, module or job not found
// (4, as a notFound target is for invoke).
type HubError struct {
	What string // the request, e.g. "show job fw-3"
	Err  error  // wraps the *iothub.ResponseError
}

// Error is "what: the hub's answer".
func (e *HubError) Error() string { return e.What + ": " + e.Err.Error() }

// Unwrap returns the hub's error.
func (e *HubError) Unwrap() error { return e.Err }

// NotFoundError says that something the user named does not exist (a
// twin member --path names). It exits 4, like a device the hub does not know.
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// ChecksFailed is dmctl doctor's verdict when a check failed: exit 3 when
// the credential, its token or its permission failed (Auth), else 4.
type ChecksFailed struct {
	Failed []string // the failed checks' names
	Of     int      // how many checks ran
	Auth   bool
}

func (e *ChecksFailed) Error() string {
	return fmt.Sprintf("doctor: %d of %d checks failed (%s)", len(e.Failed), e.Of, strings.Join(e.Failed, ", "))
}

// ExitCode is the one place that maps an error to an exit code.
func ExitCode(err error) int {
	var (
		flagErr      *FlagError
		authInput    *auth.InputError
		hubInput     *iothub.InputError
		targetInput  *fleet.InputError
		connErr      *connstr.Error
		credErr      *auth.CredentialError
		targetsErr   *TargetsError
		thresholdErr *fleet.ThresholdError
		gateErr      *fleet.GateError
		checks       *ChecksFailed
		hubErr       *HubError
		notFound     *NotFoundError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrInterrupted), errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &thresholdErr), errors.As(err, &gateErr):
		return ExitThreshold
	case errors.As(err, &checks):
		if checks.Auth {
			return ExitAuth
		}
		return ExitTargets
	case errors.Is(err, ErrCancelled):
		return ExitUsage
	case errors.As(err, &flagErr), errors.As(err, &authInput), errors.As(err, &hubInput), errors.As(err, &connErr), errors.As(err, &targetInput):
		return ExitUsage
	case errors.As(err, &credErr):
		return ExitAuth
	case errors.As(err, &targetsErr):
		if targetsErr.Summary.AllUnauthorized() {
			return ExitAuth
		}
		return ExitTargets
	case errors.As(err, &notFound):
		return ExitTargets
	case errors.As(err, &hubErr):
		switch iothub.KindOf(hubErr.Err) {
		case iothub.KindBadRequest:
			return ExitUsage
		case iothub.KindUnauthorized:
			return ExitAuth
		case iothub.KindNotFound:
			return ExitTargets
		}
	}
	return ExitError
}

// IsCobraUsageError recognises the usage errors cobra returns as plain
// errors (unknown commands and the like).
func IsCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command ", "unknown flag: ", "unknown shorthand flag: ", "flag needs an argument: ",
		"invalid argument ", "required flag(s) "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// OneLine keeps an error message on one line, secrets redacted.
func OneLine(s string) string {
	return strings.Join(strings.Fields(redactDebugLine(s)), " ")
}

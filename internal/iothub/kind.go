package iothub

import (
	"context"
	"errors"
	"net"
)

// Kind is what a failed call means, the one error taxonomy of design.md §2:
// whether to resend (internal/retry), a target's outcome (internal/fleet)
// and the exit code (internal/cli) are short tables over it, so IoT Hub's
// HTTP statuses and six-digit codes are read here and nowhere else.
type Kind int

// The kinds, from KindOf.
const (
	KindNone           Kind = iota // no error
	KindThrottled                  // 429 (429000..429003, 429005): the hub refused before doing anything
	KindTooManyJobs                // 429004: the hub runs its maximum of jobs; a slot frees when one ends
	KindUnavailable                // 503: the hub is unavailable or busy
	KindOffline                    // 404103: the device is not connected or not listening for methods
	KindDeviceBusy                 // 403800: too many method calls in flight on the device
	KindTimeout                    // 504 (504101), 408, or the client's own deadline after the request was written
	KindServerError                // 500, 502: the hub failed; the device may have run the method
	KindUnauthorized               // 401, 403 (not a quota), or a credential that could not get a token
	KindQuota                      // 403001, 403002, 403003: a quota, not who is asking
	KindNotFound                   // 404: device, module or job not found
	KindBadRequest                 // 400: the hub refused the input
	KindConflict                   // 409, 412: exists already, or the etag no longer matches
	KindNotSent                    // the request never left: connection refused or reset
	KindConnectTimeout             // the request never left: the attempt's deadline passed before it was written
	KindLostAfterWrite             // the connection broke after the request was written: nobody knows whether it ran
	KindCanceled                   // the caller's context was cancelled (Ctrl-C)
	KindInput                      // the request was refused here, before sending (*InputError)
	KindOther                      // anything else
)

var kindNames = [...]string{"none", "throttled", "tooManyJobs", "unavailable", "offline", "deviceBusy", "timeout",
	"serverError", "unauthorized", "quota", "notFound", "badRequest", "conflict", "notSent", "connectTimeout", "lostAfterWrite",
	"canceled", "input", "other"}

// String names the kind, for tests and logs.
func (k Kind) String() string {
	if int(k) >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "other"
}

// IoT Hub codes that only KindOf needs to tell apart (the rest are in
// types.go, named where other code builds or reports them).
const (
	codeJobQuotaExceeded                    = 403001
	codeIotHubQuotaExceeded                 = 403002
	codeJobQuotaExceededDoc                 = 403003
	codeDeviceMaximumInflightMethodExceeded = 403800
)

// credentialFailure is implemented by errors of a credential that could not
// get a token (auth.CredentialError): the hub was never asked.
type credentialFailure interface{ CredentialFailure() bool }

// KindOf says what err means. It looks through wrapping.
func KindOf(err error) Kind {
	if err == nil {
		return KindNone
	}
	var cf credentialFailure
	if errors.As(err, &cf) && cf.CredentialFailure() {
		return KindUnauthorized
	}
	if errors.Is(err, context.Canceled) {
		return KindCanceled
	}
	if re, ok := AsResponseError(err); ok {
		return KindOfAnswer(re.StatusCode, re.ErrorCode)
	}
	var te *TransportError
	if errors.As(err, &te) {
		switch {
		case !te.RequestWritten && isDeadline(te.Err):
			return KindConnectTimeout
		case !te.RequestWritten:
			return KindNotSent
		case isDeadline(te.Err):
			return KindTimeout
		}
		return KindLostAfterWrite
	}
	var ie *InputError
	if errors.As(err, &ie) {
		return KindInput
	}
	if isDeadline(err) {
		return KindTimeout
	}
	return KindOther
}

// KindOfAnswer is KindOf for the hub's answer: an HTTP status and an IoT
// Hub error code, either of which may be 0 (a device job's record carries
// only the code).
func KindOfAnswer(status, code int) Kind {
	class := status
	if code >= 100000 && code <= 999999 {
		class = code / 1000
	}
	is := func(s int) bool { return status == s || class == s }
	switch {
	case code == CodeMaxActiveJobCountExceeded:
		return KindTooManyJobs
	case is(429):
		return KindThrottled
	case is(503):
		return KindUnavailable
	case code == CodeDeviceNotOnline:
		return KindOffline
	case code == codeDeviceMaximumInflightMethodExceeded:
		return KindDeviceBusy
	case is(504), is(408):
		return KindTimeout
	case is(500), is(502):
		return KindServerError
	case is(401):
		return KindUnauthorized
	case is(403):
		switch code {
		case codeJobQuotaExceeded, codeIotHubQuotaExceeded, codeJobQuotaExceededDoc:
			return KindQuota
		}
		return KindUnauthorized
	case is(404):
		return KindNotFound
	case is(400):
		return KindBadRequest
	case is(409), is(412):
		return KindConflict
	}
	return KindOther
}

// isDeadline reports a client-side deadline: a context's or the network's.
func isDeadline(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Package fleet holds what a run is about and what it produced: targets, the
// runner that invokes a method on each target through the one retry owner,
// per-target results in their stable JSON shape, and the summary. It never
// prints; internal/output renders what it returns.
package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/jsontext"

	"github.com/dmctl/dmctl/internal/iothub"
)

// Target is one device, or one module on a device, to invoke a method on.
type Target struct {
	DeviceID string
	ModuleID string // empty: the device itself
}

// String is "device" or "device/module", as the name printer shows it.
func (t Target) String() string {
	if t.ModuleID == "" {
		return t.DeviceID
	}
	return t.DeviceID + "/" + t.ModuleID
}

// Outcome is what happened to one target, in one word a script can match on.
type Outcome string

// The outcomes, spelled as they appear in JSON (design.md §3).
const (
	OutcomeSucceeded    Outcome = "succeeded"    // the device answered with an ok status
	OutcomeFailed       Outcome = "failed"       // the device answered with a status that is not ok
	OutcomeOffline      Outcome = "offline"      // 404103: the device is not connected or not listening for methods
	OutcomeTimeout      Outcome = "timeout"      // 504101 or a client-side timeout: no answer in time
	OutcomeThrottled    Outcome = "throttled"    // 429 (or too many in-flight methods): the hub refused for load
	OutcomeUnauthorized Outcome = "unauthorized" // 401/403 or the credential could not produce a token
	OutcomeNotFound     Outcome = "notFound"     // 404001/404010: no such device or module
	OutcomeError        Outcome = "error"        // anything else: bad request, server error, connection failure
	OutcomeSkipped      Outcome = "skipped"      // not sent, or only sent where the device cannot have run it; --resume runs it
	// OutcomeUnknown: the request reached (or may have reached) the hub and
	// no answer came back: the connection was lost after it was written, the
	// run was interrupted with the call in flight, or dmctl was killed with
	// the call in flight (found by --resume in the journal). The device may
	// have run the method, so it is not resent without --idempotent.
	OutcomeUnknown Outcome = "unknown"
	// OutcomeWaitFailed: the method succeeded, then the device reported a
	// failure while dmctl waited for the outcome (--wait, --fail-if), or its
	// twin could not be read.
	OutcomeWaitFailed Outcome = "waitFailed"
	// OutcomeWaitTimeout: the method succeeded, but the awaited outcome was
	// not reported within --wait-timeout (or the wait was interrupted).
	OutcomeWaitTimeout Outcome = "waitTimeout"
	// OutcomeDrifted: dmctl apply did not invoke the target because its
	// twin changed (version or etag) since the plan recorded it; a new plan,
	// or --allow-drift, runs it.
	OutcomeDrifted Outcome = "drifted"
)

// Outcomes lists every outcome in the order summaries show them.
var Outcomes = []Outcome{OutcomeSucceeded, OutcomeFailed, OutcomeOffline, OutcomeTimeout, OutcomeThrottled,
	OutcomeUnauthorized, OutcomeNotFound, OutcomeError, OutcomeUnknown, OutcomeWaitFailed, OutcomeWaitTimeout, OutcomeDrifted, OutcomeSkipped}

// Result is what happened to one target. Its JSON form is public API used by
// the json and jsonl printers (and later journals and --resume): camelCase,
// additive changes only.
type Result struct {
	DeviceID string  `json:"deviceId"`
	ModuleID string  `json:"moduleId,omitempty"`
	Method   string  `json:"method"`
	Outcome  Outcome `json:"outcome"`
	// Status is the status the device answered with; nil when it did not answer.
	Status *int `json:"status,omitempty"`
	// Payload is the JSON the device answered with (possibly null); absent when it did not answer.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Error is why the hub gave no device answer; nil when the device answered.
	Error *ResultError `json:"error,omitempty"`
	// Attempts is how many times the call was sent: 0 for targets never
	// sent; a skipped target may have attempts whose answers prove the
	// device did not run the method (429, 503).
	Attempts int `json:"attempts"`
	// StartTime is when the first attempt started, UTC.
	StartTime time.Time `json:"startTime"`
	// DurationMs is the wall time of all attempts and the waits between them, in milliseconds.
	DurationMs float64 `json:"durationMs"`
	// WaitValue holds, after a wait for the outcome (--wait, --wait-until),
	// the last values seen of the twin properties waited on, by dotted path;
	// absent without a wait.
	WaitValue json.RawMessage `json:"waitValue,omitempty"`
	// WaitMs is how long the wait for the outcome took, in milliseconds;
	// absent without a wait.
	WaitMs float64 `json:"waitMs,omitempty"`
	// Resolved says how a call whose answer was lost (504101, or the
	// connection lost after the request was sent) was settled from the
	// device's twin under a wait: ResolvedStarted (the method had started:
	// the wait went on) or ResolvedNotRun (it had not: the call was resent);
	// absent otherwise.
	Resolved string `json:"resolved,omitempty"`
}

// The values of Result.Resolved.
const (
	ResolvedStarted = "started"
	ResolvedNotRun  = "notRun"
)

// Target returns the target the result is about.
func (r Result) Target() Target { return Target{DeviceID: r.DeviceID, ModuleID: r.ModuleID} }

// Duration is DurationMs as a time.Duration.
func (r Result) Duration() time.Duration {
	return time.Duration(r.DurationMs * float64(time.Millisecond))
}

// MarshalJSON writes StartTime as RFC 3339 with nanoseconds in UTC whatever
// its location, so results compare and sort as text.
func (r Result) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(nil)
}

// AppendJSON appends r's JSON form (the one MarshalJSON returns) to b. It
// writes the fields by hand: -o jsonl and journals write one result per
// call, and reflection was a measurable share of a fleet run's CPU. The
// bytes are those encoding/json writes for the struct with HTML escaping
// off (a payload's < > & stay as the device sent them); a test holds the
// two to the same output.
func (r Result) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"deviceId":`...)
	b = jsontext.AppendString(b, r.DeviceID)
	if r.ModuleID != "" {
		b = append(b, `,"moduleId":`...)
		b = jsontext.AppendString(b, r.ModuleID)
	}
	b = append(b, `,"method":`...)
	b = jsontext.AppendString(b, r.Method)
	b = append(b, `,"outcome":`...)
	b = jsontext.AppendString(b, string(r.Outcome))
	if r.Status != nil {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(*r.Status), 10)
	}
	if len(r.Payload) > 0 {
		b = append(b, `,"payload":`...)
		buf := bytes.NewBuffer(b)
		if err := json.Compact(buf, r.Payload); err != nil {
			return nil, fmt.Errorf("json: error calling MarshalJSON for type json.RawMessage: %w", err)
		}
		b = buf.Bytes()
	}
	if e := r.Error; e != nil {
		b = append(b, `,"error":{`...)
		if e.HTTPStatus != 0 {
			b = append(b, `"httpStatus":`...)
			b = strconv.AppendInt(b, int64(e.HTTPStatus), 10)
			b = append(b, ',')
		}
		if e.Code != 0 {
			b = append(b, `"code":`...)
			b = strconv.AppendInt(b, int64(e.Code), 10)
			b = append(b, ',')
		}
		if e.CodeName != "" {
			b = append(b, `"codeName":`...)
			b = jsontext.AppendString(b, e.CodeName)
			b = append(b, ',')
		}
		b = append(b, `"message":`...)
		b = jsontext.AppendString(b, e.Message)
		if e.TrackingID != "" {
			b = append(b, `,"trackingId":`...)
			b = jsontext.AppendString(b, e.TrackingID)
		}
		if e.RequestID != "" {
			b = append(b, `,"requestId":`...)
			b = jsontext.AppendString(b, e.RequestID)
		}
		b = append(b, '}')
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(r.Attempts), 10)
	b = append(b, `,"startTime":"`...)
	b = r.StartTime.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","durationMs":`...)
	b = appendJSONFloat(b, r.DurationMs)
	if len(r.WaitValue) > 0 {
		b = append(b, `,"waitValue":`...)
		buf := bytes.NewBuffer(b)
		if err := json.Compact(buf, r.WaitValue); err != nil {
			return nil, fmt.Errorf("json: error calling MarshalJSON for type json.RawMessage: %w", err)
		}
		b = buf.Bytes()
	}
	if r.WaitMs != 0 {
		b = append(b, `,"waitMs":`...)
		b = appendJSONFloat(b, r.WaitMs)
	}
	if r.Resolved != "" {
		b = append(b, `,"resolved":`...)
		b = jsontext.AppendString(b, r.Resolved)
	}
	return append(b, '}'), nil
}

// appendJSONFloat writes f as encoding/json does.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		f = 0 // never produced; encoding/json would fail
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// ResultError is the hub's error (or the transport's) for a target that got
// no device answer. Secrets never appear in it.
type ResultError struct {
	HTTPStatus int    `json:"httpStatus,omitempty"` // 0 when no HTTP answer came back
	Code       int    `json:"code,omitempty"`       // six-digit IoT Hub error code, 0 when none
	CodeName   string `json:"codeName,omitempty"`   // e.g. DeviceNotOnline
	Message    string `json:"message"`
	TrackingID string `json:"trackingId,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
}

// String is the error on one line: HTTP status, IoT Hub code, message,
// tracking id.
func (e *ResultError) String() string {
	var b strings.Builder
	if e.HTTPStatus != 0 {
		b.WriteString(strconv.Itoa(e.HTTPStatus))
	}
	if code := e.CodeText(); code != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(code)
	}
	if e.Message != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(redactedLine(e.Message))
	}
	if e.TrackingID != "" {
		b.WriteString(" (tracking id " + e.TrackingID + ")")
	}
	return b.String()
}

// CodeText is "404103 DeviceNotOnline", "404103", "DeviceNotOnline" or "".
func (e *ResultError) CodeText() string {
	switch {
	case e.Code != 0 && e.CodeName != "":
		return strconv.Itoa(e.Code) + " " + e.CodeName
	case e.Code != 0:
		return strconv.Itoa(e.Code)
	default:
		return e.CodeName
	}
}

// ErrorFrom turns a call's error into a ResultError. A *iothub.ResponseError
// keeps its fields; anything else becomes its message on one line.
func ErrorFrom(err error) *ResultError {
	if err == nil {
		return nil
	}
	if re, ok := iothub.AsResponseError(err); ok {
		return &ResultError{
			HTTPStatus: re.StatusCode,
			Code:       re.ErrorCode,
			CodeName:   re.ErrorCodeName,
			Message:    redactedLine(re.Message),
			TrackingID: re.TrackingID,
			RequestID:  re.RequestID,
		}
	}
	return &ResultError{Message: redactedLine(err.Error())}
}

// NewResultError is a ResultError with a message from anywhere (the hub's
// job records, a wait's reason): put on one line and redacted as ErrorFrom's.
func NewResultError(code int, codeName, message string) *ResultError {
	return &ResultError{Code: code, CodeName: codeName, Message: redactedLine(message)}
}

// redactedLine is a message as results hold it: on one line (whitespace
// runs, newlines included, collapsed) and with anything that looks like a
// secret redacted. Results reach stdout and journals, so every message that
// is not a constant of this package goes through it (ErrorFrom,
// NewResultError).
func redactedLine(s string) string { return strings.Join(strings.Fields(connstr.Redact(s)), " ") }

// OutcomeOf is the one place that decides a target's outcome from a call's
// answer or error. ok says which device statuses count as success (the zero
// StatusSet means any 2xx).
func OutcomeOf(res iothub.MethodResult, err error, ok StatusSet) Outcome {
	if err == nil {
		if ok.Contains(res.Status) {
			return OutcomeSucceeded
		}
		return OutcomeFailed
	}
	return OutcomeOfKind(iothub.KindOf(err))
}

// OutcomeOfKind is the outcome of a call that failed with an error of kind
// k (iothub.KindOf): a table over the one error taxonomy.
func OutcomeOfKind(k iothub.Kind) Outcome {
	switch k {
	case iothub.KindOffline:
		return OutcomeOffline
	case iothub.KindTimeout, iothub.KindConnectTimeout:
		return OutcomeTimeout
	case iothub.KindThrottled, iothub.KindDeviceBusy, iothub.KindTooManyJobs:
		return OutcomeThrottled
	case iothub.KindNotFound:
		return OutcomeNotFound
	case iothub.KindUnauthorized:
		return OutcomeUnauthorized
	case iothub.KindLostAfterWrite:
		return OutcomeUnknown // the device may have run it; nobody can tell
	}
	return OutcomeError
}

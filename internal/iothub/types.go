// Package iothub is a client for the Azure IoT Hub service REST API (direct
// methods, device query, twins, jobs) built on an azcore pipeline. It makes
// exactly one attempt per call: retries belong to internal/retry.
package iothub

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultAPIVersion is the api-version every maintained service SDK sends.
const DefaultAPIVersion = "2021-04-12"

// TokenScope is the Entra ID scope for IoT Hub data-plane calls.
const TokenScope = "https://iothubs.azure.net/.default"

// Limits of a direct method call (iothub-contract.md §1.3).
const (
	MinResponseTimeout     = 5 * time.Second
	MaxResponseTimeout     = 300 * time.Second
	DefaultResponseTimeout = 30 * time.Second
	MaxConnectTimeout      = 300 * time.Second
	MaxPayloadBytes        = 128 * 1024
	// WireTime is added to response+connect timeouts for the client-side
	// HTTP timeout, as the C# SDK does.
	WireTime = 15 * time.Second
)

// IoT Hub error codes dmctl branches on (iothub-contract.md §1.6).
const (
	CodeArgumentInvalid          = 400004
	CodeIotHubUnauthorizedAccess = 401002
	CodeIotHubUnauthorized       = 401003
	CodeDeviceNotFound           = 404001
	CodeJobNotFound              = 404002
	CodeModuleNotFound           = 404010
	CodeDeviceNotOnline          = 404103
	CodePreconditionFailed       = 412001
	CodeThrottlingException      = 429001
	CodeServerError              = 500001
	CodeServiceUnavailable       = 503001
	CodeGatewayTimeout           = 504101
)

// MethodRequest is a CloudToDeviceMethod: what to invoke and how long the hub
// waits for the device.
type MethodRequest struct {
	MethodName string
	// Payload is any JSON value; nil sends JSON null.
	Payload json.RawMessage
	// ResponseTimeout is how long the hub waits for the device's answer
	// (whole seconds are sent; 0 means DefaultResponseTimeout).
	ResponseTimeout time.Duration
	// ConnectTimeout is how long the hub waits for an offline device to
	// connect (0: the device must already be connected).
	ConnectTimeout time.Duration
}

// MethodResult is the device's answer: HTTP 200 from the hub with the status
// and payload the device returned. A device status of 500 is still a result,
// not an error.
type MethodResult struct {
	Status    int             `json:"status"`
	Payload   json.RawMessage `json:"payload"`
	RequestID string          `json:"-"` // x-ms-request-id of the response, when the hub sent one
}

// ResponseError is any non-success HTTP answer from the hub, parsed from
// every body shape IoT Hub uses (iothub-contract.md §1.7).
type ResponseError struct {
	StatusCode    int           // HTTP status
	ErrorCode     int           // six-digit IoT Hub code, 0 when the hub gave none
	ErrorCodeName string        // e.g. "DeviceNotOnline" (iothub-errorcode header or legacy body)
	Message       string        // the hub's message, secrets redacted
	TrackingID    string        // the hub's tracking id
	RequestID     string        // x-ms-request-id
	RetryAfter    time.Duration // Retry-After, 0 when absent
}

func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hub answered %d", e.StatusCode)
	switch {
	case e.ErrorCode != 0 && e.ErrorCodeName != "":
		fmt.Fprintf(&b, " %d %s", e.ErrorCode, e.ErrorCodeName)
	case e.ErrorCode != 0:
		fmt.Fprintf(&b, " %d", e.ErrorCode)
	case e.ErrorCodeName != "":
		fmt.Fprintf(&b, " %s", e.ErrorCodeName)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.TrackingID != "" {
		fmt.Fprintf(&b, " (tracking id %s)", e.TrackingID)
	}
	return b.String()
}

// TransportError is a call that got no HTTP answer: the connection failed,
// was reset, or timed out. RequestWritten tells whether the whole request had
// been written before it failed; if so the device may have run the method.
type TransportError struct {
	Err            error
	RequestWritten bool
}

func (e *TransportError) Error() string {
	if e.RequestWritten {
		return "connection lost after the request was sent: " + e.Err.Error()
	}
	return "could not send the request: " + e.Err.Error()
}

func (e *TransportError) Unwrap() error { return e.Err }

// AsResponseError returns err's *ResponseError, if any.
func AsResponseError(err error) (*ResponseError, bool) {
	var re *ResponseError
	ok := errors.As(err, &re)
	return re, ok
}

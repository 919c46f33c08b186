package registry

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// Options configure a Registry.
type Options struct {
	// HostName is the hub host name as written in connection strings,
	// e.g. "127.0.0.1:8443".
	HostName string
	// Seed drives every simulated draw (offline sets, latency, life-cycle
	// failures, flapping, faults) unless a fleet file sets its own seed.
	Seed int64
	// Now returns the current time for timestamps; nil means time.Now.
	// Delays (latency, downtime, steps) always run on real timers.
	Now func() time.Time
	// Faults are the global fault shares (from flags). Fleet-file groups
	// override them per group and per method.
	Faults sim.FaultRates
	// SecondaryKey, when set, gives an identity's secondary key, derived
	// when asked rather than kept per identity (a million devices would
	// hold 32 MB more); nil means identities have none.
	SecondaryKey func(deviceID, moduleID string) []byte
}

// Fault is the outcome of Registry.Fault: which injected fault, if any, hits
// a method call.
type Fault int

// Injected faults, in the order of sim.FaultRates (sim.ResolvedFaults.Pick
// returns int(f)). The server answers the first four itself without calling
// InvokeMethod; for FaultDrop it calls InvokeMethod (the device receives the
// method) and then closes the connection without answering.
const (
	FaultNone           Fault = iota
	FaultThrottle             // 429 / 429001
	FaultServerError          // 500 / 500001
	FaultUnavailable          // 503 / 503001
	FaultGatewayTimeout       // 504 / 504101, without delivering
	FaultDrop                 // deliver, then drop the connection
)

// String returns the fault's name as used in fleet files and stats.
func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultThrottle:
		return "throttle"
	case FaultServerError:
		return "serverError"
	case FaultUnavailable:
		return "unavailable"
	case FaultGatewayTimeout:
		return "gatewayTimeout"
	case FaultDrop:
		return "drop"
	}
	return "unknown"
}

// Sentinel errors. The server maps them to IoT Hub error codes with errors.Is.
var (
	// ErrDeviceNotFound: 404 / 404001.
	ErrDeviceNotFound = errors.New("device not found")
	// ErrModuleNotFound: 404 / 404010.
	ErrModuleNotFound = errors.New("module not found")
	// ErrDeviceNotOnline: 404 / 404103 (not connected, or not subscribed to
	// methods, within the connect timeout).
	ErrDeviceNotOnline = errors.New("device is not online or has not subscribed to direct methods")
	// ErrTimeout: 504 / 504101 (no answer within the response timeout).
	ErrTimeout = errors.New("timed out waiting for the response from device")
	// ErrPreconditionFailed: 412 / 412001 (If-Match etag mismatch).
	ErrPreconditionFailed = errors.New("precondition failed: etag mismatch")
	// ErrInvalidPatch: 400 (a twin patch the hub refuses; the wrapped message
	// says why).
	ErrInvalidPatch = errors.New("invalid twin patch")
	// ErrAlreadyExists: 409 / 409001 (an identity registered twice).
	ErrAlreadyExists = errors.New("device already exists")
)

// MethodHandler answers direct methods for an attached (real) device. It must
// honour ctx: InvokeMethod gives up when ctx ends (response timeout or the
// caller going away) whether or not the handler has returned.
type MethodHandler func(ctx context.Context, method string, payload json.RawMessage) (status int, response json.RawMessage, err error)

// Delivery is one method call that reached a device (simulated or attached).
type Delivery struct {
	Time      time.Time `json:"time"`
	DeviceID  string    `json:"deviceId"`
	ModuleID  string    `json:"moduleId,omitempty"`
	Method    string    `json:"method"`
	RequestID string    `json:"requestId,omitempty"`
	// Status is the device's status, 0 when the hub got no answer in time
	// (response timeout, caller gone, handler error).
	Status int `json:"status"`
}

type requestIDKey struct{}

// WithRequestID returns a context carrying the request id that InvokeMethod
// copies into Delivery.RequestID.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Stats are the registry's counters (ground truth for tests and the admin
// endpoint).
type Stats struct {
	Devices    int `json:"devices"`
	Modules    int `json:"modules"`
	Simulated  int `json:"simulated"`  // simulated devices
	Registered int `json:"registered"` // devices from Register
	// Connected counts devices and modules currently connected (simulated
	// and online, or attached).
	Connected int `json:"connected"`
	Attached  int `json:"attached"` // devices and modules with a handler

	MethodsInvoked   int64 `json:"methodsInvoked"`   // InvokeMethod calls
	MethodsInFlight  int64 `json:"methodsInFlight"`  // InvokeMethod calls not returned yet
	PeakInFlight     int64 `json:"peakInFlight"`     // the most InvokeMethod calls at once since start
	MethodsDelivered int64 `json:"methodsDelivered"` // calls that reached a device
	// DeliveredByMethod and DeliveredByStatus split MethodsDelivered.
	DeliveredByMethod map[string]int64 `json:"deliveredByMethod"`
	DeliveredByStatus map[int]int64    `json:"deliveredByStatus"`
	NotFound          int64            `json:"notFound"`  // ErrDeviceNotFound/ErrModuleNotFound
	NotOnline         int64            `json:"notOnline"` // ErrDeviceNotOnline
	Timeouts          int64            `json:"timeouts"`  // ErrTimeout
	// Faults counts faults drawn by Fault, by name ("throttle", ...).
	Faults map[string]int64 `json:"faults"`

	TwinReads       int64 `json:"twinReads"`
	TwinUpdates     int64 `json:"twinUpdates"`     // PatchTwin and ReplaceTwin that changed a twin
	ReportedUpdates int64 `json:"reportedUpdates"` // reported patches (devices and simulation)
}

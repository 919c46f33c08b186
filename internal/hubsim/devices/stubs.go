package devices

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

var errNotImplemented = errors.New("devices: not implemented yet")

// Registry holds device and module identities, their twins, the simulated
// fleet and attached (real) devices.
type Registry struct {
	opts Options
}

// NewRegistry returns an empty registry.
func NewRegistry(opts Options) *Registry { return &Registry{opts: opts} }

// GenerateFleet returns the default fleet of n devices sim-000001...
func GenerateFleet(n int) *FleetSpec {
	return &FleetSpec{Groups: []Group{{Name: "sim", IDPattern: "sim-%06d", Count: n}}}
}

// LoadFleetFile reads a fleet file (JSON or YAML).
func LoadFleetFile(path string) (*FleetSpec, error) { return nil, errNotImplemented }

// Apply creates the simulated devices of spec.
func (r *Registry) Apply(spec *FleetSpec) error { return errNotImplemented }

// Register adds identities without simulation.
func (r *Registry) Register(ids ...string) error { return errNotImplemented }

// Key returns the primary key of a device or module.
func (r *Registry) Key(deviceID, moduleID string) ([]byte, bool) { return nil, false }

// SetKey replaces the primary key of a device or module.
func (r *Registry) SetKey(deviceID, moduleID string, key []byte) error { return errNotImplemented }

// DeviceIDs returns the sorted device ids.
func (r *Registry) DeviceIDs(registeredOnly bool) []string { return nil }

// Count returns the number of devices and modules.
func (r *Registry) Count() (devices, modules int) { return 0, 0 }

// InvokeMethod invokes a direct method.
func (r *Registry) InvokeMethod(ctx context.Context, deviceID, moduleID, method string, payload json.RawMessage,
	connectTimeout, responseTimeout time.Duration) (status int, response json.RawMessage, err error) {
	return 0, nil, errNotImplemented
}

// Fault draws the injected fault for a call.
func (r *Registry) Fault(deviceID, moduleID, method string) Fault { return FaultNone }

// Twin returns a twin document.
func (r *Registry) Twin(deviceID, moduleID string) (map[string]any, error) {
	return nil, errNotImplemented
}

// PatchTwin merges tags and desired properties.
func (r *Registry) PatchTwin(deviceID, moduleID string, patch map[string]any, ifMatch string) (map[string]any, error) {
	return nil, errNotImplemented
}

// ReplaceTwin replaces tags and desired properties.
func (r *Registry) ReplaceTwin(deviceID, moduleID string, twin map[string]any, ifMatch string) (map[string]any, error) {
	return nil, errNotImplemented
}

// Each visits twins in a stable order after cursor.
func (r *Registry) Each(collection, cursor string, fn func(cursor string, doc map[string]any) bool) {}

// Attach installs a method handler for a real device.
func (r *Registry) Attach(deviceID, moduleID string, h MethodHandler) (detach func(), err error) {
	return nil, errNotImplemented
}

// SetMethodsSubscribed records whether an attached device subscribed to methods.
func (r *Registry) SetMethodsSubscribed(deviceID, moduleID string, subscribed bool) {}

// UpdateReported merges a reported-properties patch.
func (r *Registry) UpdateReported(deviceID, moduleID string, patch map[string]any) (version int64, err error) {
	return 0, errNotImplemented
}

// OnDesired subscribes to desired-property changes.
func (r *Registry) OnDesired(deviceID, moduleID string, fn func(patch map[string]any)) (cancel func()) {
	return func() {}
}

// OnDelivered registers a callback for every delivered method.
func (r *Registry) OnDelivered(fn func(Delivery)) {}

// Stats returns the counters.
func (r *Registry) Stats() Stats { return Stats{} }

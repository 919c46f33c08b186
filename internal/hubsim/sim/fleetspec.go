package sim

import (
	"encoding/json"
	"time"
)

// FleetSpec describes a simulated fleet: groups of devices with the same
// behaviour. Build one with GenerateFleet or LoadFleetFile (or by hand, then
// Validate) and pass it to registry.Registry.Apply. The file format is
// documented on LoadFleetFile and in fleetfile.md.
type FleetSpec struct {
	// Seed, when set, replaces registry.Options.Seed for everything
	// simulated about these groups (offline sets, latency, failures,
	// flapping, faults).
	Seed   *int64  `json:"seed,omitempty"`
	Groups []Group `json:"groups"`
	// CACerts are PEM files of CA certificates the hub trusts for devices
	// whose authentication is certificateAuthority (like hubsim --ca-cert).
	// LoadFleetFile makes paths relative to the fleet file absolute.
	CACerts []string `json:"caCerts,omitempty"`
}

// Group is a set of devices sharing tags, modules and behaviour.
type Group struct {
	Name string `json:"name"`
	// IDPattern is a fmt pattern with exactly one integer verb (%d, %04d,
	// %x...) receiving 1..Count, e.g. "therm-%04d".
	IDPattern string         `json:"idPattern"`
	Count     int            `json:"count"`
	Tags      map[string]any `json:"tags,omitempty"`
	// Desired and Reported are the initial twin properties.
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
	// Modules are module ids created on every device of the group. Modules
	// share their device's connection and method behaviour.
	Modules    []string              `json:"modules,omitempty"`
	Connection Connection            `json:"connection"`
	Methods    map[string]MethodSpec `json:"methods,omitempty"`
	Faults     *FaultSpec            `json:"faults,omitempty"`
	// Authentication is how the group's devices authenticate on the device
	// endpoint (nil: SAS); modules always use SAS.
	Authentication *Auth `json:"authentication,omitempty"`
}

// Connection is a group's connection behaviour.
type Connection struct {
	// OnlineShare is the share of devices that are online (default 1).
	// Exactly round((1-OnlineShare)*Count) devices, picked by the seed, are
	// permanently offline.
	OnlineShare *float64 `json:"onlineShare,omitempty"`
	// Flapping makes the other devices alternate between online and
	// offline with exponentially distributed periods.
	Flapping *Flapping `json:"flapping,omitempty"`
}

// Flapping gives the mean online and offline periods.
type Flapping struct {
	MeanUp   Duration `json:"meanUp"`
	MeanDown Duration `json:"meanDown"`
}

// MethodSpec is the behaviour of one method (or of "*", every method not
// listed). Unset fields fall back to "*", then to the defaults.
type MethodSpec struct {
	Latency *Latency `json:"latency,omitempty"`
	// Status is the device status (default 200). A life-cycle method
	// (reboot, firmwareUpdate, factoryReset) only starts its life cycle
	// when the status is 2xx.
	Status *int `json:"status,omitempty"`
	// Payload is the device's response payload (any JSON).
	Payload json.RawMessage `json:"payload,omitempty"`
	// Downtime is how long reboot and factoryReset keep the device offline
	// (default 5s).
	Downtime *Duration `json:"downtime,omitempty"`
	// FailureRate is the share of firmware updates that fail (0..1).
	FailureRate *float64 `json:"failureRate,omitempty"`
	// StepDuration is the time between firmware-update states (default 1s).
	StepDuration *Duration `json:"stepDuration,omitempty"`
}

// Latency is a device response-time distribution.
type Latency struct {
	// Dist is "fixed", "uniform" or "normal".
	Dist string `json:"dist"`
	// Value is the fixed latency.
	Value Duration `json:"value,omitempty"`
	// Min and Max bound uniform (required) and normal (optional clip).
	Min *Duration `json:"min,omitempty"`
	Max *Duration `json:"max,omitempty"`
	// Mean and StdDev shape normal; Mean defaults to (Min+Max)/2 and
	// StdDev to (Max-Min)/6 when both bounds are given.
	Mean   *Duration `json:"mean,omitempty"`
	StdDev *Duration `json:"stddev,omitempty"`
}

// FaultSpec overrides the global fault shares for a group; Methods overrides
// them per method. Unset shares fall back to the next level (method, group,
// global).
type FaultSpec struct {
	Throttle       *float64              `json:"throttle,omitempty"`
	ServerError    *float64              `json:"serverError,omitempty"`
	Unavailable    *float64              `json:"unavailable,omitempty"`
	GatewayTimeout *float64              `json:"gatewayTimeout,omitempty"`
	Drop           *float64              `json:"drop,omitempty"`
	Methods        map[string]*FaultSpec `json:"methods,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("5ms", "1m30s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

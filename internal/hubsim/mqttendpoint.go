package hubsim

import (
	hubmqtt "github.com/dmctl/dmctl/internal/hubsim/transport/mqtt"
)

// newMQTTEndpoint is the default device endpoint: MQTT 3.1.1 over TLS (and
// MQTT over WebSocket at /$iothub/websocket on the same port) with IoT Hub's
// semantics (internal/hubsim/transport/mqtt).
func newMQTTEndpoint(c DeviceEndpointConfig) (DeviceEndpoint, error) {
	return hubmqtt.New(hubmqtt.Config{
		Registry:  c.Registry,
		TLS:       c.TLS,
		HostName:  c.HostName,
		Log:       c.Log,
		Verbose:   c.Verbose,
		Sessions:  c.SessionStore,
		ClientCAs: c.ClientCAs,
	})
}

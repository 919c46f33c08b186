// Package transport is what hubsim asks of a device endpoint: a protocol
// (MQTT today, in transport/mqtt; AMQP or HTTPS device APIs later) served on
// its own listener over the same registry, identity checks and hub
// certificate. The server (package hubsim) lists the endpoints it serves,
// binds a listener for each and hands it to Serve; the rest of hubsim does
// not know which protocols there are.
package transport

import (
	"crypto/tls"
	"crypto/x509"
	"log"
	"net"

	"github.com/dmctl/dmctl/internal/hubsim/registry"
)

// Endpoint serves devices on a listener.
type Endpoint interface {
	// Serve accepts connections on l until l is closed.
	Serve(l net.Listener) error
	// Close stops the endpoint and drops its connections.
	Close() error
}

// Config is what an endpoint gets to work with.
type Config struct {
	Registry *registry.Registry
	TLS      *tls.Config // the hub's server certificate
	HostName string      // the hub host name devices put in their username and sr
	Log      *log.Logger
	Verbose  bool
	// Dir is the hub's state directory: an endpoint keeps there what a hub
	// keeps across restarts (the MQTT sessions of clean-session-0 clients).
	Dir string
	// ClientCAs are the CA certificates trusted for certificateAuthority
	// devices (nil: none).
	ClientCAs *x509.CertPool
}

// New makes an endpoint of one transport.
type New func(Config) (Endpoint, error)

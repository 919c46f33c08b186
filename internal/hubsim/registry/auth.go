package registry

import (
	"errors"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// Authentication types of an identity (sim's, named here for the registry's
// callers).
const (
	AuthSAS                  = sim.AuthSAS
	AuthSelfSigned           = sim.AuthSelfSigned
	AuthCertificateAuthority = sim.AuthCertificateAuthority
)

// ErrModuleX509 is SetAuth's answer for an X.509 type on a module: hubsim's
// modules authenticate with SAS only.
var ErrModuleX509 = errors.New("modules authenticate with SAS keys only in hubsim (X.509 is for devices)")

// Auth is how an identity authenticates on the device endpoint: sim.Auth,
// the type a fleet group's authentication has. The registry keeps each
// identity's (SetAuth, Registry.Auth).
type Auth = sim.Auth

// SetAuth sets how a device (moduleID "") or module authenticates, replacing
// what its fleet group says. An X.509 type on a module is ErrModuleX509.
func (r *Registry) SetAuth(deviceID, moduleID string, a Auth) error {
	if err := a.Check(); err != nil {
		return err
	}
	if moduleID != "" && a.X509() {
		return ErrModuleX509
	}
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return err
	}
	if a.Type == "" {
		a.Type = AuthSAS
	}
	id.mu.Lock()
	id.auth = &a
	id.mu.Unlock()
	return nil
}

// Auth returns how a device (moduleID "") or module authenticates: what
// SetAuth set, else its fleet group's authentication, else SAS. false when
// the identity does not exist.
func (r *Registry) Auth(deviceID, moduleID string) (Auth, bool) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return Auth{}, false
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.authLocked(), true
}

// authLocked is the identity's authentication (Type always set). Caller
// holds id.mu.
func (id *identity) authLocked() Auth {
	switch {
	case id.auth != nil:
		return *id.auth
	case id.moduleID == "" && id.grp != nil && id.grp.auth != nil:
		return *id.grp.auth
	}
	return Auth{Type: AuthSAS}
}

// x509DocsLocked overrides the SAS defaults of the registry document
// (Identity: authentication) and the twin (authenticationType,
// x509Thumbprint) for an X.509 identity: no symmetric keys, its type and
// thumbprints. Caller holds id.mu.
func (id *identity) x509DocsLocked(registry, twin map[string]any) {
	a := id.authLocked()
	if !a.X509() {
		return
	}
	if registry != nil {
		registry["authentication"] = map[string]any{
			"symmetricKey":   map[string]any{"primaryKey": nil, "secondaryKey": nil},
			"x509Thumbprint": a.ThumbprintDoc(),
			"type":           a.Type,
		}
	}
	if twin != nil {
		twin["authenticationType"] = a.Type
		twin["x509Thumbprint"] = a.ThumbprintDoc()
	}
}

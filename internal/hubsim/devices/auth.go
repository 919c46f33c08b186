package devices

import (
	"encoding/json"
	"errors"
	"fmt"

	hubid "github.com/dmctl/dmctl/internal/hubsim/identity"
)

// Authentication types of an identity, as IoT Hub's registry API names them
// (the Device object's authentication.type).
const (
	AuthSAS                  = "sas"                  // symmetric keys: a SAS token as MQTT password
	AuthSelfSigned           = "selfSigned"           // X.509, the client certificate's thumbprint is registered
	AuthCertificateAuthority = "certificateAuthority" // X.509, the client chain verifies to a trusted CA, leaf CN = device id
)

// ErrModuleX509 is SetAuth's answer for an X.509 type on a module: hubsim's
// modules authenticate with SAS only.
var ErrModuleX509 = errors.New("modules authenticate with SAS keys only in hubsim (X.509 is for devices)")

// Auth is how an identity authenticates on the device endpoint. The zero
// value is SAS. Thumbprints (selfSigned only) are SHA-1 (40 hex digits) or
// SHA-256 (64) of the certificate's DER bytes, in either case; the primary
// is required, the secondary optional.
type Auth struct {
	Type                string
	PrimaryThumbprint   string
	SecondaryThumbprint string
}

// X509 reports whether the identity authenticates with a client certificate.
func (a Auth) X509() bool {
	return a.Type == AuthSelfSigned || a.Type == AuthCertificateAuthority
}

// Check validates a. Errors name the registry API's field
// (type, x509Thumbprint.primaryThumbprint, ...), never a key.
func (a Auth) Check() error {
	switch a.Type {
	case "", AuthSAS, AuthCertificateAuthority:
		if a.PrimaryThumbprint != "" || a.SecondaryThumbprint != "" {
			t := a.Type
			if t == "" {
				t = AuthSAS
			}
			return fmt.Errorf("x509Thumbprint: only for type %s, not %s", AuthSelfSigned, t)
		}
	case AuthSelfSigned:
		if a.PrimaryThumbprint == "" {
			return errors.New("x509Thumbprint.primaryThumbprint: required for type " + AuthSelfSigned)
		}
		if _, err := hubid.ParseThumbprint(a.PrimaryThumbprint); err != nil {
			return fmt.Errorf("x509Thumbprint.primaryThumbprint: %w", err)
		}
		if a.SecondaryThumbprint != "" {
			if _, err := hubid.ParseThumbprint(a.SecondaryThumbprint); err != nil {
				return fmt.Errorf("x509Thumbprint.secondaryThumbprint: %w", err)
			}
		}
	default:
		return fmt.Errorf("type: %q is not %s, %s or %s", a.Type, AuthSAS, AuthSelfSigned, AuthCertificateAuthority)
	}
	return nil
}

// MarshalJSON writes a as the registry API's authentication object without
// its symmetricKey: {"type":...,"x509Thumbprint":{"primaryThumbprint":...,
// "secondaryThumbprint":...}} (null for thumbprints not set).
func (a Auth) MarshalJSON() ([]byte, error) {
	t := a.Type
	if t == "" {
		t = AuthSAS
	}
	return json.Marshal(map[string]any{"type": t, "x509Thumbprint": a.thumbprintDoc()})
}

// UnmarshalJSON reads what MarshalJSON writes (a registry API
// authentication object; symmetricKey, if present, is ignored). Check
// validates the values.
func (a *Auth) UnmarshalJSON(b []byte) error {
	var doc struct {
		Type           string `json:"type"`
		X509Thumbprint *struct {
			Primary   *string `json:"primaryThumbprint"`
			Secondary *string `json:"secondaryThumbprint"`
		} `json:"x509Thumbprint"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	*a = Auth{Type: doc.Type}
	if tp := doc.X509Thumbprint; tp != nil {
		if tp.Primary != nil {
			a.PrimaryThumbprint = *tp.Primary
		}
		if tp.Secondary != nil {
			a.SecondaryThumbprint = *tp.Secondary
		}
	}
	return nil
}

func (a Auth) thumbprintDoc() map[string]any {
	str := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return map[string]any{"primaryThumbprint": str(a.PrimaryThumbprint), "secondaryThumbprint": str(a.SecondaryThumbprint)}
}

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
			"x509Thumbprint": a.thumbprintDoc(),
			"type":           a.Type,
		}
	}
	if twin != nil {
		twin["authenticationType"] = a.Type
		twin["x509Thumbprint"] = a.thumbprintDoc()
	}
}

// authentication reads a fleet group's authentication, shaped as the
// registry API's: {type, x509Thumbprint: {primaryThumbprint,
// secondaryThumbprint}}. Validate checks the values.
func (p *parser) authentication(path string, v any) *Auth {
	m, ok := p.object(path, v, "type", "x509Thumbprint")
	if !ok {
		return nil
	}
	a := &Auth{}
	if v, ok := m["type"]; ok {
		a.Type, _ = p.str(join(path, "type"), v)
	} else {
		p.fail(join(path, "type"), "required (%s, %s or %s)", AuthSAS, AuthSelfSigned, AuthCertificateAuthority)
	}
	if v, ok := m["x509Thumbprint"]; ok {
		tp := join(path, "x509Thumbprint")
		if tm, ok := p.object(tp, v, "primaryThumbprint", "secondaryThumbprint"); ok {
			for _, f := range []struct {
				k   string
				dst *string
			}{{"primaryThumbprint", &a.PrimaryThumbprint}, {"secondaryThumbprint", &a.SecondaryThumbprint}} {
				if tv, ok := tm[f.k]; ok && tv != nil {
					*f.dst, _ = p.str(join(tp, f.k), tv)
				}
			}
		}
	}
	return a
}

// caCerts reads the fleet file's list of CA certificate files.
func (p *parser) caCerts(path string, v any) []string {
	list, ok := v.([]any)
	if !ok {
		p.fail(path, "must be an array of PEM file paths, not %s", kindOf(v))
		return nil
	}
	var out []string
	for i, e := range list {
		if s, ok := p.str(index(path, i), e); ok {
			out = append(out, s)
		}
	}
	return out
}

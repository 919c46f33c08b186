package sim

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
	return json.Marshal(map[string]any{"type": t, "x509Thumbprint": a.ThumbprintDoc()})
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

// ThumbprintDoc is a's registry API x509Thumbprint object:
// {"primaryThumbprint":...,"secondaryThumbprint":...}, null for thumbprints
// not set.
func (a Auth) ThumbprintDoc() map[string]any {
	str := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return map[string]any{"primaryThumbprint": str(a.PrimaryThumbprint), "secondaryThumbprint": str(a.SecondaryThumbprint)}
}

package mqtt

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/sas"
)

// Identity is the device (ModuleID "") or module a connection speaks for.
type Identity struct {
	DeviceID string
	ModuleID string
}

// ClientID is the MQTT client id of the identity: the device id, or
// "deviceId/moduleId" for a module.
func (id Identity) ClientID() string {
	if id.ModuleID == "" {
		return id.DeviceID
	}
	return id.DeviceID + "/" + id.ModuleID
}

// resourcePath is the identity's path in a SAS sr, after the host.
func (id Identity) resourcePath() string {
	if id.ModuleID == "" {
		return "devices/" + id.DeviceID
	}
	return "devices/" + id.DeviceID + "/modules/" + id.ModuleID
}

// AuthError says why a CONNECT was refused. Its text never contains a
// password, token or key.
type AuthError struct {
	Reason string
}

// Error returns the reason.
func (e *AuthError) Error() string { return "connection refused: " + e.Reason }

func authErrorf(format string, args ...any) error {
	return &AuthError{Reason: fmt.Sprintf(format, args...)}
}

// ParseClientID splits an MQTT client id into the device and, for
// "deviceId/moduleId", the module it names.
func ParseClientID(clientID string) (Identity, error) {
	if clientID == "" {
		return Identity{}, authErrorf("the client id is empty; it must be the device id (or deviceId/moduleId)")
	}
	dev, mod, hasMod := strings.Cut(clientID, "/")
	switch {
	case dev == "":
		return Identity{}, authErrorf("client id %q: the device id is empty", clientID)
	case hasMod && mod == "":
		return Identity{}, authErrorf("client id %q: the module id is empty", clientID)
	case strings.Contains(mod, "/"):
		return Identity{}, authErrorf("client id %q: expected deviceId or deviceId/moduleId", clientID)
	}
	return Identity{DeviceID: dev, ModuleID: mod}, nil
}

// keyFunc returns the primary and secondary keys of an identity (secondary
// nil when none), false when it is not registered.
type keyFunc func(deviceID, moduleID string) (primary, secondary []byte, ok bool)

// authFunc returns how an identity authenticates, false when it is not
// registered.
type authFunc func(deviceID, moduleID string) (registry.Auth, bool)

// authenticator checks CONNECT packets as IoT Hub does (iothub-contract.md
// §7.2): client id, username and a device or module SAS as password, or,
// for an X.509 identity, the client certificate of the TLS handshake and no
// password.
type authenticator struct {
	hosts   []string // the hub host name with and without its port
	key     keyFunc
	auth    authFunc                             // nil: every identity is SAS
	roots   *x509.CertPool                       // CAs trusted for certificateAuthority devices (nil: none)
	enabled func(deviceID, moduleID string) bool // nil: every identity is enabled
}

func newAuthenticator(hostName string, key keyFunc) *authenticator {
	a := &authenticator{key: key, hosts: []string{hostName}}
	if h, _, err := net.SplitHostPort(hostName); err == nil && h != "" {
		a.hosts = append(a.hosts, strings.Trim(h, "[]"), h)
	}
	return a
}

// hostPrefix returns the length of the hub host s starts with (followed by
// a '/'), or -1.
func (a *authenticator) hostPrefix(s string) int {
	best := -1
	for _, h := range a.hosts {
		if len(s) > len(h) && s[len(h)] == '/' && strings.EqualFold(s[:len(h)], h) && len(h) > best {
			best = len(h)
		}
	}
	return best
}

// check verifies a CONNECT's client id, username and password, and the
// client certificates of its TLS connection (chain, leaf first; nil when
// none), at now. It returns the identity and the expiry of its token (zero
// for X.509). A disabled device (or a module of one) is refused once its
// credentials are right, so only its holder learns it is disabled. Errors
// are *AuthError.
func (a *authenticator) check(clientID, username string, password []byte, chain []*x509.Certificate, now time.Time) (Identity, time.Time, error) {
	id, expiry, err := a.checkCredentials(clientID, username, password, chain, now)
	if err == nil && a.enabled != nil && !a.enabled(id.DeviceID, id.ModuleID) {
		return Identity{}, time.Time{}, authErrorf("device %q is disabled", id.DeviceID)
	}
	return id, expiry, err
}

func (a *authenticator) checkCredentials(clientID, username string, password []byte, chain []*x509.Certificate, now time.Time) (Identity, time.Time, error) {
	id, err := ParseClientID(clientID)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	if err := a.checkUsername(id, username); err != nil {
		return Identity{}, time.Time{}, err
	}
	if a.auth != nil {
		if au, ok := a.auth(id.DeviceID, id.ModuleID); ok && au.X509() {
			return id, time.Time{}, a.checkX509(id, au, password, chain, now)
		}
	}
	if len(password) == 0 {
		return Identity{}, time.Time{}, authErrorf("no password: it must be a SAS token for %s", id.resourcePath())
	}
	tok, err := sas.Parse(string(password))
	if err != nil {
		var pe *sas.ParseError
		if errors.As(err, &pe) {
			return Identity{}, time.Time{}, authErrorf("the password is not a SAS token: %s", pe.Reason)
		}
		return Identity{}, time.Time{}, authErrorf("the password is not a SAS token")
	}
	if tok.KeyName != "" {
		return Identity{}, time.Time{}, authErrorf("the token names a shared access policy (skn); the device endpoint takes device or module tokens only")
	}
	if !a.resourceMatches(tok.Resource, id) {
		return Identity{}, time.Time{}, authErrorf("the token's resource (sr) is not %s on this hub, nor a prefix of it", id.resourcePath())
	}
	key, key2, ok := a.key(id.DeviceID, id.ModuleID)
	if !ok {
		if id.ModuleID != "" {
			return Identity{}, time.Time{}, authErrorf("module %q of device %q is not registered", id.ModuleID, id.DeviceID)
		}
		return Identity{}, time.Time{}, authErrorf("device %q is not registered", id.DeviceID)
	}
	err = tok.Verify(key, now)
	if err != nil && !errors.Is(err, sas.ErrExpired) && len(key2) > 0 {
		err = tok.Verify(key2, now) // signed with the secondary key
	}
	switch {
	case errors.Is(err, sas.ErrExpired):
		return Identity{}, time.Time{}, authErrorf("the token has expired")
	case err != nil:
		return Identity{}, time.Time{}, authErrorf("the token's signature does not match the key of %s", id.resourcePath())
	}
	return id, tok.Expiry, nil
}

// checkX509 authenticates an X.509 identity (identity.CheckThumbprint or
// identity.CheckCA): a client certificate and no password.
func (a *authenticator) checkX509(id Identity, au registry.Auth, password []byte, chain []*x509.Certificate, now time.Time) error {
	if len(password) > 0 {
		return authErrorf("%s authenticates with an X.509 certificate (%s): a password (SAS token) is not accepted", id.resourcePath(), au.Type)
	}
	var err error
	switch au.Type {
	case registry.AuthSelfSigned:
		err = identity.CheckThumbprint(chain, now, au.PrimaryThumbprint, au.SecondaryThumbprint)
	default:
		err = identity.CheckCA(chain, id.DeviceID, a.roots, now)
	}
	if err != nil {
		return authErrorf("%s authenticates with an X.509 certificate (%s): %v", id.resourcePath(), au.Type, err)
	}
	return nil
}

// checkUsername: "{host}/{clientId}/?api-version=...&..." where host is the
// hub host with or without its port; the query string is not checked (SDKs
// append DeviceClientType, model-id and more), and the older form without
// "?" is accepted as well.
func (a *authenticator) checkUsername(id Identity, username string) error {
	if username == "" {
		return authErrorf("no username: it must be {hub host}/%s/?api-version=...", id.ClientID())
	}
	n := a.hostPrefix(username)
	if n < 0 {
		return authErrorf("username %q does not start with this hub's host name", redactQuery(username))
	}
	rest := username[n+1:]
	if !strings.HasPrefix(rest, id.ClientID()+"/") {
		return authErrorf("username %q does not name client id %q after the host", redactQuery(username), id.ClientID())
	}
	return nil
}

// resourceMatches: the token's sr covers the identity (identity.Covers:
// the hub host, with or without port, then a whole-segment prefix of
// "devices/{id}[/modules/{mid}]", or nothing more: the whole hub).
func (a *authenticator) resourceMatches(sr string, id Identity) bool {
	return identity.Covers(sr, id.resourcePath(), func(host string) bool {
		for _, h := range a.hosts {
			if strings.EqualFold(host, h) {
				return true
			}
		}
		return false
	})
}

// redactQuery drops a username's query string from log text (it carries
// nothing secret, but nothing useful either and may be long).
func redactQuery(username string) string {
	if i := strings.IndexByte(username, '?'); i >= 0 {
		return username[:i] + "?..."
	}
	return username
}

package hubsim

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// X.509 devices: how --register declares them, and the CA certificates
// (--ca-cert, a fleet file's caCerts) trusted for certificateAuthority
// devices. The certificate checks themselves are identity's; the MQTT
// endpoint applies them at CONNECT.

// x509Suffix starts the authentication part of a --register entry.
const x509Suffix = ":x509"

// registerEntry is one --register entry: the identity ("dev" or
// "dev/mod") and how it authenticates.
type registerEntry struct {
	id   string
	auth registry.Auth
}

// parseRegister reads a --register entry:
//
//	ID                           SAS keys (hubsim's default)
//	ID:x509=PRIMARY[+SECONDARY]  selfSigned: the SHA-1 or SHA-256 thumbprints of the device certificate
//	ID:x509ca                    certificateAuthority: a certificate with CN = ID signed by a --ca-cert CA
//
// ID is a device id, or "deviceId/moduleId" for a module (modules use SAS
// keys only). The suffix is found from the right and case-insensitively, so
// a device id may itself contain ':'.
func parseRegister(entry string) (registerEntry, error) {
	i := len(entry) - len(x509Suffix)
	for i >= 0 && !strings.EqualFold(entry[i:i+len(x509Suffix)], x509Suffix) {
		i--
	}
	if i < 0 {
		return registerEntry{id: entry}, nil
	}
	id, spec := entry[:i], entry[i+len(x509Suffix):]
	var e registerEntry
	switch {
	case strings.EqualFold(spec, "ca"):
		e = registerEntry{id: id, auth: registry.Auth{Type: registry.AuthCertificateAuthority}}
	case strings.HasPrefix(spec, "="):
		primary, secondary, two := strings.Cut(spec[1:], "+")
		if strings.TrimSpace(primary) == "" {
			return e, fmt.Errorf("%q: no thumbprint after x509= (give the device certificate's SHA-1 or SHA-256 thumbprint, e.g. from openssl x509 -noout -fingerprint -sha256)", entry)
		}
		for _, tp := range []struct {
			name, v string
			given   bool
		}{{"primary", primary, true}, {"secondary", secondary, two}} {
			if !tp.given {
				continue
			}
			if _, err := identity.ParseThumbprint(tp.v); err != nil {
				return e, fmt.Errorf("%q: the %s thumbprint: %v", entry, tp.name, err)
			}
		}
		e = registerEntry{id: id, auth: registry.Auth{Type: registry.AuthSelfSigned,
			PrimaryThumbprint: strings.TrimSpace(primary), SecondaryThumbprint: strings.TrimSpace(secondary)}}
	default:
		return e, fmt.Errorf("%q: after %q comes =THUMBPRINT[+THUMBPRINT] (a self-signed device) or ca (a CA-signed device, %sca)", entry, x509Suffix, x509Suffix)
	}
	if id == "" {
		return e, fmt.Errorf("%q: no device id before %q", entry, x509Suffix)
	}
	if strings.Contains(id, "/") {
		return e, fmt.Errorf("%q: %w", entry, registry.ErrModuleX509)
	}
	return e, nil
}

// loadCACertificates reads PEM files of CA certificates (identity.
// ParseCACertificates) into pool; where(i) names the i-th file in messages.
func loadCACertificates(files []string, where func(i int) string, pool *x509.CertPool) error {
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("%s: %v", where(i), err)
		}
		certs, err := identity.ParseCACertificates(data)
		if err != nil {
			return fmt.Errorf("%s: %v", where(i), err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return nil
}

// setupX509 gives the registered X.509 identities their authentication and
// loads the CA certificates of --ca-cert and of the fleet files; it warns
// when certificateAuthority devices exist but no CA is trusted (they cannot
// connect, as on a hub without a verified CA).
func (s *Server) setupX509(entries []registerEntry, specs []*sim.FleetSpec) error {
	caDevices := 0
	for _, e := range entries {
		if !e.auth.X509() {
			continue
		}
		if err := s.reg.SetAuth(e.id, "", e.auth); err != nil {
			return &InputError{"--register", fmt.Errorf("%q: %w", e.id, err)}
		}
		if e.auth.Type == registry.AuthCertificateAuthority {
			caDevices++
		}
	}
	pool := x509.NewCertPool()
	n := 0
	if err := loadCACertificates(s.cfg.CACerts, func(i int) string { return s.cfg.CACerts[i] }, pool); err != nil {
		return &InputError{"--ca-cert", err}
	}
	n += len(s.cfg.CACerts)
	for _, spec := range specs {
		for _, g := range spec.Groups {
			if a := g.Authentication; a != nil && a.Type == registry.AuthCertificateAuthority {
				caDevices += g.Count
			}
		}
		if len(spec.CACerts) == 0 {
			continue
		}
		flag, file := "fleet", "caCerts"
		if spec != s.cfg.Fleet {
			flag, file = "--fleet", filepath.Base(s.cfg.FleetFile)+": caCerts"
		}
		where := func(i int) string { return fmt.Sprintf("%s[%d] (%s)", file, i, spec.CACerts[i]) }
		if err := loadCACertificates(spec.CACerts, where, pool); err != nil {
			return &InputError{flag, err}
		}
		n += len(spec.CACerts)
	}
	if n > 0 {
		s.clientCAs = pool
	}
	if caDevices > 0 && n == 0 {
		s.log.Printf("warning: %d device(s) authenticate with certificateAuthority but no CA certificate is trusted (--ca-cert, caCerts): they cannot connect", caDevices)
	}
	return nil
}

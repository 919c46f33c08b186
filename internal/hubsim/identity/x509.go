package identity

// X.509 device authentication as IoT Hub does it: the device presents a
// client certificate in the TLS handshake (the TLS layer has already checked
// that the device holds its private key), and the hub either compares the
// leaf certificate's thumbprint with those registered for the device
// ("selfSigned", thumbprint authentication) or verifies the chain up to a CA
// certificate uploaded to the hub and requires the leaf's subject common
// name to be the device id ("certificateAuthority"). Either way the leaf must
// be within its validity period by the hub's clock.

import (
	"crypto/sha1" // IoT Hub thumbprints may be SHA-1: a name for a certificate, not a signature
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNoCertificate: the client presented no certificate.
var ErrNoCertificate = errors.New("no client certificate was presented")

// ParseThumbprint checks a registered thumbprint: the SHA-1 (40 hex digits)
// or SHA-256 (64 hex digits) of a certificate's DER bytes, in either case. It
// returns s without surrounding space. The error says what is wrong without
// repeating s.
func ParseThumbprint(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errors.New("the thumbprint is empty")
	case strings.Contains(s, ":"):
		return "", errors.New("a thumbprint is hex digits without ':' (remove the colons openssl prints)")
	case len(s) != 2*sha1.Size && len(s) != 2*sha256.Size:
		return "", fmt.Errorf("a thumbprint has 40 (SHA-1) or 64 (SHA-256) hex digits, not %d characters", len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", errors.New("a thumbprint has hex digits (0-9, a-f) only")
	}
	return s, nil
}

// Thumbprints returns the SHA-1 and SHA-256 thumbprints of a certificate
// (hash of its DER bytes) in upper-case hex, as Azure shows them.
func Thumbprints(cert *x509.Certificate) (sha1Hex, sha256Hex string) {
	s1 := sha1.Sum(cert.Raw)
	s256 := sha256.Sum256(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(s1[:])), strings.ToUpper(hex.EncodeToString(s256[:]))
}

// CheckThumbprint reports whether chain (the client's certificates, leaf
// first, as TLS presents them) authenticates a self-signed ("selfSigned")
// identity whose registered thumbprints are thumbprints (primary, then
// secondary; empty ones are skipped): the leaf's SHA-1 or SHA-256
// thumbprint equals one of them, ignoring case, and the leaf is valid at now.
// The chain is not verified, as on IoT Hub.
func CheckThumbprint(chain []*x509.Certificate, now time.Time, thumbprints ...string) error {
	if len(chain) == 0 {
		return ErrNoCertificate
	}
	leaf := chain[0]
	s1, s256 := Thumbprints(leaf)
	matched := false
	for _, tp := range thumbprints {
		tp = strings.TrimSpace(tp)
		if tp != "" && (strings.EqualFold(tp, s1) || strings.EqualFold(tp, s256)) {
			matched = true
			break
		}
	}
	if !matched {
		return fmt.Errorf("the client certificate (SHA-256 thumbprint %s) matches none of the identity's thumbprints", s256)
	}
	return checkValidity(leaf, now)
}

// CheckCA reports whether chain (leaf first) authenticates a CA-signed
// ("certificateAuthority") device deviceID: the leaf's subject common name
// is deviceID (exactly), and the chain, with the certificates after the
// leaf as intermediates, verifies at now to one of roots (the CA
// certificates the hub trusts). No extended key usage is required.
func CheckCA(chain []*x509.Certificate, deviceID string, roots *x509.CertPool, now time.Time) error {
	if len(chain) == 0 {
		return ErrNoCertificate
	}
	leaf := chain[0]
	if cn := leaf.Subject.CommonName; cn != deviceID {
		return fmt.Errorf("the client certificate's subject CN %q is not the device id %q", cn, deviceID)
	}
	if err := checkValidity(leaf, now); err != nil {
		return err
	}
	if roots == nil {
		return errors.New("the hub trusts no CA certificate (give hubsim --ca-cert)")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unknown):
		return fmt.Errorf("the client certificate (issuer %q) does not chain to a CA certificate the hub trusts", leaf.Issuer.String())
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("a certificate of the client's chain is not valid now: %v", err)
	}
	return fmt.Errorf("the client certificate chain does not verify: %v", err)
}

func checkValidity(leaf *x509.Certificate, now time.Time) error {
	const layout = time.RFC3339
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("the client certificate expired at %s", leaf.NotAfter.UTC().Format(layout))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("the client certificate is not valid before %s", leaf.NotBefore.UTC().Format(layout))
	}
	return nil
}

// ParseCACertificates reads the PEM CA certificates a hub trusts for
// certificateAuthority devices: one or more CERTIFICATE blocks (other blocks,
// such as a private key, are an error rather than ignored), each a CA
// certificate (basic constraints CA:TRUE).
func ParseCACertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d is not an X.509 certificate: %v", n, err)
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("certificate %d (subject %q) is not a CA certificate (basic constraints CA:TRUE)", n, c.Subject.String())
		}
		out = append(out, c)
	}
	switch {
	case len(out) == 0:
		return nil, errors.New("no PEM certificate in it")
	case strings.Contains(string(rest), "-----BEGIN"):
		return nil, fmt.Errorf("PEM block %d could not be read", len(out)+1)
	}
	return out, nil
}

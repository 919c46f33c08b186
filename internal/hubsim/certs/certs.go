// Package certs creates, or reuses from a directory, the private CA and the
// server certificate hubsim serves its HTTPS and MQTT endpoints with.
//
// Files written in the directory (PEM):
//
//	ca.pem          CA certificate (give it to clients: SSL_CERT_FILE, --ca-file, NODE_EXTRA_CA_CERTS)
//	ca-key.pem      CA private key (0600)
//	server.pem      server certificate followed by the CA certificate
//	server-key.pem  server private key (0600)
//
// The server certificate names localhost, 127.0.0.1 and ::1 (IP SANs, so
// clients that dial an IP literal without SNI still verify it) plus any
// extra host names the caller asks for.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/dmctl/dmctl/internal/atomicfile"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

// DefaultHosts are always in the server certificate.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// Bundle is a ready-to-serve certificate set.
type Bundle struct {
	CAFile     string // absolute path of ca.pem
	CertFile   string // absolute path of server.pem
	KeyFile    string // absolute path of server-key.pem
	CA         *x509.Certificate
	CAPEM      []byte
	Server     tls.Certificate
	Pool       *x509.CertPool // trusts only the CA
	Reused     bool           // the server certificate came from the directory
	ServerLeaf *x509.Certificate
}

// TLSConfig returns a server TLS configuration serving the bundle's certificate.
func (b *Bundle) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Server},
	}
}

// ClientTLSConfig returns a client TLS configuration trusting only the CA.
func (b *Bundle) ClientTLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: b.Pool}
}

// LoadOrCreate returns the certificates in dir, creating what is missing or
// unusable: a CA valid for 10 years and a server certificate valid for 1 year
// covering DefaultHosts and extraHosts (names or IP literals). A server
// certificate is reissued when it expires within a day, does not chain to the
// CA, or lacks one of the hosts. dir must exist.
func LoadOrCreate(dir string, extraHosts []string, now time.Time) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("certificate directory %q: %w", dir, err)
	}
	hosts := append(slices.Clone(DefaultHosts), extraHosts...)
	hosts = dedupHosts(hosts)

	caCert, caKey, err := loadCA(abs, now)
	if err != nil {
		return nil, err
	}
	if caCert == nil {
		caCert, caKey, err = createCA(abs, now)
		if err != nil {
			return nil, err
		}
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})

	b := &Bundle{
		CAFile:   filepath.Join(abs, CAFile),
		CertFile: filepath.Join(abs, ServerFile),
		KeyFile:  filepath.Join(abs, ServerKeyFile),
		CA:       caCert,
		CAPEM:    caPEM,
		Pool:     x509.NewCertPool(),
	}
	b.Pool.AddCert(caCert)

	if srv, leaf, ok := loadServer(abs, caCert, hosts, now); ok {
		b.Server, b.ServerLeaf, b.Reused = srv, leaf, true
		return b, nil
	}
	srv, leaf, err := createServer(abs, caCert, caKey, hosts, now)
	if err != nil {
		return nil, err
	}
	b.Server, b.ServerLeaf = srv, leaf
	return b, nil
}

func dedupHosts(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		h = strings.TrimSpace(strings.Trim(h, "[]"))
		if h == "" || slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, h) }) {
			continue
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue
		}
		out = append(out, h)
	}
	return out
}

func loadCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err1 := os.ReadFile(filepath.Join(dir, CAFile))
	keyPEM, err2 := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if errors.Is(err1, os.ErrNotExist) || errors.Is(err2, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err1 != nil {
		return nil, nil, fmt.Errorf("read %s: %w", filepath.Join(dir, CAFile), err1)
	}
	if err2 != nil {
		return nil, nil, fmt.Errorf("read %s: %w", filepath.Join(dir, CAKeyFile), err2)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// An unusable CA is replaced; clients must then trust the new ca.pem.
		return nil, nil, nil
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || !cert.IsCA || now.Add(24*time.Hour).After(cert.NotAfter) {
		return nil, nil, nil
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, nil
	}
	return cert, signer, nil
}

func createCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "hubsim local CA", Organization: []string{"hubsim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode CA key: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, CAFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func loadServer(dir string, ca *x509.Certificate, hosts []string, now time.Time) (tls.Certificate, *x509.Certificate, bool) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile))
	if err != nil {
		return tls.Certificate{}, nil, false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || now.Add(24*time.Hour).After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return tls.Certificate{}, nil, false
	}
	if leaf.CheckSignatureFrom(ca) != nil {
		return tls.Certificate{}, nil, false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return tls.Certificate{}, nil, false
		}
	}
	pair.Leaf = leaf
	return pair, leaf, true
}

func createServer(dir string, ca *x509.Certificate, caKey crypto.Signer, hosts []string, now time.Time) (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"hubsim"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("encode server key: %w", err)
	}
	var chain bytes.Buffer
	_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	if err := atomicfile.Write(filepath.Join(dir, ServerKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tls.Certificate{}, nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, ServerFile), chain.Bytes(), 0o644); err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key, Leaf: leaf}, leaf, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n.Add(n, big.NewInt(1))
}

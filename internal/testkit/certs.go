package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CertSpec describes a test certificate for NewCert.
type CertSpec struct {
	// CommonName is the subject CN (a device id for IoT Hub device certificates).
	CommonName string
	// Parent signs the certificate; nil makes it self-signed.
	Parent *Cert
	// IsCA makes a CA certificate (basic constraints CA:TRUE, cert signing).
	IsCA bool
	// NotBefore and NotAfter default to an hour ago and a day from now.
	NotBefore, NotAfter time.Time
}

// Cert is a test certificate with its private key (ECDSA P-256).
type Cert struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// Chain is the DER chain a TLS client presents: this certificate, then
	// its issuers up to (not including) a self-signed root.
	Chain [][]byte
}

// NewCert creates a certificate as spec says. Client certificates (not CA)
// carry the clientAuth extended key usage.
func NewCert(tb testing.TB, spec CertSpec) *Cert {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate a test key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatalf("serial: %v", err)
	}
	nb, na := spec.NotBefore, spec.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	if na.IsZero() {
		na = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: spec.CommonName},
		NotBefore:    nb,
		NotAfter:     na,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if spec.IsCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	parent, signer := tmpl, key
	if spec.Parent != nil {
		parent, signer = spec.Parent.Cert, spec.Parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		tb.Fatalf("create a test certificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse a test certificate: %v", err)
	}
	out := &Cert{Cert: c, Key: key, Chain: [][]byte{der}}
	if p := spec.Parent; p != nil && !p.selfSigned() {
		out.Chain = append(out.Chain, p.Chain...)
	}
	return out
}

func (c *Cert) selfSigned() bool { return c.Cert.CheckSignatureFrom(c.Cert) == nil }

// TLS returns the certificate as a TLS client certificate (its Chain).
func (c *Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: c.Chain, PrivateKey: c.Key, Leaf: c.Cert}
}

// Parsed returns the chain as parsed certificates, leaf first, as a TLS
// server sees the client's certificates.
func (c *Cert) Parsed(tb testing.TB) []*x509.Certificate {
	tb.Helper()
	var out []*x509.Certificate
	for _, der := range c.Chain {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			tb.Fatalf("parse: %v", err)
		}
		out = append(out, x)
	}
	return out
}

// SHA1 is the certificate's SHA-1 thumbprint in lower-case hex.
func (c *Cert) SHA1() string { s := sha1.Sum(c.Cert.Raw); return hex.EncodeToString(s[:]) }

// SHA256 is the certificate's SHA-256 thumbprint in lower-case hex.
func (c *Cert) SHA256() string { s := sha256.Sum256(c.Cert.Raw); return hex.EncodeToString(s[:]) }

// CertPEM is the chain in PEM, leaf first.
func (c *Cert) CertPEM() []byte {
	var out []byte
	for _, der := range c.Chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

// KeyPEM is the private key in PEM (PKCS #8).
func (c *Cert) KeyPEM(tb testing.TB) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		tb.Fatalf("encode a test key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFiles writes NAME.pem (the chain) and NAME-key.pem (the key, mode
// 0600) into dir and returns their paths.
func (c *Cert) WriteFiles(tb testing.TB, dir, name string) (certFile, keyFile string) {
	tb.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, c.CertPEM(), 0o600); err != nil {
		tb.Fatalf("write %s: %v", certFile, err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM(tb), 0o600); err != nil {
		tb.Fatalf("write %s: %v", keyFile, err)
	}
	return certFile, keyFile
}

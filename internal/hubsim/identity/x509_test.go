package identity

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/testkit"
)

func TestParseThumbprint(t *testing.T) {
	sha1Hex := strings.Repeat("ab", 20)
	sha256Hex := strings.Repeat("CD", 32)
	for _, ok := range []string{sha1Hex, sha256Hex, " " + sha1Hex + "\n", strings.ToUpper(sha1Hex), "aB" + sha1Hex[2:]} {
		got, err := ParseThumbprint(ok)
		require.NoError(t, err, "%q", ok)
		assert.Equal(t, strings.TrimSpace(ok), got)
	}
	for in, why := range map[string]string{
		"":                                   "empty",
		"   ":                                "empty",
		sha1Hex[:38]:                         "40 (SHA-1) or 64 (SHA-256) hex digits, not 38",
		sha256Hex + "00":                     "not 66",
		"zz" + sha1Hex[2:]:                   "hex digits",
		"AB:CD:" + strings.Repeat("ab", 18):  "remove the colons",
		strings.Repeat("a", 20) + "-" + "aa": "not 23",
	} {
		_, err := ParseThumbprint(in)
		require.Error(t, err, "%q", in)
		assert.Contains(t, err.Error(), why, "%q", in)
	}
}

func TestCheckThumbprint(t *testing.T) {
	now := time.Now()
	dev := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1"})
	other := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1"}) // same subject, other key
	chain := dev.Parsed(t)
	upper := strings.ToUpper

	for name, tps := range map[string][]string{
		"SHA-256 primary":             {dev.SHA256(), ""},
		"SHA-1 primary":               {dev.SHA1(), ""},
		"upper-case SHA-256":          {upper(dev.SHA256()), ""},
		"upper-case SHA-1, secondary": {other.SHA256(), upper(dev.SHA1())},
		"SHA-256 secondary":           {other.SHA1(), dev.SHA256()},
		"no primary, secondary":       {"", dev.SHA256()},
	} {
		assert.NoError(t, CheckThumbprint(chain, now, tps...), name)
	}

	err := CheckThumbprint(other.Parsed(t), now, dev.SHA256(), dev.SHA1())
	require.Error(t, err, "another certificate")
	assert.Contains(t, err.Error(), "matches none of the identity's thumbprints")
	assert.Contains(t, err.Error(), upper(other.SHA256()), "names the presented certificate's thumbprint")

	// A thumbprint of the right length but of another hash must not match
	// by prefix: the SHA-1 digits are not a prefix match of the SHA-256.
	assert.Error(t, CheckThumbprint(chain, now, dev.SHA256()[:40]))
	assert.Error(t, CheckThumbprint(chain, now), "no thumbprints registered")
	assert.Error(t, CheckThumbprint(chain, now, "", ""))

	assert.ErrorIs(t, CheckThumbprint(nil, now, dev.SHA256()), ErrNoCertificate)

	expired := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	err = CheckThumbprint(expired.Parsed(t), now, expired.SHA256())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expired at")

	future := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1", NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)})
	err = CheckThumbprint(future.Parsed(t), now, future.SHA256())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not valid before")

	// The hub's clock decides: the same certificate at a time before its end.
	assert.NoError(t, CheckThumbprint(expired.Parsed(t), now.Add(-2*time.Hour), expired.SHA256()))
}

func pool(certs ...*testkit.Cert) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c.Cert)
	}
	return p
}

func TestCheckCA(t *testing.T) {
	now := time.Now()
	root := testkit.NewCert(t, testkit.CertSpec{CommonName: "Test Root CA", IsCA: true})
	inter := testkit.NewCert(t, testkit.CertSpec{CommonName: "Test Intermediate CA", IsCA: true, Parent: root})
	otherRoot := testkit.NewCert(t, testkit.CertSpec{CommonName: "Other Root CA", IsCA: true})

	direct := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1", Parent: root})
	viaInter := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1", Parent: inter})
	require.Len(t, viaInter.Chain, 2, "the device presents its intermediate")

	assert.NoError(t, CheckCA(direct.Parsed(t), "dev1", pool(root), now), "signed by the root")
	assert.NoError(t, CheckCA(viaInter.Parsed(t), "dev1", pool(root), now), "through an intermediate the device sends")
	assert.NoError(t, CheckCA(viaInter.Parsed(t)[:1], "dev1", pool(inter), now), "the trusted CA is the intermediate")
	assert.NoError(t, CheckCA(direct.Parsed(t), "dev1", pool(otherRoot, root), now), "one of several trusted CAs")

	err := CheckCA(viaInter.Parsed(t)[:1], "dev1", pool(root), now)
	require.Error(t, err, "the intermediate is missing from the chain")
	assert.Contains(t, err.Error(), "does not chain to a CA certificate the hub trusts")

	err = CheckCA(direct.Parsed(t), "dev1", pool(otherRoot), now)
	require.Error(t, err, "wrong CA")
	assert.Contains(t, err.Error(), "does not chain to a CA certificate the hub trusts")

	self := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1"})
	assert.Error(t, CheckCA(self.Parsed(t), "dev1", pool(root), now), "self-signed")

	err = CheckCA(direct.Parsed(t), "dev2", pool(root), now)
	require.Error(t, err, "CN is another device")
	assert.Contains(t, err.Error(), `subject CN "dev1" is not the device id "dev2"`)
	assert.Error(t, CheckCA(direct.Parsed(t), "DEV1", pool(root), now), "device ids are case-sensitive")

	expired := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1", Parent: root, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	err = CheckCA(expired.Parsed(t), "dev1", pool(root), now)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expired at")

	oldRoot := testkit.NewCert(t, testkit.CertSpec{CommonName: "Old Root", IsCA: true, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	young := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1", Parent: oldRoot})
	err = CheckCA(young.Parsed(t), "dev1", pool(oldRoot), now)
	require.Error(t, err, "the CA has expired")
	assert.Contains(t, err.Error(), "not valid now")

	assert.ErrorIs(t, CheckCA(nil, "dev1", pool(root), now), ErrNoCertificate)
	assert.Error(t, CheckCA(direct.Parsed(t), "dev1", nil, now), "no CA trusted")
}

func TestParseCACertificates(t *testing.T) {
	root := testkit.NewCert(t, testkit.CertSpec{CommonName: "Root", IsCA: true})
	inter := testkit.NewCert(t, testkit.CertSpec{CommonName: "Inter", IsCA: true, Parent: root})
	leaf := testkit.NewCert(t, testkit.CertSpec{CommonName: "dev1", Parent: root})

	got, err := ParseCACertificates(append(root.CertPEM(), inter.CertPEM()...))
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "Root", got[0].Subject.CommonName)
	assert.Equal(t, "Inter", got[1].Subject.CommonName)

	withText := append([]byte("# my test CA\n"), root.CertPEM()...)
	got, err = ParseCACertificates(withText)
	require.NoError(t, err)
	assert.Len(t, got, 1)

	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"empty":       {nil, "no PEM certificate"},
		"not PEM":     {[]byte("hello"), "no PEM certificate"},
		"a key":       {root.KeyPEM(t), `PEM block 1 is a "PRIVATE KEY"`},
		"a leaf":      {leaf.CertPEM(), "is not a CA certificate"},
		"CA then key": {append(root.CertPEM(), root.KeyPEM(t)...), `PEM block 2 is a "PRIVATE KEY"`},
		"garbage DER": {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("xx")}), "not an X.509 certificate"},
		"truncated":   {append(root.CertPEM(), []byte("-----BEGIN CERTIFICATE-----\nAAAA")...), "PEM block 2 could not be read"},
	} {
		_, err := ParseCACertificates(tc.data)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
		assert.NotContains(t, err.Error(), "BEGIN", "%s: no PEM text in the message", name)
	}
}

// FuzzParseCACertificates: any bytes (a --ca-cert file, a fleet file's
// caCerts) give CA certificates or an error without PEM text, never a panic.
func FuzzParseCACertificates(f *testing.F) {
	root := testkit.NewCert(f, testkit.CertSpec{CommonName: "Root", IsCA: true})
	leaf := testkit.NewCert(f, testkit.CertSpec{CommonName: "dev1", Parent: root})
	f.Add(root.CertPEM())
	f.Add(append(root.CertPEM(), leaf.CertPEM()...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("not pem"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCACertificates(data)
		if err != nil {
			if certs != nil {
				t.Fatal("certificates and an error")
			}
			if strings.Contains(err.Error(), "-----BEGIN") {
				t.Fatalf("PEM text in the error: %v", err)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("no certificates and no error")
		}
		for _, c := range certs {
			if !c.IsCA {
				t.Fatalf("a certificate that is not a CA: %s", c.Subject)
			}
		}
	})
}

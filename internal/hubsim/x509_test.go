package hubsim

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/testkit"
)

func TestParseRegister(t *testing.T) {
	sha1 := strings.Repeat("ab", 20)
	sha256 := strings.Repeat("CD", 32)
	for in, want := range map[string]registerEntry{
		"dev1":                             {id: "dev1"},
		"gw/mod":                           {id: "gw/mod"},
		"dev1:x509=" + sha256:              {id: "dev1", auth: registry.Auth{Type: registry.AuthSelfSigned, PrimaryThumbprint: sha256}},
		"dev1:x509=" + sha256 + "+" + sha1: {id: "dev1", auth: registry.Auth{Type: registry.AuthSelfSigned, PrimaryThumbprint: sha256, SecondaryThumbprint: sha1}},
		"dev1:X509=" + sha1:                {id: "dev1", auth: registry.Auth{Type: registry.AuthSelfSigned, PrimaryThumbprint: sha1}},
		"dev2:x509ca":                      {id: "dev2", auth: registry.Auth{Type: registry.AuthCertificateAuthority}},
		"urn:cam:7:x509ca":                 {id: "urn:cam:7", auth: registry.Auth{Type: registry.AuthCertificateAuthority}},
		"a:b=c":                            {id: "a:b=c"},
	} {
		got, err := parseRegister(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for in, why := range map[string]string{
		"dev1:x509=":                             "no thumbprint after x509=",
		"dev1:x509=abc":                          "the primary thumbprint: a thumbprint has 40 (SHA-1) or 64 (SHA-256) hex digits, not 3",
		"dev1:x509=" + sha1 + "+":                "the secondary thumbprint: the thumbprint is empty",
		"dev1:x509=" + sha1 + "+zz":              "the secondary thumbprint",
		"dev1:x509=AB:CD:EF":                     "remove the colons",
		"dev1:x509":                              "after \":x509\" comes =THUMBPRINT[+THUMBPRINT]",
		"dev1:x509sa":                            "after \":x509\" comes",
		":x509ca":                                "no device id",
		"\xf6:X509":                              "after \":x509\" comes", // not UTF-8: found by FuzzParseRegister
		"gw/mod:x509ca":                          "modules authenticate with SAS keys only",
		"gw/mod:x509=" + strings.Repeat("a", 40): "modules authenticate with SAS keys only",
	} {
		_, err := parseRegister(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), why, in)
	}
}

// TestX509CADeviceWithoutCAWarns: certificateAuthority devices with no CA
// trusted can never connect: hubsim says so (as a hub, it still starts).
func TestX509CADeviceWithoutCAWarns(t *testing.T) {
	var logs testkit.SyncBuffer
	s := newTestServer(t, Config{Register: []string{"ca-1:x509ca"}, Log: &logs})
	assert.NotNil(t, s)
	assert.Contains(t, logs.String(), "1 device(s) authenticate with certificateAuthority but no CA certificate is trusted")
}

// FuzzParseRegister: any --register entry is read as an id (with its
// authentication) or refused with an error, never a panic; an accepted
// X.509 entry has a valid authentication and a device id.
func FuzzParseRegister(f *testing.F) {
	for _, s := range []string{"dev1", "gw/mod", "dev1:x509=" + strings.Repeat("ab", 20), "dev1:x509=" + strings.Repeat("ab", 32) + "+" + strings.Repeat("CD", 20),
		"dev2:x509ca", "a:x509", ":x509ca", "x:X509=zz", "gw/m:x509ca", "a:x509=+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		e, err := parseRegister(entry)
		if err != nil {
			return
		}
		if err := e.auth.Check(); err != nil {
			t.Fatalf("%q: accepted with an invalid authentication: %v", entry, err)
		}
		if e.auth.X509() && (e.id == "" || strings.Contains(e.id, "/")) {
			t.Fatalf("%q: X.509 for %q", entry, e.id)
		}
		if !e.auth.X509() && e.id != entry {
			t.Fatalf("%q: a SAS entry is its id, got %q", entry, e.id)
		}
	})
}

package registry

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

var (
	tpSHA1   = strings.Repeat("0a", 20)
	tpSHA256 = strings.Repeat("B1", 32)
)

func TestSetAuthAndDocuments(t *testing.T) {
	r := NewRegistry(Options{SecondaryKey: func(string, string) []byte { return []byte("second") }})
	require.NoError(t, r.Register("sas-1", "self-1", "ca-1", "gw/mod"))

	a, ok := r.Auth("sas-1", "")
	require.True(t, ok)
	assert.Equal(t, Auth{Type: AuthSAS}, a, "registered identities are SAS by default")
	_, ok = r.Auth("nobody", "")
	assert.False(t, ok)

	self := Auth{Type: AuthSelfSigned, PrimaryThumbprint: tpSHA256, SecondaryThumbprint: tpSHA1}
	require.NoError(t, r.SetAuth("self-1", "", self))
	require.NoError(t, r.SetAuth("ca-1", "", Auth{Type: AuthCertificateAuthority}))
	a, _ = r.Auth("self-1", "")
	assert.Equal(t, self, a)
	a, _ = r.Auth("ca-1", "")
	assert.Equal(t, AuthCertificateAuthority, a.Type)

	assert.ErrorIs(t, r.SetAuth("gw", "mod", Auth{Type: AuthCertificateAuthority}), ErrModuleX509)
	assert.ErrorIs(t, r.SetAuth("nobody", "", Auth{Type: AuthCertificateAuthority}), ErrDeviceNotFound)
	assert.ErrorContains(t, r.SetAuth("sas-1", "", Auth{Type: AuthSelfSigned}), "primaryThumbprint: required")
	require.NoError(t, r.SetAuth("gw", "mod", Auth{Type: AuthSAS}), "SAS is fine for a module")

	// The registry document (GET /devices/{id}).
	doc, err := r.Identity("self-1", "")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"type":           "selfSigned",
		"symmetricKey":   map[string]any{"primaryKey": nil, "secondaryKey": nil},
		"x509Thumbprint": map[string]any{"primaryThumbprint": tpSHA256, "secondaryThumbprint": tpSHA1},
	}, doc["authentication"])
	doc, err = r.Identity("ca-1", "")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"type":           "certificateAuthority",
		"symmetricKey":   map[string]any{"primaryKey": nil, "secondaryKey": nil},
		"x509Thumbprint": map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil},
	}, doc["authentication"])
	doc, err = r.Identity("sas-1", "")
	require.NoError(t, err)
	auth := doc["authentication"].(map[string]any)
	assert.Equal(t, "sas", auth["type"])
	assert.NotNil(t, auth["symmetricKey"].(map[string]any)["primaryKey"], "a SAS device keeps its keys")
	assert.NotNil(t, auth["symmetricKey"].(map[string]any)["secondaryKey"])

	// The twin (authenticationType, x509Thumbprint).
	tw, err := r.Twin("self-1", "")
	require.NoError(t, err)
	assert.Equal(t, "selfSigned", tw["authenticationType"])
	assert.Equal(t, map[string]any{"primaryThumbprint": tpSHA256, "secondaryThumbprint": tpSHA1}, tw["x509Thumbprint"])
	tw, err = r.Twin("ca-1", "")
	require.NoError(t, err)
	assert.Equal(t, "certificateAuthority", tw["authenticationType"])
	tw, err = r.Twin("sas-1", "")
	require.NoError(t, err)
	assert.Equal(t, "sas", tw["authenticationType"])

	// Back to SAS: the keys are there again.
	require.NoError(t, r.SetAuth("self-1", "", Auth{}))
	doc, err = r.Identity("self-1", "")
	require.NoError(t, err)
	assert.Equal(t, "sas", doc["authentication"].(map[string]any)["type"])
	assert.NotNil(t, doc["authentication"].(map[string]any)["symmetricKey"].(map[string]any)["primaryKey"])
}

func TestGroupAuthentication(t *testing.T) {
	spec, err := sim.ParseFleet([]byte(`
caCerts: [ca.pem, /abs/other.pem]
groups:
  - name: ca
    idPattern: ca-%d
    count: 2
    modules: [m]
    authentication: {type: certificateAuthority}
  - name: self
    idPattern: self-1
    count: 1
    authentication:
      type: selfSigned
      x509Thumbprint: {primaryThumbprint: `+tpSHA1+`, secondaryThumbprint: null}
  - idPattern: sas-%d
    count: 1
`), "yaml")
	require.NoError(t, err)
	assert.Equal(t, []string{"ca.pem", "/abs/other.pem"}, spec.CACerts, "ParseFleet keeps the paths as written")
	require.NotNil(t, spec.Groups[0].Authentication)
	assert.Equal(t, Auth{Type: AuthCertificateAuthority}, *spec.Groups[0].Authentication)
	assert.Equal(t, Auth{Type: AuthSelfSigned, PrimaryThumbprint: tpSHA1}, *spec.Groups[1].Authentication)
	assert.Nil(t, spec.Groups[2].Authentication)

	r := NewRegistry(Options{})
	require.NoError(t, r.Apply(spec))
	for id, want := range map[string]string{"ca-1": AuthCertificateAuthority, "ca-2": AuthCertificateAuthority, "self-1": AuthSelfSigned, "sas-1": AuthSAS} {
		a, ok := r.Auth(id, "")
		require.True(t, ok, id)
		assert.Equal(t, want, a.Type, id)
	}
	a, _ := r.Auth("ca-1", "m")
	assert.Equal(t, AuthSAS, a.Type, "modules of an X.509 group use SAS")
	tw, err := r.Twin("ca-2", "")
	require.NoError(t, err)
	assert.Equal(t, "certificateAuthority", tw["authenticationType"])

	// SetAuth replaces the group's for one device.
	require.NoError(t, r.SetAuth("ca-2", "", Auth{Type: AuthSAS}))
	a, _ = r.Auth("ca-2", "")
	assert.Equal(t, AuthSAS, a.Type)
	a, _ = r.Auth("ca-1", "")
	assert.Equal(t, AuthCertificateAuthority, a.Type)

	// The JSON form is the registry API's and round-trips.
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"`+tpSHA1+`","secondaryThumbprint":null}}`)
	assert.Contains(t, string(b), `"caCerts":["ca.pem","/abs/other.pem"]`)
	var back sim.FleetSpec
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, spec.Groups[1].Authentication, back.Groups[1].Authentication)
	assert.Equal(t, spec.CACerts, back.CACerts)
}

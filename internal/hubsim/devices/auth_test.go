package devices

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	tpSHA1   = strings.Repeat("0a", 20)
	tpSHA256 = strings.Repeat("B1", 32)
)

func TestAuthCheck(t *testing.T) {
	for _, ok := range []Auth{
		{}, {Type: AuthSAS}, {Type: AuthCertificateAuthority},
		{Type: AuthSelfSigned, PrimaryThumbprint: tpSHA1},
		{Type: AuthSelfSigned, PrimaryThumbprint: tpSHA256, SecondaryThumbprint: tpSHA1},
	} {
		assert.NoError(t, ok.Check(), "%+v", ok)
	}
	for want, bad := range map[string]Auth{
		`type: "x509" is not sas, selfSigned or certificateAuthority`:          {Type: "x509"},
		"x509Thumbprint.primaryThumbprint: required for type selfSigned":       {Type: AuthSelfSigned},
		"x509Thumbprint.primaryThumbprint: a thumbprint has 40":                {Type: AuthSelfSigned, PrimaryThumbprint: "abc"},
		"x509Thumbprint.secondaryThumbprint: a thumbprint has hex digits":      {Type: AuthSelfSigned, PrimaryThumbprint: tpSHA1, SecondaryThumbprint: strings.Repeat("g", 40)},
		"x509Thumbprint: only for type selfSigned, not certificateAuthority":   {Type: AuthCertificateAuthority, PrimaryThumbprint: tpSHA1},
		"x509Thumbprint: only for type selfSigned, not sas":                    {SecondaryThumbprint: tpSHA1},
		"x509Thumbprint.primaryThumbprint: a thumbprint is hex digits without": {Type: AuthSelfSigned, PrimaryThumbprint: "AB:CD"},
	} {
		err := bad.Check()
		require.Error(t, err, "%+v", bad)
		assert.Contains(t, err.Error(), want)
	}
}

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
	spec, err := ParseFleet([]byte(`
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
	var back FleetSpec
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, spec.Groups[1].Authentication, back.Groups[1].Authentication)
	assert.Equal(t, spec.CACerts, back.CACerts)
}

func TestFleetFileAuthenticationErrors(t *testing.T) {
	group := func(extra string) string {
		return `{"groups":[{"idPattern":"d-%d","count":2` + extra + `}]}`
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"not an object":     {group(`,"authentication":"x509"`), "groups[0].authentication: must be an object, not a string"},
		"type missing":      {group(`,"authentication":{}`), "groups[0].authentication.type: required (sas, selfSigned or certificateAuthority)"},
		"type unknown":      {group(`,"authentication":{"type":"x509"}`), `groups[0].authentication: type: "x509" is not sas`},
		"unknown field":     {group(`,"authentication":{"type":"sas","thumbprint":"x"}`), "groups[0].authentication.thumbprint: unknown field"},
		"no thumbprint":     {group(`,"authentication":{"type":"selfSigned"}`), "groups[0].authentication: x509Thumbprint.primaryThumbprint: required for type selfSigned"},
		"bad thumbprint":    {group(`,"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"abc"}}`), "a thumbprint has 40 (SHA-1) or 64 (SHA-256) hex digits"},
		"thumbprint number": {group(`,"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":5}}`), "groups[0].authentication.x509Thumbprint.primaryThumbprint: must be a string"},
		"thumbprint for CA": {group(`,"authentication":{"type":"certificateAuthority","x509Thumbprint":{"primaryThumbprint":"` + tpSHA1 + `"}}`), "only for type selfSigned"},
		"unknown tp field":  {group(`,"authentication":{"type":"selfSigned","x509Thumbprint":{"primary":"x"}}`), "groups[0].authentication.x509Thumbprint.primary: unknown field"},
		"caCerts string":    {`{"caCerts":"ca.pem","groups":[{"idPattern":"d-%d","count":1}]}`, "caCerts: must be an array of PEM file paths, not a string"},
		"caCerts number":    {`{"caCerts":[1],"groups":[{"idPattern":"d-%d","count":1}]}`, "caCerts[0]: must be a string"},
		"caCerts empty":     {`{"caCerts":[""],"groups":[{"idPattern":"d-%d","count":1}]}`, "caCerts[0]: must not be empty"},
	} {
		_, err := ParseFleet([]byte(tc.doc), "")
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}

func TestLoadFleetFileCACertsRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "fleets")
	require.NoError(t, os.Mkdir(sub, 0o700))
	p := filepath.Join(sub, "fleet.yaml")
	require.NoError(t, os.WriteFile(p, []byte("caCerts: [ca.pem, ../root.pem, /etc/abs.pem]\ngroups:\n  - {idPattern: d-%d, count: 1}\n"), 0o600))
	spec, err := LoadFleetFile(p)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(sub, "ca.pem"), filepath.Join(dir, "root.pem"), "/etc/abs.pem"}, spec.CACerts)
}

func TestFleetDocumentMentionsAuthentication(t *testing.T) {
	doc, err := os.ReadFile("fleetfile.md")
	require.NoError(t, err)
	for _, field := range []string{"authentication", "type", "x509Thumbprint", "primaryThumbprint", "secondaryThumbprint",
		"sas", "selfSigned", "certificateAuthority", "caCerts"} {
		assert.True(t, strings.Contains(string(doc), "`"+field+"`"), "fleetfile.md does not mention `%s`", field)
	}
}

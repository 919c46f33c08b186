package hubsim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/rest"
)

// TestRegistryIdentityRead: GET /devices/{id}, its modules, the device list
// and the statistics answer IoT Hub's Device and Module objects, with the
// keys the ready line's connection strings carry; a reader policy may read
// them, an unknown device is 404001.
func TestRegistryIdentityRead(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Devices: 2, Register: []string{"gw-1", "gw-1/mod-1"}})
	reader := authz(token(t, s, identity.PolicyRegistryRead, "", time.Hour))

	rec := call(s, http.MethodGet, "/devices/gw-1"+apiV, "", reader)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var dev map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &dev))
	assert.Equal(t, "gw-1", dev["deviceId"])
	assert.Equal(t, "enabled", dev["status"])
	assert.Equal(t, "Disconnected", dev["connectionState"])
	assert.NotEmpty(t, dev["generationId"])
	assert.Equal(t, `"`+dev["etag"].(string)+`"`, rec.Header().Get("ETag"))
	auth := dev["authentication"].(map[string]any)
	assert.Equal(t, "sas", auth["type"])
	keys := auth["symmetricKey"].(map[string]any)
	cs, err := connstr.ParseDevice(s.Ready().DeviceConnectionStrings["gw-1"])
	require.NoError(t, err)
	assert.Equal(t, cs.SharedAccessKey, keys["primaryKey"], "the primary key is the connection string's")
	assert.NotEmpty(t, keys["secondaryKey"])
	assert.NotEqual(t, keys["primaryKey"], keys["secondaryKey"])

	twin := call(s, http.MethodGet, "/twins/gw-1"+apiV, "", authz(token(t, s, identity.PolicyService, "", time.Hour)))
	require.Equal(t, http.StatusOK, twin.Code)
	var tw map[string]any
	require.NoError(t, json.Unmarshal(twin.Body.Bytes(), &tw))
	assert.Equal(t, dev["etag"], tw["deviceEtag"], "the twin's deviceEtag is the identity's etag")

	rec = call(s, http.MethodGet, "/devices/gw-1/modules/mod-1"+apiV, "", reader)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var mod map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &mod))
	assert.Equal(t, "mod-1", mod["moduleId"])
	mcs, err := connstr.ParseDevice(s.Ready().DeviceConnectionStrings["gw-1/mod-1"])
	require.NoError(t, err)
	assert.Equal(t, mcs.SharedAccessKey, mod["authentication"].(map[string]any)["symmetricKey"].(map[string]any)["primaryKey"])

	rec = call(s, http.MethodGet, "/devices/gw-1/modules"+apiV, "", reader)
	require.Equal(t, http.StatusOK, rec.Code)
	var mods []map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &mods))
	require.Len(t, mods, 1)
	assert.Equal(t, "mod-1", mods[0]["moduleId"])

	rec = call(s, http.MethodGet, "/devices"+apiV+"&top=2", "", reader)
	require.Equal(t, http.StatusOK, rec.Code)
	var list []map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	assert.Len(t, list, 2, "top=2")

	rec = call(s, http.MethodGet, "/statistics/devices"+apiV, "", reader)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"totalDeviceCount":3,"enabledDeviceCount":3,"disabledDeviceCount":0}`, rec.Body.String())

	e := requireCode(t, call(s, http.MethodGet, "/devices/nope"+apiV, "", reader), rest.CodeDeviceNotFound)
	assert.Contains(t, e.Message, "nope")
	requireCode(t, call(s, http.MethodGet, "/devices/gw-1/modules/nope"+apiV, "", reader), rest.CodeModuleNotFound)
	requireCode(t, call(s, http.MethodGet, "/devices/gw-1"+apiV, "", nil), rest.CodeUnauthorized)
	requireCode(t, call(s, http.MethodGet, "/devices?top=0&api-version=2021-04-12", "", reader), rest.CodeArgumentInvalid)
	requireCode(t, call(s, http.MethodPut, "/devices/new-1"+apiV, `{"deviceId":"new-1"}`, reader), rest.CodeUnauthorized)
	assert.Equal(t, http.StatusMethodNotAllowed, call(s, http.MethodPost, "/devices/gw-1"+apiV, `{}`, reader).Code)
}

// identityDoc decodes a Device or Module answer.
func identityDoc(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var doc map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
	return doc
}

func withHeader(h map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for kk, vv := range h {
		out[kk] = vv
	}
	return out
}

// TestRegistryIdentityWrite: PUT creates (keys generated when given empty,
// as Registry.create sends them), refuses a second create (409001), replaces
// only with a matching If-Match (412001 otherwise), disables a device
// (statistics and twin follow) and creates modules; DELETE honours If-Match
// and removes a device with its modules. Only RegistryWrite may write.
func TestRegistryIdentityWrite(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Devices: 1})
	rw := authz(token(t, s, identity.PolicyRegistryReadWrite, "", time.Hour))
	svc := authz(token(t, s, identity.PolicyService, "", time.Hour))

	requireCode(t, call(s, http.MethodPut, "/devices/made-1"+apiV, `{"deviceId":"made-1"}`, svc), rest.CodeUnauthorized)
	body := `{"deviceId":"made-1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`
	dev := identityDoc(t, call(s, http.MethodPut, "/devices/made-1"+apiV, body, rw))
	assert.Equal(t, "made-1", dev["deviceId"])
	assert.Equal(t, "enabled", dev["status"])
	keys := dev["authentication"].(map[string]any)["symmetricKey"].(map[string]any)
	k1, err := base64.StdEncoding.DecodeString(keys["primaryKey"].(string))
	require.NoError(t, err)
	assert.Len(t, k1, 32, "a generated key")
	assert.NotEqual(t, keys["primaryKey"], keys["secondaryKey"])
	pk, sk, ok := s.Registry().Keys("made-1", "")
	require.True(t, ok)
	assert.Equal(t, k1, pk, "the device endpoint checks tokens against the answered key")
	assert.Equal(t, keys["secondaryKey"], base64.StdEncoding.EncodeToString(sk))

	requireCode(t, call(s, http.MethodPut, "/devices/made-1"+apiV, body, rw), rest.CodeDeviceAlreadyExists)
	requireCode(t, call(s, http.MethodPut, "/devices/made-1"+apiV, `{"deviceId":"made-1","status":"disabled"}`,
		withHeader(rw, "If-Match", `"bm90LXRoZS1ldGFn"`)), rest.CodePreconditionFailed)
	requireCode(t, call(s, http.MethodPut, "/devices/none-1"+apiV, `{"deviceId":"none-1"}`, withHeader(rw, "If-Match", `"*"`)), rest.CodeDeviceNotFound)

	given := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	upd := identityDoc(t, call(s, http.MethodPut, "/devices/made-1"+apiV,
		`{"deviceId":"made-1","status":"disabled","statusReason":"stolen","authentication":{"symmetricKey":{"primaryKey":"`+given+`"}}}`,
		withHeader(rw, "If-Match", `"`+dev["etag"].(string)+`"`)))
	assert.Equal(t, "disabled", upd["status"])
	assert.Equal(t, "stolen", upd["statusReason"])
	assert.NotEqual(t, dev["etag"], upd["etag"], "a replace changes the etag")
	assert.Equal(t, dev["generationId"], upd["generationId"], "a replace keeps the generation")
	assert.Equal(t, given, upd["authentication"].(map[string]any)["symmetricKey"].(map[string]any)["primaryKey"])
	assert.Equal(t, keys["secondaryKey"], upd["authentication"].(map[string]any)["symmetricKey"].(map[string]any)["secondaryKey"],
		"a key not given is kept")
	assert.False(t, s.Registry().Enabled("made-1", ""))
	assert.JSONEq(t, `{"totalDeviceCount":2,"enabledDeviceCount":1,"disabledDeviceCount":1}`,
		call(s, http.MethodGet, "/statistics/devices"+apiV, "", rw).Body.String())
	twin := identityDoc(t, call(s, http.MethodGet, "/twins/made-1"+apiV, "", svc))
	assert.Equal(t, "disabled", twin["status"])

	mod := identityDoc(t, call(s, http.MethodPut, "/devices/made-1/modules/m1"+apiV, `{"deviceId":"made-1","moduleId":"m1"}`, rw))
	assert.Equal(t, "m1", mod["moduleId"])
	requireCode(t, call(s, http.MethodPut, "/devices/made-1/modules/m1"+apiV, `{"moduleId":"m1"}`, rw), rest.CodeModuleAlreadyExists)
	requireCode(t, call(s, http.MethodPut, "/devices/none-1/modules/m1"+apiV, `{"moduleId":"m1"}`, rw), rest.CodeDeviceNotFound)
	requireCode(t, call(s, http.MethodPut, "/devices/made-1"+apiV, `{"deviceId":"other"}`, rw), rest.CodeArgumentInvalid)
	requireCode(t, call(s, http.MethodPut, "/devices/made-1"+apiV, `{"deviceId":`, rw), rest.CodeIotHubFormatError)
	requireCode(t, call(s, http.MethodPut, "/devices/made-2"+apiV, `{"status":"paused"}`, rw), rest.CodeArgumentInvalid)
	e := requireCode(t, call(s, http.MethodPut, "/devices/made-2"+apiV, `{"authentication":{"symmetricKey":{"primaryKey":"c2hvcnQ="}}}`, rw), rest.CodeArgumentInvalid)
	assert.Contains(t, e.Message, "primary symmetric key must be 16 to 64 bytes")
	requireCode(t, call(s, http.MethodPut, "/devices/made-2"+apiV, `{"authentication":{"symmetricKey":{"secondaryKey":"not base64!"}}}`, rw), rest.CodeArgumentInvalid)
	requireCode(t, call(s, http.MethodPut, "/devices/made-2"+apiV, `{"authentication":"sas"}`, rw), rest.CodeIotHubFormatError)

	assert.Equal(t, http.StatusNoContent, call(s, http.MethodDelete, "/devices/made-1/modules/m1"+apiV, "", withHeader(rw, "If-Match", `"*"`)).Code)
	requireCode(t, call(s, http.MethodGet, "/devices/made-1/modules/m1"+apiV, "", rw), rest.CodeModuleNotFound)
	requireCode(t, call(s, http.MethodDelete, "/devices/made-1"+apiV, "", withHeader(rw, "If-Match", `"`+dev["etag"].(string)+`"`)), rest.CodePreconditionFailed)
	identityDoc(t, call(s, http.MethodPut, "/devices/made-1/modules/m2"+apiV, `{}`, rw))
	requireCode(t, call(s, http.MethodDelete, "/devices/made-1"+apiV, "", svc), rest.CodeUnauthorized)
	rec := call(s, http.MethodDelete, "/devices/made-1"+apiV, "", withHeader(rw, "If-Match", `"`+upd["etag"].(string)+`"`))
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	assert.Empty(t, rec.Body.String())
	requireCode(t, call(s, http.MethodGet, "/devices/made-1"+apiV, "", rw), rest.CodeDeviceNotFound)
	requireCode(t, call(s, http.MethodGet, "/devices/made-1/modules/m2"+apiV, "", rw), rest.CodeDeviceNotFound)
	requireCode(t, call(s, http.MethodDelete, "/devices/made-1"+apiV, "", rw), rest.CodeDeviceNotFound)
	n, m := s.Registry().Count()
	assert.Equal(t, [2]int{1, 0}, [2]int{n, m}, "the device and its module are gone")

	thumb := strings.Repeat("ab", 32)
	x := identityDoc(t, call(s, http.MethodPut, "/devices/cam-1"+apiV,
		`{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"`+thumb+`","secondaryThumbprint":null}}}`, rw))
	xa := x["authentication"].(map[string]any)
	assert.Equal(t, "selfSigned", xa["type"])
	assert.Equal(t, thumb, xa["x509Thumbprint"].(map[string]any)["primaryThumbprint"])
	a, ok := s.Registry().Auth("cam-1", "")
	require.True(t, ok)
	assert.True(t, a.X509(), "the device endpoint asks cam-1 for its certificate")
	ca := identityDoc(t, call(s, http.MethodPut, "/devices/cam-2"+apiV, `{"authentication":{"type":"certificateAuthority"}}`, rw))
	assert.Equal(t, "certificateAuthority", ca["authentication"].(map[string]any)["type"])
	requireCode(t, call(s, http.MethodPut, "/devices/cam-3"+apiV, `{"authentication":{"type":"selfSigned"}}`, rw), rest.CodeArgumentInvalid)
	requireCode(t, call(s, http.MethodPut, "/devices/cam-3"+apiV, `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"xyz"}}}`, rw), rest.CodeArgumentInvalid)
	requireCode(t, call(s, http.MethodPut, "/devices/cam-1/modules/m"+apiV, `{"authentication":{"type":"certificateAuthority"}}`, rw), rest.CodeArgumentInvalid)

	again := identityDoc(t, call(s, http.MethodPut, "/devices/made-1"+apiV, `{}`, rw))
	assert.NotEqual(t, dev["generationId"], again["generationId"], "created again: a new generation")
	assert.NotEqual(t, dev["etag"], again["etag"])
	assert.Equal(t, "enabled", again["status"])
}

// TestRegistryIdentityPersisted: what the registry API changed is there
// after a restart with the same --dir: a created device with its keys and
// module, a disabled --register device, a deleted fleet device.
func TestRegistryIdentityPersisted(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, NoThrottle: true, Devices: 2, Register: []string{"reg-1"}}
	s := newTestServer(t, cfg)
	rw := authz(token(t, s, identity.PolicyRegistryReadWrite, "", time.Hour))
	made := identityDoc(t, call(s, http.MethodPut, "/devices/made-1"+apiV, `{}`, rw))
	identityDoc(t, call(s, http.MethodPut, "/devices/made-1/modules/m1"+apiV, `{}`, rw))
	reg := identityDoc(t, call(s, http.MethodGet, "/devices/reg-1"+apiV, "", rw))
	identityDoc(t, call(s, http.MethodPut, "/devices/reg-1"+apiV, `{"status":"disabled"}`, withHeader(rw, "If-Match", "*")))
	require.Equal(t, http.StatusNoContent, call(s, http.MethodDelete, "/devices/sim-000001"+apiV, "", rw).Code)
	identityDoc(t, call(s, http.MethodPut, "/devices/cam-1"+apiV, `{"authentication":{"type":"certificateAuthority"}}`, rw))
	// A fleet device deleted, created again at run time, and deleted again
	// stays deleted: the record is a deletion, not nothing.
	require.Equal(t, http.StatusNoContent, call(s, http.MethodDelete, "/devices/sim-000002"+apiV, "", rw).Code)
	identityDoc(t, call(s, http.MethodPut, "/devices/sim-000002"+apiV, `{}`, rw))
	require.Equal(t, http.StatusNoContent, call(s, http.MethodDelete, "/devices/sim-000002"+apiV, "", rw).Code)
	require.NoError(t, s.Shutdown(context.Background()))

	b, err := os.ReadFile(filepath.Join(dir, IdentitiesFile))
	require.NoError(t, err)
	info, err := os.Stat(filepath.Join(dir, IdentitiesFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "it holds keys")
	assert.Contains(t, string(b), `"made-1"`)

	s2 := newTestServer(t, cfg)
	rw = authz(token(t, s2, identity.PolicyRegistryReadWrite, "", time.Hour))
	again := identityDoc(t, call(s2, http.MethodGet, "/devices/made-1"+apiV, "", rw))
	assert.Equal(t, made["authentication"], again["authentication"], "the same keys")
	assert.Equal(t, made["generationId"], again["generationId"])
	assert.Equal(t, made["etag"], again["etag"])
	identityDoc(t, call(s2, http.MethodGet, "/devices/made-1/modules/m1"+apiV, "", rw))
	regAgain := identityDoc(t, call(s2, http.MethodGet, "/devices/reg-1"+apiV, "", rw))
	assert.Equal(t, "disabled", regAgain["status"])
	assert.Equal(t, reg["authentication"], regAgain["authentication"])
	requireCode(t, call(s2, http.MethodGet, "/devices/sim-000001"+apiV, "", rw), rest.CodeDeviceNotFound)
	requireCode(t, call(s2, http.MethodGet, "/devices/sim-000002"+apiV, "", rw), rest.CodeDeviceNotFound)
	n, _ := s2.Registry().Count()
	assert.Equal(t, 3, n, "reg-1, made-1 and cam-1; both fleet devices deleted")
	a, ok := s2.Registry().Auth("cam-1", "")
	require.True(t, ok)
	assert.Equal(t, "certificateAuthority", a.Type, "an X.509 identity stays X.509")
}

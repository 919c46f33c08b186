package hubsim

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
)

// TestRegistryIdentityRead: GET /devices/{id}, its modules, the device list
// and the statistics answer IoT Hub's Device and Module objects, with the
// keys the ready line's connection strings carry; a reader policy may read
// them, an unknown device is 404001.
func TestRegistryIdentityRead(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Devices: 2, Register: []string{"gw-1", "gw-1/mod-1"}})
	reader := authz(token(t, s, PolicyRegistryRead, "", time.Hour))

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

	twin := call(s, http.MethodGet, "/twins/gw-1"+apiV, "", authz(token(t, s, PolicyService, "", time.Hour)))
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

	e := requireCode(t, call(s, http.MethodGet, "/devices/nope"+apiV, "", reader), codeDeviceNotFound)
	assert.Contains(t, e.Message, "nope")
	requireCode(t, call(s, http.MethodGet, "/devices/gw-1/modules/nope"+apiV, "", reader), codeModuleNotFound)
	requireCode(t, call(s, http.MethodGet, "/devices/gw-1"+apiV, "", nil), codeUnauthorized)
	requireCode(t, call(s, http.MethodGet, "/devices?top=0&api-version=2021-04-12", "", reader), codeArgumentInvalid)
	assert.Equal(t, http.StatusMethodNotAllowed, call(s, http.MethodPut, "/devices/new-1"+apiV, `{"deviceId":"new-1"}`, reader).Code,
		"creating identities is not served yet")
}

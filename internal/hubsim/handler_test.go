package hubsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorShape(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	rec := call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, authz(token(t, s, PolicyService, "", time.Hour)))
	e := requireCode(t, rec, codeDeviceNotFound)
	assert.Equal(t, http.StatusNotFound, e.Status)
	assert.Equal(t, "DeviceNotFound", e.Name)
	assert.Contains(t, e.Message, "nope")
	assert.True(t, strings.HasPrefix(e.TrackingID, strings.ReplaceAll(e.RequestID, "-", "")), "tracking id %q starts with request id %q", e.TrackingID, e.RequestID)
	assert.Empty(t, e.Info)
}

func TestRequestIDEchoesClientRequestID(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	hdr := authz(token(t, s, PolicyService, "", time.Hour))
	hdr["Request-Id"] = "0f8fad5b-d9cb-469f-a165-70867728950e"
	rec := call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, hdr)
	assert.Equal(t, "0f8fad5b-d9cb-469f-a165-70867728950e", rec.Header().Get("x-ms-request-id"))

	hdr["Request-Id"] = "not a sane id\n"
	rec = call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, hdr)
	assert.Len(t, rec.Header().Get("x-ms-request-id"), 36, "a generated UUID-shaped id replaces an odd one")
}

func TestRequestIDsAreUnique(t *testing.T) {
	var g idGen
	g.init()
	seen := map[string]bool{}
	for range 10000 {
		id := g.next()
		require.Len(t, id, 36)
		require.False(t, seen[id], "duplicate %s", id)
		seen[id] = true
	}
}

func TestRouting(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	tok := authz(token(t, s, PolicyOwner, "", time.Hour))
	cases := []struct {
		name, method, path string
		status, code       int
	}{
		{"unknown path", http.MethodGet, "/nothing/here" + apiV, 404, codeGenericNotFound},
		{"root", http.MethodGet, "/", 404, codeGenericNotFound},
		{"too many segments", http.MethodPost, "/twins/a/modules/b/methods/c" + apiV, 404, codeGenericNotFound},
		{"trailing slash", http.MethodPost, "/twins/a/methods/" + apiV, 404, codeGenericNotFound},
		{"GET on methods", http.MethodGet, "/twins/a/methods" + apiV, 405, codeGenericMethodNotAllowed},
		{"DELETE on twin", http.MethodDelete, "/twins/a" + apiV, 405, codeGenericMethodNotAllowed},
		{"GET on query", http.MethodGet, "/devices/query" + apiV, 405, codeGenericMethodNotAllowed},
		{"missing api-version", http.MethodPost, "/twins/a/methods", 400, codeInvalidProtocolVersion},
		{"empty api-version", http.MethodPost, "/twins/a/methods?api-version=", 400, codeInvalidProtocolVersion},
		{"unsupported api-version", http.MethodPost, "/twins/a/methods?api-version=2099-01-01", 400, codeInvalidProtocolVersion},
		{"query without api-version", http.MethodPost, "/devices/query", 400, codeInvalidProtocolVersion},
		{"empty device id", http.MethodPost, "/twins//methods" + apiV, 400, codeArgumentInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := call(s, c.method, c.path, `{"methodName":"m"}`, tok)
			assert.Equal(t, c.status, rec.Code)
			requireCode(t, rec, c.code)
		})
	}
	t.Run("405 names the allowed methods", func(t *testing.T) {
		rec := call(s, http.MethodGet, "/twins/a/methods"+apiV, "", tok)
		assert.Equal(t, "POST", rec.Header().Get("Allow"))
	})
}

func TestAPIVersionsAccepted(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	tok := authz(token(t, s, PolicyService, "", time.Hour))
	for _, v := range []string{"2021-04-12", "2020-09-30", "2020-03-13", "2019-10-01", "2018-06-30", "2016-11-14"} {
		rec := call(s, http.MethodPost, "/twins/nope/methods?api-version="+v, `{"methodName":"m"}`, tok)
		requireCode(t, rec, codeDeviceNotFound) // got past the version check
	}
}

func TestPathSegmentsArePercentDecoded(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	tok := authz(token(t, s, PolicyService, "", time.Hour))
	cases := []struct{ path, want string }{
		{"/twins/a%23b%3Fc%25d/methods", "a#b?c%d"},
		{"/twins/x%2Fy/methods", "x/y"},
		{"/twins/plus+sign/methods", "plus+sign"},
		{"/twins/sp%20ace/methods", "sp ace"},
	}
	for _, c := range cases {
		rec := call(s, http.MethodPost, c.path+apiV, `{"methodName":"m"}`, tok)
		e := requireCode(t, rec, codeDeviceNotFound)
		assert.Contains(t, e.Message, "Device "+c.want+" ", c.path)
	}
	rec := call(s, http.MethodPost, "/twins/d%2F1/modules/m%23%3F/methods"+apiV, `{"methodName":"m"}`, tok)
	e := requireCode(t, rec, codeDeviceNotFound)
	assert.Contains(t, e.Message, "d/1")
}

func TestParseMethodRequest(t *testing.T) {
	big := `"` + strings.Repeat("x", MaxMethodPayloadBytes) + `"`
	cases := []struct {
		name, body string
		code       int
		msg        string
		connect    time.Duration
		response   time.Duration
		payload    string
	}{
		{name: "defaults", body: `{"methodName":"reboot"}`, response: 30 * time.Second, payload: "null"},
		{name: "null timeouts", body: `{"methodName":"reboot","payload":{"a":1},"responseTimeoutInSeconds":null,"connectTimeoutInSeconds":null}`, response: 30 * time.Second, payload: `{"a":1}`},
		{name: "explicit", body: `{"methodName":"m","payload":[1,2],"responseTimeoutInSeconds":5,"connectTimeoutInSeconds":300}`, response: 5 * time.Second, connect: 300 * time.Second, payload: `[1,2]`},
		{name: "max response", body: `{"methodName":"m","responseTimeoutInSeconds":300}`, response: 300 * time.Second, payload: "null"},
		{name: "integral float", body: `{"methodName":"m","responseTimeoutInSeconds":60.0}`, response: 60 * time.Second, payload: "null"},
		{name: "string payload", body: `{"methodName":"m","payload":"hi"}`, response: 30 * time.Second, payload: `"hi"`},
		{name: "response 4", body: `{"methodName":"m","responseTimeoutInSeconds":4}`, code: codeArgumentInvalid, msg: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "response 301", body: `{"methodName":"m","responseTimeoutInSeconds":301}`, code: codeArgumentInvalid, msg: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "response 0", body: `{"methodName":"m","responseTimeoutInSeconds":0}`, code: codeArgumentInvalid, msg: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "response fractional", body: `{"methodName":"m","responseTimeoutInSeconds":5.5}`, code: codeArgumentInvalid, msg: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "connect 301", body: `{"methodName":"m","connectTimeoutInSeconds":301}`, code: codeArgumentInvalid, msg: "connectTimeoutInSeconds must be within [0; 300]."},
		{name: "connect -1", body: `{"methodName":"m","connectTimeoutInSeconds":-1}`, code: codeArgumentInvalid, msg: "connectTimeoutInSeconds must be within [0; 300]."},
		{name: "no method", body: `{"payload":1}`, code: codeArgumentInvalid, msg: "methodName is required."},
		{name: "empty method", body: `{"methodName":""}`, code: codeArgumentInvalid, msg: "methodName is required."},
		{name: "slash in method", body: `{"methodName":"a/b"}`, code: codeArgumentInvalid},
		{name: "space in method", body: `{"methodName":"a b"}`, code: codeArgumentInvalid},
		{name: "malformed", body: `{"methodName":`, code: codeIotHubFormatError},
		{name: "not an object", body: `[1]`, code: codeIotHubFormatError},
		{name: "method not a string", body: `{"methodName":5}`, code: codeIotHubFormatError},
		{name: "empty body", body: ``, code: codeIotHubFormatError},
		{name: "payload too large", body: `{"methodName":"m","payload":` + big + `}`, code: codeArgumentInvalid, msg: "'payload' size should be less than 131072 bytes."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name, payload, connect, response, herr := parseMethodRequest([]byte(c.body))
			if c.code != 0 {
				require.NotNil(t, herr)
				assert.Equal(t, c.code, herr.code)
				if c.msg != "" {
					assert.Equal(t, c.msg, herr.message)
				}
				return
			}
			require.Nil(t, herr)
			assert.NotEmpty(t, name)
			assert.Equal(t, c.payload, string(payload))
			assert.Equal(t, c.connect, connect)
			assert.Equal(t, c.response, response)
		})
	}
}

func TestInvokeValidationOverHTTP(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	tok := authz(token(t, s, PolicyService, "", time.Hour))
	rec := call(s, http.MethodPost, "/twins/d/methods"+apiV, `{"methodName":"m","responseTimeoutInSeconds":4}`, tok)
	e := requireCode(t, rec, codeArgumentInvalid)
	assert.Equal(t, http.StatusBadRequest, e.Status)
	assert.Equal(t, "ArgumentInvalid", e.Name)
	assert.Equal(t, "responseTimeoutInSeconds must be within [5; 300].", e.Message)

	rec = call(s, http.MethodPost, "/twins/d/methods"+apiV, `{"methodName":`, tok)
	e = requireCode(t, rec, codeIotHubFormatError)
	assert.Equal(t, "IotHubFormatError", e.Name)
}

func TestStatsEndpoint(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	call(s, http.MethodGet, "/nothing", "", nil)
	call(s, http.MethodPost, "/twins/x/methods"+apiV, `{}`, nil)
	rec := call(s, http.MethodGet, "/hubsim/stats", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	var st struct {
		Requests map[string]struct {
			Total    int64            `json:"total"`
			ByStatus map[string]int64 `json:"byStatus"`
		} `json:"requests"`
		MethodsDelivered *int64 `json:"methodsDelivered"`
		Devices          *int   `json:"devices"`
		Connected        *int   `json:"connected"`
		Throttled        *int64 `json:"throttled"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	assert.Equal(t, int64(1), st.Requests["other"].ByStatus["404"])
	assert.Equal(t, int64(1), st.Requests["POST /twins/{id}/methods"].ByStatus["401"])
	assert.NotNil(t, st.MethodsDelivered)
	assert.NotNil(t, st.Devices)
	assert.NotNil(t, st.Connected)
	assert.NotNil(t, st.Throttled)
}

func TestRecoverTurnsPanicsInto500(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	s.auth = nil // any authenticated route now panics on a nil pointer
	rec := call(s, http.MethodPost, "/twins/x/methods"+apiV, `{}`, map[string]string{"Authorization": "x"})
	e := requireCode(t, rec, codeServerError)
	assert.Equal(t, http.StatusInternalServerError, e.Status)
}

func TestDurationHMS(t *testing.T) {
	assert.Equal(t, "00:00:00", durationHMS(0))
	assert.Equal(t, "00:01:00", durationHMS(time.Minute))
	assert.Equal(t, "00:05:00", durationHMS(300*time.Second))
	assert.Equal(t, "01:01:01", durationHMS(time.Hour+time.Minute+time.Second))
}

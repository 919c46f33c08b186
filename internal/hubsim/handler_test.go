package hubsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/rest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorShape(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	rec := call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, authz(token(t, s, identity.PolicyService, "", time.Hour)))
	e := requireCode(t, rec, rest.CodeDeviceNotFound)
	assert.Equal(t, http.StatusNotFound, e.Status)
	assert.Equal(t, "DeviceNotFound", e.Name)
	assert.Contains(t, e.Message, "nope")
	assert.True(t, strings.HasPrefix(e.TrackingID, strings.ReplaceAll(e.RequestID, "-", "")), "tracking id %q starts with request id %q", e.TrackingID, e.RequestID)
	assert.Empty(t, e.Info)
}

func TestRequestIDEchoesClientRequestID(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	hdr := authz(token(t, s, identity.PolicyService, "", time.Hour))
	hdr["Request-Id"] = "0f8fad5b-d9cb-469f-a165-70867728950e"
	rec := call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, hdr)
	assert.Equal(t, "0f8fad5b-d9cb-469f-a165-70867728950e", rec.Header().Get("x-ms-request-id"))

	hdr["Request-Id"] = "not a sane id\n"
	rec = call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, hdr)
	assert.Len(t, rec.Header().Get("x-ms-request-id"), 36, "a generated UUID-shaped id replaces an odd one")
}

func TestRouting(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	tok := authz(token(t, s, identity.PolicyOwner, "", time.Hour))
	cases := []struct {
		name, method, path string
		status, code       int
	}{
		{"unknown path", http.MethodGet, "/nothing/here" + apiV, 404, rest.CodeGenericNotFound},
		{"root", http.MethodGet, "/", 404, rest.CodeGenericNotFound},
		{"too many segments", http.MethodPost, "/twins/a/modules/b/methods/c" + apiV, 404, rest.CodeGenericNotFound},
		{"trailing slash", http.MethodPost, "/twins/a/methods/" + apiV, 404, rest.CodeGenericNotFound},
		{"GET on methods", http.MethodGet, "/twins/a/methods" + apiV, 405, rest.CodeGenericMethodNotAllowed},
		{"DELETE on twin", http.MethodDelete, "/twins/a" + apiV, 405, rest.CodeGenericMethodNotAllowed},
		{"GET on query", http.MethodGet, "/devices/query" + apiV, 405, rest.CodeGenericMethodNotAllowed},
		{"missing api-version", http.MethodPost, "/twins/a/methods", 400, rest.CodeInvalidProtocolVersion},
		{"empty api-version", http.MethodPost, "/twins/a/methods?api-version=", 400, rest.CodeInvalidProtocolVersion},
		{"unsupported api-version", http.MethodPost, "/twins/a/methods?api-version=2099-01-01", 400, rest.CodeInvalidProtocolVersion},
		{"query without api-version", http.MethodPost, "/devices/query", 400, rest.CodeInvalidProtocolVersion},
		{"empty device id", http.MethodPost, "/twins//methods" + apiV, 400, rest.CodeArgumentInvalid},
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
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
	for _, v := range []string{"2021-04-12", "2020-09-30", "2020-03-13", "2019-10-01", "2018-06-30", "2016-11-14"} {
		rec := call(s, http.MethodPost, "/twins/nope/methods?api-version="+v, `{"methodName":"m"}`, tok)
		requireCode(t, rec, rest.CodeDeviceNotFound) // got past the version check
	}
}

func TestPathSegmentsArePercentDecoded(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
	cases := []struct{ path, want string }{
		{"/twins/a%23b%3Fc%25d/methods", "a#b?c%d"},
		{"/twins/x%2Fy/methods", "x/y"},
		{"/twins/plus+sign/methods", "plus+sign"},
		{"/twins/sp%20ace/methods", "sp ace"},
	}
	for _, c := range cases {
		rec := call(s, http.MethodPost, c.path+apiV, `{"methodName":"m"}`, tok)
		e := requireCode(t, rec, rest.CodeDeviceNotFound)
		assert.Contains(t, e.Message, "Device "+c.want+" ", c.path)
	}
	rec := call(s, http.MethodPost, "/twins/d%2F1/modules/m%23%3F/methods"+apiV, `{"methodName":"m"}`, tok)
	e := requireCode(t, rec, rest.CodeDeviceNotFound)
	assert.Contains(t, e.Message, "d/1")
}

func TestInvokeValidationOverHTTP(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
	rec := call(s, http.MethodPost, "/twins/d/methods"+apiV, `{"methodName":"m","responseTimeoutInSeconds":4}`, tok)
	e := requireCode(t, rec, rest.CodeArgumentInvalid)
	assert.Equal(t, http.StatusBadRequest, e.Status)
	assert.Equal(t, "ArgumentInvalid", e.Name)
	assert.Equal(t, "responseTimeoutInSeconds must be within [5; 300].", e.Message)

	rec = call(s, http.MethodPost, "/twins/d/methods"+apiV, `{"methodName":`, tok)
	e = requireCode(t, rec, rest.CodeIotHubFormatError)
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

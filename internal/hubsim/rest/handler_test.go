package rest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
		{name: "response 4", body: `{"methodName":"m","responseTimeoutInSeconds":4}`, code: CodeArgumentInvalid, msg: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "response 301", body: `{"methodName":"m","responseTimeoutInSeconds":301}`, code: CodeArgumentInvalid, msg: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "response 0", body: `{"methodName":"m","responseTimeoutInSeconds":0}`, code: CodeArgumentInvalid, msg: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "response fractional", body: `{"methodName":"m","responseTimeoutInSeconds":5.5}`, code: CodeArgumentInvalid, msg: "responseTimeoutInSeconds must be within [5; 300]."},
		{name: "connect 301", body: `{"methodName":"m","connectTimeoutInSeconds":301}`, code: CodeArgumentInvalid, msg: "connectTimeoutInSeconds must be within [0; 300]."},
		{name: "connect -1", body: `{"methodName":"m","connectTimeoutInSeconds":-1}`, code: CodeArgumentInvalid, msg: "connectTimeoutInSeconds must be within [0; 300]."},
		{name: "no method", body: `{"payload":1}`, code: CodeArgumentInvalid, msg: "methodName is required."},
		{name: "empty method", body: `{"methodName":""}`, code: CodeArgumentInvalid, msg: "methodName is required."},
		{name: "slash in method", body: `{"methodName":"a/b"}`, code: CodeArgumentInvalid},
		{name: "space in method", body: `{"methodName":"a b"}`, code: CodeArgumentInvalid},
		{name: "malformed", body: `{"methodName":`, code: CodeIotHubFormatError},
		{name: "not an object", body: `[1]`, code: CodeIotHubFormatError},
		{name: "method not a string", body: `{"methodName":5}`, code: CodeIotHubFormatError},
		{name: "empty body", body: ``, code: CodeIotHubFormatError},
		{name: "payload too large", body: `{"methodName":"m","payload":` + big + `}`, code: CodeArgumentInvalid, msg: "'payload' size should be less than 131072 bytes."},
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

func TestDurationHMS(t *testing.T) {
	assert.Equal(t, "00:00:00", durationHMS(0))
	assert.Equal(t, "00:01:00", durationHMS(time.Minute))
	assert.Equal(t, "00:05:00", durationHMS(300*time.Second))
	assert.Equal(t, "01:01:01", durationHMS(time.Hour+time.Minute+time.Second))
}

func TestRecoverTurnsPanicsInto500(t *testing.T) {
	h := New(Config{HostName: "hub.local"})
	h.auth = nil // any authenticated route now panics on a nil pointer
	req := httptest.NewRequest(http.MethodPost, "https://hub.local/twins/x/methods?api-version=2021-04-12", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "x")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.Equal(t, "ServerError", rec.Header().Get("iothub-errorcode"))
	assert.Contains(t, rec.Body.String(), `\"errorCode\":500001`)
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

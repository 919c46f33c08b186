package hubsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var methodBodies = []string{
	`{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
	` { "methodName" : "m" , "payload" : { "a" : [1, "}", {"b":"\""}] } } `,
	`{"payload":"x","methodName":"m"}`,
	`{"methodName":"m","methodName":"n"}`,
	`{"MethodName":"m"}`,
	`{"methodname":"m"}`,
	`{"methodName":"a\u0062c"}`,
	`{"methodName":null}`,
	`{"methodName":5}`,
	`{"methodName":"m","payload":tru}`,
	`{"methodName":"m",}`,
	`{"methodName":"m"} x`,
	`{"methodName":"m","other":{"nested":[1,2,{"x":"y"}]},"payload":[]}`,
	`{"me\"thod":"m"}`,
	"{\"methodName\":\"bad\xffutf8\"}",
	`[]`,
	`{}`,
	``,
}

// The fast path never accepts a body json.Unmarshal would read differently.
func TestParseFastAgreesWithUnmarshal(t *testing.T) {
	for _, b := range methodBodies {
		checkFastAgrees(t, []byte(b))
	}
}

func checkFastAgrees(t *testing.T, b []byte) {
	t.Helper()
	var fast methodRequest
	if !fast.parseFast(b) {
		return
	}
	var slow methodRequest
	require.NoError(t, json.Unmarshal(b, &slow), "fast path accepted %q", b)
	assert.Equal(t, slow.MethodName, fast.MethodName, "%q", b)
	for _, pair := range [][2]json.RawMessage{
		{slow.Payload, fast.Payload},
		{slow.ResponseTimeoutInSeconds, fast.ResponseTimeoutInSeconds},
		{slow.ConnectTimeoutInSeconds, fast.ConnectTimeoutInSeconds},
	} {
		assert.Equal(t, compact(pair[0]), compact(pair[1]), "%q", b)
	}
}

func compact(r json.RawMessage) string {
	if len(r) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, r); err != nil {
		return "invalid:" + string(r)
	}
	return buf.String()
}

func TestParseFastTakesTheCommonShape(t *testing.T) {
	var m methodRequest
	require.True(t, m.parseFast([]byte(methodBodies[0])))
	assert.Equal(t, "reboot", m.MethodName)
	assert.Equal(t, "null", string(m.Payload))
	assert.Equal(t, "30", string(m.ResponseTimeoutInSeconds))
	assert.False(t, new(methodRequest).parseFast([]byte(`{"MethodName":"m"}`)), "case-folded keys go the slow way")
}

func FuzzParseMethodRequest(f *testing.F) {
	for _, b := range methodBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastAgrees(t, b)
		_, _, _, _, _ = parseMethodRequest(b) // never panics
	})
}

// BenchmarkInvokeHandler measures hubsim's own work per direct-method call
// (routing, auth with a cached SAS token, body parse, throttle, fault draw,
// registry invoke, answer), without TLS or sockets.
func BenchmarkInvokeHandler(b *testing.B) {
	s := newTestServer(b, Config{NoThrottle: true, Fleet: answeringFleet(1000, 200, `null`)})
	tok := token(b, s, PolicyService, "", time.Hour)
	body := []byte(`{"methodName":"ping","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`)
	req := httptest.NewRequest(http.MethodPost, "https://"+s.HostName()+"/twins/sim-000001/methods"+apiV, nil)
	req.Host = s.HostName()
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
}

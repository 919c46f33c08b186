package hubsim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/sas"
)

const apiV = "?api-version=2021-04-12"

// logWriter sends server diagnostics to the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newTestServer builds a hub (listeners bound, not serving) in a test
// directory. Handlers are driven with httptest recorders via ServeHTTP.
func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Log == nil {
		cfg.Log = logWriter{t}
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

// startTestServer also serves HTTPS on loopback.
func startTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := newTestServer(t, cfg)
	require.NoError(t, s.Start())
	return s
}

// token signs a service SAS token for policy with sr (default: the hub host).
func token(t testing.TB, s *Server, policy, sr string, ttl time.Duration) string {
	t.Helper()
	key, ok := s.PolicyKey(policy)
	require.True(t, ok, "policy %s", policy)
	if sr == "" {
		sr = s.HostName()
	}
	return sas.NewToken(sr, policy, key, time.Now().Add(ttl))
}

// call sends one request through the handler.
func call(s *Server, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "https://"+s.HostName()+path, strings.NewReader(body))
	req.Host = s.HostName()
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// authz is an Authorization header map.
func authz(tok string) map[string]string { return map[string]string{"Authorization": tok} }

// wireError is a decoded IoT Hub error answer.
type wireError struct {
	Status     int
	Code       int
	Name       string
	Message    string
	Info       map[string]any
	TrackingID string
	RequestID  string
}

// parseError checks that rec holds an error in the current hub format and
// decodes it.
func parseError(t testing.TB, rec *httptest.ResponseRecorder) wireError {
	t.Helper()
	assert.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
	var outer map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &outer), "body: %s", rec.Body.String())
	require.Len(t, outer, 2, "outer object has Message and ExceptionMessage only: %s", rec.Body.String())
	assert.Equal(t, "", outer["ExceptionMessage"])
	msg, ok := outer["Message"].(string)
	require.True(t, ok, "Message is a JSON-encoded string: %s", rec.Body.String())
	var inner map[string]any
	require.NoError(t, json.Unmarshal([]byte(msg), &inner), "inner: %s", msg)
	code, ok := inner["errorCode"].(float64)
	require.True(t, ok, "errorCode is a number: %s", msg)
	info, ok := inner["info"].(map[string]any)
	require.True(t, ok, "info is an object: %s", msg)
	ts, _ := inner["timestampUtc"].(string)
	_, err := time.Parse("2006-01-02T15:04:05.0000000Z", ts)
	assert.NoError(t, err, "timestampUtc %q", ts)
	tid, _ := inner["trackingId"].(string)
	assert.Contains(t, tid, "-TimeStamp:")
	m, _ := inner["message"].(string)
	e := wireError{
		Status: rec.Code, Code: int(code), Name: rec.Header().Get("iothub-errorcode"), Message: m, Info: info,
		TrackingID: tid, RequestID: rec.Header().Get("x-ms-request-id"),
	}
	assert.Equal(t, e.Code/1000, e.Status, "HTTP status matches the code")
	assert.NotEmpty(t, e.Name, "iothub-errorcode header")
	assert.NotEmpty(t, e.RequestID, "x-ms-request-id header")
	return e
}

func requireCode(t testing.TB, rec *httptest.ResponseRecorder, code int) wireError {
	t.Helper()
	require.NotEqual(t, http.StatusOK, rec.Code, "expected error %d, got 200: %s", code, rec.Body.String())
	e := parseError(t, rec)
	require.Equal(t, code, e.Code, "message: %s", e.Message)
	return e
}

// hubCounters are the counters of GET /hubsim/stats the tests compare.
type hubCounters struct {
	Delivered int64 `json:"methodsDelivered"`
	Throttled int64 `json:"throttled"`
}

// countersOf reads s's counters through GET /hubsim/stats.
func countersOf(t testing.TB, s *Server) hubCounters {
	t.Helper()
	rec := call(s, http.MethodGet, "/hubsim/stats", "", nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var c hubCounters
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &c))
	return c
}

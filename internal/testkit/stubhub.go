package testkit

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// StubHub is a loopback TLS stub of the IoT Hub service API. It records
// every request, then answers it from the answers given with On for its
// "METHOD path" (the escaped path, without the query string; the last
// answer repeats), else with the fallback handler given to NewStubHub,
// else with a 404 in the hub's error shape.
type StubHub struct {
	srv      *httptest.Server
	CAFile   string // the stub's certificate (PEM), for --ca-file
	fallback http.HandlerFunc

	mu      sync.Mutex
	answers map[string][]StubAnswer
	reqs    []StubReq
}

// StubAnswer is one scripted answer of the stub.
type StubAnswer struct {
	Status int
	Body   string
	Header map[string]string
}

// StubReq is a request the stub received.
type StubReq struct {
	Method     string
	Path       string   // the escaped path
	RawQuery   string   // the query string as sent
	RequestURI string   // the request line's target, as sent
	URL        *url.URL // the parsed URL (Path unescaped, RawPath, Query())
	Header     http.Header
	Body       string
}

// HubErrBody is an IoT Hub error body in the current shape (a JSON string
// inside Message).
func HubErrBody(code int, msg string) string {
	inner, _ := json.Marshal(map[string]any{"errorCode": code, "trackingId": "trk", "message": msg, "info": map[string]any{}, "timestampUtc": "2026-03-04T05:06:07.0000000Z"})
	b, _ := json.Marshal(map[string]string{"Message": string(inner), "ExceptionMessage": ""})
	return string(b)
}

// NewStubHub starts a stub, stopped when the test ends. fallback (may be
// nil) answers what no On script covers; it sees the request body intact.
func NewStubHub(t testing.TB, fallback http.HandlerFunc) *StubHub {
	t.Helper()
	h := &StubHub{answers: map[string][]StubAnswer{}, fallback: fallback}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	h.CAFile = filepath.Join(t.TempDir(), "stubhub-ca.pem")
	if err := os.WriteFile(h.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *StubHub) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.EscapedPath()
	u := *r.URL
	h.mu.Lock()
	h.reqs = append(h.reqs, StubReq{
		Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, RequestURI: r.RequestURI,
		URL: &u, Header: r.Header.Clone(), Body: string(body),
	})
	as := h.answers[key]
	var a StubAnswer
	if len(as) > 0 {
		a = as[0]
		if len(as) > 1 {
			h.answers[key] = as[1:]
		}
	}
	h.mu.Unlock()
	if a.Status == 0 && h.fallback != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.fallback(w, r)
		return
	}
	if a.Status == 0 {
		a = StubAnswer{Status: http.StatusNotFound, Body: HubErrBody(404001, "no stub for "+key)}
	}
	for k, v := range a.Header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(a.Status)
	_, _ = io.WriteString(w, a.Body)
}

// On sets the answers to key ("GET /jobs/v2/j1").
func (h *StubHub) On(key string, as ...StubAnswer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers[key] = as
}

// Requests returns the requests received so far, in order.
func (h *StubHub) Requests() []StubReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]StubReq(nil), h.reqs...)
}

// Addr is the stub's host:port.
func (h *StubHub) Addr() string { return h.srv.Listener.Addr().String() }

// Client returns an HTTP client that trusts the stub.
func (h *StubHub) Client() *http.Client { return h.srv.Client() }

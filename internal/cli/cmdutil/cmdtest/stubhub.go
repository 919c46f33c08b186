package cmdtest

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// StubHub is a loopback TLS stub of the IoT Hub service API. It answers
// per "METHOD path" (the escaped path, without the query string) from the
// answers given with On; the last answer repeats; anything else gets 404.
type StubHub struct {
	srv     *httptest.Server
	CAFile  string // the stub's certificate, for --ca-file
	mu      sync.Mutex
	answers map[string][]StubAnswer
	reqs    []StubReq
}

// StubAnswer is one answer of the stub.
type StubAnswer struct {
	Status int
	Body   string
	Header map[string]string
}

// StubReq is a request the stub received.
type StubReq struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   string
}

// OK200 is a 200 answer with a JSON body.
func OK200(body string) StubAnswer { return StubAnswer{Status: 200, Body: body} }

// HubErrBody is an IoT Hub error body in the current shape (a JSON string
// inside Message).
func HubErrBody(code int, msg string) string {
	inner, _ := json.Marshal(map[string]any{"errorCode": code, "trackingId": "trk", "message": msg, "info": map[string]any{}, "timestampUtc": "2026-03-04T05:06:07.0000000Z"})
	b, _ := json.Marshal(map[string]string{"Message": string(inner), "ExceptionMessage": ""})
	return string(b)
}

// NewStubHub starts a stub, stopped when the test ends.
func NewStubHub(t *testing.T) *StubHub {
	t.Helper()
	h := &StubHub{answers: map[string][]StubAnswer{}}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Method + " " + r.URL.EscapedPath()
		h.mu.Lock()
		h.reqs = append(h.reqs, StubReq{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)})
		as := h.answers[key]
		var a StubAnswer
		if len(as) > 0 {
			a = as[0]
			if len(as) > 1 {
				h.answers[key] = as[1:]
			}
		}
		h.mu.Unlock()
		if a.Status == 0 {
			a = StubAnswer{Status: 404, Body: HubErrBody(404001, "no stub for "+key)}
		}
		for k, v := range a.Header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(a.Status)
		_, _ = io.WriteString(w, a.Body)
	}))
	t.Cleanup(h.srv.Close)
	h.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(h.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// On sets the answers to key ("GET /jobs/v2/j1").
func (h *StubHub) On(key string, as ...StubAnswer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers[key] = as
}

// Requests are the requests received so far.
func (h *StubHub) Requests() []StubReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]StubReq(nil), h.reqs...)
}

// Addr is the stub's host:port.
func (h *StubHub) Addr() string { return h.srv.Listener.Addr().String() }

// Env points e's hub client at the stub: a SAS connection string in the
// environment and real file reads (for --ca-file). It returns e.
func (h *StubHub) Env(e *Env) *Env {
	e.F.ReadFile = os.ReadFile
	e.Env["IOTHUB_CONNECTION_STRING"] = "HostName=" + h.Addr() + ";SharedAccessKeyName=service;SharedAccessKey=" + TestKey
	return e
}

// Run runs a command line on e with the stub's CA trusted.
func (h *StubHub) Run(e *Env, args ...string) int {
	return e.Run(append(args, "--ca-file", h.CAFile)...)
}

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/sas"
)

// stubKey is the stub hub's shared access key for policy stubPolicy.
const (
	stubKey    = "ZTJlLXN0dWItaHViLWtleS0wMTIzNDU2Nzg5YWJjZGVm" // base64("e2e-stub-hub-key-0123456789abcdef")
	wrongKey   = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDA=" // base64("wrong-key-wrong-key-wrong-key-00")
	stubPolicy = "service"
)

// stubResponse is one scripted answer of the stub hub.
type stubResponse struct {
	Status int // HTTP status; 0 means 200
	Body   string
	Header map[string]string
	Delay  time.Duration // how long the "device" takes; the wait ends early if the client goes away
}

// deviceAnswer is the hub's HTTP 200 carrying what the device returned.
func deviceAnswer(status int, payload string) stubResponse {
	return stubResponse{Status: 200, Body: fmt.Sprintf(`{"status":%d,"payload":%s}`, status, payload)}
}

// hubError is an IoT Hub error in the current body format (iothub-contract.md
// §1.7): Message holds the JSON-encoded inner error.
func hubError(httpStatus, code int, name, message string) stubResponse {
	inner, _ := json.Marshal(map[string]any{
		"errorCode":    code,
		"trackingId":   fmt.Sprintf("trk-%d-TimeStamp:03/14/2024 09:54:49", code),
		"message":      message,
		"info":         map[string]any{},
		"timestampUtc": "2024-03-14T09:54:49.6536567Z",
	})
	outer, _ := json.Marshal(map[string]string{"Message": string(inner), "ExceptionMessage": ""})
	return stubResponse{Status: httpStatus, Body: string(outer), Header: map[string]string{
		"iothub-errorcode": name,
		"x-ms-request-id":  fmt.Sprintf("req-%d", code),
	}}
}

// stubRequest is what the stub hub received.
type stubRequest struct {
	Method      string
	EscapedPath string
	DeviceID    string // decoded from the path
	ModuleID    string
	APIVersion  string
	Header      http.Header
	Body        map[string]json.RawMessage
	RawBody     string
	AuthError   string // why the Authorization header was refused; "" when it was accepted
}

// stubHub is an in-process HTTPS IoT Hub that answers direct method calls
// from a script per target ("device" or "device/module"), verifies SAS
// tokens with its key (or an expected bearer token), and records requests.
type stubHub struct {
	t      testing.TB
	srv    *httptest.Server
	Host   string // 127.0.0.1:port
	CAFile string // PEM of the server certificate, for --ca-file
	// Bearer, when set, is the only accepted Authorization: "Bearer <Bearer>".
	Bearer string
	// SASHost is the resource SAS tokens must be signed for; Host when empty.
	SASHost string

	mu       sync.Mutex
	script   map[string][]stubResponse
	requests []stubRequest
}

func newStubHub(t testing.TB) *stubHub { return newStubHubFor(t) }

// newStubHubFor starts the stub. With no names it uses httptest's
// certificate (valid for 127.0.0.1); with names it serves a certificate for
// those names issued by a throwaway CA, and CAFile holds that CA.
func newStubHubFor(t testing.TB, names ...string) *stubHub {
	t.Helper()
	h := &stubHub{t: t, script: map[string][]stubResponse{}}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	var caPEM []byte
	if len(names) > 0 {
		var cert tls.Certificate
		caPEM, cert = issueCert(t, names)
		h.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	h.srv.StartTLS() // listens on 127.0.0.1
	t.Cleanup(h.srv.Close)
	h.Host = strings.TrimPrefix(h.srv.URL, "https://")
	if caPEM == nil {
		caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	}
	h.CAFile = filepath.Join(t.TempDir(), "stubhub-ca.pem")
	require.NoError(t, os.WriteFile(h.CAFile, caPEM, 0o600))
	return h
}

// issueCert makes a CA and a server certificate for names (host names or IP
// addresses, plus 127.0.0.1)
// and returns the CA's PEM and the server's key pair.
func issueCert(t testing.TB, names []string) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dmctl e2e stub CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Addr is the stub's listening address.
func (h *stubHub) Addr() string { return h.srv.Listener.Addr().String() }

// ConnectionString is a service connection string for the stub with key.
func (h *stubHub) ConnectionString(key string) string {
	return "HostName=" + h.sasHost() + ";SharedAccessKeyName=" + stubPolicy + ";SharedAccessKey=" + key
}

func (h *stubHub) sasHost() string {
	if h.SASHost != "" {
		return h.SASHost
	}
	return h.Host
}

// Script sets the answers for a target; the last one repeats.
func (h *stubHub) Script(target string, rs ...stubResponse) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.script[target] = rs
}

// Requests returns what was received so far.
func (h *stubHub) Requests() []stubRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]stubRequest(nil), h.requests...)
}

// RequestsFor returns the requests for one target.
func (h *stubHub) RequestsFor(target string) []stubRequest {
	var out []stubRequest
	for _, r := range h.Requests() {
		got := r.DeviceID
		if r.ModuleID != "" {
			got += "/" + r.ModuleID
		}
		if got == target {
			out = append(out, r)
		}
	}
	return out
}

func (h *stubHub) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := stubRequest{
		Method:      r.Method,
		EscapedPath: r.URL.EscapedPath(),
		APIVersion:  r.URL.Query().Get("api-version"),
		Header:      r.Header.Clone(),
		RawBody:     string(body),
	}
	_ = json.Unmarshal(body, &req.Body)
	target, ok := parseMethodPath(req.EscapedPath)
	if ok {
		req.DeviceID, req.ModuleID = target[0], target[1]
	}
	req.AuthError = h.checkAuth(r.Header.Get("Authorization"))

	h.mu.Lock()
	h.requests = append(h.requests, req)
	var resp stubResponse
	switch {
	case r.Method != http.MethodPost || !ok:
		resp = hubError(404, 0, "", "no such route: "+r.Method+" "+req.EscapedPath)
	case req.AuthError != "":
		resp = hubError(401, 401002, "IotHubUnauthorizedAccess", "Unauthorized")
	default:
		key := req.DeviceID
		if req.ModuleID != "" {
			key += "/" + req.ModuleID
		}
		rs := h.script[key]
		switch len(rs) {
		case 0:
			resp = deviceAnswer(200, `{"ok":true}`)
		case 1:
			resp = rs[0]
		default:
			resp = rs[0]
			h.script[key] = rs[1:]
		}
	}
	h.mu.Unlock()

	if resp.Delay > 0 {
		select {
		case <-time.After(resp.Delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range resp.Header {
		w.Header().Set(k, v)
	}
	status := resp.Status
	if status == 0 {
		status = 200
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, resp.Body)
}

// checkAuth returns why an Authorization header is refused, or "".
func (h *stubHub) checkAuth(header string) string {
	if h.Bearer != "" {
		if header != "Bearer "+h.Bearer {
			return "wrong or missing bearer token"
		}
		return ""
	}
	tok, err := sas.Parse(header)
	if err != nil {
		return err.Error()
	}
	key, err := sas.DecodeKey(stubKey)
	if err != nil {
		return err.Error()
	}
	if err := tok.Verify(key, time.Now()); err != nil {
		return err.Error()
	}
	if !strings.EqualFold(tok.Resource, h.sasHost()) {
		return fmt.Sprintf("token is for %q, not %q", tok.Resource, h.sasHost())
	}
	if tok.KeyName != stubPolicy {
		return fmt.Sprintf("token names policy %q, not %q", tok.KeyName, stubPolicy)
	}
	return ""
}

// parseMethodPath reads /twins/{id}/methods or
// /twins/{id}/modules/{mid}/methods, decoding each segment.
func parseMethodPath(escaped string) ([2]string, bool) {
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	dec := make([]string, len(segs))
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			return [2]string{}, false
		}
		dec[i] = d
	}
	switch {
	case len(dec) == 3 && dec[0] == "twins" && dec[2] == "methods":
		return [2]string{dec[1], ""}, true
	case len(dec) == 5 && dec[0] == "twins" && dec[2] == "modules" && dec[4] == "methods":
		return [2]string{dec[1], dec[3]}, true
	}
	return [2]string{}, false
}

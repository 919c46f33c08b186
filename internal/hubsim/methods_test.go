package hubsim

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/identity"
)

// BenchmarkInvokeHandler measures hubsim's own work per direct-method call
// (routing, auth with a cached SAS token, body parse, throttle, fault draw,
// registry invoke, answer), without TLS or sockets.
func BenchmarkInvokeHandler(b *testing.B) {
	s := newTestServer(b, Config{NoThrottle: true, Fleet: answeringFleet(1000, 200, `null`)})
	tok := token(b, s, identity.PolicyService, "", time.Hour)
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

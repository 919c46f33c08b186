package iothub

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTransportResumesTLSSessions: many calls started at once to a new host
// make one full handshake; the others wait for its session ticket and
// resume, and no handshake is counted as under way afterwards.
func TestTransportResumesTLSSessions(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	client := NewTransport(roots)

	const n = 40
	var resumed, ok atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(srv.URL)
			if !assert.NoError(t, err) {
				return
			}
			_ = resp.Body.Close()
			ok.Add(1)
			if resp.TLS != nil && resp.TLS.DidResume {
				resumed.Add(1)
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, n, ok.Load())
	assert.GreaterOrEqual(t, resumed.Load(), int64(n/2), "most connections resumed the first one's session (%d of %d)", resumed.Load(), n)
	assert.Zero(t, HandshakesInProgress(), "every handshake ended")
}

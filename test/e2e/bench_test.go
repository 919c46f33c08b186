package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/sas"
)

// BenchmarkInvokeBinary measures one `dmctl invoke` of the built binary
// against the stub hub (which answers at once), and side by side in the same
// loop the same call made in-process with the iothub client, so the cost of
// the CLI process is a printed figure:
//
//	binary-ms/op       the whole dmctl process: start, flags, auth, TLS handshake, call, output
//	inproc-ms/op       one call on a warm in-process client (connection reused)
//	inproc-cold-ms/op  one call on a new in-process client and transport (fresh TLS handshake)
//	overhead-ms/op     binary minus inproc-cold: what the process itself adds
//
// Run with: go test -run XXX -bench InvokeBinary -benchtime 50x ./test/e2e/
func BenchmarkInvokeBinary(b *testing.B) {
	h := newStubHub(b)
	h.Script("bench-1", deviceAnswer(200, `{"pong":true}`))
	bin := binary(b, "dmctl")
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + b.TempDir(), "IOTHUB_CONNECTION_STRING=" + h.ConnectionString(stubKey)}
	args := []string{"invoke", "--ca-file", h.CAFile, "ping", "--device", "bench-1", "-o", "json"}

	key, err := sas.DecodeKey(stubKey)
	if err != nil {
		b.Fatal(err)
	}
	signer := sas.NewSigner(h.Host, stubPolicy, key, 0, nil)
	pool := x509.NewCertPool()
	pool.AddCert(h.srv.Certificate())
	newClient := func() *iothub.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		c, err := iothub.NewSASClient(h.Host, signer, &iothub.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: tr}}})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	warm := newClient()
	ctx := context.Background()
	req := iothub.MethodRequest{MethodName: "ping"}
	call := func(c *iothub.Client) {
		res, err := c.InvokeDeviceMethod(ctx, "bench-1", req)
		if err != nil || res.Status != 200 {
			b.Fatalf("in-process call: status %d, %v", res.Status, err)
		}
	}
	runBinary := func() {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("dmctl: %v\n%s", err, out)
		}
	}
	// Warm the disk cache and the warm client's connection.
	runBinary()
	call(warm)

	b.ResetTimer()
	var binT, warmT, coldT time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		runBinary()
		t1 := time.Now()
		call(warm)
		t2 := time.Now()
		call(newClient())
		t3 := time.Now()
		binT += t1.Sub(t0)
		warmT += t2.Sub(t1)
		coldT += t3.Sub(t2)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(ms(binT), "binary-ms/op")
	b.ReportMetric(ms(warmT), "inproc-ms/op")
	b.ReportMetric(ms(coldT), "inproc-cold-ms/op")
	b.ReportMetric(ms(binT-coldT), "overhead-ms/op")
}

package hubsim

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/sas"
)

// benchDevices is how many MQTT devices stay connected during the benchmark.
const benchDevices = 1000

// BenchmarkMQTTMethodRoundTrip connects 1,000 MQTT devices (paho clients
// over TLS) to one in-process hubsim and measures direct-method round trips
// through MQTT to random devices: over the REST API (HTTPS invoke -> hub ->
// MQTT PUBLISH -> device -> MQTT response -> HTTP 200), and straight from the
// registry (the MQTT leg alone). It reports p50/p99 latency and calls/s;
// there is no timed assertion. Clients and hub share this machine's CPUs.
func BenchmarkMQTTMethodRoundTrip(b *testing.B) {
	ids := make([]string, benchDevices)
	for i := range ids {
		ids[i] = fmt.Sprintf("mqtt-%04d", i+1)
	}
	s := startTestServer(b, Config{Register: ids, NoThrottle: true, Log: io.Discard})
	r := s.Ready()

	start := time.Now()
	clients := connectBenchDevices(b, s, ids)
	b.Logf("%d devices connected over MQTT/TLS in %s", len(clients), time.Since(start).Round(time.Millisecond))
	defer func() {
		for _, c := range clients {
			c.Disconnect(0)
		}
	}()
	st := s.Registry().Stats()
	require.Equal(b, benchDevices, st.Attached, "every device attached")

	key, ok := s.PolicyKey(identity.PolicyService)
	require.True(b, ok)
	auth := sas.NewToken(r.HostName, identity.PolicyService, key, time.Now().Add(2*time.Hour))
	httpc := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: s.Certs().Pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 256,
	}, Timeout: 30 * time.Second}
	defer httpc.CloseIdleConnections()
	body := []byte(`{"methodName":"ping","payload":{"n":1},"responseTimeoutInSeconds":30}`)

	viaREST := func(id string) error {
		req, err := http.NewRequest(http.MethodPost, "https://"+r.HostName+"/twins/"+id+"/methods?api-version=2021-04-12", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(got, []byte(`"status":200`)) {
			return fmt.Errorf("%s: HTTP %d %s", id, resp.StatusCode, got)
		}
		return nil
	}
	viaRegistry := func(id string) error {
		st, _, err := s.Registry().InvokeMethod(context.Background(), id, "", "ping", []byte(`{"n":1}`), 0, 30*time.Second)
		if err == nil && st != 200 {
			err = fmt.Errorf("%s: status %d", id, st)
		}
		return err
	}

	for _, bc := range []struct {
		name    string
		callers int
		call    func(string) error
	}{
		{"rest/callers=1", 1, viaREST},
		{"rest/callers=64", 64, viaREST},
		{"registry/callers=64", 64, viaRegistry},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var firstErr error
			var errOnce sync.Once
			var wg sync.WaitGroup
			b.ResetTimer()
			t0 := time.Now()
			for w := 0; w < bc.callers; w++ {
				wg.Add(1)
				go func(seed uint64) {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(seed, 7))
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						id := ids[rng.IntN(len(ids))]
						t := time.Now()
						if err := bc.call(id); err != nil {
							errOnce.Do(func() { firstErr = err })
							return
						}
						lat[i] = time.Since(t)
					}
				}(uint64(w))
			}
			wg.Wait()
			elapsed := time.Since(t0)
			b.StopTimer()
			require.NoError(b, firstErr)
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
			b.ReportMetric(float64(benchDevices), "devices")
		})
	}
}

// connectBenchDevices connects one paho client per id (50 handshakes at a
// time); each answers every method with 200 {"ok":true}.
func connectBenchDevices(b *testing.B, s *Server, ids []string) []paho.Client {
	r := s.Ready()
	tlsc := &tls.Config{RootCAs: s.Certs().Pool, MinVersion: tls.VersionTLS12}
	answer := func(c paho.Client, m paho.Message) {
		_, q, _ := bytes.Cut([]byte(m.Topic()), []byte("?$rid="))
		c.Publish("$iothub/methods/res/200/?$rid="+string(q), 0, false, []byte(`{"ok":true}`))
	}
	clients := make([]paho.Client, len(ids))
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			key, ok := s.Registry().Key(id, "")
			if !ok {
				mu.Lock()
				firstErr = fmt.Errorf("no key for %s", id)
				mu.Unlock()
				return
			}
			opts := paho.NewClientOptions().
				AddBroker("tls://" + r.MQTTAddr).
				SetClientID(id).
				SetUsername(r.HostName + "/" + id + "/?api-version=2021-04-12").
				SetPassword(sas.NewToken(r.HostName+"/devices/"+id, "", key, time.Now().Add(2*time.Hour))).
				SetTLSConfig(tlsc).
				SetProtocolVersion(4).
				SetCleanSession(true).
				SetKeepAlive(5 * time.Minute).
				SetAutoReconnect(false).
				SetOrderMatters(false)
			c := paho.NewClient(opts)
			err := waitToken(c.Connect())
			if err == nil {
				err = waitToken(c.Subscribe("$iothub/methods/POST/#", 0, answer))
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", id, err)
				}
				mu.Unlock()
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	require.NoError(b, firstErr)
	return clients
}

func waitToken(t paho.Token) error {
	if !t.WaitTimeout(60 * time.Second) {
		return fmt.Errorf("timed out")
	}
	return t.Error()
}

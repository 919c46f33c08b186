package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmctl/dmctl/internal/ctxtime"
	"github.com/dmctl/dmctl/internal/hubsim"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/rest"
	"github.com/dmctl/dmctl/internal/hubsim/sim"
	"github.com/dmctl/dmctl/internal/sas"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	Duration     time.Duration // measured time (after Warmup)
	Warmup       time.Duration // unmeasured time first (connections, caches)
	Concurrency  int           // concurrent callers, each on its own keep-alive connection
	Devices      int           // simulated devices the calls are spread over
	PayloadBytes int           // size of the method payload (a JSON string), 0 = null
	CPUProfile   string        // write a CPU profile of the measured time here
	HTTP2        bool          // use HTTP/2 (multiplexed streams) instead of HTTP/1.1 keep-alive connections
}

// BenchResult is what Bench measured.
type BenchResult struct {
	Duration     float64 `json:"durationSeconds"`
	Concurrency  int     `json:"concurrency"`
	Devices      int     `json:"devices"`
	PayloadBytes int     `json:"payloadBytes"`
	GOMAXPROCS   int     `json:"gomaxprocs"`
	Calls        int64   `json:"calls"`
	Errors       int64   `json:"errors"`
	CallsPerSec  float64 `json:"callsPerSecond"`
	P50Ms        float64 `json:"p50Ms"`
	P90Ms        float64 `json:"p90Ms"`
	P99Ms        float64 `json:"p99Ms"`
	MaxMs        float64 `json:"maxMs"`
	// CPUSeconds is the CPU time this process (load generator and hub
	// together) used while measuring; CallsPerCPUSecond = Calls/CPUSeconds
	// stays meaningful when other processes compete for the cores.
	CPUSeconds        float64          `json:"cpuSeconds"`
	CallsPerCPUSecond float64          `json:"callsPerCpuSecond"`
	ByStatus          map[string]int64 `json:"byHttpStatus"`
}

// benchMethod is the method the load generator invokes; the bench fleet
// answers every method with status 200 at 0 ms.
const benchMethod = "ping"

// Bench starts an in-process unthrottled hub with a 0 ms fleet and drives
// POST /twins/{id}/methods over keep-alive HTTPS connections with one SAS
// token signed up front, then reports throughput and latency percentiles.
func Bench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	if o.Concurrency < 1 || o.Devices < 1 || o.Duration <= 0 || o.PayloadBytes < 0 || o.PayloadBytes > rest.MaxMethodPayloadBytes-2 {
		return nil, fmt.Errorf("bench: invalid options %+v", o)
	}
	ok200 := 200
	spec := sim.GenerateFleet(o.Devices)
	for i := range spec.Groups {
		spec.Groups[i].Methods = map[string]sim.MethodSpec{"*": {Status: &ok200}}
	}
	srv, err := hubsim.New(hubsim.Config{NoThrottle: true, Fleet: spec})
	if err != nil {
		return nil, err
	}
	defer srv.Shutdown(context.Background()) //nolint:errcheck // best effort at the end of a bench
	if err := srv.Start(); err != nil {
		return nil, err
	}

	key, _ := srv.PolicyKey(identity.PolicyService)
	token := sas.NewToken(srv.HostName(), identity.PolicyService, key, time.Now().Add(2*time.Hour+o.Duration+o.Warmup))
	ids := srv.Registry().DeviceIDs(false)
	if len(ids) == 0 {
		return nil, fmt.Errorf("bench: the fleet has no devices")
	}
	urls := make([]*url.URL, len(ids))
	for i, id := range ids {
		u, err := url.Parse("https://" + srv.HostName() + "/twins/" + url.PathEscape(id) + "/methods?api-version=2021-04-12")
		if err != nil {
			return nil, err
		}
		urls[i] = u
	}
	payload := "null"
	if o.PayloadBytes > 0 {
		payload = `"` + strings.Repeat("x", o.PayloadBytes-min(o.PayloadBytes, 2)) + `"`
	}
	body := []byte(`{"methodName":"` + benchMethod + `","payload":` + payload + `,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`)

	tr := &http.Transport{
		TLSClientConfig:     srv.Certs().ClientTLSConfig(),
		MaxIdleConns:        o.Concurrency * 2,
		MaxIdleConnsPerHost: o.Concurrency * 2,
		DisableCompression:  true,
		ForceAttemptHTTP2:   o.HTTP2,
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	header := http.Header{
		"Authorization": {token},
		"Content-Type":  {"application/json; charset=utf-8"},
	}

	var measuring atomic.Bool
	var stop atomic.Bool
	type workerResult struct {
		lat      []time.Duration
		errors   int64
		byStatus map[int]int64
	}
	results := make([]workerResult, o.Concurrency)
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[w]
			res.byStatus = map[int]int64{}
			res.lat = make([]time.Duration, 0, 1<<16)
			buf := make([]byte, 4096)
			i := w * (len(urls)/o.Concurrency + 1)
			// The body must be a reader net/http knows is in memory
			// (*bytes.Reader): for any other it flushes the headers in a
			// write of their own, a second syscall per call.
			getBody := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			for !stop.Load() && ctx.Err() == nil {
				u := urls[i%len(urls)]
				i++
				// No per-request context: calls end within milliseconds
				// (0 ms devices), and the loop checks ctx between calls.
				req := &http.Request{
					Method:        http.MethodPost,
					URL:           u,
					Header:        header,
					Body:          io.NopCloser(bytes.NewReader(body)),
					GetBody:       getBody,
					ContentLength: int64(len(body)),
					Host:          u.Host,
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				status := 0
				if err == nil {
					for {
						if _, e := resp.Body.Read(buf); e != nil {
							break
						}
					}
					_ = resp.Body.Close()
					status = resp.StatusCode
				}
				d := time.Since(t0)
				if !measuring.Load() {
					continue
				}
				res.byStatus[status]++
				if status != http.StatusOK {
					res.errors++
					continue
				}
				res.lat = append(res.lat, d)
			}
		}()
	}

	if !ctxtime.SleepOK(ctx, o.Warmup) {
		stop.Store(true)
		wg.Wait()
		return nil, ctx.Err()
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			stop.Store(true)
			wg.Wait()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			stop.Store(true)
			wg.Wait()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	cpu0 := processCPU()
	measuring.Store(true)
	start := time.Now()
	ctxtime.SleepOK(ctx, o.Duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	if o.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	stop.Store(true)
	wg.Wait()

	r := &BenchResult{
		Duration: elapsed.Seconds(), Concurrency: o.Concurrency, Devices: len(ids), PayloadBytes: o.PayloadBytes,
		GOMAXPROCS: runtime.GOMAXPROCS(0), ByStatus: map[string]int64{},
	}
	var all []time.Duration
	for _, res := range results {
		all = append(all, res.lat...)
		r.Errors += res.errors
		for st, n := range res.byStatus {
			key := strconv.Itoa(st)
			if st == 0 {
				key = "transport error"
			}
			r.ByStatus[key] += n
		}
	}
	r.Calls = int64(len(all))
	r.CallsPerSec = float64(r.Calls) / elapsed.Seconds()
	r.CPUSeconds = cpu.Seconds()
	if cpu > 0 {
		r.CallsPerCPUSecond = float64(r.Calls) / cpu.Seconds()
	}
	if len(all) > 0 {
		slices.Sort(all)
		pct := func(p float64) float64 {
			i := int(p * float64(len(all)-1))
			return float64(all[i]) / float64(time.Millisecond)
		}
		r.P50Ms, r.P90Ms, r.P99Ms = pct(0.50), pct(0.90), pct(0.99)
		r.MaxMs = float64(all[len(all)-1]) / float64(time.Millisecond)
	}
	return r, ctx.Err()
}

// Text renders the result for people.
func (r *BenchResult) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hubsim bench: POST /twins/{id}/methods, %d callers, %d devices, %d-byte payload, GOMAXPROCS %d, %.1fs\n",
		r.Concurrency, r.Devices, r.PayloadBytes, r.GOMAXPROCS, r.Duration)
	fmt.Fprintf(&b, "calls:   %d ok (%.0f calls/s), %d not ok\n", r.Calls, r.CallsPerSec, r.Errors)
	fmt.Fprintf(&b, "latency: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs)
	fmt.Fprintf(&b, "cpu:     %.2f s used (%.0f%% of %d cores), %.0f calls per CPU-second\n",
		r.CPUSeconds, 100*r.CPUSeconds/r.Duration/float64(r.GOMAXPROCS), r.GOMAXPROCS, r.CallsPerCPUSecond)
	if r.Errors > 0 {
		keys := make([]string, 0, len(r.ByStatus))
		for k := range r.ByStatus {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString("by HTTP status:")
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%d", k, r.ByStatus[k])
		}
		b.WriteString("\n")
	}
	return b.String()
}

func newBenchCmd(stdout, stderr io.Writer) *cobra.Command {
	o := BenchOptions{}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure direct-method throughput of an in-process hub",
		Long: `bench starts an unthrottled hub in this process with a fleet that answers at
0 ms, drives POST /twins/{id}/methods over keep-alive HTTPS connections (one
SAS token signed up front) and prints calls/s and latency percentiles.
Client and hub share the machine, so the figure is a lower bound for the hub.`,
		Example: `  $ hubsim bench
  $ hubsim bench --duration 30s --concurrency 128 --payload-bytes 1024 --json`,
		Args:          noArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case o.Duration <= 0:
				return usagef("--duration %s: must be positive", o.Duration)
			case o.Warmup < 0:
				return usagef("--warmup %s: must not be negative", o.Warmup)
			case o.Concurrency < 1:
				return usagef("--concurrency %d: must be at least 1", o.Concurrency)
			case o.Devices < 1 || o.Devices > 1_000_000:
				return usagef("--devices %d: must be between 1 and 1000000", o.Devices)
			case o.PayloadBytes < 0 || o.PayloadBytes > rest.MaxMethodPayloadBytes-2:
				return usagef("--payload-bytes %d: must be between 0 and %d", o.PayloadBytes, rest.MaxMethodPayloadBytes-2)
			}
			_, _ = fmt.Fprintf(stderr, "hubsim bench: warming up %s, then measuring %s...\n", o.Warmup, o.Duration)
			r, err := Bench(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				b, err := json.Marshal(r)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(stdout, string(b))
				return err
			}
			_, err = io.WriteString(stdout, r.Text())
			return err
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to measure")
	fl.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured time before measuring")
	fl.IntVar(&o.Concurrency, "concurrency", 64, "concurrent callers (keep-alive connections)")
	fl.IntVar(&o.Devices, "devices", 20000, "simulated devices to spread the calls over")
	fl.IntVar(&o.PayloadBytes, "payload-bytes", 0, "method payload size in bytes (0: null)")
	fl.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	fl.BoolVar(&o.HTTP2, "http2", false, "use HTTP/2 streams over few connections (as azcore clients do) instead of HTTP/1.1 keep-alive")
	fl.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile (pprof) of the measured time to `FILE`")
	return cmd
}

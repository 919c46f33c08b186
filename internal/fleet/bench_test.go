package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/dmctl/dmctl/internal/iothub"
)

// BenchmarkRunnerOverhead is the runner's own cost per target (dispatch,
// retry bookkeeping, collection, summary, JSON encoding of the result)
// with an invoker that answers at once: what dmctl adds to each call on
// top of the REST client.
func BenchmarkRunnerOverhead(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("concurrency-%d", conc), func(b *testing.B) {
			targets := make([]Target, b.N)
			for i := range targets {
				targets[i] = Target{DeviceID: fmt.Sprintf("bench-%07d", i)}
			}
			inv := funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) {
				return iothub.MethodResult{Status: 200, Payload: json.RawMessage(`{"ok":true}`)}, nil
			})
			var buf []byte
			b.ReportAllocs()
			b.ResetTimer()
			_, err := NewRunner(inv).Run(context.Background(), NewSliceSource(targets), RunOptions{
				Request:     iothub.MethodRequest{MethodName: "ping", ResponseTimeout: 30 * time.Second},
				Concurrency: conc,
				OnResult: func(r Result) {
					buf, _ = r.AppendJSON(buf[:0])
					_, _ = io.Discard.Write(buf)
				},
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkRunnerRolloutPolicies is a rollout of 2,000 targets at 64 in
// flight against devices that take 5-50 ms to answer, with the policies of
// issue 14 on and off: abort criteria judged on every result, waves of 200
// (each drains the calls in flight before the next starts), and a health
// gate between the waves (a no-op here: its own time is the user's).
// Compare the cases' targets/s in one run.
func BenchmarkRunnerRolloutPolicies(b *testing.B) {
	const n = 2000
	criteria := []Criterion{}
	for _, s := range []string{"offline>10%", "timeout>5", "any>20%"} {
		c, err := ParseCriterion(s)
		if err != nil {
			b.Fatal(err)
		}
		criteria = append(criteria, c)
	}
	cases := []struct {
		name string
		opts RunOptions
	}{
		{"plain", RunOptions{}},
		{"abort-if", RunOptions{AbortIf: criteria, MinSample: 50}},
		{"waves-200", RunOptions{Waves: WavePlan{BatchSize: 200}}},
		{"waves-200+gate+abort-if", RunOptions{Waves: WavePlan{BatchSize: 200}, AbortIf: criteria, MinSample: 50,
			Gate: func(context.Context, int, int) error { return nil }}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			targets := make([]Target, n)
			for i := range targets {
				targets[i] = Target{DeviceID: fmt.Sprintf("bench-%07d", i)}
			}
			inv := funcInvoker(func(ctx context.Context, t Target) (iothub.MethodResult, error) {
				var k int
				_, _ = fmt.Sscanf(t.DeviceID, "bench-%d", &k)
				// The device's answer time, as a call sees it: an answer after
				// it, or the call's context ending first.
				answer := time.NewTimer(5*time.Millisecond + time.Duration(k*7919%45)*time.Millisecond)
				defer answer.Stop()
				select {
				case <-answer.C:
					return iothub.MethodResult{Status: 200, Payload: json.RawMessage(`{"ok":true}`)}, nil
				case <-ctx.Done():
					return iothub.MethodResult{}, ctx.Err()
				}
			})
			b.ReportAllocs()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				opts := c.opts
				opts.Request = iothub.MethodRequest{MethodName: "ping", ResponseTimeout: 30 * time.Second}
				opts.Concurrency = 64
				opts.Total = n
				if _, err := NewRunner(inv).Run(context.Background(), NewSliceSource(targets), opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "targets/s")
		})
	}
}

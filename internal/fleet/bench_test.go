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

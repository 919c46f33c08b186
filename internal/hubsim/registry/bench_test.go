package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkRegistry100k reports the memory a 100,000-device simulated fleet
// costs (B/device), idle and after every device went through a reboot life
// cycle (which materialises its reported iothubDM state), and the number of
// goroutines it leaves behind (none per device).
func BenchmarkRegistry100k(b *testing.B) {
	const n = 100_000
	spec := func() *sim.FleetSpec {
		return &sim.FleetSpec{Groups: []sim.Group{{Name: "sim", IDPattern: "sim-%06d", Count: n,
			Tags:    map[string]any{"site": "plant-a", "kind": "thermostat"},
			Methods: map[string]sim.MethodSpec{"reboot": {Downtime: dur(time.Millisecond)}, "*": {}}}}}
	}
	for i := 0; i < b.N; i++ {
		before := heapInUse()
		g0 := runtime.NumGoroutine()
		r := NewRegistry(Options{Seed: 1})
		if err := r.Apply(spec()); err != nil {
			b.Fatal(err)
		}
		idle := heapInUse()
		b.ReportMetric(float64(idle-before)/n, "B/device")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0), "goroutines")

		ctx := context.Background()
		for _, id := range r.DeviceIDs(false) {
			if _, _, err := r.InvokeMethod(ctx, id, "", sim.MethodReboot, nil, 0, time.Second); err != nil {
				b.Fatal(err)
			}
		}
		// The reboots end on their own timers; nothing announces the last.
		require.Eventually(b, func() bool { return r.Stats().Connected >= n }, time.Minute, 5*time.Millisecond, "every device back after its reboot")
		after := heapInUse()
		b.ReportMetric(float64(after-before)/n, "B/device-rebooted")
		runtime.KeepAlive(r)
	}
}

// BenchmarkInvoke measures a direct method on a simulated device at 0 ms
// latency, from parallel callers over 10,000 devices.
func BenchmarkInvoke(b *testing.B) {
	for _, bc := range []struct {
		name   string
		method string
		spec   sim.MethodSpec
	}{
		{"fixed-payload", "ping", sim.MethodSpec{Payload: json.RawMessage(`{"ok":true}`)}},
		{"echo", "ping", sim.MethodSpec{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := NewRegistry(Options{Seed: 1})
			if err := r.Apply(&sim.FleetSpec{Groups: []sim.Group{{Name: "sim", IDPattern: "sim-%06d", Count: 10_000,
				Methods: map[string]sim.MethodSpec{bc.method: bc.spec}}}}); err != nil {
				b.Fatal(err)
			}
			var delivered atomic.Int64
			r.OnDelivered(func(Delivery) { delivered.Add(1) })
			ids := r.DeviceIDs(false)
			payload := json.RawMessage(`{"delay":0}`)
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					id := ids[int(next.Add(1))%len(ids)]
					if _, _, err := r.InvokeMethod(ctx, id, "", bc.method, payload, 0, 30*time.Second); err != nil {
						panic(fmt.Sprintf("invoke %s: %v", id, err))
					}
				}
			})
			b.StopTimer()
			if delivered.Load() != int64(b.N) {
				b.Fatalf("delivered %d of %d", delivered.Load(), b.N)
			}
		})
	}
}

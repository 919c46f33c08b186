package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

func TestUnknownMethodAndDefaults(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Methods: map[string]sim.MethodSpec{
		"getTemp": {Payload: raw(`{"celsius":21.5}`)},
		"fail":    {Status: ptr(500), Payload: raw(`"boom"`)},
		"echo":    {},
	}})
	ctx := context.Background()
	st, resp, err := r.InvokeMethod(ctx, "dev-001", "", "nope", raw(`{}`), 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 404, st)
	assert.JSONEq(t, `{"message":"Method 'nope' is not implemented by this device"}`, string(resp))

	st, resp, err = r.InvokeMethod(ctx, "dev-001", "", "getTemp", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, st)
	assert.JSONEq(t, `{"celsius":21.5}`, string(resp))

	st, resp, err = r.InvokeMethod(ctx, "dev-001", "", "fail", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 500, st)
	assert.JSONEq(t, `"boom"`, string(resp))

	st, resp, err = r.InvokeMethod(ctx, "dev-001", "", "echo", raw(`{"x":[1,2]}`), 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, st)
	assert.JSONEq(t, `{"method":"echo","received":{"x":[1,2]}}`, string(resp))
	_, resp, _ = r.InvokeMethod(ctx, "dev-001", "", "echo", nil, 0, time.Second)
	assert.JSONEq(t, `{"method":"echo","received":null}`, string(resp))
	big := raw(`"` + strings.Repeat("x", 70*1024) + `"`)
	_, resp, _ = r.InvokeMethod(ctx, "dev-001", "", "echo", big, 0, time.Second)
	assert.JSONEq(t, fmt.Sprintf(`{"method":"echo","receivedBytes":%d}`, len(big)), string(resp))
}

func TestStarMethod(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Methods: map[string]sim.MethodSpec{
		"*":      {Status: ptr(501), Payload: raw(`{"star":true}`)},
		"reboot": {Downtime: dur(time.Millisecond)},
		"own":    {Status: ptr(202)},
	}})
	ctx := context.Background()
	st, resp, err := r.InvokeMethod(ctx, "dev-001", "", "anything", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 501, st)
	assert.JSONEq(t, `{"star":true}`, string(resp))
	// Listed methods inherit unset fields from "*".
	st, resp, err = r.InvokeMethod(ctx, "dev-001", "", "own", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 202, st)
	assert.JSONEq(t, `{"star":true}`, string(resp))
	// So does reboot: its status is 501, so no life cycle starts.
	st, _, err = r.InvokeMethod(ctx, "dev-001", "", "reboot", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 501, st)
	// A life cycle reports its start before the answer returns (at 0 ms
	// latency): had this one started, iothubDM would be there now.
	assert.Nil(t, reported(t, r, "dev-001", "iothubDM"))
}

func TestLatencyAndTimeout(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 2, Methods: map[string]sim.MethodSpec{
		"slow":   {Latency: &sim.Latency{Dist: "fixed", Value: sim.Duration(40 * time.Millisecond)}},
		"stuck":  {Latency: &sim.Latency{Dist: "fixed", Value: sim.Duration(time.Hour)}},
		"reboot": {Latency: &sim.Latency{Dist: "fixed", Value: sim.Duration(60 * time.Millisecond)}, Downtime: dur(time.Hour)},
	}})
	log := watch(r)
	ctx := WithRequestID(context.Background(), "req-1")

	start := time.Now()
	st, _, err := r.InvokeMethod(ctx, "dev-001", "", "slow", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, st)
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "the latency is waited out")

	// sim.Latency beyond the response timeout: 504101 after the response
	// timeout, but the device ran it.
	_, _, err = r.InvokeMethod(ctx, "dev-002", "", "stuck", nil, 0, 20*time.Millisecond)
	assert.ErrorIs(t, err, ErrTimeout)

	// A reboot that times out still reboots once its latency has passed.
	_, _, err = r.InvokeMethod(ctx, "dev-001", "", "reboot", nil, 0, 10*time.Millisecond)
	assert.ErrorIs(t, err, ErrTimeout)
	eventually(t, func() bool { return reported(t, r, "dev-001", "iothubDM", "reboot", "startedRebootTime") != nil }, "reboot starts after its latency")
	_, _, err = r.InvokeMethod(ctx, "dev-001", "", "slow", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline, "rebooting")

	ds := log.all()
	require.Len(t, ds, 3)
	assert.Equal(t, Delivery{Time: ds[0].Time, DeviceID: "dev-001", Method: "slow", RequestID: "req-1", Status: 200}, ds[0])
	assert.Equal(t, "stuck", ds[1].Method)
	assert.Equal(t, 0, ds[1].Status, "no answer in time")
	assert.Equal(t, "reboot", ds[2].Method)
	assert.Equal(t, 0, ds[2].Status)
	st2 := r.Stats()
	assert.Equal(t, int64(2), st2.Timeouts)
	assert.Equal(t, int64(3), st2.MethodsDelivered)
	assert.Equal(t, int64(1), st2.NotOnline)
}

func TestLatencyDistributions(t *testing.T) {
	r := newFleet(t, Options{Seed: 9}, sim.Group{Name: "g", Count: 1})
	id := r.device("dev-001")
	u := resolveLatency(&sim.Latency{Dist: "uniform", Min: dur(10 * time.Millisecond), Max: dur(20 * time.Millisecond)})
	n := resolveLatency(&sim.Latency{Dist: "normal", Mean: dur(50 * time.Millisecond), StdDev: dur(10 * time.Millisecond), Min: dur(45 * time.Millisecond)})
	nm := resolveLatency(&sim.Latency{Dist: "normal", Min: dur(0), Max: dur(60 * time.Millisecond)})
	f := resolveLatency(&sim.Latency{Dist: "fixed", Value: sim.Duration(7 * time.Millisecond)})
	var sumU, sumN float64
	distinct := map[time.Duration]bool{}
	for i := uint64(0); i < 2000; i++ {
		v := u.sample(id.hkey, i)
		require.GreaterOrEqual(t, v, 10*time.Millisecond)
		require.LessOrEqual(t, v, 20*time.Millisecond)
		sumU += float64(v)
		distinct[v] = true
		w := n.sample(id.hkey, i)
		require.GreaterOrEqual(t, w, 45*time.Millisecond, "clipped at min")
		sumN += float64(w)
		x := nm.sample(id.hkey, i)
		require.GreaterOrEqual(t, x, time.Duration(0))
		require.LessOrEqual(t, x, 60*time.Millisecond)
		require.Equal(t, 7*time.Millisecond, f.sample(id.hkey, i))
		require.Equal(t, v, u.sample(id.hkey, i), "draws are a function of the counter")
	}
	assert.InDelta(t, float64(15*time.Millisecond), sumU/2000, float64(500*time.Microsecond))
	assert.Greater(t, sumN/2000, float64(50*time.Millisecond), "clipping the low tail raises the mean")
	assert.Greater(t, len(distinct), 1000)
	assert.Equal(t, time.Duration(0), (&latency{}).sample(1, 1))
}

func TestCallerCancelStopsWaiting(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Methods: map[string]sim.MethodSpec{"stuck": {Latency: &sim.Latency{Dist: "fixed", Value: sim.Duration(time.Hour)}}}})
	require.NoError(t, r.Register("offline"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, _, err := r.InvokeMethod(ctx, "dev-001", "", "stuck", nil, 0, time.Minute)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	_, _, err = r.InvokeMethod(ctx2, "offline", "", "x", nil, time.Minute, time.Minute)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestAttachedDevice(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Register("real"))
	log := watch(r)
	ctx := context.Background()

	detach, err := r.Attach("real", "", func(ctx context.Context, method string, payload json.RawMessage) (int, json.RawMessage, error) {
		return 201, json.RawMessage(`{"got":` + string(payload) + `,"m":"` + method + `"}`), nil
	})
	require.NoError(t, err)
	tw, _ := r.Twin("real", "")
	assert.Equal(t, "Connected", tw["connectionState"])
	assert.Equal(t, 1, r.Stats().Attached)

	st, resp, err := r.InvokeMethod(WithRequestID(ctx, "rid"), "real", "", "hello", raw(`[1]`), 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 201, st)
	assert.JSONEq(t, `{"got":[1],"m":"hello"}`, string(resp))
	require.Len(t, log.all(), 1)
	assert.Equal(t, "rid", log.all()[0].RequestID)
	assert.Equal(t, 201, log.all()[0].Status)

	// Not subscribed: 404103 even though connected.
	r.SetMethodsSubscribed("real", "", false)
	_, _, err = r.InvokeMethod(ctx, "real", "", "hello", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline)
	tw, _ = r.Twin("real", "")
	assert.Equal(t, "Connected", tw["connectionState"])
	// ... until it subscribes within the connect timeout.
	waited := make(chan error, 1)
	go func() {
		st, _, err := r.InvokeMethod(ctx, "real", "", "hello", nil, 5*time.Second, time.Second)
		if err == nil && st != 201 {
			err = fmt.Errorf("status %d, want 201", st)
		}
		waited <- err
	}()
	waitForWaitingCall(t, r, "real")
	r.SetMethodsSubscribed("real", "", true)
	require.NoError(t, <-waited)

	detach()
	detach() // idempotent
	_, _, err = r.InvokeMethod(ctx, "real", "", "hello", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline)
	tw, _ = r.Twin("real", "")
	assert.Equal(t, "Disconnected", tw["connectionState"])
	r.SetMethodsSubscribed("real", "", true) // no effect while detached
	_, _, err = r.InvokeMethod(ctx, "real", "", "hello", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline)

	_, err = r.Attach("nope", "", func(context.Context, string, json.RawMessage) (int, json.RawMessage, error) { return 0, nil, nil })
	assert.ErrorIs(t, err, ErrDeviceNotFound)
	_, err = r.Attach("real", "", nil)
	assert.Error(t, err)
}

func TestAttachReplacesAndOldDetachIsNoop(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Register("real"))
	handler := func(name string) MethodHandler {
		return func(context.Context, string, json.RawMessage) (int, json.RawMessage, error) {
			return 200, json.RawMessage(`"` + name + `"`), nil
		}
	}
	detach1, err := r.Attach("real", "", handler("first"))
	require.NoError(t, err)
	detach2, err := r.Attach("real", "", handler("second"))
	require.NoError(t, err)
	_, resp, err := r.InvokeMethod(context.Background(), "real", "", "m", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, `"second"`, string(resp))

	detach1() // the replaced connection's detach must not detach the new one
	_, resp, err = r.InvokeMethod(context.Background(), "real", "", "m", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, `"second"`, string(resp))
	detach2()
	_, _, err = r.InvokeMethod(context.Background(), "real", "", "m", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline)
}

func TestAttachWakesWaitingInvoke(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Register("real"))
	done := startWaitingCall(t, r, "real")
	_, err := r.Attach("real", "", func(context.Context, string, json.RawMessage) (int, json.RawMessage, error) { return 200, nil, nil })
	require.NoError(t, err)
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting call was not woken by Attach")
	}
}

// TestAttachUnsubscribedKeepsCallsWaiting: a device that connects without
// a methods subscription (AttachUnsubscribed) is Connected, but a call
// waiting for it keeps waiting, and gets it once it subscribes.
func TestAttachUnsubscribedKeepsCallsWaiting(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Register("real"))
	done := startWaitingCall(t, r, "real")
	calls := 0
	_, err := r.AttachUnsubscribed("real", "", func(context.Context, string, json.RawMessage) (int, json.RawMessage, error) {
		calls++
		return 200, nil, nil
	})
	require.NoError(t, err)
	tw, _ := r.Twin("real", "")
	assert.Equal(t, "Connected", tw["connectionState"])
	// Attaching woke the call; it looked, saw no subscription and waits again.
	waitForWaitingCall(t, r, "real")
	r.SetMethodsSubscribed("real", "", true)
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting call was not woken by the subscription")
	}
	assert.Equal(t, 1, calls, "the handler got the call once, after the subscription")
}

func TestAttachedHandlerTimeoutsAndErrors(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Register("real"))
	log := watch(r)
	var mode atomic.Int32
	release := make(chan struct{})
	defer close(release)
	_, err := r.Attach("real", "", func(ctx context.Context, _ string, _ json.RawMessage) (int, json.RawMessage, error) {
		switch mode.Load() {
		case 0: // honours ctx
			<-ctx.Done()
			return 0, nil, ctx.Err()
		case 1: // ignores ctx
			<-release
			return 200, nil, nil
		case 2:
			return 0, nil, ErrDeviceNotOnline
		default:
			return 0, nil, errors.New("broken pipe")
		}
	})
	require.NoError(t, err)
	ctx := context.Background()
	_, _, err = r.InvokeMethod(ctx, "real", "", "m", nil, 0, 20*time.Millisecond)
	assert.ErrorIs(t, err, ErrTimeout)
	mode.Store(1)
	_, _, err = r.InvokeMethod(ctx, "real", "", "m", nil, 0, 20*time.Millisecond)
	assert.ErrorIs(t, err, ErrTimeout, "a handler ignoring ctx cannot block the call")
	mode.Store(2)
	_, _, err = r.InvokeMethod(ctx, "real", "", "m", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline)
	mode.Store(3)
	_, _, err = r.InvokeMethod(ctx, "real", "", "m", nil, 0, time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "broken pipe")
	ds := log.all()
	require.Len(t, ds, 3, "ErrDeviceNotOnline from the handler is not a delivery")
	for _, d := range ds {
		assert.Equal(t, 0, d.Status)
	}
}

func TestAttachToSimulatedDeviceSuspendsSimulation(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Connection: sim.Connection{OnlineShare: ptr(0.0)}})
	_, _, err := r.InvokeMethod(context.Background(), "dev-001", "", "reboot", nil, 0, time.Second)
	require.ErrorIs(t, err, ErrDeviceNotOnline, "permanently offline")
	detach, err := r.Attach("dev-001", "", func(context.Context, string, json.RawMessage) (int, json.RawMessage, error) {
		return 299, nil, nil
	})
	require.NoError(t, err)
	st, _, err := r.InvokeMethod(context.Background(), "dev-001", "", "reboot", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 299, st)
	assert.Nil(t, reported(t, r, "dev-001", "iothubDM"), "no simulated life cycle for an attached device")
	detach()
	_, _, err = r.InvokeMethod(context.Background(), "dev-001", "", "reboot", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline, "simulation resumes")
}

func TestModuleAttach(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Register("edge/modA"))
	_, err := r.Attach("edge", "modA", func(_ context.Context, m string, _ json.RawMessage) (int, json.RawMessage, error) {
		return 200, json.RawMessage(`"module"`), nil
	})
	require.NoError(t, err)
	_, resp, err := r.InvokeMethod(context.Background(), "edge", "modA", "m", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, `"module"`, string(resp))
	_, _, err = r.InvokeMethod(context.Background(), "edge", "", "m", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline, "the device itself is not attached")
}

func TestFaultSequencesAreReproducible(t *testing.T) {
	spec := func() *sim.FleetSpec {
		return &sim.FleetSpec{Groups: []sim.Group{{Name: "g", IDPattern: "d-%d", Count: 4,
			Faults: &sim.FaultSpec{Throttle: ptr(0.2), Drop: ptr(0.1), Methods: map[string]*sim.FaultSpec{"reboot": {Throttle: ptr(0.0), ServerError: ptr(0.5)}}}}}}
	}
	sequence := func(seed int64, interleave bool) map[string][]Fault {
		r := NewRegistry(Options{Seed: seed, Faults: sim.FaultRates{Unavailable: 0.05}})
		require.NoError(t, r.Apply(spec()))
		out := map[string][]Fault{}
		if interleave {
			var mu sync.Mutex
			var wg sync.WaitGroup
			for _, id := range []string{"d-1", "d-2", "d-3", "d-4"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var fs []Fault
					for i := 0; i < 300; i++ {
						fs = append(fs, r.Fault(id, "", "ping"))
					}
					mu.Lock()
					out[id] = fs
					mu.Unlock()
				}()
			}
			wg.Wait()
		} else {
			for _, id := range []string{"d-4", "d-3", "d-2", "d-1"} {
				for i := 0; i < 300; i++ {
					out[id] = append(out[id], r.Fault(id, "", "ping"))
				}
			}
		}
		return out
	}
	a := sequence(5, false)
	assert.Equal(t, a, sequence(5, true), "same seed: same per-device sequences, whatever the interleaving")
	assert.NotEqual(t, a, sequence(6, false))

	counts := map[Fault]int{}
	for _, fs := range a {
		for _, f := range fs {
			counts[f]++
		}
	}
	// 1200 draws: throttle 20%, drop 10%, unavailable 5% (global), none 65%.
	assert.InDelta(t, 240, counts[FaultThrottle], 60)
	assert.InDelta(t, 120, counts[FaultDrop], 45)
	assert.InDelta(t, 60, counts[FaultUnavailable], 30)
	assert.Zero(t, counts[FaultServerError])
	assert.Zero(t, counts[FaultGatewayTimeout])

	// Per-method override, field by field.
	r := NewRegistry(Options{Seed: 1})
	require.NoError(t, r.Apply(spec()))
	mc := map[Fault]int{}
	for i := 0; i < 1000; i++ {
		mc[r.Fault("d-1", "", "reboot")]++
	}
	assert.Zero(t, mc[FaultThrottle])
	assert.InDelta(t, 500, mc[FaultServerError], 80)
	assert.InDelta(t, 100, mc[FaultDrop], 45, "drop inherited from the group")
	st := r.Stats()
	assert.Equal(t, int64(mc[FaultServerError]), st.Faults["serverError"])

	// Registered devices use the global shares; no shares, no faults.
	r2 := NewRegistry(Options{Faults: sim.FaultRates{GatewayTimeout: 1}})
	require.NoError(t, r2.Register("real"))
	assert.Equal(t, FaultGatewayTimeout, r2.Fault("real", "", "x"))
	assert.Equal(t, FaultNone, r2.Fault("unknown", "", "x"))
	r3 := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1})
	for i := 0; i < 100; i++ {
		require.Equal(t, FaultNone, r3.Fault("dev-001", "", "x"))
	}
	assert.Equal(t, "gatewayTimeout", FaultGatewayTimeout.String())
}

func TestFaultSharesWithGlobalMustFit(t *testing.T) {
	r := NewRegistry(Options{Faults: sim.FaultRates{Throttle: 0.7}})
	err := r.Apply(&sim.FleetSpec{Groups: []sim.Group{{Name: "g", IDPattern: "d-%d", Count: 1, Faults: &sim.FaultSpec{Drop: ptr(0.5)}}}})
	assert.ErrorContains(t, err, "groups[0].faults: fault shares (with the global ones) add up to 1.2")
}

// TestWaitIdleWaitsForCallsInFlight: WaitIdle does not return nil while a
// call is at its device, and returns once the call has been answered.
func TestWaitIdleWaitsForCallsInFlight(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.WaitIdle(context.Background()), "nothing in flight: at once")
	require.NoError(t, r.Register("real"))
	entered, release := make(chan struct{}), make(chan struct{})
	_, err := r.Attach("real", "", func(context.Context, string, json.RawMessage) (int, json.RawMessage, error) {
		close(entered)
		<-release
		return 200, nil, nil
	})
	require.NoError(t, err)
	answered := make(chan error, 1)
	go func() {
		_, _, err := r.InvokeMethod(context.Background(), "real", "", "m", nil, 0, time.Minute)
		answered <- err
	}()
	<-entered
	assert.Equal(t, int64(1), r.Stats().MethodsInFlight)
	assert.Equal(t, int64(1), r.Stats().PeakInFlight)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, r.WaitIdle(done), context.Canceled, "a call is in flight: not idle")

	idle := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		idle <- r.WaitIdle(ctx)
	}()
	// Release the call only once the waiter is blocked on its channel, so
	// what returns it is callEnded's wake-up, not a first look at 0.
	require.Eventually(t, func() bool {
		r.idle.mu.Lock()
		defer r.idle.mu.Unlock()
		return r.idle.ch != nil
	}, 10*time.Second, time.Millisecond, "WaitIdle blocks while the call is in flight")
	select {
	case err := <-idle:
		t.Fatalf("WaitIdle returned %v while the call was in flight", err)
	default:
	}
	close(release)
	require.NoError(t, <-answered)
	require.NoError(t, <-idle, "woken when the call returned")
	assert.Equal(t, int64(0), r.Stats().MethodsInFlight)
	assert.Equal(t, int64(1), r.Stats().PeakInFlight, "the peak stays")
}

// startWaitingCall starts a call to an offline device with a 10 s connect
// timeout and returns once the call is waiting for the device (a call that
// returned at once would never wait); the channel gets the call's error.
func startWaitingCall(t *testing.T, r *Registry, deviceID string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, _, err := r.InvokeMethod(context.Background(), deviceID, "", "m", nil, 10*time.Second, time.Second)
		done <- err
	}()
	waitForWaitingCall(t, r, deviceID)
	return done
}

package registry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

func TestGenerateFleet(t *testing.T) {
	r := NewRegistry(Options{Seed: 3})
	require.NoError(t, r.Apply(sim.GenerateFleet(1200)))
	ids := r.DeviceIDs(false)
	require.Len(t, ids, 1200)
	assert.Equal(t, "sim-000001", ids[0])
	assert.Equal(t, "sim-001200", ids[1199])
	assert.Empty(t, r.DeviceIDs(true))
	d, m := r.Count()
	assert.Equal(t, 1200, d)
	assert.Equal(t, 0, m)

	st := r.Stats()
	assert.Equal(t, 1200, st.Devices)
	assert.Equal(t, 1200, st.Simulated)
	assert.Equal(t, 1200, st.Connected)

	// Every simulated device answers a known method with 200.
	status, resp, err := r.InvokeMethod(context.Background(), "sim-000777", "", sim.MethodReboot, nil, 0, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, status)
	assert.JSONEq(t, `{"message":"Reboot started"}`, string(resp))
}

func TestNoGoroutinePerDevice(t *testing.T) {
	before := runtime.NumGoroutine()
	r := newFleet(t, Options{}, sim.Group{Name: "g", IDPattern: "d-%05d", Count: 10000, Modules: []string{"m"},
		Connection: sim.Connection{OnlineShare: ptr(0.5), Flapping: &sim.Flapping{MeanUp: sim.Duration(time.Minute), MeanDown: sim.Duration(time.Minute)}}})
	_, _ = r.Twin("d-00001", "")
	assert.LessOrEqual(t, runtime.NumGoroutine()-before, 2)
}

func TestApplyRejectsDuplicatesAtomically(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Apply(sim.GenerateFleet(5)))
	err := r.Apply(&sim.FleetSpec{Groups: []sim.Group{{Name: "other", IDPattern: "new-%d", Count: 3}, {Name: "clash", IDPattern: "sim-%06d", Count: 2}}})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrAlreadyExists), err)
	assert.Contains(t, err.Error(), `groups[1].idPattern`)
	assert.Contains(t, err.Error(), `"sim-000001"`)
	d, _ := r.Count()
	assert.Equal(t, 5, d, "nothing added")
	_, ok := r.Key("new-1", "")
	assert.False(t, ok)

	err = r.Apply(&sim.FleetSpec{Groups: []sim.Group{{Name: "a", IDPattern: "x-%d", Count: 10}, {Name: "b", IDPattern: "x-%d", Count: 2}}})
	assert.ErrorContains(t, err, `device id "x-1" is also produced by groups[0]`)
	assert.ErrorContains(t, r.Apply(sim.GenerateFleet(1)), `a group named "sim" already exists`)
}

func TestRegisterAndKeys(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Apply(sim.GenerateFleet(2)))
	require.NoError(t, r.Register("real-1", "real-2", "edge/modA", "sim-000001/extra"))
	assert.Equal(t, []string{"edge", "real-1", "real-2"}, r.DeviceIDs(true))
	assert.Equal(t, []string{"edge", "real-1", "real-2", "sim-000001", "sim-000002"}, r.DeviceIDs(false))
	d, m := r.Count()
	assert.Equal(t, 5, d)
	assert.Equal(t, 2, m)

	k1, ok := r.Key("real-1", "")
	require.True(t, ok)
	assert.Len(t, k1, 32)
	k2, _ := r.Key("real-2", "")
	assert.NotEqual(t, k1, k2)
	km, ok := r.Key("edge", "modA")
	require.True(t, ok)
	assert.Len(t, km, 32)
	_, ok = r.Key("edge", "nope")
	assert.False(t, ok)
	_, ok = r.Key("nope", "")
	assert.False(t, ok)

	// Key returns a copy.
	k1[0] ^= 0xff
	again, _ := r.Key("real-1", "")
	assert.NotEqual(t, k1, again)

	require.NoError(t, r.SetKey("real-1", "", []byte("0123456789abcdef0123456789abcdef")))
	k, _ := r.Key("real-1", "")
	assert.Equal(t, []byte("0123456789abcdef0123456789abcdef"), k)
	require.NoError(t, r.SetKey("edge", "modA", []byte{1, 2, 3}))
	assert.ErrorIs(t, r.SetKey("nope", "", []byte{1}), ErrDeviceNotFound)
	assert.ErrorIs(t, r.SetKey("edge", "nope", []byte{1}), ErrModuleNotFound)
	assert.ErrorContains(t, r.SetKey("edge", "", nil), "empty key")

	// Registered identities are offline until attached.
	_, _, err := r.InvokeMethod(context.Background(), "real-1", "", "x", nil, 0, 5*time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline)
	tw, err := r.Twin("real-1", "")
	require.NoError(t, err)
	assert.Equal(t, "Disconnected", tw["connectionState"])
	tw, err = r.Twin("edge", "modA")
	require.NoError(t, err)
	assert.Equal(t, "modA", tw["moduleId"])
	assert.NotContains(t, tw, "capabilities")

	assert.ErrorIs(t, r.Register("real-1"), ErrAlreadyExists)
	assert.ErrorIs(t, r.Register("edge/modA"), ErrAlreadyExists)
	assert.ErrorContains(t, r.Register("bad id"), `"bad id"`)
	assert.ErrorContains(t, r.Register("ok-1", "ok-1"), "listed twice")
	assert.ErrorContains(t, r.Register("dev/"), "module id")
	d, _ = r.Count()
	assert.Equal(t, 5, d, "failed Register calls add nothing")
}

func TestOfflineSetIsExactAndReproducible(t *testing.T) {
	offline := func(seed int64) []string {
		r := newFleet(t, Options{Seed: seed}, sim.Group{Name: "g", IDPattern: "d-%04d", Count: 1000,
			Connection: sim.Connection{OnlineShare: ptr(0.9)}})
		var out []string
		for _, id := range r.DeviceIDs(false) {
			tw, err := r.Twin(id, "")
			require.NoError(t, err)
			if tw["connectionState"] == "Disconnected" {
				out = append(out, id)
			}
		}
		st := r.Stats()
		assert.Equal(t, 1000-len(out), st.Connected)
		// Offline devices refuse methods; online ones answer.
		for _, id := range out[:5] {
			_, _, err := r.InvokeMethod(context.Background(), id, "", "ping", nil, 0, 5*time.Second)
			assert.ErrorIs(t, err, ErrDeviceNotOnline, id)
		}
		return out
	}
	a, b := offline(42), offline(42)
	assert.Len(t, a, 100, "exactly round((1-0.9)*1000)")
	assert.Equal(t, a, b, "same seed, same offline set")
	c := offline(43)
	assert.Len(t, c, 100)
	assert.NotEqual(t, a, c, "another seed picks another set")

	// A fleet-file seed replaces Options.Seed.
	spec := &sim.FleetSpec{Seed: ptr(int64(42)), Groups: []sim.Group{{Name: "g", IDPattern: "d-%04d", Count: 1000, Connection: sim.Connection{OnlineShare: ptr(0.9)}}}}
	r := NewRegistry(Options{Seed: 999})
	require.NoError(t, r.Apply(spec))
	var fromSpec []string
	for _, id := range r.DeviceIDs(false) {
		if tw, _ := r.Twin(id, ""); tw["connectionState"] == "Disconnected" {
			fromSpec = append(fromSpec, id)
		}
	}
	assert.Equal(t, a, fromSpec)
}

func TestModulesFollowTheirDevice(t *testing.T) {
	r := newFleet(t, Options{Seed: 5}, sim.Group{Name: "g", IDPattern: "d-%02d", Count: 10, Modules: []string{"m1", "m2"},
		Connection: sim.Connection{OnlineShare: ptr(0.5)}})
	d, m := r.Count()
	assert.Equal(t, 10, d)
	assert.Equal(t, 20, m)
	connected := 0
	for _, id := range r.DeviceIDs(false) {
		tw, _ := r.Twin(id, "")
		mt, err := r.Twin(id, "m2")
		require.NoError(t, err)
		assert.Equal(t, tw["connectionState"], mt["connectionState"], id)
		_, _, errD := r.InvokeMethod(context.Background(), id, "", "ping", nil, 0, time.Second)
		_, _, errM := r.InvokeMethod(context.Background(), id, "m1", "ping", nil, 0, time.Second)
		assert.Equal(t, errD == nil, errM == nil, id)
		if tw["connectionState"] == "Connected" {
			connected++
		}
	}
	assert.Equal(t, 5, connected)
	assert.Equal(t, 15, r.Stats().Connected) // 5 devices + 10 modules
	_, _, err := r.InvokeMethod(context.Background(), "d-01", "m9", "ping", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrModuleNotFound)
	_, _, err = r.InvokeMethod(context.Background(), "zz", "m1", "ping", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotFound)
}

func TestFlappingIsReproducible(t *testing.T) {
	states := func() string {
		r := newFleet(t, Options{Seed: 11}, sim.Group{Name: "g", Count: 200,
			Connection: sim.Connection{Flapping: &sim.Flapping{MeanUp: sim.Duration(time.Hour), MeanDown: sim.Duration(time.Hour)}}})
		// Advance every device's flapping clock far enough that about half
		// are down, then read the state through the twin.
		now := time.Now().UnixNano() + int64(3*time.Hour)
		out := ""
		for _, id := range r.DeviceIDs(false) {
			d := r.device(id)
			d.mu.Lock()
			up, next := d.flapOnlineLocked(now)
			d.mu.Unlock()
			assert.Greater(t, next, now, id)
			if up {
				out += "1"
			} else {
				out += "0"
			}
		}
		return out
	}
	a := states()
	assert.Equal(t, a, states())
	ups := 0
	for _, c := range a {
		if c == '1' {
			ups++
		}
	}
	assert.True(t, ups > 40 && ups < 160, "about half up, got %d of 200", ups)
}

func TestFlappingDeviceComesBackWithinConnectTimeout(t *testing.T) {
	r := newFleet(t, Options{Seed: 2}, sim.Group{Name: "g", Count: 1,
		Connection: sim.Connection{Flapping: &sim.Flapping{MeanUp: sim.Duration(time.Hour), MeanDown: sim.Duration(time.Hour)}}})
	d := r.device("dev-001")
	// Force the device down for 30 ms.
	d.mu.Lock()
	d.flap.up = false
	d.flap.next = time.Now().Add(30 * time.Millisecond).UnixNano()
	d.mu.Unlock()
	_, _, err := r.InvokeMethod(context.Background(), "dev-001", "", "ping", nil, 0, time.Second)
	require.ErrorIs(t, err, ErrDeviceNotOnline)
	status, _, err := r.InvokeMethod(context.Background(), "dev-001", "", "ping", nil, 5*time.Second, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 404, status) // reached the device: ping is not implemented
}

func TestStatsCounters(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 3, Methods: map[string]sim.MethodSpec{"ping": {}}})
	require.NoError(t, r.Register("real"))
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		_, _, err := r.InvokeMethod(ctx, "dev-001", "", "ping", nil, 0, time.Second)
		require.NoError(t, err)
	}
	_, _, _ = r.InvokeMethod(ctx, "dev-002", "", "nope", nil, 0, time.Second)
	_, _, _ = r.InvokeMethod(ctx, "missing", "", "ping", nil, 0, time.Second)
	_, _, _ = r.InvokeMethod(ctx, "real", "", "ping", nil, 0, time.Second)
	_, _ = r.Twin("dev-001", "")
	st := r.Stats()
	assert.Equal(t, int64(7), st.MethodsInvoked)
	assert.Equal(t, int64(5), st.MethodsDelivered)
	assert.Equal(t, map[string]int64{"ping": 4, "nope": 1}, st.DeliveredByMethod)
	assert.Equal(t, map[int]int64{200: 4, 404: 1}, st.DeliveredByStatus)
	assert.Equal(t, int64(1), st.NotFound)
	assert.Equal(t, int64(1), st.NotOnline)
	assert.Equal(t, int64(1), st.TwinReads)
	assert.Equal(t, 4, st.Devices)
	assert.Equal(t, 1, st.Registered)
	assert.Equal(t, 3, st.Connected)
}

func TestStatsBoundsMethodNames(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1})
	for i := 0; i < maxStatKeys+50; i++ {
		_, _, err := r.InvokeMethod(context.Background(), "dev-001", "", fmt.Sprintf("m%d", i), nil, 0, time.Second)
		require.NoError(t, err)
	}
	st := r.Stats()
	assert.Equal(t, int64(maxStatKeys+50), st.MethodsDelivered)
	assert.LessOrEqual(t, len(st.DeliveredByMethod), maxStatKeys+1)
	assert.Equal(t, int64(50), st.DeliveredByMethod["(other)"])
}

package fleet

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
)

// twinDoc is a twin with connectionState and, under
// properties.reported.iothubDM.<section>, a report at reportedAt (zero: none).
func twinDoc(connected bool, section string, reportedAt time.Time, extra map[string]any) map[string]any {
	state := "Disconnected"
	if connected {
		state = "Connected"
	}
	reported := map[string]any{}
	meta := map[string]any{"$lastUpdated": "2020-01-01T00:00:00Z"}
	if !reportedAt.IsZero() {
		at := reportedAt.UTC().Format(time.RFC3339Nano)
		reported["iothubDM"] = map[string]any{section: map[string]any{"status": "downloading"}}
		meta["iothubDM"] = map[string]any{"$lastUpdated": at, section: map[string]any{"$lastUpdated": at}}
	}
	for k, v := range extra {
		reported[k] = v
	}
	reported["$metadata"] = meta
	return map[string]any{"deviceId": "d1", "connectionState": state, "properties": map[string]any{"reported": reported}}
}

func TestResolveLostAnswers(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		wait Wait
		doc  func(read int) map[string]any
		want resolution
	}{
		{"firmware report after the call", Wait{Preset: PresetFirmware}, func(int) map[string]any {
			return twinDoc(true, "firmwareUpdate", start.Add(2*time.Second), nil)
		}, resolveStarted},
		{"firmware report on the third look", Wait{Preset: PresetFirmware}, func(read int) map[string]any {
			if read < 3 {
				return twinDoc(true, "", time.Time{}, nil)
			}
			return twinDoc(true, "firmwareUpdate", start.Add(5*time.Second), nil)
		}, resolveStarted},
		{"reboot time reported by the device", Wait{Preset: PresetReboot}, func(int) map[string]any {
			return twinDoc(true, "", time.Time{}, map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{"startedRebootTime": start.Add(time.Second).Format(time.RFC3339Nano)}}})
		}, resolveStarted},
		{"connected, nothing reported", Wait{Preset: PresetReboot}, func(int) map[string]any {
			return twinDoc(true, "", time.Time{}, nil)
		}, resolveNotRun},
		{"a report long before the call", Wait{Preset: PresetFirmware}, func(int) map[string]any {
			return twinDoc(true, "firmwareUpdate", start.Add(-time.Hour), nil)
		}, resolveNotRun},
		{"a report just before the call: clocks may differ", Wait{Preset: PresetFirmware}, func(int) map[string]any {
			return twinDoc(true, "firmwareUpdate", start.Add(-3*time.Second), nil)
		}, resolveAmbiguous},
		{"offline, nothing reported", Wait{Preset: PresetReboot}, func(int) map[string]any {
			return twinDoc(false, "", time.Time{}, nil)
		}, resolveAmbiguous},
		{"a --wait-until property reported", Wait{Until: []Condition{mustCondition(t, "properties.reported.app.phase == done")}}, func(int) map[string]any {
			d := twinDoc(true, "", time.Time{}, map[string]any{"app": map[string]any{"phase": "running"}})
			rep := d["properties"].(map[string]any)["reported"].(map[string]any)
			at := start.Add(time.Second).Format(time.RFC3339Nano)
			rep["$metadata"].(map[string]any)["app"] = map[string]any{"$lastUpdated": at, "phase": map[string]any{"$lastUpdated": at}}
			return d
		}, resolveStarted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			clk.Advance(start.Sub(clk.Now()) + time.Second) // the answer was lost a second after the call
			ft := &fakeTwins{docs: map[string]map[string]any{}}
			ft.before = func(read int, docs map[string]map[string]any) { docs["d1"] = c.doc(read) }
			w := c.wait
			w.Twins, w.Retry = ft, policy(1)
			got, why := w.resolve(context.Background(), Target{DeviceID: "d1"}, start, 10*time.Second, clk.Now, clk.Sleep)
			assert.Equal(t, c.want, got, why)
			assert.NotEmpty(t, why)
			if c.want == resolveNotRun {
				assert.Equal(t, 6, ft.gets, "looked every 2s for the whole 10s")
			}
		})
	}
}

func mustCondition(t *testing.T, s string) Condition {
	t.Helper()
	c, err := ParseCondition(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAnswerLost(t *testing.T) {
	assert.True(t, answerLost(&iothub.ResponseError{StatusCode: 504, ErrorCode: 504101}))
	assert.False(t, answerLost(&iothub.ResponseError{StatusCode: 404, ErrorCode: 404103}))
	assert.False(t, answerLost(nil))
}

func TestRunnerParksOfflineDevicesUntilTheyConnect(t *testing.T) {
	clk := newClock()
	var online sync.Map // device -> true once connected
	var calls sync.Map  // device -> *atomic.Int64
	var reads sync.Map  // device -> the first twin read after its first call
	inv := funcInvoker(func(_ context.Context, tg Target) (iothub.MethodResult, error) {
		n, _ := calls.LoadOrStore(tg.DeviceID, new(atomic.Int64))
		first := n.(*atomic.Int64).Add(1) == 1
		if _, ok := online.Load(tg.DeviceID); !ok || first { // every device is offline at its first call
			return iothub.MethodResult{}, offline
		}
		return okAnswer()
	})
	ft := &fakeTwins{docs: map[string]map[string]any{}}
	ft.before = func(read int, docs map[string]map[string]any) {
		for _, id := range []string{"d0001", "d0002", "d0003"} {
			state := "Disconnected"
			// A device connects two reads after its first call was refused
			// (so that call is refused whatever the order); d0003 never does.
			if _, called := calls.Load(id); called && id != "d0003" {
				seen, _ := reads.LoadOrStore(id, read)
				if read >= seen.(int)+2 {
					state = "Connected"
					online.Store(id, true)
				}
			}
			docs[id] = map[string]any{"deviceId": id, "connectionState": state}
		}
	}
	rs, err := NewRunner(inv).RunTargets(context.Background(), devices(3), RunOptions{
		Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Concurrency: 3, Now: clk.Now, Sleep: clk.Sleep,
		Park: &Park{For: time.Minute, Twins: ft, Retry: policy(1), Limiter: NewFixedRate(1000)},
	})
	require.NoError(t, err)
	got := map[string]Result{}
	for _, r := range rs {
		got[r.DeviceID] = r
	}
	assert.Equal(t, OutcomeSucceeded, got["d0001"].Outcome)
	assert.Equal(t, 2, got["d0001"].Attempts, "the refused call and the one once connected")
	assert.Equal(t, OutcomeOffline, got["d0003"].Outcome)
	assert.Contains(t, got["d0003"].Error.Message, "did not connect within --until-online 1m0s")
	for _, id := range []string{"d0001", "d0002"} {
		n, _ := calls.Load(id)
		assert.Equal(t, int64(2), n.(*atomic.Int64).Load(), id)
	}
}

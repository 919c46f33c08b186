package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

func parseTS(t *testing.T, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "timestamp %v is not a string", v)
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err, s)
	return tm
}

func reportedVersion(t *testing.T, r *Registry, dev string) float64 {
	t.Helper()
	tw, err := r.Twin(dev, "")
	require.NoError(t, err)
	return float64(path(tw, "properties", "reported", "$version").(int64))
}

func TestRebootLifeCycle(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 2, Methods: map[string]sim.MethodSpec{"reboot": {Downtime: dur(150 * time.Millisecond)}}})
	ctx := context.Background()
	v0 := reportedVersion(t, r, "dev-001")
	tw0, _ := r.Twin("dev-001", "")

	status, resp, err := r.InvokeMethod(ctx, "dev-001", "", "reboot", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, status)
	assert.JSONEq(t, `{"message":"Reboot started"}`, string(resp))

	started := reported(t, r, "dev-001", "iothubDM", "reboot", "startedRebootTime")
	require.NotNil(t, started)
	parseTS(t, started)
	assert.Nil(t, reported(t, r, "dev-001", "iothubDM", "reboot", "lastReboot"))
	assert.Equal(t, v0+1, reportedVersion(t, r, "dev-001"))
	tw1, _ := r.Twin("dev-001", "")
	assert.Equal(t, "Disconnected", tw1["connectionState"])
	assert.NotEqual(t, tw0["etag"], tw1["etag"])
	assert.Equal(t, tw0["version"].(int64)+1, tw1["version"])
	assert.Equal(t, started, path(tw1, "properties", "reported", "$metadata", "iothubDM", "reboot", "startedRebootTime", "$lastUpdated"))

	// While rebooting: 404103 with no connect timeout ...
	_, _, err = r.InvokeMethod(ctx, "dev-001", "", "ping", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline)
	// ... the other device is unaffected ...
	_, _, err = r.InvokeMethod(ctx, "dev-002", "", "ping", nil, 0, time.Second)
	assert.NoError(t, err)
	// ... and a connect timeout longer than the downtime waits for it.
	st, _, err := r.InvokeMethod(ctx, "dev-001", "", "ping", nil, 10*time.Second, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 404, st)

	last := reported(t, r, "dev-001", "iothubDM", "reboot", "lastReboot")
	require.NotNil(t, last, "lastReboot set when the device came back")
	assert.False(t, parseTS(t, last).Before(parseTS(t, started)))
	assert.Equal(t, started, reported(t, r, "dev-001", "iothubDM", "reboot", "startedRebootTime"))
	assert.Equal(t, v0+2, reportedVersion(t, r, "dev-001"))
	tw2, _ := r.Twin("dev-001", "")
	assert.Equal(t, "Connected", tw2["connectionState"])
	assert.Equal(t, last, path(tw2, "properties", "reported", "$metadata", "$lastUpdated"))
}

func TestRebootTakesModulesDown(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Modules: []string{"m"}, Methods: map[string]sim.MethodSpec{"reboot": {Downtime: dur(time.Hour)}}})
	_, _, err := r.InvokeMethod(context.Background(), "dev-001", "", "reboot", nil, 0, time.Second)
	require.NoError(t, err)
	_, _, err = r.InvokeMethod(context.Background(), "dev-001", "m", "ping", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline)
	mt, _ := r.Twin("dev-001", "m")
	assert.Equal(t, "Disconnected", mt["connectionState"])
}

func TestModuleWaitsForDeviceReboot(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Modules: []string{"m"}, Methods: map[string]sim.MethodSpec{"reboot": {Downtime: dur(40 * time.Millisecond)}}})
	_, _, err := r.InvokeMethod(context.Background(), "dev-001", "", "reboot", nil, 0, time.Second)
	require.NoError(t, err)
	st, _, err := r.InvokeMethod(context.Background(), "dev-001", "m", "ping", nil, 10*time.Second, time.Second)
	require.NoError(t, err, "the module comes back with its device")
	assert.Equal(t, 404, st)
	assert.NotNil(t, reported(t, r, "dev-001", "iothubDM", "reboot", "lastReboot"))
}

func fwStatus(t *testing.T, r *Registry, dev string) string {
	s, _ := reported(t, r, dev, "iothubDM", "firmwareUpdate", "status").(string)
	return s
}

// statusSequence polls the firmware status until it is terminal (the
// simulation announces no reported change, so it is sampled), returning the
// statuses seen in order.
func statusSequence(t *testing.T, r *Registry, dev string) []string {
	t.Helper()
	var seq []string
	eventually(t, func() bool {
		tw, err := r.Twin(dev, "")
		if err != nil {
			return false
		}
		s, _ := path(tw, "properties", "reported", "iothubDM", "firmwareUpdate", "status").(string)
		if len(seq) == 0 || seq[len(seq)-1] != s {
			seq = append(seq, s)
		}
		return s == FwApplyComplete || s == FwApplyFailed || s == FwDownloadFailed
	}, "firmware update should finish")
	return seq
}

func TestFirmwareUpdateLifeCycle(t *testing.T) {
	step := 25 * time.Millisecond
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Methods: map[string]sim.MethodSpec{"firmwareUpdate": {StepDuration: dur(step)}}})
	ctx := context.Background()
	v0 := reportedVersion(t, r, "dev-001")

	for _, bad := range []string{`{"fwPackageUri":"http://example.com/fw.bin"}`, `{"fwPackageUri":"ftp://x/y"}`, `{}`, `"https://x"`, `null`, `{"fwPackageUri":"https://"}`} {
		st, resp, err := r.InvokeMethod(ctx, "dev-001", "", "firmwareUpdate", raw(bad), 0, time.Second)
		require.NoError(t, err)
		assert.Equal(t, 400, st, bad)
		assert.JSONEq(t, `{"message":"Invalid URL format. Must use https:// protocol."}`, string(resp))
	}
	assert.Nil(t, reported(t, r, "dev-001", "iothubDM"), "no life cycle after a 400")

	uri := "https://example.com/fw-2.0.bin"
	st, resp, err := r.InvokeMethod(ctx, "dev-001", "", "firmwareUpdate", raw(`{"fwPackageUri":"`+uri+`"}`), 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, st)
	assert.JSONEq(t, `{"message":"Firmware update started"}`, string(resp))
	assert.Equal(t, FwWaiting, fwStatus(t, r, "dev-001"))

	seq := statusSequence(t, r, "dev-001")
	// Polling may miss a state but never sees one out of order.
	full := []string{FwWaiting, FwDownloading, FwDownloadComplete, FwApplying, FwApplyComplete}
	assert.Subset(t, full, seq)
	pos := -1
	for _, s := range seq {
		i := indexOf(full, s)
		assert.Greater(t, i, pos, "%v out of order", seq)
		pos = i
	}
	fw := reported(t, r, "dev-001", "iothubDM", "firmwareUpdate").(map[string]any)
	assert.Equal(t, uri, fw["fwPackageUri"])
	assert.NotContains(t, fw, "error")
	var times []time.Time
	for _, k := range []string{"startedWaitingTime", "startedDownloadingTime", "downloadCompleteTime", "startedApplyingImage", "lastFirmwareUpdate"} {
		require.Contains(t, fw, k)
		times = append(times, parseTS(t, fw[k]))
	}
	for i := 1; i < len(times); i++ {
		assert.False(t, times[i].Before(times[i-1]), "timestamps in order")
	}
	assert.Equal(t, v0+5, reportedVersion(t, r, "dev-001"), "one reported update per state")

	// The device stayed online throughout.
	_, _, err = r.InvokeMethod(ctx, "dev-001", "", "ping", nil, 0, time.Second)
	assert.NoError(t, err)

	// A second update keeps lastFirmwareUpdate until it completes and
	// clears the other fields.
	_, _, err = r.InvokeMethod(ctx, "dev-001", "", "firmwareUpdate", raw(`{"fwPackageUri":"https://example.com/fw-3.bin"}`), 0, time.Second)
	require.NoError(t, err)
	fw2 := reported(t, r, "dev-001", "iothubDM", "firmwareUpdate").(map[string]any)
	assert.Equal(t, FwWaiting, fw2["status"])
	assert.Equal(t, fw["lastFirmwareUpdate"], fw2["lastFirmwareUpdate"])
	assert.NotContains(t, fw2, "downloadCompleteTime")
	statusSequence(t, r, "dev-001")
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func TestFirmwareFailuresAreSeededAndReproducible(t *testing.T) {
	outcomes := func(seed int64) map[string]string {
		r := newFleet(t, Options{Seed: seed}, sim.Group{Name: "g", IDPattern: "d-%02d", Count: 40,
			Methods: map[string]sim.MethodSpec{"firmwareUpdate": {StepDuration: dur(time.Millisecond), FailureRate: ptr(0.5)}}})
		for _, id := range r.DeviceIDs(false) {
			st, _, err := r.InvokeMethod(context.Background(), id, "", "firmwareUpdate", raw(`{"fwPackageUri":"https://h/fw"}`), 0, time.Second)
			require.NoError(t, err)
			require.Equal(t, 200, st)
		}
		out := map[string]string{}
		for _, id := range r.DeviceIDs(false) {
			seq := statusSequence(t, r, id)
			final := seq[len(seq)-1]
			out[id] = final
			if final != FwApplyComplete {
				fw := reported(t, r, id, "iothubDM", "firmwareUpdate").(map[string]any)
				e, ok := fw["error"].(map[string]any)
				require.True(t, ok, "%s: error object on failure", id)
				assert.NotEmpty(t, e["code"])
				assert.NotEmpty(t, e["message"])
				assert.NotContains(t, fw, "lastFirmwareUpdate")
				if final == FwDownloadFailed {
					assert.NotContains(t, fw, "startedApplyingImage")
				}
			}
		}
		return out
	}
	a := outcomes(3)
	assert.Equal(t, a, outcomes(3))
	counts := map[string]int{}
	for _, s := range a {
		counts[s]++
	}
	assert.Positive(t, counts[FwDownloadFailed], "%v", counts)
	assert.Positive(t, counts[FwApplyFailed], "%v", counts)
	assert.Positive(t, counts[FwApplyComplete], "%v", counts)
	assert.NotEqual(t, a, outcomes(4))
}

func TestFactoryResetLifeCycle(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Methods: map[string]sim.MethodSpec{"factoryReset": {Downtime: dur(100 * time.Millisecond)}}})
	ctx := context.Background()
	st, resp, err := r.InvokeMethod(ctx, "dev-001", "", "factoryReset", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, st)
	assert.JSONEq(t, `{"message":"Factory reset started"}`, string(resp))
	assert.Equal(t, ResetResetting, reported(t, r, "dev-001", "iothubDM", "factoryReset", "status"))
	assert.NotNil(t, reported(t, r, "dev-001", "iothubDM", "factoryReset", "startedFactoryResetTime"))
	_, _, err = r.InvokeMethod(ctx, "dev-001", "", "ping", nil, 0, time.Second)
	assert.ErrorIs(t, err, ErrDeviceNotOnline, "offline while resetting")

	eventually(t, func() bool {
		return reported(t, r, "dev-001", "iothubDM", "factoryReset", "status") == ResetComplete
	}, "reset completes")
	last := reported(t, r, "dev-001", "iothubDM", "factoryReset", "lastFactoryReset")
	require.NotNil(t, last)
	parseTS(t, last)
	_, _, err = r.InvokeMethod(ctx, "dev-001", "", "ping", nil, time.Second, time.Second)
	assert.NoError(t, err)
}

func TestLifeCycleSurvivesDeviceReportedPatch(t *testing.T) {
	// A reported patch in the middle of a life cycle folds the compact
	// life-cycle state into the twin's maps; the walk must carry on.
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Reported: map[string]any{"fw": "1.0"},
		Methods: map[string]sim.MethodSpec{"firmwareUpdate": {StepDuration: dur(20 * time.Millisecond)}, "reboot": {Downtime: dur(30 * time.Millisecond)}}})
	ctx := context.Background()
	_, _, err := r.InvokeMethod(ctx, "dev-001", "", "reboot", nil, 0, time.Second)
	require.NoError(t, err)
	_, err = r.UpdateReported("dev-001", "", map[string]any{"note": "rebooting"})
	require.NoError(t, err)
	eventually(t, func() bool { return reported(t, r, "dev-001", "iothubDM", "reboot", "lastReboot") != nil }, "reboot finishes")
	assert.NotNil(t, reported(t, r, "dev-001", "iothubDM", "reboot", "startedRebootTime"))

	_, _, err = r.InvokeMethod(ctx, "dev-001", "", "firmwareUpdate", raw(`{"fwPackageUri":"https://h/fw"}`), time.Second, time.Second)
	require.NoError(t, err)
	_, err = r.UpdateReported("dev-001", "", map[string]any{"note": "updating"})
	require.NoError(t, err)
	seq := statusSequence(t, r, "dev-001")
	assert.Equal(t, FwApplyComplete, seq[len(seq)-1])
	assert.Equal(t, "1.0", reported(t, r, "dev-001", "fw"))
	assert.Equal(t, "updating", reported(t, r, "dev-001", "note"))
	assert.NotNil(t, reported(t, r, "dev-001", "iothubDM", "reboot", "lastReboot"), "earlier life cycle kept")
}

func TestFleetWideRebootIsCheap(t *testing.T) {
	// Many devices rebooting at once: timers, not goroutines.
	r := newFleet(t, Options{}, sim.Group{Name: "g", IDPattern: "d-%05d", Count: 2000, Methods: map[string]sim.MethodSpec{"reboot": {Downtime: dur(50 * time.Millisecond)}}})
	for i := 1; i <= 2000; i++ {
		_, _, err := r.InvokeMethod(context.Background(), fmt.Sprintf("d-%05d", i), "", "reboot", nil, 0, time.Second)
		require.NoError(t, err)
	}
	eventually(t, func() bool { return r.Stats().Connected == 2000 }, "all devices back")
	for _, id := range []string{"d-00001", "d-01000", "d-02000"} {
		assert.NotNil(t, reported(t, r, id, "iothubDM", "reboot", "lastReboot"), id)
	}
}

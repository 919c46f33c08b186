package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// agentProc is `hubsim device` running.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	mu     sync.Mutex
	events []map[string]any
	more   chan struct{} // closed (and replaced) on every event
	done   chan error
}

func startAgent(t *testing.T, cs, caFile string, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(binary(t, "hubsim"), append([]string{"device", "--ca-file", caFile}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "IOTHUB_DEVICE_CONNECTION_STRING=" + cs}
	a := &agentProc{cmd: cmd, stderr: &lockedBuffer{}, more: make(chan struct{}), done: make(chan error, 1)}
	cmd.Stderr = a.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	scanned := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				a.mu.Lock()
				a.events = append(a.events, ev)
				close(a.more)
				a.more = make(chan struct{})
				a.mu.Unlock()
			} else {
				t.Errorf("hubsim device printed a line that is not JSON: %q", sc.Text())
			}
		}
		close(scanned)
	}()
	go func() {
		<-scanned
		a.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return a
}

func (a *agentProc) eventList() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]map[string]any(nil), a.events...)
}

// waitEvent waits until the agent has printed an event that matches,
// looking again on every event it prints; it fails after 30 s.
func (a *agentProc) waitEvent(t *testing.T, what string, match func(map[string]any) bool) {
	t.Helper()
	find := func() (bool, <-chan struct{}) {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, ev := range a.events {
			if match(ev) {
				return true, nil
			}
		}
		return false, a.more
	}
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		ok, more := find()
		if ok {
			return
		}
		select {
		case <-more:
		case <-timer.C:
			t.Fatalf("hubsim device: no %s event; stderr:\n%s", what, a.stderr.String())
		}
	}
}

// dmDoc reads properties.reported.iothubDM and connectionState of a twin.
func dmDoc(t *testing.T, p *hubsimProc, svc, id string) (dm map[string]any, state string) {
	t.Helper()
	a := p.do(t, http.MethodGet, "/twins/"+id+apiVersion, svc, "", nil)
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	var twin struct {
		ConnectionState string `json:"connectionState"`
		Properties      struct {
			Reported map[string]any `json:"reported"`
		} `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(a.body, &twin))
	dm, _ = twin.Properties.Reported["iothubDM"].(map[string]any)
	return dm, twin.ConnectionState
}

func section(dm map[string]any, name string) map[string]any {
	s, _ := dm[name].(map[string]any)
	return s
}

func parseTime(t *testing.T, v any, field string) time.Time {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "%s should be a timestamp, got %v", field, v)
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err, field)
	return tm
}

// TestHubsimDeviceAgent runs the hubsim binary and `hubsim device` (the
// same binary) as a real MQTT device, drives reboot, firmwareUpdate and
// factoryReset with dmctl and follows the reported life cycles through
// GET /twins.
func TestHubsimDeviceAgent(t *testing.T) {
	dir := t.TempDir()
	p := startHubsimBinary(t, "--dir", filepath.Join(dir, "hub"), "--register", "agent-1", "--no-throttle")
	cs := p.ready.DeviceConnectionStrings["agent-1"]
	require.Contains(t, cs, "GatewayHostName="+p.ready.MQTTAddr)
	svc := serviceToken(t, p.ready.ServiceConnectionString, time.Hour)
	dmctl := func(args ...string) dmctlRun {
		return runDmctl(t, dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": p.ready.ServiceConnectionString}},
			append([]string{"invoke", "--ca-file", p.ready.CAFile, "-o", "json"}, args...)...)
	}

	_, state := dmDoc(t, p, svc, "agent-1")
	require.Equal(t, "Disconnected", state, "nothing connected yet")
	agent := startAgent(t, cs, p.ready.CAFile, "--reboot-downtime", "2s", "--reset-downtime", "1s", "--firmware-step", "300ms")
	agent.waitEvent(t, "connected", func(ev map[string]any) bool { return ev["event"] == "connected" })
	_, state = dmDoc(t, p, svc, "agent-1")
	require.Equal(t, "Connected", state)

	t.Run("reboot", func(t *testing.T) {
		r := dmctl("reboot", "--device", "agent-1")
		require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
		rs := parseJSON(t, r.stdout)
		require.Len(t, rs, 1)
		require.NotNil(t, rs[0].Status)
		assert.Equal(t, 200, *rs[0].Status)
		assert.JSONEq(t, `{"message":"Reboot started"}`, string(rs[0].Payload))

		// Offline while rebooting, with startedRebootTime reported first.
		var started time.Time
		require.Eventually(t, func() bool {
			dm, state := dmDoc(t, p, svc, "agent-1")
			if state != "Disconnected" || section(dm, "reboot")["startedRebootTime"] == nil {
				return false
			}
			started = parseTime(t, section(dm, "reboot")["startedRebootTime"], "startedRebootTime")
			return true
		}, 10*time.Second, 50*time.Millisecond, "rebooting: Disconnected with startedRebootTime")
		off := dmctl("ping", "--device", "agent-1")
		assert.Equal(t, 4, off.code, "a rebooting device is offline")
		rs = parseJSON(t, off.stdout)
		require.Len(t, rs, 1)
		require.NotNil(t, rs[0].Error)
		assert.Equal(t, 404103, rs[0].Error.Code)

		// Back, with lastReboot after the downtime.
		require.Eventually(t, func() bool {
			dm, state := dmDoc(t, p, svc, "agent-1")
			return state == "Connected" && section(dm, "reboot")["lastReboot"] != nil
		}, 20*time.Second, 50*time.Millisecond, "back: Connected with lastReboot")
		dm, _ := dmDoc(t, p, svc, "agent-1")
		last := parseTime(t, section(dm, "reboot")["lastReboot"], "lastReboot")
		assert.GreaterOrEqual(t, last.Sub(started), 2*time.Second, "lastReboot comes a downtime after startedRebootTime")
	})

	t.Run("firmwareUpdate", func(t *testing.T) {
		bad := dmctl("firmwareUpdate", "--device", "agent-1", "--payload", `{"fwPackageUri":"http://insecure.example/fw.bin"}`)
		assert.Equal(t, 4, bad.code, "a device status 400 fails the run")
		rs := parseJSON(t, bad.stdout)
		require.Len(t, rs, 1)
		require.NotNil(t, rs[0].Status)
		assert.Equal(t, 400, *rs[0].Status)

		uri := "https://firmware.example/v2.bin"
		r := dmctl("firmwareUpdate", "--device", "agent-1", "--payload", `{"fwPackageUri":"`+uri+`"}`)
		require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
		rs = parseJSON(t, r.stdout)
		require.Len(t, rs, 1)
		require.NotNil(t, rs[0].Status)
		assert.Equal(t, 200, *rs[0].Status)

		// Follow the twin: every status seen is in the documented order.
		order := []string{"waiting", "downloading", "downloadComplete", "applying", "applyComplete"}
		var seen []string
		require.Eventually(t, func() bool {
			dm, _ := dmDoc(t, p, svc, "agent-1")
			fw := section(dm, "firmwareUpdate")
			s, _ := fw["status"].(string)
			if s != "" && fw["fwPackageUri"] == uri && (len(seen) == 0 || seen[len(seen)-1] != s) {
				seen = append(seen, s)
			}
			return s == "applyComplete"
		}, 20*time.Second, 25*time.Millisecond, "firmware update completes")
		last := -1
		for _, s := range seen {
			i := indexOf(order, s)
			require.GreaterOrEqual(t, i, 0, "unknown status %q (seen %v)", s, seen)
			assert.Greater(t, i, last, "statuses go forward: %v", seen)
			last = i
		}
		assert.GreaterOrEqual(t, len(seen), 3, "the twin showed the walk in progress, not only its end: %v", seen)

		dm, _ := dmDoc(t, p, svc, "agent-1")
		fw := section(dm, "firmwareUpdate")
		assert.Equal(t, uri, fw["fwPackageUri"])
		var prev time.Time
		for _, f := range []string{"startedWaitingTime", "startedDownloadingTime", "downloadCompleteTime", "startedApplyingImage", "lastFirmwareUpdate"} {
			tm := parseTime(t, fw[f], f)
			assert.False(t, tm.Before(prev), "%s is not before the step before it", f)
			prev = tm
		}

		// The agent's own event stream has every step, in order.
		var reported []string
		for _, ev := range agent.eventList() {
			if ev["event"] != "reported" {
				continue
			}
			rep, _ := ev["reported"].(map[string]any)
			dm, _ := rep["iothubDM"].(map[string]any)
			if s, ok := section(dm, "firmwareUpdate")["status"].(string); ok {
				reported = append(reported, s)
			}
		}
		assert.Equal(t, order, reported)
	})

	t.Run("factoryReset", func(t *testing.T) {
		r := dmctl("factoryReset", "--device", "agent-1")
		require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
		require.Eventually(t, func() bool {
			dm, state := dmDoc(t, p, svc, "agent-1")
			return state == "Connected" && section(dm, "factoryReset")["status"] == "resetComplete"
		}, 20*time.Second, 50*time.Millisecond, "factory reset completes")
		dm, _ := dmDoc(t, p, svc, "agent-1")
		fr := section(dm, "factoryReset")
		started := parseTime(t, fr["startedFactoryResetTime"], "startedFactoryResetTime")
		last := parseTime(t, fr["lastFactoryReset"], "lastFactoryReset")
		assert.GreaterOrEqual(t, last.Sub(started), time.Second)
	})

	t.Run("unknown method", func(t *testing.T) {
		r := dmctl("selfDestruct", "--device", "agent-1")
		assert.Equal(t, 4, r.code)
		rs := parseJSON(t, r.stdout)
		require.Len(t, rs, 1)
		require.NotNil(t, rs[0].Status)
		assert.Equal(t, 404, *rs[0].Status)
	})

	t.Run("SIGTERM stops the agent", func(t *testing.T) {
		require.NoError(t, agent.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-agent.done:
			assert.NoError(t, err, "exit 0; stderr:\n%s", agent.stderr.String())
		case <-time.After(15 * time.Second):
			t.Fatal("hubsim device did not stop on SIGTERM")
		}
		require.Eventually(t, func() bool {
			_, state := dmDoc(t, p, svc, "agent-1")
			return state == "Disconnected"
		}, 10*time.Second, 50*time.Millisecond)
		assert.NotContains(t, agent.stderr.String(), "SharedAccessKey=")
		assert.True(t, strings.Contains(agent.stderr.String(), "connected to tls://"), "readable log on stderr")
	})
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

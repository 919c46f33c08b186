package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/test/testbin"
)

// jobsFleet: 20 devices tagged plant-a (pa-01..pa-20), 4 tagged plant-b
// whose reboot answers 500 (pb-1..pb-4), and 2 offline ones tagged plant-b
// (off-1, off-2).
const jobsFleet = `groups:
  - name: plant-a
    idPattern: pa-%02d
    count: 20
    tags: {site: plant-a}
  - name: plant-b
    idPattern: pb-%d
    count: 4
    tags: {site: plant-b}
    methods:
      reboot: {status: 500, payload: {error: "flash busy"}}
  - name: offline
    idPattern: off-%d
    count: 2
    tags: {site: plant-b}
    connection: {onlineShare: 0}
`

type methodLogLine struct {
	DeviceID  string `json:"deviceId"`
	Method    string `json:"method"`
	RequestID string `json:"requestId"`
	Status    int    `json:"status"`
}

// jobDeliveries returns the method-log lines of one job's deliveries (the
// hub's request id is jobs/<jobId>/<deviceId>), once hubsim has settled: no
// call in flight and every ended job stopped, the log flushed.
func jobDeliveries(t *testing.T, hub *testbin.Hubsim, path, jobID string) []methodLogLine {
	t.Helper()
	hub.Settle(t)
	var out []methodLogLine
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l methodLogLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		if strings.HasPrefix(l.RequestID, "jobs/"+jobID+"/") {
			out = append(out, l)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestJobsAgainstHubsim runs dmctl jobs against the hubsim binary as an S1
// hub (10 job device operations a second, one active job at a time).
func TestJobsAgainstHubsim(t *testing.T) {
	dir := t.TempDir()
	fleetFile := filepath.Join(dir, "fleet.yaml")
	require.NoError(t, os.WriteFile(fleetFile, []byte(jobsFleet), 0o600))
	methodLog := filepath.Join(dir, "methods.jsonl")
	hub := testbin.StartHubsim(t, "--fleet", fleetFile, "--tier", "S1", "--method-log", methodLog, "--seed", "5")
	require.Equal(t, 26, hub.Devices)
	env := dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": hub.ServiceConnectionString}}
	dmctl := func(args ...string) dmctlRun {
		t.Helper()
		return runDmctl(t, env, append(args, "--ca-file", hub.CAFile)...)
	}

	t.Run("a job over a tag query completes and its results match the method log", func(t *testing.T) {
		r := dmctl("jobs", "create", "reboot", "--query-condition", "tags.site = 'plant-a'", "--job-id", "reboot-a",
			"--wait", "--poll-interval", "250ms", "-o", "json")
		require.Equal(t, 0, r.code, r.stderr)
		var results []jsonResult
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &results), r.stdout)
		require.Len(t, results, 20, "one result per device the condition selects")
		var ids []string
		for _, res := range results {
			ids = append(ids, res.DeviceID)
			assert.Equal(t, "succeeded", res.Outcome, res.DeviceID)
			assert.Equal(t, "reboot", res.Method)
			require.NotNil(t, res.Status)
			assert.Equal(t, 200, *res.Status)
			assert.Equal(t, 1, res.Attempts)
		}
		assert.True(t, sort.StringsAreSorted(ids), "json results are sorted")
		assert.Equal(t, "pa-01", ids[0])
		assert.Equal(t, "pa-20", ids[19])

		log := jobDeliveries(t, hub, methodLog, "reboot-a")
		require.Len(t, log, len(results), "hubsim delivered exactly one call per result")
		var logged []string
		for _, l := range log {
			logged = append(logged, l.DeviceID)
			assert.Equal(t, "reboot", l.Method)
			assert.Equal(t, 200, l.Status)
		}
		sort.Strings(logged)
		assert.Equal(t, ids, logged)

		assert.Contains(t, r.stderr, "Created job reboot-a (queued): reboot on devices where tags.site = 'plant-a'.")
		assert.Contains(t, r.stderr, "job reboot-a completed: 20/20 devices done (20 succeeded, 0 failed)")
		assert.Contains(t, r.stderr, "20 targets: 20 succeeded")
		assert.NotContains(t, r.stdout+r.stderr, keyOf(t, hub.ServiceConnectionString))

		// The same results later, and the job itself.
		again := dmctl("jobs", "results", "reboot-a", "-o", "name")
		require.Equal(t, 0, again.code, again.stderr)
		assert.Equal(t, strings.Join(ids, "\n")+"\n", again.stdout)
		show := dmctl("jobs", "show", "reboot-a", "-o", "json")
		require.Equal(t, 0, show.code, show.stderr)
		var job map[string]any
		require.NoError(t, json.Unmarshal([]byte(show.stdout), &job))
		assert.Equal(t, "completed", job["status"])
		assert.Equal(t, map[string]any{"devices": 20.0, "succeeded": 20.0, "failed": 0.0, "running": 0.0, "pending": 0.0}, job["statistics"])
	})

	t.Run("a job with failing devices exits 4", func(t *testing.T) {
		r := dmctl("jobs", "create", "reboot", "--query-condition", "tags.site = 'plant-b'", "--job-id", "reboot-b",
			"--wait", "--poll-interval", "250ms", "-o", "jsonl")
		assert.Equal(t, 4, r.code, r.stderr)
		outcomes := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var res jsonResult
			require.NoError(t, json.Unmarshal([]byte(line), &res), line)
			outcomes[res.DeviceID] = res.Outcome
		}
		assert.Equal(t, map[string]string{"pb-1": "failed", "pb-2": "failed", "pb-3": "failed", "pb-4": "failed", "off-1": "offline", "off-2": "offline"}, outcomes)
		assert.Contains(t, r.stderr, "pb-1: failed: the device answered status 500")
		assert.Contains(t, r.stderr, "off-1: offline: 404103 DeviceNotOnline")
		assert.Contains(t, r.stderr, "6 targets: 4 failed, 2 offline")
		assert.Len(t, jobDeliveries(t, hub, methodLog, "reboot-b"), 4, "offline devices got no delivery")
	})

	t.Run("cancel stops a scheduled job", func(t *testing.T) {
		r := dmctl("jobs", "create", "reboot", "--device", "pa-01", "--device", "pa-02", "--job-id", "later",
			"--start-time", "+1h", "--connect-timeout", "30", "-o", "json")
		require.Equal(t, 0, r.code, r.stderr)
		var job map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &job), r.stdout)
		assert.Equal(t, "queued", job["status"], "the hub answers a job that starts later with queued")
		assert.Equal(t, "deviceId IN ['pa-01', 'pa-02']", job["queryCondition"])
		before := dmctl("jobs", "show", "later")
		require.Equal(t, 0, before.code, before.stderr)
		assert.Contains(t, before.stdout, "later    scheduled", "and says scheduled from then on")
		assert.EqualValues(t, 30, job["connectTimeoutSeconds"], "the connect timeout reached the hub")

		busy := dmctl("jobs", "create", "reboot", "--query-condition", "*", "--job-id", "while-busy")
		assert.Equal(t, 1, busy.code)
		assert.Contains(t, busy.stderr, "429004 ThrottlingMaxActiveJobCountExceeded", "S1 runs one job at a time, a scheduled one included")

		c := dmctl("jobs", "cancel", "later", "-o", "name")
		require.Equal(t, 0, c.code, c.stderr)
		assert.Equal(t, "later\n", c.stdout)
		assert.Contains(t, c.stderr, "Cancelled job later.")

		show := dmctl("jobs", "show", "later")
		require.Equal(t, 0, show.code)
		assert.Contains(t, show.stdout, "later    cancelled")
		res := dmctl("jobs", "results", "later")
		assert.Equal(t, 4, res.code, "no device succeeded")
		assert.Contains(t, res.stderr, "was cancelled before it started")
		assert.Empty(t, jobDeliveries(t, hub, methodLog, "later"), "a cancelled scheduled job delivers nothing")

		list := dmctl("jobs", "list", "-o", "name")
		require.Equal(t, 0, list.code, list.stderr)
		assert.Equal(t, "reboot-a\nreboot-b\nlater\n", list.stdout)
		list = dmctl("jobs", "list", "--status", "cancelled", "-o", "name")
		assert.Equal(t, "later\n", list.stdout)
	})

	t.Run("twin show", func(t *testing.T) {
		r := dmctl("twin", "show", "--device", "pa-03")
		require.Equal(t, 0, r.code, r.stderr)
		var twin map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &twin))
		assert.Equal(t, "pa-03", twin["deviceId"])
		assert.Equal(t, map[string]any{"site": "plant-a"}, twin["tags"])

		r = dmctl("twin", "show", "--device", "pa-03", "--path", "tags.site")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, "\"plant-a\"\n", r.stdout)

		// The reboot job above ran the simulated reboot life cycle.
		r = dmctl("twin", "show", "--device", "pa-03", "--path", "properties.reported.iothubDM.reboot", "-o", "jsonl")
		require.Equal(t, 0, r.code, r.stderr)
		var reboot map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &reboot), r.stdout)
		assert.NotEmpty(t, reboot, "iothubDM.reboot reported")
		assert.Equal(t, 1, strings.Count(r.stdout, "\n"), "jsonl: one line")

		r = dmctl("twin", "show", "--device", "no-such-device")
		assert.Equal(t, 4, r.code, "not found")
		assert.Contains(t, r.stderr, "404001")
	})

	t.Run("a policy without ServiceConnect cannot create jobs, exit 3", func(t *testing.T) {
		ro := dmctlCmd{env: map[string]string{"IOTHUB_CONNECTION_STRING": hub.RegistryReadConnectionString}}
		r := runDmctl(t, ro, "jobs", "create", "reboot", "--query-condition", "*", "--ca-file", hub.CAFile)
		assert.Equal(t, 3, r.code, r.stderr)
		assert.Contains(t, r.stderr, "ServiceConnect")
		assert.NotContains(t, r.stdout+r.stderr, keyOf(t, hub.RegistryReadConnectionString))
		// Reading jobs is allowed to registryRead.
		r = runDmctl(t, ro, "jobs", "show", "reboot-a", "--ca-file", hub.CAFile, "-o", "name")
		assert.Equal(t, 0, r.code, r.stderr)
	})
}

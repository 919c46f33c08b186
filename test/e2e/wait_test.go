package e2e

// End-to-end tests of waiting for reported outcomes (--wait, --wait-until)
// and of dmctl invoke --via job, the built dmctl against the built hubsim,
// with hubsim's twins and method log as the ground truth.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitResult is a result line with the wait's additive fields.
type waitResult struct {
	DeviceID  string         `json:"deviceId"`
	Outcome   string         `json:"outcome"`
	Status    *int           `json:"status"`
	StartTime time.Time      `json:"startTime"`
	WaitValue map[string]any `json:"waitValue"`
	WaitMs    float64        `json:"waitMs"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func waitResults(t *testing.T, stdout string) map[string]waitResult {
	t.Helper()
	out := map[string]waitResult{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "" {
			continue
		}
		var r waitResult
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		_, dup := out[r.DeviceID]
		require.False(t, dup, "%s has two result lines", r.DeviceID)
		out[r.DeviceID] = r
	}
	return out
}

// queryHub runs an IoT Hub query against hubsim directly (the ground
// truth), page by page.
func (h *fleetHub) queryHub(t *testing.T, sql string) []map[string]any {
	t.Helper()
	pem, err := os.ReadFile(h.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	token := serviceToken(t, h.ServiceConnectionString, time.Hour)
	body, err := json.Marshal(map[string]string{"query": sql})
	require.NoError(t, err)
	var out []map[string]any
	cont := ""
	for {
		req, err := http.NewRequest("POST", "https://"+h.HostName+"/devices/query"+apiVersion, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-ms-max-item-count", "1000")
		if cont != "" {
			req.Header.Set("x-ms-continuation", cont)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		var page []map[string]any
		require.Equal(t, 200, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
		_ = resp.Body.Close()
		out = append(out, page...)
		if cont = resp.Header.Get("x-ms-continuation"); cont == "" {
			return out
		}
	}
}

// TestWaitRebootThousand: 1,000 devices rebooted with --wait reboot are
// each reported back online: the reboot time they reported is after their
// call, and they are connected; hubsim's twins say the same.
func TestWaitRebootThousand(t *testing.T) {
	h := startFleetHub(t, `{"seed":3,"groups":[{"name":"g","idPattern":"rb-%04d","count":1000,
		"methods":{"reboot":{"downtime":"2s","latency":{"dist":"uniform","min":"1ms","max":"5ms"}}}}]}`, "--no-throttle")
	before := time.Now().UTC()
	r := h.run(t, "", "reboot", "--query", "SELECT deviceId FROM devices", "--wait", "reboot", "--wait-timeout", "40s", "-o", "jsonl", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	results := waitResults(t, r.stdout)
	require.Len(t, results, 1000)
	for id, res := range results {
		require.Equal(t, "succeeded", res.Outcome, id)
		assert.Equal(t, "Connected", res.WaitValue["connectionState"], id)
		lr, ok := res.WaitValue["properties.reported.iothubDM.reboot.lastReboot"].(string)
		require.True(t, ok, "%s: waitValue holds lastReboot: %v", id, res.WaitValue)
		at, err := time.Parse(time.RFC3339Nano, lr)
		require.NoError(t, err)
		assert.False(t, at.Before(res.StartTime), "%s rebooted (%s) after its call (%s)", id, at, res.StartTime)
		assert.Positive(t, res.WaitMs, id)
	}
	assert.Contains(t, r.stderr, "1000 succeeded")
	// Ground truth: every device rebooted once, and hubsim's twins show it
	// connected with a reboot after the run started.
	d := h.deliveries(t, "reboot")
	assert.Len(t, d, 1000)
	for id, ds := range d {
		assert.Len(t, ds, 1, id)
	}
	twins := h.queryHub(t, "SELECT deviceId, connectionState, properties.reported.iothubDM.reboot.lastReboot AS lastReboot FROM devices")
	require.Len(t, twins, 1000)
	for _, tw := range twins {
		assert.Equal(t, "Connected", tw["connectionState"], tw["deviceId"])
		at, err := time.Parse(time.RFC3339Nano, tw["lastReboot"].(string))
		require.NoError(t, err)
		assert.True(t, at.After(before), "%v", tw["deviceId"])
	}
}

// TestWaitFirmwareFailures: a firmware update where 3% of the devices fail
// ends with exactly the devices hubsim's twins show failed marked
// waitFailed, the others succeeded, and exit 4.
func TestWaitFirmwareFailures(t *testing.T) {
	h := startFleetHub(t, `{"seed":11,"groups":[{"name":"g","idPattern":"fw-%04d","count":600,
		"methods":{"firmwareUpdate":{"failureRate":0.03,"stepDuration":"200ms"}}}]}`, "--no-throttle")
	r := h.run(t, "", "firmwareUpdate", "--query", "SELECT deviceId FROM devices", "--payload", `{"fwPackageUri":"https://fw.example.test/v2.bin"}`,
		"--wait", "firmware", "--wait-timeout", "40s", "-o", "jsonl", "--yes")
	require.Equal(t, 4, r.code, r.stderr)
	results := waitResults(t, r.stdout)
	require.Len(t, results, 600)

	truth := map[string]string{}
	for _, tw := range h.queryHub(t, "SELECT deviceId, properties.reported.iothubDM.firmwareUpdate.status AS status FROM devices") {
		truth[tw["deviceId"].(string)], _ = tw["status"].(string)
	}
	require.Len(t, truth, 600)
	var failed, marked []string
	for id, st := range truth {
		switch st {
		case "downloadFailed", "applyFailed":
			failed = append(failed, id)
		default:
			assert.Equal(t, "applyComplete", st, "%s ended complete or failed", id)
		}
	}
	for id, res := range results {
		switch res.Outcome {
		case "waitFailed":
			marked = append(marked, id)
			require.NotNil(t, res.Error, id)
			assert.Contains(t, res.Error.Message, "the firmware update failed", id)
			assert.Equal(t, truth[id], res.WaitValue["properties.reported.iothubDM.firmwareUpdate.status"], id)
			require.NotNil(t, res.Status, id)
			assert.Equal(t, 200, *res.Status, "the method itself succeeded")
		case "succeeded":
			assert.Equal(t, "applyComplete", res.WaitValue["properties.reported.iothubDM.firmwareUpdate.status"], id)
		default:
			t.Errorf("%s: outcome %s", id, res.Outcome)
		}
	}
	sort.Strings(failed)
	sort.Strings(marked)
	require.NotEmpty(t, failed, "the seeded fleet has failures")
	assert.Less(t, len(failed), 60, "about 3%% of 600 fail")
	assert.Equal(t, failed, marked, "exactly the devices that failed are marked failed")
	assert.Contains(t, r.stderr, "waitFailed")
}

// viaJobFleet: 20 devices that answer ping, 4 whose ping answers 500, 2
// offline, all under tags.site.
const viaJobFleet = `groups:
  - name: ok
    idPattern: vj-%02d
    count: 20
    tags: {site: a}
    methods:
      ping: {latency: 2ms, payload: {pong: true}}
  - name: busy
    idPattern: vb-%d
    count: 4
    tags: {site: b}
    methods:
      "*": {status: 500, payload: {error: "busy"}}
  - name: offline
    idPattern: vo-%d
    count: 2
    tags: {site: b}
    connection: {onlineShare: 0}
  - name: other
    idPattern: other-%d
    count: 3
    tags: {site: c}
    methods:
      ping: {payload: {pong: true}}
`

// TestInvokeViaJob: the same fan-out run directly and as a job gives the
// same per-device results and exit code; the job path refuses what a job
// cannot express.
func TestInvokeViaJob(t *testing.T) {
	dir := t.TempDir()
	fleetFile := filepath.Join(dir, "fleet.yaml")
	require.NoError(t, os.WriteFile(fleetFile, []byte(viaJobFleet), 0o600))
	hub := startFleetHub(t, "", "--fleet", fleetFile, "--tier", "S1")
	query := "SELECT deviceId FROM devices WHERE tags.site IN ['a', 'b']"

	direct := hub.run(t, "", "ping", "--query", query, "-o", "jsonl", "--yes")
	require.Equal(t, 4, direct.code, direct.stderr)
	viaJob := hub.run(t, "", "ping", "--query", query, "--via", "job", "-o", "jsonl", "--yes")
	require.Equal(t, 4, viaJob.code, viaJob.stderr)
	assert.Contains(t, viaJob.stderr, "Created job dmctl-")

	d, j := jsonlResults(t, direct.stdout), jsonlResults(t, viaJob.stdout)
	require.Len(t, d, 26)
	require.Len(t, j, 26)
	for id, dr := range d {
		jr, ok := j[id]
		require.True(t, ok, id)
		assert.Equal(t, dr.Outcome, jr.Outcome, id)
		assert.Equal(t, dr.Method, jr.Method, id)
		if assert.Equal(t, dr.Status == nil, jr.Status == nil, id) && dr.Status != nil {
			assert.Equal(t, *dr.Status, *jr.Status, id)
			assert.JSONEq(t, string(dr.Payload), string(jr.Payload), id)
		}
	}
	assert.Equal(t, map[string]int{"succeeded": 20, "failed": 4, "offline": 2}, outcomes(j))
	// Each online device got the method twice: once per run.
	for id, ds := range hub.deliveries(t, "ping") {
		assert.Len(t, ds, 2, id)
		assert.NotContains(t, id, "other-", "the job ran only on the devices the query selects")
	}

	t.Run("device ids become an IN list", func(t *testing.T) {
		r := hub.run(t, "", "ping", "--device", "vj-01", "--device", "vb-1", "--via", "job", "-o", "json", "--yes")
		require.Equal(t, 4, r.code, r.stderr)
		var rs []jsonResult
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rs))
		require.Len(t, rs, 2)
		assert.Equal(t, "vb-1", rs[0].DeviceID)
		assert.Equal(t, "failed", rs[0].Outcome)
		assert.Equal(t, "succeeded", rs[1].Outcome)
	})

	t.Run("a job's succeeded devices wait for their outcome", func(t *testing.T) {
		r := hub.run(t, "", "reboot", "--device", "vj-01", "--device", "vj-02", "--device", "vb-1", "--via", "job",
			"--wait", "reboot", "--wait-timeout", "30s", "-o", "jsonl", "--yes")
		require.Equal(t, 4, r.code, r.stderr)
		rs := waitResults(t, r.stdout)
		require.Len(t, rs, 3)
		for _, id := range []string{"vj-01", "vj-02"} {
			assert.Equal(t, "succeeded", rs[id].Outcome, id)
			assert.Equal(t, "Connected", rs[id].WaitValue["connectionState"], id)
			assert.NotEmpty(t, rs[id].WaitValue["properties.reported.iothubDM.reboot.lastReboot"], id)
		}
		assert.Equal(t, "failed", rs["vb-1"].Outcome, "a device that answered 500 is not waited on")
		assert.Nil(t, rs["vb-1"].WaitValue)
	})

	t.Run("what a job cannot express is refused before anything is sent", func(t *testing.T) {
		modFile := filepath.Join(dir, "mods.txt")
		require.NoError(t, os.WriteFile(modFile, []byte("vj-01/telemetry\n"), 0o600))
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--device", "vj-01", "--rate", "10/s"}, "--via job cannot be combined with --rate"},
			{[]string{"--device", "vj-01", "--module", "m"}, "--via job cannot be combined with --module"},
			{[]string{"--device", "vj-01", "--waves", "1,100%"}, "--via job cannot be combined with --waves"},
			{[]string{"--devices-file", modFile}, "IoT Hub jobs invoke device methods only"},
			{[]string{"--query", "SELECT deviceId FROM devices.modules"}, "FROM devices.modules"},
			{[]string{"--query", "SELECT TOP 5 deviceId FROM devices"}, "TOP"},
		} {
			r := hub.run(t, "", append([]string{"ping", "--via", "job", "--yes"}, c.args...)...)
			assert.Equal(t, 2, r.code, "%v: %s", c.args, r.stderr)
			assert.Contains(t, r.stderr, c.want, c.args)
		}
	})
}

// TestWaitModulesAndConditions: --wait-until and --fail-if on module twins
// read through FROM devices.modules queries, one device read with GET
// /twins, and a condition that never holds times out.
func TestWaitModulesAndConditions(t *testing.T) {
	h := startFleetHub(t, `{"seed":1,"groups":[
		{"name":"ready","idPattern":"mr-%02d","count":3,"modules":["agent"],"reported":{"state":"ready"},"methods":{"ping":{}}},
		{"name":"broken","idPattern":"mb-%02d","count":2,"modules":["agent"],"reported":{"state":"Broken"},"methods":{"ping":{}}}]}`, "--no-throttle")
	r := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices", "--module", "agent",
		"--wait-until", "properties.reported.state in (ready, done)", "--fail-if", "properties.reported.state == broken",
		"--wait-timeout", "20s", "-o", "jsonl", "--yes")
	require.Equal(t, 4, r.code, r.stderr)
	assert.Contains(t, r.stderr, "After each call succeeds, waiting for properties.reported.state in (ready, done)")
	results := jsonlResults(t, r.stdout)
	require.Len(t, results, 5)
	for _, id := range []string{"mr-01/agent", "mr-02/agent", "mr-03/agent"} {
		assert.Equal(t, "succeeded", results[id].Outcome, id)
	}
	for _, id := range []string{"mb-01/agent", "mb-02/agent"} {
		assert.Equal(t, "waitFailed", results[id].Outcome, id)
		require.NotNil(t, results[id].Error, id)
		assert.Contains(t, results[id].Error.Message, "--fail-if properties.reported.state == broken holds", id)
	}

	one := h.run(t, "", "ping", "--device", "mr-01", "--wait-until", "properties.reported.state == gone", "--wait-timeout", "3s", "-o", "json")
	require.Equal(t, 4, one.code, one.stderr)
	rs := waitResultsJSON(t, one.stdout)
	require.Len(t, rs, 1)
	assert.Equal(t, "waitTimeout", rs[0].Outcome)
	assert.Equal(t, map[string]any{"properties.reported.state": "ready"}, rs[0].WaitValue)
	assert.Contains(t, one.stderr, "hint: a device that did not report its outcome in time")
}

func waitResultsJSON(t *testing.T, stdout string) []waitResult {
	t.Helper()
	var rs []waitResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &rs), stdout)
	return rs
}

package conformance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
)

// TestServiceSDKJobs runs Microsoft's JobClient.scheduleDeviceMethod and
// getJob against hubsim as an S1 hub: the SDK sends "startTime": null and
// neither maxExecutionTimeInSeconds nor connectTimeoutInSeconds, which the
// hub must take as now, 3600 s and 0.
func TestServiceSDKJobs(t *testing.T) {
	node := requireNode(t)
	fleet := map[string]any{"groups": []any{
		map[string]any{"name": "a", "idPattern": "plant-a-%d", "count": 6, "tags": map[string]any{"site": "plant-a"},
			"methods": map[string]any{"getState": map[string]any{"status": 200, "payload": map[string]any{"state": "ok"}}}},
		map[string]any{"name": "b", "idPattern": "plant-b-%d", "count": 3, "tags": map[string]any{"site": "plant-b"}},
	}}
	data, err := json.Marshal(fleet)
	require.NoError(t, err)
	dir := t.TempDir()
	fleetFile := filepath.Join(dir, "fleet.json")
	require.NoError(t, os.WriteFile(fleetFile, data, 0o600))
	methodLog := filepath.Join(dir, "methods.jsonl")
	h := startHub(t, "--fleet", fleetFile, "--tier", "S1", "--method-log", methodLog)

	r := h.run(t, node, "jobs", "JOB_ID=sdk-job-1", "QUERY_CONDITION=tags.site = 'plant-a'", "METHOD_NAME=getState",
		`METHOD_PAYLOAD={"verbose":true}`)
	require.Equal(t, 0, r.ExitCode, "jobs.js failed: %s\nstderr: %s", r.Stdout, connstr.Redact(r.Stderr))

	assert.EqualValues(t, 200, r.Out["createdHttpStatus"])
	created, ok := r.Out["created"].(map[string]any)
	require.True(t, ok, "created: %s", r.Stdout)
	assert.Equal(t, "sdk-job-1", created["jobId"])
	assert.Equal(t, "scheduleDeviceMethod", created["type"])
	assert.Contains(t, []any{"queued", "running", "completed"}, created["status"])
	assert.EqualValues(t, 3600, created["maxExecutionTimeInSeconds"], "absent maxExecutionTimeInSeconds is 3600")
	m, ok := created["cloudToDeviceMethod"].(map[string]any)
	require.True(t, ok, "cloudToDeviceMethod: %v", created)
	assert.Equal(t, "getState", m["methodName"])
	assert.Equal(t, map[string]any{"verbose": true}, m["payload"])
	assert.EqualValues(t, 30, m["responseTimeoutInSeconds"], "the SDK's default response timeout")
	assert.EqualValues(t, 0, m["connectTimeoutInSeconds"], "the SDK drops the connect timeout: the hub takes 0")
	assert.NotEmpty(t, created["startTime"], "startTime null means now")

	final, ok := r.Out["final"].(map[string]any)
	require.True(t, ok, "final: %s", r.Stdout)
	assert.Equal(t, "completed", final["status"], "getJob reaches completed")
	assert.NotEmpty(t, final["endTime"])
	assert.Equal(t, map[string]any{"deviceCount": 6.0, "succeededCount": 6.0, "failedCount": 0.0, "runningCount": 0.0, "pendingCount": 0.0},
		final["deviceJobStatistics"])

	// Per-device results through the SDK's Registry.createQuery.
	djs, ok := r.Out["deviceJobs"].([]any)
	require.True(t, ok, "deviceJobs: %s", r.Stdout)
	require.Len(t, djs, 6)
	var ids []string
	for _, x := range djs {
		dj := x.(map[string]any)
		ids = append(ids, dj["deviceId"].(string))
		assert.Equal(t, "sdk-job-1", dj["jobId"])
		assert.Equal(t, "completed", dj["status"])
		assert.Equal(t, map[string]any{"deviceMethodResponse": map[string]any{"status": 200.0, "payload": map[string]any{"state": "ok"}}}, dj["outcome"])
	}
	sort.Strings(ids)
	assert.Equal(t, []string{"plant-a-1", "plant-a-2", "plant-a-3", "plant-a-4", "plant-a-5", "plant-a-6"}, ids)
	assert.Equal(t, []any{"sdk-job-1"}, r.Out["listedJobIds"], "JobClient.createQuery lists the job")

	// Ground truth: the hub delivered getState once to each selected device.
	var delivered []string
	for _, d := range settledDeliveries(t, h, methodLog, func(d delivery) bool { return d.Method == "getState" }) {
		delivered = append(delivered, d.DeviceID)
		assert.Equal(t, "jobs/sdk-job-1/"+d.DeviceID, d.RequestID)
	}
	sort.Strings(delivered)
	assert.Equal(t, ids, delivered)

	// The same id again: 409 / 409104 JobAlreadyExists, as the SDK sees it.
	r = h.run(t, node, "jobs", "JOB_ID=sdk-job-1", "QUERY_CONDITION=*", "METHOD_NAME=getState")
	assertHubError(t, r, 409, "409104", "JobAlreadyExists")
}

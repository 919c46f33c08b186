package output

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJobPrinters(t *testing.T) {
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	jobs := []JobView{
		{JobID: "j1", Type: "scheduleDeviceMethod", Status: "completed", Method: "reboot", StartTime: &start,
			Statistics: JobStatistics{Devices: 3, Succeeded: 2, Failed: 1}},
		{JobID: "j2", Type: "scheduleUpdateTwin", Status: "scheduled", QueryCondition: "tags.a = 1"},
	}
	run := func(f Format, single bool, js ...JobView) string {
		s, _, out, _ := Test()
		p, err := NewJobPrinter(f, s, single)
		require.NoError(t, err)
		for _, j := range js {
			require.NoError(t, p.Add(j))
		}
		require.NoError(t, p.Flush())
		return out.String()
	}
	assert.Equal(t, "JOB ID   STATUS      METHOD                 DEVICES   SUCCEEDED   FAILED   RUNNING   PENDING   START\n"+
		"j1       completed   reboot                 3         2           1        0         0         2026-03-04T05:06:07Z\n"+
		"j2       scheduled   (scheduleUpdateTwin)   0         0           0        0         0         -\n", run(FormatTable, false, jobs...))
	assert.Equal(t, "j1\nj2\n", run(FormatName, false, jobs...))

	var arr []map[string]any
	require.NoError(t, json.Unmarshal([]byte(run(FormatJSON, false, jobs...)), &arr))
	require.Len(t, arr, 2)
	assert.Equal(t, "2026-03-04T05:06:07Z", arr[0]["startTime"])
	assert.NotContains(t, arr[1], "startTime")

	var one map[string]any
	require.NoError(t, json.Unmarshal([]byte(run(FormatJSON, true, jobs[0])), &one), "show prints one object")
	assert.Equal(t, "j1", one["jobId"])
	assert.Equal(t, "[]\n", run(FormatJSON, false), "no jobs is an empty array")
	assert.Equal(t, "", run(FormatTable, false))
	lines := run(FormatJSONL, false, jobs...)
	assert.Equal(t, 2, len(splitLines(lines)))
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func TestJobProgressLine(t *testing.T) {
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	assert.Equal(t, "job j scheduled: starts 2026-03-04T05:06:07Z [1.5s]",
		JobProgressLine(JobView{JobID: "j", Status: "scheduled", StartTime: &start}, 1500*time.Millisecond))
	assert.Equal(t, "job j running: 5/10 devices done (4 succeeded, 1 failed), 2 running, 3 pending [2m5s]",
		JobProgressLine(JobView{JobID: "j", Status: "running", Statistics: JobStatistics{Devices: 10, Succeeded: 4, Failed: 1, Running: 2, Pending: 3}}, 125*time.Second))
	assert.Equal(t, "job j failed: 1/1 device done (1 succeeded, 0 failed): out of time [1.0s]",
		JobProgressLine(JobView{JobID: "j", Status: "failed", EndTime: &start, FailureReason: "out of time", Statistics: JobStatistics{Devices: 1, Succeeded: 1}}, time.Second))
}

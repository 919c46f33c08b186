package jobs

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
	"github.com/dmctl/dmctl/internal/cli/jobs/create"
	"github.com/dmctl/dmctl/internal/cli/jobs/shared"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

// parseJobsCreate runs argv through cmdutil's root and returns the options
// jobs create would run with, or the error (nothing is sent).
func parseJobsCreate(t *testing.T, te *cmdtest.Env, args ...string) (*create.Options, error) {
	t.Helper()
	var got *create.Options
	group := NewCmdJobs(te.F)
	for _, sc := range group.Commands() {
		if sc.Name() == "create" {
			group.RemoveCommand(sc)
		}
	}
	group.AddCommand(create.NewCmdCreate(te.F, func(o *create.Options) error { got = o; return nil }))
	root := cmdtest.Root(te.F, group)
	cmdutil.GuardFlags(root)
	root.SetArgs(append([]string{"jobs", "create"}, args...))
	_, err := root.ExecuteC()
	if err != nil && cmdutil.IsCobraUsageError(err) {
		err = cmdutil.FlagErrorWrap(err)
	}
	return got, err
}

func TestJobsCreateArgsToOptions(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, o *create.Options)
	}{
		{"defaults", []string{"reboot", "--query-condition", " tags.site = 'a' "}, func(t *testing.T, o *create.Options) {
			assert.Equal(t, "reboot", o.Method)
			assert.Equal(t, "tags.site = 'a'", o.QueryCondition)
			assert.True(t, strings.HasPrefix(o.JobID, "dmctl-20260304-050607-"), o.JobID)
			assert.Len(t, o.JobID, len("dmctl-20260304-050607-")+8)
			assert.NoError(t, iothub.ValidateJobID(o.JobID))
			assert.Nil(t, o.Payload)
			assert.Equal(t, 30*time.Second, o.Timeout)
			assert.Equal(t, time.Duration(0), o.ConnectTimeout)
			assert.Equal(t, time.Hour, o.MaxExecution)
			assert.True(t, o.StartTime.IsZero(), "now")
			assert.False(t, o.Wait)
			assert.Equal(t, shared.DefaultPollInterval, o.Follow.PollInterval)
			assert.Equal(t, "2xx", o.Follow.OKStatus.String())
			assert.Equal(t, o.JobID, o.Follow.JobID)
			assert.Equal(t, output.FormatTable, o.Output)
		}},
		{"devices", []string{"reboot", "--device", "a", "--device", "b'c", "--device", "d#e"}, func(t *testing.T, o *create.Options) {
			assert.Equal(t, `deviceId IN ['a', "b'c", 'd#e']`, o.QueryCondition)
			assert.Equal(t, []string{"a", "b'c", "d#e"}, o.Devices)
		}},
		{"a device named twice is sent once (invoke's rule)", []string{"reboot", "--device", "a", "--device", "b", "--device", "a"}, func(t *testing.T, o *create.Options) {
			assert.Equal(t, `deviceId IN ['a', 'b']`, o.QueryCondition)
			assert.Equal(t, 1, o.Duplicates)
		}},
		{"everything", []string{"fw", "--query-condition", "*", "--payload", `{"uri":"https://x"}`, "--timeout", "60", "--connect-timeout", "2m",
			"--start-time", "2026-03-05T02:00:00+01:00", "--max-execution-time", "2h", "--job-id", "fw-1", "--wait", "--ok-status", "200",
			"--poll-interval", "500ms", "-o", "jsonl"}, func(t *testing.T, o *create.Options) {
			assert.JSONEq(t, `{"uri":"https://x"}`, string(o.Payload))
			assert.Equal(t, time.Minute, o.Timeout)
			assert.Equal(t, 2*time.Minute, o.ConnectTimeout)
			assert.Equal(t, time.Date(2026, 3, 5, 1, 0, 0, 0, time.UTC), o.StartTime)
			assert.Equal(t, 2*time.Hour, o.MaxExecution)
			assert.Equal(t, "fw-1", o.JobID)
			assert.True(t, o.Wait)
			assert.Equal(t, "fw-1", o.Follow.JobID)
			assert.True(t, o.Follow.OKStatus.Contains(200))
			assert.False(t, o.Follow.OKStatus.Contains(201))
			assert.Equal(t, 500*time.Millisecond, o.Follow.PollInterval)
			assert.Equal(t, output.FormatJSONL, o.Output)
			assert.Equal(t, output.FormatJSONL, o.Follow.Output, "--wait prints results in the same format")
		}},
		{"relative start", []string{"reboot", "--query-condition", "*", "--start-time", "+90m"}, func(t *testing.T, o *create.Options) {
			assert.Equal(t, cmdtest.FixedNow.Add(90*time.Minute), o.StartTime)
		}},
		{"start now", []string{"reboot", "--query-condition", "*", "--start-time", "now"}, func(t *testing.T, o *create.Options) {
			assert.True(t, o.StartTime.IsZero())
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			o, err := parseJobsCreate(t, te, tc.args...)
			require.NoError(t, err)
			require.NotNil(t, o)
			tc.check(t, o)
		})
	}
}

func TestJobsCreateBadInput(t *testing.T) {
	many := []string{"reboot"}
	for i := range 600 {
		many = append(many, "--device", "device-with-a-longish-id-"+strings.Repeat("x", 3)+string(rune('a'+i%26))+strings.Repeat("0", i%7)+"-"+itoa(i))
	}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no method", []string{"--query-condition", "*"}, "exactly one METHOD"},
		{"bad method", []string{"re boot", "--query-condition", "*"}, "METHOD: invalid method name"},
		{"no devices", []string{"reboot"}, "name the devices"},
		{"both selectors", []string{"reboot", "--query-condition", "*", "--device", "a"}, "cannot be combined"},
		{"WHERE", []string{"reboot", "--query-condition", "WHERE tags.a = 1"}, `without WHERE, e.g. "tags.a = 1"`},
		{"empty condition", []string{"reboot", "--query-condition", " "}, "--query-condition: the value is empty"},
		{"bad device", []string{"reboot", "--device", "a b"}, "--device: invalid device id"},
		{"too many devices", many, "IoT Hub accepts queries of at most 8192 characters"},
		{"timeout", []string{"reboot", "--query-condition", "*", "--timeout", "301"}, "--timeout: 301s is out of range"},
		{"connect timeout", []string{"reboot", "--query-condition", "*", "--connect-timeout", "301"}, "--connect-timeout: 301s is out of range"},
		{"max execution", []string{"reboot", "--query-condition", "*", "--max-execution-time", "0"}, "--max-execution-time: 0 is out of range"},
		{"start", []string{"reboot", "--query-condition", "*", "--start-time", "tomorrow"}, "--start-time: \"tomorrow\" is neither"},
		{"job id", []string{"reboot", "--query-condition", "*", "--job-id", "a/b"}, "--job-id: invalid job id"},
		{"ok status", []string{"reboot", "--query-condition", "*", "--ok-status", "fine"}, "--ok-status"},
		{"poll", []string{"reboot", "--query-condition", "*", "--poll-interval", "10ms"}, "--poll-interval: 10ms is too short"},
		{"payload", []string{"reboot", "--query-condition", "*", "--payload", "{"}, "--payload: the payload is not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			o, err := parseJobsCreate(t, te, tc.args...)
			require.Error(t, err)
			assert.Nil(t, o, "nothing runs")
			assert.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func jobJSON(id, status string, stats string) string {
	return `{"jobId":"` + id + `","type":"scheduleDeviceMethod","status":"` + status + `","queryCondition":"tags.site = 'a'",` +
		`"createdTime":"2026-03-04T05:06:07Z","startTime":"2026-03-04T05:06:07Z","maxExecutionTimeInSeconds":3600,` +
		`"cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":60},` +
		`"deviceJobStatistics":` + stats + `}`
}

const deviceJobsPage = `[
 {"deviceId":"d1","jobId":"j1","jobType":"scheduleDeviceMethod","status":"completed","startTimeUtc":"2026-03-04T05:06:08Z","endTimeUtc":"2026-03-04T05:06:08.250Z","outcome":{"deviceMethodResponse":{"status":200,"payload":{"ok":true}}}},
 {"deviceId":"d2","jobId":"j1","jobType":"scheduleDeviceMethod","status":"completed","startTimeUtc":"2026-03-04T05:06:08Z","endTimeUtc":"2026-03-04T05:06:09Z","outcome":{"deviceMethodResponse":{"status":500,"payload":null}}},
 {"deviceId":"d3","jobId":"j1","jobType":"scheduleDeviceMethod","status":"failed","startTimeUtc":"2026-03-04T05:06:08Z","endTimeUtc":"2026-03-04T05:06:09Z","outcome":{"deviceMethodResponse":null},"error":{"code":"DeviceNotOnline","description":"offline"}},
 {"deviceId":"d4","jobId":"j1","jobType":"scheduleDeviceMethod","status":"failed","error":{"code":"GatewayTimeout","description":"late"}},
 {"deviceId":"d5","jobId":"j1","jobType":"scheduleDeviceMethod","status":"canceled","createdDateTimeUtc":"2026-03-04T05:06:07Z"}
]`

func TestJobsCreateSendsTheJob(t *testing.T) {
	h := cmdtest.NewStubHub(t)
	h.On("PUT /jobs/v2/j1", cmdtest.OK200(jobJSON("j1", "queued", `{"deviceCount":0}`)))
	te := h.Env(newTestEnv(t, nil))
	code := h.Run(te, "jobs", "create", "reboot", "--query-condition", "tags.site = 'a'", "--job-id", "j1", "--connect-timeout", "60",
		"--payload", `{"delay":1}`, "--max-execution-time", "10m")
	require.Equal(t, 0, code, te.ErrOut.String())
	reqs := h.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "api-version=2021-04-12", reqs[0].RawQuery)
	assert.True(t, strings.HasPrefix(reqs[0].Header.Get("Authorization"), "SharedAccessSignature "))
	assert.JSONEq(t, `{"jobId":"j1","type":"scheduleDeviceMethod","queryCondition":"tags.site = 'a'","startTime":null,"maxExecutionTimeInSeconds":600,
		"cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":60}}`, reqs[0].Body)
	assert.Equal(t, "JOB ID   STATUS   METHOD   DEVICES   SUCCEEDED   FAILED   RUNNING   PENDING   START\n"+
		"j1       queued   reboot   0         0           0        0         0         2026-03-04T05:06:07Z\n", te.Out.String())
	assert.Equal(t, "Created job j1 (queued): reboot on devices where tags.site = 'a'.\nFollow it with: dmctl jobs wait j1\n", te.ErrOut.String())
	assert.NotContains(t, te.Out.String()+te.ErrOut.String(), cmdtest.TestKey)

	te = h.Env(newTestEnv(t, nil))
	h.On("PUT /jobs/v2/j1", cmdtest.OK200(jobJSON("j1", "queued", `{"deviceCount":0}`)))
	require.Equal(t, 0, h.Run(te, "jobs", "create", "reboot", "--device", "d1", "--job-id", "j1", "-o", "json"))
	var v map[string]any
	require.NoError(t, json.Unmarshal(te.Out.Bytes(), &v), "one JSON object: %s", te.Out.String())
	assert.Equal(t, "j1", v["jobId"])
	assert.Equal(t, "reboot", v["method"])
	assert.EqualValues(t, 60, v["connectTimeoutSeconds"])
	assert.Equal(t, map[string]any{"devices": 0.0, "succeeded": 0.0, "failed": 0.0, "running": 0.0, "pending": 0.0}, v["statistics"])
}

func TestJobsCreateRefusals(t *testing.T) {
	t.Run("too many jobs is not retried", func(t *testing.T) {
		h := cmdtest.NewStubHub(t)
		h.On("PUT /jobs/v2/j1", cmdtest.StubAnswer{Status: 429, Body: cmdtest.HubErrBody(429004, "too many"), Header: map[string]string{"iothub-errorcode": "ThrottlingMaxActiveJobCountExceeded"}})
		te := h.Env(newTestEnv(t, nil))
		code := h.Run(te, "jobs", "create", "reboot", "--query-condition", "*", "--job-id", "j1")
		assert.Equal(t, cmdutil.ExitError, code)
		assert.Len(t, h.Requests(), 1, "429004 is not retried")
		assert.Contains(t, te.ErrOut.String(), "hint: the hub runs a limited number of jobs at once")
		assert.Contains(t, te.ErrOut.String(), "Error: create job j1: hub answered 429 429004 ThrottlingMaxActiveJobCountExceeded: too many")
	})
	t.Run("throttled then created", func(t *testing.T) {
		h := cmdtest.NewStubHub(t)
		h.On("PUT /jobs/v2/j1", cmdtest.StubAnswer{Status: 429, Body: cmdtest.HubErrBody(429001, "slow down")}, cmdtest.OK200(jobJSON("j1", "queued", `{}`)))
		te := h.Env(newTestEnv(t, nil))
		require.Equal(t, 0, h.Run(te, "jobs", "create", "reboot", "--query-condition", "*", "--job-id", "j1", "-o", "name"), te.ErrOut.String())
		assert.Len(t, h.Requests(), 2, "429001 means nothing was created: resent")
		assert.Equal(t, "j1\n", te.Out.String())
	})
	t.Run("server error is not resent", func(t *testing.T) {
		h := cmdtest.NewStubHub(t)
		h.On("PUT /jobs/v2/j1", cmdtest.StubAnswer{Status: 500, Body: cmdtest.HubErrBody(500001, "oops")})
		te := h.Env(newTestEnv(t, nil))
		assert.Equal(t, cmdutil.ExitError, h.Run(te, "jobs", "create", "reboot", "--query-condition", "*", "--job-id", "j1"))
		assert.Len(t, h.Requests(), 1, "a 500 may have created the job")
	})
	t.Run("a condition the hub refuses is bad input", func(t *testing.T) {
		h := cmdtest.NewStubHub(t)
		h.On("PUT /jobs/v2/j1", cmdtest.StubAnswer{Status: 400, Body: cmdtest.HubErrBody(400004, "queryCondition: syntax error at position 5")})
		te := h.Env(newTestEnv(t, nil))
		assert.Equal(t, cmdutil.ExitUsage, h.Run(te, "jobs", "create", "reboot", "--query-condition", "a ==== b", "--job-id", "j1"))
		assert.Contains(t, te.ErrOut.String(), "Error: create job j1: hub answered 400 400004 ArgumentInvalid: queryCondition: syntax error at position 5")
		assert.Len(t, h.Requests(), 1, "a 400 is not resent")
	})
	t.Run("refused credential exits 3", func(t *testing.T) {
		h := cmdtest.NewStubHub(t)
		h.On("PUT /jobs/v2/j1", cmdtest.StubAnswer{Status: 401, Body: cmdtest.HubErrBody(401003, "Authorization rule 'registryRead' does not allow access for 'ServiceConnect'.")})
		te := h.Env(newTestEnv(t, nil))
		assert.Equal(t, cmdutil.ExitAuth, h.Run(te, "jobs", "create", "reboot", "--query-condition", "*", "--job-id", "j1"))
		assert.Contains(t, te.ErrOut.String(), "hint: the hub refused SAS policy \"service\"")
		assert.Contains(t, te.ErrOut.String(), "401003")
		assert.NotContains(t, te.ErrOut.String(), cmdtest.TestKey)
	})
}

func TestJobsWaitAndResults(t *testing.T) {
	for _, tty := range []bool{false, true} {
		name := "plain"
		if tty {
			name = "terminal"
		}
		t.Run(name, func(t *testing.T) {
			h := cmdtest.NewStubHub(t)
			h.On("GET /jobs/v2/j1",
				cmdtest.OK200(jobJSON("j1", "queued", `{}`)),
				cmdtest.OK200(jobJSON("j1", "running", `{"deviceCount":5,"succeededCount":1,"failedCount":0,"runningCount":1,"pendingCount":3}`)),
				cmdtest.OK200(jobJSON("j1", "running", `{"deviceCount":5,"succeededCount":3,"failedCount":1,"runningCount":1,"pendingCount":0}`)),
				cmdtest.OK200(jobJSON("j1", "cancelled", `{"deviceCount":5,"succeededCount":2,"failedCount":2,"runningCount":0,"pendingCount":0}`)))
			h.On("POST /devices/query", cmdtest.OK200(deviceJobsPage))
			te := h.Env(newTestEnv(t, nil))
			te.IOS.SetStderrTTY(tty)
			te.IOS.SetNoColor(true) // compare text; colour is the printers' concern
			code := h.Run(te, "jobs", "wait", "j1", "--poll-interval", "100ms", "-o", "jsonl")
			assert.Equal(t, cmdutil.ExitTargets, code, te.ErrOut.String())

			var results []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(te.Out.String()), "\n") {
				var r map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &r), line)
				results = append(results, r)
			}
			require.Len(t, results, 5)
			outcomes := map[string]string{}
			for _, r := range results {
				outcomes[r["deviceId"].(string)] = r["outcome"].(string)
				assert.Equal(t, "reboot", r["method"])
			}
			assert.Equal(t, map[string]string{"d1": "succeeded", "d2": "failed", "d3": "offline", "d4": "timeout", "d5": "skipped"}, outcomes)
			assert.EqualValues(t, 200, results[0]["status"])
			assert.Equal(t, map[string]any{"ok": true}, results[0]["payload"])
			assert.EqualValues(t, 250, results[0]["durationMs"])
			assert.Equal(t, "2026-03-04T05:06:08Z", results[0]["startTime"])
			assert.Equal(t, map[string]any{"code": 404103.0, "codeName": "DeviceNotOnline", "message": "offline"}, results[2]["error"])
			assert.EqualValues(t, 0, results[4]["attempts"], "a canceled device was never called")

			reqs := h.Requests()
			var query cmdtest.StubReq
			for _, r := range reqs {
				if r.Path == "/devices/query" {
					query = r
				}
			}
			assert.JSONEq(t, `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j1'"}`, query.Body)
			assert.Equal(t, "1000", query.Header.Get("x-ms-max-item-count"))

			stderr := te.ErrOut.String()
			assert.Contains(t, stderr, "d3: offline: 404103 DeviceNotOnline: offline")
			assert.Contains(t, stderr, "5 targets: 1 succeeded, 1 failed, 1 offline, 1 timeout, 1 skipped")
			assert.Contains(t, stderr, "note: job j1 was cancelled; the devices it had not reached are reported skipped.")
			if tty {
				assert.Contains(t, stderr, "\r\x1b[Kjob j1 running: 1/5 devices done (1 succeeded, 0 failed), 1 running, 3 pending")
				assert.Contains(t, stderr, "\r\x1b[Kjob j1 cancelled: 4/5 devices done (2 succeeded, 2 failed), 1 canceled")
			} else {
				assert.NotContains(t, stderr, "\r")
				assert.Equal(t, 1, strings.Count(stderr, "job j1 running:"), "plain output: one line per status change:\n%s", stderr)
				assert.Contains(t, stderr, "job j1 queued [")
				assert.Contains(t, stderr, "job j1 cancelled: 4/5 devices done (2 succeeded, 2 failed), 1 canceled")
			}
		})
	}
}

func TestJobsResultsAllSucceeded(t *testing.T) {
	h := cmdtest.NewStubHub(t)
	h.On("GET /jobs/v2/j2", cmdtest.OK200(jobJSON("j2", "completed", `{"deviceCount":2,"succeededCount":2}`)))
	h.On("POST /devices/query",
		cmdtest.StubAnswer{Status: 200, Body: `[{"deviceId":"a","jobId":"j2","status":"completed","outcome":{"deviceMethodResponse":{"status":200,"payload":1}}}]`, Header: map[string]string{"x-ms-continuation": "next"}},
		cmdtest.OK200(`[{"deviceId":"b","jobId":"j2","status":"completed","outcome":{"deviceMethodResponse":{"status":202,"payload":2}}}]`))
	te := h.Env(newTestEnv(t, nil))
	code := h.Run(te, "jobs", "results", "j2")
	require.Equal(t, 0, code, te.ErrOut.String())
	assert.Equal(t, "DEVICE   OUTCOME     STATUS   DURATION\na        succeeded   200      0µs\nb        succeeded   202      0µs\n", te.Out.String())
	assert.Contains(t, te.ErrOut.String(), "2 targets: 2 succeeded")
	reqs := h.Requests()
	require.Len(t, reqs, 3, "job, then two pages")
	assert.Equal(t, "next", reqs[2].Header.Get("x-ms-continuation"))

	te = h.Env(newTestEnv(t, nil))
	h.On("GET /jobs/v2/j2", cmdtest.OK200(jobJSON("j2", "completed", `{"deviceCount":2,"succeededCount":2}`)))
	h.On("POST /devices/query", cmdtest.OK200(`[{"deviceId":"a","jobId":"j2","status":"completed","outcome":{"deviceMethodResponse":{"status":202,"payload":1}}}]`))
	assert.Equal(t, cmdutil.ExitTargets, h.Run(te, "jobs", "results", "j2", "--ok-status", "200"), "--ok-status decides, as for invoke")
}

func TestJobsShowListCancel(t *testing.T) {
	h := cmdtest.NewStubHub(t)
	h.On("GET /jobs/v2/j1", cmdtest.OK200(jobJSON("j1", "running", `{"deviceCount":4,"succeededCount":1,"runningCount":1,"pendingCount":2}`)))
	te := h.Env(newTestEnv(t, nil))
	require.Equal(t, 0, h.Run(te, "jobs", "show", "j1", "-o", "wide"), te.ErrOut.String())
	assert.Equal(t, "JOB ID   STATUS    METHOD   DEVICES   SUCCEEDED   FAILED   RUNNING   PENDING   START                  END   QUERY CONDITION   FAILURE REASON\n"+
		"j1       running   reboot   4         1           0        1         2         2026-03-04T05:06:07Z   -     tags.site = 'a'   -\n", te.Out.String())

	h.On("GET /jobs/v2/query",
		cmdtest.StubAnswer{Status: 200, Body: `[` + jobJSON("j1", "completed", `{}`) + `,` + jobJSON("j2", "completed", `{}`) + `]`, Header: map[string]string{"x-ms-continuation": "c2"}},
		cmdtest.OK200(`[`+jobJSON("j3", "completed", `{}`)+`]`))
	te = h.Env(newTestEnv(t, nil))
	require.Equal(t, 0, h.Run(te, "jobs", "list", "--status", "completed", "--type", "scheduleDeviceMethod", "-o", "name"), te.ErrOut.String())
	assert.Equal(t, "j1\nj2\nj3\n", te.Out.String())
	var listReqs []cmdtest.StubReq
	for _, r := range h.Requests() {
		if r.Path == "/jobs/v2/query" {
			listReqs = append(listReqs, r)
		}
	}
	require.Len(t, listReqs, 2)
	assert.Equal(t, "api-version=2021-04-12&jobType=scheduleDeviceMethod&jobStatus=completed", listReqs[0].RawQuery)

	h.On("GET /jobs/v2/query", cmdtest.StubAnswer{Status: 200, Body: `[` + jobJSON("j1", "completed", `{}`) + `,` + jobJSON("j2", "completed", `{}`) + `]`, Header: map[string]string{"x-ms-continuation": "c2"}})
	te = h.Env(newTestEnv(t, nil))
	require.Equal(t, 0, h.Run(te, "jobs", "list", "--limit", "1", "-o", "name"))
	assert.Equal(t, "j1\n", te.Out.String(), "--limit stops paging")

	h.On("POST /jobs/v2/j1/cancel", cmdtest.OK200(jobJSON("j1", "completed", `{}`)))
	te = h.Env(newTestEnv(t, nil))
	require.Equal(t, 0, h.Run(te, "jobs", "cancel", "j1", "-o", "name"))
	assert.Equal(t, "Job j1 had already ended (completed); nothing to cancel.\n", te.ErrOut.String())

	te = h.Env(newTestEnv(t, nil))
	h.On("GET /jobs/v2/nope", cmdtest.StubAnswer{Status: 404, Body: cmdtest.HubErrBody(404002, "Job nope not found.")})
	assert.Equal(t, cmdutil.ExitTargets, h.Run(te, "jobs", "show", "nope"))
	assert.Contains(t, te.ErrOut.String(), "Error: show job nope: hub answered 404 404002 JobNotFound: Job nope not found.")

	te = h.Env(newTestEnv(t, nil))
	assert.Equal(t, cmdutil.ExitUsage, h.Run(te, "jobs", "show"))
	assert.Contains(t, te.ErrOut.String(), "exactly one JOB-ID")
	te = h.Env(newTestEnv(t, nil))
	assert.Equal(t, cmdutil.ExitUsage, h.Run(te, "jobs", "list", "--status", "done"))
	te = h.Env(newTestEnv(t, nil))
	assert.Equal(t, cmdutil.ExitUsage, te.Run("jobs", "bogus"), "an unknown subcommand is a usage error, not help")
	assert.Contains(t, te.ErrOut.String(), `unknown command "bogus" for "dmctl jobs"`)
	te = h.Env(newTestEnv(t, nil))
	assert.Equal(t, cmdutil.ExitOK, te.Run("jobs"))
	assert.Contains(t, te.Out.String(), "Available Commands:")
}

func TestJobsWaitInterrupted(t *testing.T) {
	h := cmdtest.NewStubHub(t)
	h.On("GET /jobs/v2/j1", cmdtest.OK200(jobJSON("j1", "running", `{"deviceCount":5,"pendingCount":5}`)))
	te := h.Env(newTestEnv(t, nil))
	ctx, cancel := context.WithCancel(context.Background())
	te.F.Sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	code := te.RunContext(ctx, "jobs", "wait", "j1", "--ca-file", h.CAFile)
	assert.Equal(t, cmdutil.ExitInterrupted, code)
	assert.Contains(t, te.ErrOut.String(), "Stopped waiting; the job keeps running on the hub. Resume with: dmctl jobs wait j1")
	assert.Empty(t, te.Out.String())
}

func TestDeviceJobResult(t *testing.T) {
	ok := fleet.StatusSet{}
	job := iothub.Job{JobID: "j", Status: iothub.JobStatusFailed, FailureReason: "out of time"}
	r := shared.DeviceJobResult(iothub.DeviceJob{DeviceID: "d", Status: iothub.DeviceJobCanceled}, "m", job, ok)
	assert.Equal(t, fleet.OutcomeSkipped, r.Outcome)
	assert.Equal(t, "the job ended before reaching this device: out of time", r.Error.Message)

	r = shared.DeviceJobResult(iothub.DeviceJob{DeviceID: "d", Status: iothub.DeviceJobFailed, Error: &iothub.DeviceJobError{Code: "SomethingNew", Description: "x"}}, "m", job, ok)
	assert.Equal(t, fleet.OutcomeError, r.Outcome)
	assert.Equal(t, "SomethingNew", r.Error.CodeName)
	assert.Equal(t, 1, r.Attempts)

	r = shared.DeviceJobResult(iothub.DeviceJob{DeviceID: "d", Status: iothub.DeviceJobFailed, Error: &iothub.DeviceJobError{Code: "DeviceNotFound"}}, "m", job, ok)
	assert.Equal(t, fleet.OutcomeNotFound, r.Outcome)
	r = shared.DeviceJobResult(iothub.DeviceJob{DeviceID: "d", Status: iothub.DeviceJobFailed, Error: &iothub.DeviceJobError{Code: "ThrottlingException"}}, "m", job, ok)
	assert.Equal(t, fleet.OutcomeThrottled, r.Outcome)
	r = shared.DeviceJobResult(iothub.DeviceJob{DeviceID: "d", Status: iothub.DeviceJobFailed}, "m", job, ok)
	assert.Equal(t, fleet.OutcomeError, r.Outcome, "a failure without an error code is an error")

	r = shared.DeviceJobResult(iothub.DeviceJob{DeviceID: "d", Status: iothub.DeviceJobCompleted}, "", iothub.Job{Type: iothub.JobTypeUpdateTwin}, ok)
	assert.Equal(t, fleet.OutcomeSucceeded, r.Outcome, "a twin job's completed device has no answer and succeeded")
	r = shared.DeviceJobResult(iothub.DeviceJob{DeviceID: "d", Status: iothub.DeviceJobRunning}, "m", iothub.Job{Status: iothub.JobStatusRunning}, ok)
	assert.Equal(t, fleet.OutcomeSkipped, r.Outcome)
	assert.Equal(t, 0, r.Attempts)
	assert.Contains(t, r.Error.Message, "not reached this device yet (running)")
}

func TestJobsCreateDryRunAndPrompt(t *testing.T) {
	puts := func(h *cmdtest.StubHub) int {
		n := 0
		for _, r := range h.Requests() {
			if r.Method == "PUT" {
				n++
			}
		}
		return n
	}
	t.Run("dry run counts the devices and creates nothing", func(t *testing.T) {
		h := cmdtest.NewStubHub(t)
		h.On("POST /devices/query", cmdtest.OK200(`[{"numberOfDevices":3}]`))
		te := h.Env(newTestEnv(t, nil))
		require.Equal(t, 0, h.Run(te, "jobs", "create", "reboot", "--query-condition", "tags.site = 'a'", "--job-id", "j1", "--dry-run", "-o", "json"), te.ErrOut.String())
		assert.Zero(t, puts(h))
		assert.Contains(t, te.ErrOut.String(), `Dry run: job j1 would invoke "reboot" on devices where tags.site = 'a'`)
		assert.Contains(t, te.ErrOut.String(), "3 devices match now. Nothing was created.")
		var v map[string]any
		require.NoError(t, json.Unmarshal(te.Out.Bytes(), &v))
		assert.Equal(t, "j1", v["jobId"])
		assert.EqualValues(t, 3, v["statistics"].(map[string]any)["devices"])
		reqs := h.Requests()
		require.Len(t, reqs, 1)
		assert.Contains(t, reqs[0].Body, `SELECT COUNT() AS numberOfDevices FROM devices WHERE tags.site = 'a'`)
	})
	t.Run("the whole hub: no WHERE", func(t *testing.T) {
		h := cmdtest.NewStubHub(t)
		h.On("POST /devices/query", cmdtest.OK200(`[{"numberOfDevices":50}]`))
		te := h.Env(newTestEnv(t, nil))
		require.Equal(t, 0, h.Run(te, "jobs", "create", "reboot", "--query-condition", "*", "--dry-run"), te.ErrOut.String())
		assert.Contains(t, h.Requests()[0].Body, `"SELECT COUNT() AS numberOfDevices FROM devices"`)
		assert.Zero(t, puts(h))
	})
	for _, tt := range []struct {
		name   string
		answer string
		code   int
		puts   int
	}{
		{"no at the prompt", "n\n", cmdutil.ExitUsage, 0},
		{"end of input", "", cmdutil.ExitUsage, 0},
		{"yes at the prompt", "y\n", 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := cmdtest.NewStubHub(t)
			h.On("POST /devices/query", cmdtest.OK200(`[{"numberOfDevices":7}]`))
			h.On("PUT /jobs/v2/j1", cmdtest.OK200(jobJSON("j1", "queued", `{}`)))
			te := h.Env(newTestEnv(t, nil))
			te.IOS.SetStdinTTY(true)
			te.IOS.SetStderrTTY(true)
			te.In.WriteString(tt.answer)
			assert.Equal(t, tt.code, h.Run(te, "jobs", "create", "reboot", "--query-condition", "*", "--job-id", "j1"), te.ErrOut.String())
			assert.Contains(t, te.ErrOut.String(), `Create job j1 to invoke "reboot" on devices where *`)
			assert.Contains(t, te.ErrOut.String(), "(7 devices match now)? [y/N] ")
			assert.Equal(t, tt.puts, puts(h))
		})
	}
	t.Run("--yes does not ask", func(t *testing.T) {
		h := cmdtest.NewStubHub(t)
		h.On("PUT /jobs/v2/j1", cmdtest.OK200(jobJSON("j1", "queued", `{}`)))
		te := h.Env(newTestEnv(t, nil))
		te.IOS.SetStdinTTY(true)
		te.IOS.SetStderrTTY(true)
		require.Equal(t, 0, h.Run(te, "jobs", "create", "reboot", "--query-condition", "*", "--job-id", "j1", "--yes"), te.ErrOut.String())
		assert.NotContains(t, te.ErrOut.String(), "[y/N]")
		assert.Equal(t, 1, puts(h))
	})
}

// TestConfirmInterrupted: Ctrl-C at the prompt returns at once, with
// nothing read as the answer.
func TestConfirmInterrupted(t *testing.T) {
	ios, _, _, errOut := output.Test()
	pr, pw := io.Pipe() // a stdin nobody writes to: the read blocks
	defer func() { _ = pw.Close() }()
	ios.In = pr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := cmdutil.Confirm(ctx, ios, "Go?")
		done <- err
	}()
	cancel()
	err := <-done
	assert.ErrorIs(t, err, cmdutil.ErrPromptInterrupted)
	assert.Equal(t, cmdutil.ExitInterrupted, cmdutil.ExitCode(err))
	assert.Equal(t, "Go? [y/N] \n", errOut.String())
}

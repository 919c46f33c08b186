package hubsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/hubsim/rest"
	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// jobsFleet: 5 devices tagged plant-a (pa-1..pa-5), 3 tagged plant-b whose
// "check" answers 500 (pb-1..pb-3), 2 offline (off-1, off-2).
func jobsFleet() *sim.FleetSpec {
	s500 := 500
	zero := 0.0
	return &sim.FleetSpec{Groups: []sim.Group{
		{Name: "pa", IDPattern: "pa-%d", Count: 5, Tags: map[string]any{"site": "plant-a"},
			Methods: map[string]sim.MethodSpec{"check": {Payload: json.RawMessage(`{"ok":true}`)}}},
		{Name: "pb", IDPattern: "pb-%d", Count: 3, Tags: map[string]any{"site": "plant-b"},
			Methods: map[string]sim.MethodSpec{"check": {Status: &s500}}},
		{Name: "off", IDPattern: "off-%d", Count: 2, Connection: sim.Connection{OnlineShare: &zero}},
	}}
}

type jobAnswer struct {
	JobID                     string          `json:"jobId"`
	Type                      string          `json:"type"`
	Status                    string          `json:"status"`
	QueryCondition            string          `json:"queryCondition"`
	CreatedTime               string          `json:"createdTime"`
	StartTime                 string          `json:"startTime"`
	EndTime                   string          `json:"endTime"`
	MaxExecutionTimeInSeconds int64           `json:"maxExecutionTimeInSeconds"`
	CloudToDeviceMethod       map[string]any  `json:"cloudToDeviceMethod"`
	UpdateTwin                json.RawMessage `json:"updateTwin"`
	FailureReason             string          `json:"failureReason"`
	DeviceJobStatistics       map[string]int  `json:"deviceJobStatistics"`
}

func decodeJob(t *testing.T, rec interface{ Result() *http.Response }, body []byte) jobAnswer {
	t.Helper()
	var j jobAnswer
	require.NoError(t, json.Unmarshal(body, &j), "body: %s", body)
	return j
}

// nodeJob is the body Microsoft's Node JobClient.scheduleDeviceMethod sends
// when called without a start time: startTime null, no
// maxExecutionTimeInSeconds, no connectTimeoutInSeconds.
func nodeJob(id, method, cond string) string {
	return `{"jobId":"` + id + `","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"` + method +
		`","payload":{"n":1},"responseTimeoutInSeconds":30},"startTime":null,"queryCondition":` + jsonString(cond) + `}`
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func waitJob(t *testing.T, s *Server, hdr map[string]string, id, want string) jobAnswer {
	t.Helper()
	var j jobAnswer
	require.Eventually(t, func() bool {
		rec := call(s, http.MethodGet, "/jobs/v2/"+id+apiV, "", hdr)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		j = decodeJob(t, rec, rec.Body.Bytes())
		return j.Status == want
	}, 10*time.Second, 5*time.Millisecond, "job %s should become %s", id, want)
	return j
}

func TestJobsCreateGetAndDeviceJobs(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Fleet: jobsFleet()})
	svc := authz(token(t, s, identity.PolicyService, "", time.Hour))
	deliveries := make(chan registry.Delivery, 100)
	s.Registry().OnDelivered(func(d registry.Delivery) { deliveries <- d })

	rec := call(s, http.MethodPut, "/jobs/v2/job-1"+apiV, nodeJob("job-1", "check", "tags.site IN ['plant-a', 'plant-b'] OR STARTSWITH(deviceId, 'off-')"), svc)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.NotEmpty(t, rec.Header().Get("x-ms-request-id"))
	j := decodeJob(t, rec, rec.Body.Bytes())
	assert.Equal(t, "job-1", j.JobID)
	assert.Equal(t, "scheduleDeviceMethod", j.Type)
	assert.Equal(t, "queued", j.Status)
	assert.EqualValues(t, 3600, j.MaxExecutionTimeInSeconds, "absent maxExecutionTimeInSeconds defaults to 3600")
	assert.Equal(t, map[string]any{"methodName": "check", "payload": map[string]any{"n": 1.0},
		"responseTimeoutInSeconds": 30.0, "connectTimeoutInSeconds": 0.0}, j.CloudToDeviceMethod, "an absent connect timeout is 0")
	_, err := time.Parse(time.RFC3339Nano, j.CreatedTime)
	assert.NoError(t, err)

	j = waitJob(t, s, svc, "job-1", "completed")
	assert.Equal(t, map[string]int{"deviceCount": 10, "succeededCount": 8, "failedCount": 2, "runningCount": 0, "pendingCount": 0}, j.DeviceJobStatistics)
	assert.NotEmpty(t, j.EndTime)

	got := map[string]int{}
	for range 8 {
		select {
		case d := <-deliveries:
			assert.Equal(t, "jobs/job-1/"+d.DeviceID, d.RequestID)
			got[d.DeviceID] = d.Status
		case <-time.After(5 * time.Second):
			t.Fatal("missing deliveries")
		}
	}
	assert.Equal(t, map[string]int{"pa-1": 200, "pa-2": 200, "pa-3": 200, "pa-4": 200, "pa-5": 200, "pb-1": 500, "pb-2": 500, "pb-3": 500}, got,
		"the registry delivered the job's calls (offline devices get none)")

	// Per-device results through POST /devices/query, in pages of 4.
	reader := authz(token(t, s, identity.PolicyRegistryRead, "", time.Hour))
	var docs []map[string]any
	cont := ""
	pages := 0
	for {
		hdr := map[string]string{"Authorization": reader["Authorization"], "x-ms-max-item-count": "4"}
		if cont != "" {
			hdr["x-ms-continuation"] = cont
		}
		rec := call(s, http.MethodPost, "/devices/query"+apiV, `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job-1'"}`, hdr)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "deviceJob", rec.Header().Get("x-ms-item-type"))
		var page []map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
		docs = append(docs, page...)
		pages++
		cont = rec.Header().Get("x-ms-continuation")
		if cont == "" {
			break
		}
	}
	assert.Equal(t, 3, pages)
	require.Len(t, docs, 10)
	byDevice := map[string]map[string]any{}
	for _, d := range docs {
		byDevice[d["deviceId"].(string)] = d
		assert.Equal(t, "job-1", d["jobId"])
	}
	assert.Equal(t, "completed", byDevice["pa-1"]["status"])
	assert.Equal(t, map[string]any{"deviceMethodResponse": map[string]any{"status": 200.0, "payload": map[string]any{"ok": true}}}, byDevice["pa-1"]["outcome"])
	assert.Equal(t, "completed", byDevice["pb-2"]["status"], "a device status of 500 is an answer")
	assert.Equal(t, 500.0, byDevice["pb-2"]["outcome"].(map[string]any)["deviceMethodResponse"].(map[string]any)["status"])
	assert.Equal(t, "failed", byDevice["off-1"]["status"])
	assert.Equal(t, "DeviceNotOnline", byDevice["off-1"]["error"].(map[string]any)["code"])

	// Filters on device-job fields.
	rec = call(s, http.MethodPost, "/devices/query"+apiV, `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job-1' AND devices.jobs.status = 'failed'"}`, reader)
	require.Equal(t, http.StatusOK, rec.Code)
	var failed []map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &failed))
	assert.Len(t, failed, 2)

	// Reads are allowed to registryRead; the same id again is 409104.
	rec = call(s, http.MethodGet, "/jobs/v2/job-1"+apiV, "", reader)
	assert.Equal(t, http.StatusOK, rec.Code)
	rec = call(s, http.MethodPut, "/jobs/v2/job-1"+apiV, nodeJob("job-1", "check", "*"), svc)
	e := requireCode(t, rec, rest.CodeJobAlreadyExists)
	assert.Equal(t, "JobAlreadyExists", e.Name)
}

func TestJobsPermissions(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Fleet: jobsFleet()})
	reader := authz(token(t, s, identity.PolicyRegistryRead, "", time.Hour))
	rec := call(s, http.MethodPut, "/jobs/v2/j"+apiV, nodeJob("j", "check", "*"), reader)
	e := requireCode(t, rec, rest.CodeUnauthorized)
	assert.Contains(t, e.Message, "ServiceConnect")
	rec = call(s, http.MethodPost, "/jobs/v2/j/cancel"+apiV, "", reader)
	requireCode(t, rec, rest.CodeUnauthorized)
	rec = call(s, http.MethodGet, "/jobs/v2/query"+apiV, "", reader)
	assert.Equal(t, http.StatusOK, rec.Code, "listing is a read")
	rec = call(s, http.MethodGet, "/jobs/v2/query"+apiV, "", nil)
	requireCode(t, rec, rest.CodeUnauthorized)
	rec = call(s, http.MethodGet, "/jobs/v2/nope"+apiV, "", reader)
	e = requireCode(t, rec, rest.CodeJobNotFound)
	assert.Equal(t, "JobNotFound", e.Name)
}

// TestImportExportJobsList: GET /jobs, which `az iot hub job list` reads
// beside /jobs/v2/query, answers the hub's import/export jobs: none.
func TestImportExportJobsList(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Fleet: jobsFleet()})
	reader := authz(token(t, s, identity.PolicyRegistryRead, "", time.Hour))
	rec := call(s, http.MethodGet, "/jobs"+apiV, "", reader)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `[]`, rec.Body.String())
	assert.Contains(t, rec.Header().Get("Content-Type"), "application/json")
	requireCode(t, call(s, http.MethodGet, "/jobs"+apiV, "", nil), rest.CodeUnauthorized)
	assert.Equal(t, http.StatusMethodNotAllowed, call(s, http.MethodPost, "/jobs"+apiV, "", reader).Code)
}

func TestJobsConcurrencyLimitAndCancel(t *testing.T) {
	s := newTestServer(t, Config{Tier: "S1", Fleet: jobsFleet()})
	svc := authz(token(t, s, identity.PolicyService, "", time.Hour))
	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := `{"jobId":"later","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"check","responseTimeoutInSeconds":10,"connectTimeoutInSeconds":60},` +
		`"queryCondition":"*","startTime":"` + start + `","maxExecutionTimeInSeconds":600}`
	rec := call(s, http.MethodPut, "/jobs/v2/later"+apiV, body, svc)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	j := decodeJob(t, rec, rec.Body.Bytes())
	assert.Equal(t, "queued", j.Status, "the creation of a later job answers queued")
	rec = call(s, http.MethodGet, "/jobs/v2/later"+apiV, "", svc)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "scheduled", decodeJob(t, rec, rec.Body.Bytes()).Status, "and a get says scheduled")
	assert.EqualValues(t, 600, j.MaxExecutionTimeInSeconds)
	assert.EqualValues(t, 60, j.CloudToDeviceMethod["connectTimeoutInSeconds"], "a connect timeout that is sent is kept")

	rec = call(s, http.MethodPut, "/jobs/v2/second"+apiV, nodeJob("second", "check", "*"), svc)
	e := requireCode(t, rec, rest.CodeMaxActiveJobCount)
	assert.Equal(t, http.StatusTooManyRequests, e.Status)
	assert.Equal(t, "ThrottlingMaxActiveJobCountExceeded", e.Name)
	assert.Contains(t, e.Message, "S1")

	rec = call(s, http.MethodPost, "/jobs/v2/later/cancel"+apiV, "", svc)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	j = decodeJob(t, rec, rec.Body.Bytes())
	assert.Equal(t, "cancelled", j.Status)

	rec = call(s, http.MethodPut, "/jobs/v2/second"+apiV, nodeJob("second", "check", "deviceId = 'pa-1'"), svc)
	require.Equal(t, http.StatusOK, rec.Code, "the cancelled job freed the slot: %s", rec.Body.String())
	waitJob(t, s, svc, "second", "completed")

	// Listing: both jobs, filtered and paged.
	rec = call(s, http.MethodGet, "/jobs/v2/query"+apiV, "", svc)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "jobResponse", rec.Header().Get("x-ms-item-type"))
	var list []jobAnswer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	require.Len(t, list, 2)
	assert.Equal(t, "later", list[0].JobID)
	assert.Equal(t, "second", list[1].JobID)

	rec = call(s, http.MethodGet, "/jobs/v2/query"+apiV+"&jobType=ScheduleDeviceMethod&jobStatus=Cancelled", "", svc)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	require.Len(t, list, 1, "filters are case-insensitive (C# sends PascalCase)")
	assert.Equal(t, "later", list[0].JobID)

	hdr := map[string]string{"Authorization": svc["Authorization"], "x-ms-max-item-count": "1"}
	rec = call(s, http.MethodGet, "/jobs/v2/query"+apiV, "", hdr)
	require.Equal(t, http.StatusOK, rec.Code)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	require.Len(t, list, 1)
	cont := rec.Header().Get("x-ms-continuation")
	require.NotEmpty(t, cont)
	hdr["x-ms-continuation"] = cont
	rec = call(s, http.MethodGet, "/jobs/v2/query"+apiV, "", hdr)
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	require.Len(t, list, 1)
	assert.Equal(t, "second", list[0].JobID)
	assert.Empty(t, rec.Header().Get("x-ms-continuation"))

	rec = call(s, http.MethodGet, "/jobs/v2/query"+apiV+"&jobStatus=done", "", svc)
	requireCode(t, rec, rest.CodeArgumentInvalid)
}

func TestJobsBadRequests(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Fleet: jobsFleet()})
	svc := authz(token(t, s, identity.PolicyService, "", time.Hour))
	method := `"cloudToDeviceMethod":{"methodName":"check"}`
	cases := []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"empty body", "/jobs/v2/a", ``, rest.CodeIotHubFormatError, "empty"},
		{"not JSON", "/jobs/v2/a", `{`, rest.CodeIotHubFormatError, "not a valid JobRequest"},
		{"id mismatch", "/jobs/v2/a", `{"jobId":"b","type":"scheduleDeviceMethod",` + method + `,"queryCondition":"*"}`, rest.CodeArgumentInvalid, "differs"},
		{"no type", "/jobs/v2/a", `{` + method + `,"queryCondition":"*"}`, rest.CodeArgumentInvalid, "type is required"},
		{"export type", "/jobs/v2/a", `{"type":"export",` + method + `,"queryCondition":"*"}`, rest.CodeArgumentInvalid, "not supported"},
		{"no method", "/jobs/v2/a", `{"type":"scheduleDeviceMethod","queryCondition":"*"}`, rest.CodeArgumentInvalid, "cloudToDeviceMethod is required"},
		{"timeout out of range", "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":301},"queryCondition":"*"}`, rest.CodeArgumentInvalid, "responseTimeoutInSeconds must be within [5; 300]"},
		{"connect out of range", "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","connectTimeoutInSeconds":-1},"queryCondition":"*"}`, rest.CodeArgumentInvalid, "connectTimeoutInSeconds"},
		{"bad method name", "/jobs/v2/a", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"a b"},"queryCondition":"*"}`, rest.CodeArgumentInvalid, "methodName"},
		{"no condition", "/jobs/v2/a", `{"type":"scheduleDeviceMethod",` + method + `}`, rest.CodeArgumentInvalid, "queryCondition is required"},
		{"bad condition", "/jobs/v2/a", `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"tags.x ="}`, rest.CodeArgumentInvalid, "queryCondition: syntax error"},
		{"bad start", "/jobs/v2/a", `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"*","startTime":"tomorrow"}`, rest.CodeArgumentInvalid, "startTime"},
		{"bad max execution", "/jobs/v2/a", `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"*","maxExecutionTimeInSeconds":0}`, rest.CodeArgumentInvalid, "maxExecutionTimeInSeconds"},
		{"bad id", "/jobs/v2/a%20b", `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"*"}`, rest.CodeArgumentInvalid, "job id contains"},
		{"twin job without patch", "/jobs/v2/a", `{"type":"scheduleUpdateTwin","queryCondition":"*"}`, rest.CodeArgumentInvalid, "updateTwin is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := call(s, http.MethodPut, tc.path+apiV, tc.body, svc)
			e := requireCode(t, rec, tc.code)
			assert.Contains(t, e.Message, tc.msg)
		})
	}
	rec := call(s, http.MethodPut, "/jobs/v2/a", `{}`, svc)
	requireCode(t, rec, rest.CodeInvalidProtocolVersion)
	rec = call(s, http.MethodDelete, "/jobs/v2/a"+apiV, "", svc)
	requireCode(t, rec, rest.CodeGenericMethodNotAllowed)
	rec = call(s, http.MethodGet, "/jobs/v2/a/cancel"+apiV, "", svc)
	requireCode(t, rec, rest.CodeGenericMethodNotAllowed)
	rec = call(s, http.MethodPost, "/jobs/v2/a/other"+apiV, "", svc)
	requireCode(t, rec, rest.CodeGenericNotFound)
	rec = call(s, http.MethodPut, "/jobs/v2/query"+apiV, "", svc)
	requireCode(t, rec, rest.CodeGenericMethodNotAllowed)
}

func TestJobsUpdateTwinAndStats(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Fleet: jobsFleet()})
	svc := authz(token(t, s, identity.PolicyOwner, "", time.Hour))
	body := `{"jobId":"tw","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":{"wave":2}},"queryCondition":"tags.site = 'plant-b'","startTime":"` +
		time.Now().UTC().Format(time.RFC3339Nano) + `","maxExecutionTimeInSeconds":3600}`
	rec := call(s, http.MethodPut, "/jobs/v2/tw"+apiV, body, svc)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	j := waitJob(t, s, svc, "tw", "completed")
	assert.Equal(t, 3, j.DeviceJobStatistics["succeededCount"])
	assert.JSONEq(t, `{"etag":"*","tags":{"wave":2}}`, string(j.UpdateTwin))

	rec = call(s, http.MethodPost, "/devices/query"+apiV, `{"query":"SELECT * FROM devices WHERE tags.wave = 2"}`, svc)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, 3, strings.Count(rec.Body.String(), `"deviceId"`))

	rec = call(s, http.MethodGet, "/hubsim/stats", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `"PUT /jobs/v2/{id}":{"total":1`)
	assert.Contains(t, rec.Body.String(), `"GET /jobs/v2/{id}"`)
}

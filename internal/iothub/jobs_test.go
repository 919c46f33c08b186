package iothub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/sas"
)

const jobResponse = `{"jobId":"fw-wave-1","queryCondition":"tags.site = 'plant-a'","createdTime":"2026-03-04T05:06:07.1234567Z",` +
	`"startTime":"2026-03-04T06:00:00Z","endTime":"0001-01-01T00:00:00","maxExecutionTimeInSeconds":1800,"type":"scheduleDeviceMethod",` +
	`"cloudToDeviceMethod":{"methodName":"firmwareUpdate","payload":{"fwPackageUri":"https://x/fw.bin"},"responseTimeoutInSeconds":60,"connectTimeoutInSeconds":30},` +
	`"status":"scheduled","deviceJobStatistics":{"deviceCount":0,"failedCount":0,"succeededCount":0,"runningCount":0,"pendingCount":0}}`

func TestCreateJobRequest(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, jobResponse) })
	c := newSAS(t, h, nil)
	start := time.Date(2026, 3, 4, 7, 0, 0, 0, time.FixedZone("CET", 3600))
	job, err := c.ScheduleDeviceMethodJob(context.Background(), "fw-wave-1", "tags.site = 'plant-a'", MethodRequest{
		MethodName: "firmwareUpdate", Payload: json.RawMessage(`{"fwPackageUri":"https://x/fw.bin?a=1&b=<2>"}`),
		ResponseTimeout: 60 * time.Second, ConnectTimeout: 30 * time.Second,
	}, start, 30*time.Minute)
	require.NoError(t, err)

	req := h.only(t)
	assert.Equal(t, http.MethodPut, req.Method)
	assert.Equal(t, "/jobs/v2/fw-wave-1", req.Path)
	assert.Equal(t, []string{DefaultAPIVersion}, req.Query["api-version"])
	assert.True(t, strings.HasPrefix(req.Header.Get("Authorization"), "SharedAccessSignature "))
	tok, err := sas.Parse(req.Header.Get("Authorization"))
	require.NoError(t, err)
	assert.NoError(t, tok.Verify(testKey(t), time.Now()), "the SAS verifies with the key")
	assert.Equal(t, "application/json; charset=utf-8", req.Header.Get("Content-Type"))
	assert.JSONEq(t, `{"jobId":"fw-wave-1","type":"scheduleDeviceMethod","queryCondition":"tags.site = 'plant-a'",
		"cloudToDeviceMethod":{"methodName":"firmwareUpdate","payload":{"fwPackageUri":"https://x/fw.bin?a=1&b=<2>"},
			"responseTimeoutInSeconds":60,"connectTimeoutInSeconds":30},
		"startTime":"2026-03-04T06:00:00.000Z","maxExecutionTimeInSeconds":1800}`, string(req.Body))
	assert.Contains(t, string(req.Body), `&b=<2>`, "payloads are not HTML-escaped")

	assert.Equal(t, "fw-wave-1", job.JobID)
	assert.Equal(t, JobTypeDeviceMethod, job.Type)
	assert.Equal(t, JobStatusScheduled, job.Status)
	assert.Equal(t, time.Date(2026, 3, 4, 5, 6, 7, 123456700, time.UTC), job.CreatedTime)
	assert.Equal(t, time.Date(2026, 3, 4, 6, 0, 0, 0, time.UTC), job.StartTime)
	assert.True(t, job.EndTime.IsZero(), ".NET's minimum time means no end yet")
	assert.Equal(t, 30*time.Minute, job.MaxExecutionTime)
	require.NotNil(t, job.Method)
	assert.Equal(t, "firmwareUpdate", job.Method.MethodName)
	assert.Equal(t, 30*time.Second, job.Method.ConnectTimeout)
	assert.Equal(t, 60*time.Second, job.Method.ResponseTimeout)
	assert.False(t, job.Status.Terminal())
}

func TestCreateJobDefaults(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, jobResponse) })
	c := newSAS(t, h, nil)
	_, err := c.CreateJob(context.Background(), JobRequest{JobID: "j", QueryCondition: "*", Method: &MethodRequest{MethodName: "reboot"}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"jobId":"j","type":"scheduleDeviceMethod","queryCondition":"*","startTime":null,
		"cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}}`,
		string(h.only(t).Body), "zero start sends null (now), no max execution time, the connect timeout is sent even when 0")
}

func TestCreateUpdateTwinJob(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"jobId":"t","type":"scheduleUpdateTwin","status":"queued","updateTwin":{"etag":"*","tags":{"a":1}}}`)
	})
	c := newSAS(t, h, nil)
	job, err := c.CreateJob(context.Background(), JobRequest{JobID: "t", Type: JobTypeUpdateTwin, QueryCondition: "*",
		UpdateTwin: json.RawMessage(` {"etag":"*","tags":{"a":1}} `)})
	require.NoError(t, err)
	assert.JSONEq(t, `{"jobId":"t","type":"scheduleUpdateTwin","queryCondition":"*","startTime":null,"updateTwin":{"etag":"*","tags":{"a":1}}}`, string(h.only(t).Body))
	assert.Nil(t, job.Method)
	assert.JSONEq(t, `{"etag":"*","tags":{"a":1}}`, string(job.UpdateTwin))
}

func TestCreateJobInputErrors(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, jobResponse) })
	c := newSAS(t, h, nil)
	m := &MethodRequest{MethodName: "reboot"}
	long := "deviceId IN [" + strings.Repeat("'dev-0001', ", 800) + "'x']"
	tests := []struct {
		name  string
		req   JobRequest
		input string
	}{
		{"no id", JobRequest{QueryCondition: "*", Method: m}, "job id"},
		{"bad id", JobRequest{JobID: "a/b", QueryCondition: "*", Method: m}, "job id"},
		{"no condition", JobRequest{JobID: "j", QueryCondition: " ", Method: m}, "query condition"},
		{"long condition", JobRequest{JobID: "j", QueryCondition: long, Method: m}, "query condition"},
		{"no method", JobRequest{JobID: "j", QueryCondition: "*"}, "job"},
		{"bad method", JobRequest{JobID: "j", QueryCondition: "*", Method: &MethodRequest{MethodName: "a b"}}, "method name"},
		{"timeout", JobRequest{JobID: "j", QueryCondition: "*", Method: &MethodRequest{MethodName: "m", ResponseTimeout: time.Second}}, "response timeout"},
		{"fractional max execution", JobRequest{JobID: "j", QueryCondition: "*", Method: m, MaxExecutionTime: 1500 * time.Millisecond}, "max execution time"},
		{"huge max execution", JobRequest{JobID: "j", QueryCondition: "*", Method: m, MaxExecutionTime: 31 * 24 * time.Hour}, "max execution time"},
		{"twin not object", JobRequest{JobID: "j", Type: JobTypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`[1]`)}, "twin patch"},
		{"bad type", JobRequest{JobID: "j", Type: "export", QueryCondition: "*"}, "job type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateJob(context.Background(), tc.req)
			var ie *InputError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, tc.input, ie.Input)
		})
	}
	assert.Empty(t, h.requests(), "nothing is sent for bad input")
}

func TestJobErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		code     int
		codeName string
	}{
		{"exists", 409, `{"Message":"{\"errorCode\":409104,\"trackingId\":\"t\",\"message\":\"A job with id j already exists.\",\"info\":{},\"timestampUtc\":\"2026-03-04T05:06:07.0000000Z\"}","ExceptionMessage":""}`, CodeJobAlreadyExists, "JobAlreadyExists"},
		{"too many jobs, legacy body", 429, `{"Message":"ErrorCode:ThrottlingMaxActiveJobCountExceeded;429","ExceptionMessage":"Tracking ID:9659f-G:3-TimeStamp:02/05/2018 11:41:56"}`, CodeMaxActiveJobCountExceeded, "ThrottlingMaxActiveJobCountExceeded"},
		{"not found", 404, `{"Message":"{\"errorCode\":404002,\"trackingId\":\"t\",\"message\":\"Job j not found.\",\"info\":{},\"timestampUtc\":\"2026-03-04T05:06:07.0000000Z\"}","ExceptionMessage":""}`, CodeJobNotFound, "JobNotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, tc.status, tc.body) })
			c := newSAS(t, h, nil)
			_, err := c.GetJob(context.Background(), "j")
			re, ok := AsResponseError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, tc.status, re.StatusCode)
			assert.Equal(t, tc.code, re.ErrorCode)
			assert.Equal(t, tc.codeName, re.ErrorCodeName)
		})
	}
}

func TestGetAndCancelJob(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
		status := "running"
		if strings.HasSuffix(r.URL.Path, "/cancel") {
			status = "Cancelled"
		}
		writeJSON(w, 200, `{"jobId":"a#b?c","type":"scheduleDeviceMethod","status":"`+status+`","maxExecutionTimeInSeconds":"3600",`+
			`"deviceJobStatistics":{"deviceCount":10,"failedCount":1,"succeededCount":6,"runningCount":2,"pendingCount":1}}`)
	})
	c := newSAS(t, h, nil)
	job, err := c.GetJob(context.Background(), "a#b?c")
	require.NoError(t, err)
	assert.Equal(t, DeviceJobStatistics{DeviceCount: 10, FailedCount: 1, SucceededCount: 6, RunningCount: 2, PendingCount: 1}, job.Statistics)
	assert.Equal(t, time.Hour, job.MaxExecutionTime, "a number sent as a string is read")
	job, err = c.CancelJob(context.Background(), "a#b?c")
	require.NoError(t, err)
	assert.Equal(t, JobStatusCancelled, job.Status, "status is lower-cased")
	assert.True(t, job.Status.Terminal())

	reqs := h.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, http.MethodGet, reqs[0].Method)
	assert.Equal(t, "/jobs/v2/a%23b%3Fc?api-version="+DefaultAPIVersion, reqs[0].RequestURI, "the job id is one encoded path segment")
	assert.Equal(t, http.MethodPost, reqs[1].Method)
	assert.Equal(t, "/jobs/v2/a%23b%3Fc/cancel?api-version="+DefaultAPIVersion, reqs[1].RequestURI)
	assert.Empty(t, reqs[1].Body)

	_, err = c.GetJob(context.Background(), "")
	var ie *InputError
	assert.ErrorAs(t, err, &ie)
}

func TestGetJobUnreadable(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `[]`) })
	c := newSAS(t, h, nil)
	_, err := c.GetJob(context.Background(), "j")
	assert.True(t, errors.Is(err, ErrUnreadableAnswer), "%v", err)
}

func TestJobsPager(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-ms-continuation") == "" {
			w.Header().Set("x-ms-continuation", "page2")
			w.Header().Set("x-ms-item-type", "jobResponse")
			writeJSON(w, 200, `[{"jobId":"a","type":"scheduleDeviceMethod","status":"completed"},{"jobId":"b","type":"scheduleDeviceMethod","status":"completed"}]`)
			return
		}
		writeJSON(w, 200, `[{"jobId":"c","type":"scheduleDeviceMethod","status":"completed"}]`)
	})
	c := newSAS(t, h, nil)
	p := c.NewJobsPager(&JobsQueryOptions{Type: JobTypeDeviceMethod, Status: JobStatusCompleted, PageSize: 2})
	var ids []string
	for p.More() {
		page, err := p.NextPage(context.Background())
		require.NoError(t, err)
		for _, j := range page.Jobs {
			ids = append(ids, j.JobID)
		}
	}
	assert.Equal(t, []string{"a", "b", "c"}, ids)
	reqs := h.requests()
	require.Len(t, reqs, 2)
	for i, r := range reqs {
		assert.Equal(t, http.MethodGet, r.Method)
		assert.Equal(t, "/jobs/v2/query", r.Path)
		assert.Equal(t, []string{"scheduleDeviceMethod"}, r.Query["jobType"])
		assert.Equal(t, []string{"completed"}, r.Query["jobStatus"])
		assert.Equal(t, []string{DefaultAPIVersion}, r.Query["api-version"])
		assert.Equal(t, "2", r.Header.Get("x-ms-max-item-count"), "request %d", i)
	}
	assert.Empty(t, reqs[0].Header.Get("x-ms-continuation"))
	assert.Equal(t, "page2", reqs[1].Header.Get("x-ms-continuation"))
	_, err := p.NextPage(context.Background())
	assert.Error(t, err, "no page after the last")
}

func TestDeviceJobsQueryAndParse(t *testing.T) {
	assert.Equal(t, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'fw-1'", DeviceJobsQuery("fw-1"))
	assert.Equal(t, `SELECT * FROM devices.jobs WHERE devices.jobs.jobId = "o'brien"`, DeviceJobsQuery("o'brien"))
	assert.Equal(t, `deviceId IN ['a', "b'c", 'd#e']`, DeviceIDCondition([]string{"a", "b'c", "d#e"}))

	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-item-type", "deviceJob")
		writeJSON(w, 200, `[
		 {"deviceId":"d1","jobId":"fw-1","jobType":"scheduleDeviceMethod","status":"completed","startTimeUtc":"2016-09-29T18:18:52.7418462",
		  "endTimeUtc":"2016-09-29T18:20:52.7418462Z","createdDateTimeUtc":"2016-09-29T18:18:56.7787107Z","lastUpdatedDateTimeUtc":"2016-09-29T18:18:56.8894408Z",
		  "outcome":{"deviceMethodResponse":{"status":500,"payload":{"why":"x"}}}},
		 {"deviceId":"d2","jobId":"fw-1","jobType":"scheduleDeviceMethod","status":"failed","outcome":{"deviceMethodResponse":null},
		  "error":{"code":"DeviceNotOnline","description":"offline"}},
		 {"deviceId":"d3","jobId":"fw-1","status":"failed","error":{"code":504101,"description":"late"}},
		 {"deviceId":"d4","jobId":"fw-1","status":"Canceled"}]`)
	})
	c := newSAS(t, h, nil)
	page, err := c.NewDeviceJobsPager("fw-1", &QueryOptions{PageSize: 50}).NextPage(context.Background())
	require.NoError(t, err)
	assert.JSONEq(t, `{"query":"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'fw-1'"}`, string(h.only(t).Body))
	assert.Equal(t, "deviceJob", page.ItemType)
	require.Len(t, page.Items, 4)

	d1, err := ParseDeviceJob(page.Items[0])
	require.NoError(t, err)
	assert.Equal(t, DeviceJobCompleted, d1.Status)
	assert.Equal(t, time.Date(2016, 9, 29, 18, 18, 52, 741846200, time.UTC), d1.StartTime, "a time without a zone is UTC")
	assert.Equal(t, 2*time.Minute, d1.EndTime.Sub(d1.StartTime))
	require.NotNil(t, d1.Response)
	assert.Equal(t, 500, d1.Response.Status)
	assert.JSONEq(t, `{"why":"x"}`, string(d1.Response.Payload))
	assert.Nil(t, d1.Error)

	d2, err := ParseDeviceJob(page.Items[1])
	require.NoError(t, err)
	assert.Nil(t, d2.Response)
	require.NotNil(t, d2.Error)
	assert.Equal(t, CodeDeviceNotOnline, d2.Error.ErrorCode(), "a code name maps to its number")
	assert.Equal(t, "DeviceNotOnline", d2.Error.ErrorCodeName())

	d3, err := ParseDeviceJob(page.Items[2])
	require.NoError(t, err)
	assert.Equal(t, CodeGatewayTimeout, d3.Error.ErrorCode(), "a numeric code is kept")
	assert.Equal(t, "GatewayTimeout", d3.Error.ErrorCodeName())

	d4, err := ParseDeviceJob(page.Items[3])
	require.NoError(t, err)
	assert.Equal(t, DeviceJobCanceled, d4.Status)
	assert.True(t, d4.StartTime.IsZero())

	_, err = ParseDeviceJob([]byte(`{"jobId":"x"}`))
	assert.Error(t, err)
	_, err = ParseDeviceJob([]byte(`{"deviceId":"x","outcome":{"deviceMethodResponse":{"status":1.5}}}`))
	assert.Error(t, err)
	unknown := &DeviceJobError{Code: "SomethingNew"}
	assert.Zero(t, unknown.ErrorCode())
	assert.Equal(t, "SomethingNew", unknown.ErrorCodeName())
}

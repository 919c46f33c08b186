package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// JobType is an IoT Hub job type (iothub-contract.md §3.1).
type JobType string

// The job types of /jobs/v2.
const (
	JobTypeDeviceMethod JobType = "scheduleDeviceMethod"
	JobTypeUpdateTwin   JobType = "scheduleUpdateTwin"
)

// JobStatus is a job's status (iothub-contract.md §3.3). Jobs are spelled
// "cancelled"; device jobs "canceled" (DeviceJobStatus).
type JobStatus string

// Job statuses.
const (
	JobStatusUnknown   JobStatus = "unknown"
	JobStatusEnqueued  JobStatus = "enqueued"
	JobStatusQueued    JobStatus = "queued"
	JobStatusScheduled JobStatus = "scheduled"
	JobStatusRunning   JobStatus = "running"
	JobStatusCompleted JobStatus = "completed"
	JobStatusFailed    JobStatus = "failed"
	JobStatusCancelled JobStatus = "cancelled"
)

// JobStatuses lists the statuses in the order a job moves through them.
var JobStatuses = []JobStatus{JobStatusQueued, JobStatusScheduled, JobStatusRunning, JobStatusCompleted,
	JobStatusFailed, JobStatusCancelled, JobStatusEnqueued, JobStatusUnknown}

// Terminal reports whether a job with this status has ended (Node's e2e
// tests treat completed, failed and cancelled as terminal). The hub's
// casing is not relied on.
func (s JobStatus) Terminal() bool {
	switch JobStatus(strings.ToLower(string(s))) {
	case JobStatusCompleted, JobStatusFailed, JobStatusCancelled:
		return true
	}
	return false
}

// DeviceJobStatus is a device job's status (iothub-contract.md §3.5).
type DeviceJobStatus string

// Device job statuses (note "canceled", one l).
const (
	DeviceJobPending   DeviceJobStatus = "pending"
	DeviceJobScheduled DeviceJobStatus = "scheduled"
	DeviceJobRunning   DeviceJobStatus = "running"
	DeviceJobCompleted DeviceJobStatus = "completed"
	DeviceJobFailed    DeviceJobStatus = "failed"
	DeviceJobCanceled  DeviceJobStatus = "canceled"
)

// Job limits and codes.
const (
	// MaxQueryLength is IoT Hub's maximum query expression length, in
	// characters. A job's queryCondition is checked as part of the query
	// "SELECT * FROM devices WHERE <condition>" (how the hub counts it is
	// UNCONFIRMED; this is the stricter reading).
	MaxQueryLength = 8192
	// MaxJobExecutionTime is the longest maxExecutionTimeInSeconds dmctl
	// sends: a hub keeps a job's history for 30 days.
	MaxJobExecutionTime = 30 * 24 * time.Hour
	// CodeJobAlreadyExists: a job with this id exists (409).
	CodeJobAlreadyExists = 409104
	// CodeMaxActiveJobCountExceeded: the tier's limit of active jobs is
	// reached (429; S1: 1, S2: 5, S3: 10).
	CodeMaxActiveJobCountExceeded = 429004
)

// queryConditionPrefix is what a queryCondition is measured with.
const queryConditionPrefix = "SELECT * FROM devices WHERE "

// MaxQueryConditionLength is the longest queryCondition dmctl sends.
const MaxQueryConditionLength = MaxQueryLength - len(queryConditionPrefix)

// JobRequest is a job to schedule (PUT /jobs/v2/{jobId}).
type JobRequest struct {
	// JobID names the job; the rules are those of device ids.
	JobID string
	// Type is JobTypeDeviceMethod or JobTypeUpdateTwin; "" means
	// JobTypeDeviceMethod.
	Type JobType
	// QueryCondition selects the devices: a WHERE clause without WHERE,
	// e.g. "tags.site = 'plant-a'", or "*" for every device.
	QueryCondition string
	// Method is what a scheduleDeviceMethod job invokes. Both timeouts are
	// always sent, the connect timeout included (the Node SDK drops it).
	Method *MethodRequest
	// UpdateTwin is the twin patch of a scheduleUpdateTwin job (tags,
	// properties.desired and an optional "etag").
	UpdateTwin json.RawMessage
	// StartTime is when the job starts; zero sends null (now).
	StartTime time.Time
	// MaxExecutionTime bounds the run (whole seconds are sent); zero
	// leaves it out (the hub's default, 3600 s).
	MaxExecutionTime time.Duration
}

// DeviceJobStatistics counts a job's devices by state.
type DeviceJobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// Job is a JobResponse (iothub-contract.md §3.3). Times are zero when the
// hub sent none.
type Job struct {
	JobID            string
	Type             JobType
	Status           JobStatus
	QueryCondition   string
	CreatedTime      time.Time
	StartTime        time.Time
	EndTime          time.Time
	MaxExecutionTime time.Duration
	// Method is the cloudToDeviceMethod of a scheduleDeviceMethod job.
	Method        *MethodRequest
	UpdateTwin    json.RawMessage
	FailureReason string
	StatusMessage string
	Statistics    DeviceJobStatistics
}

// jobBody is the JobRequest on the wire.
type jobBody struct {
	JobID                     string          `json:"jobId"`
	Type                      JobType         `json:"type"`
	CloudToDeviceMethod       *methodBody     `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                json.RawMessage `json:"updateTwin,omitempty"`
	QueryCondition            string          `json:"queryCondition"`
	StartTime                 *string         `json:"startTime"`
	MaxExecutionTimeInSeconds *int64          `json:"maxExecutionTimeInSeconds,omitempty"`
}

// jobWire is a JobResponse as decoded from the wire: numbers and times
// leniently.
type jobWire struct {
	JobID                     string          `json:"jobId"`
	QueryCondition            string          `json:"queryCondition"`
	CreatedTime               string          `json:"createdTime"`
	StartTime                 string          `json:"startTime"`
	EndTime                   string          `json:"endTime"`
	MaxExecutionTimeInSeconds json.Number     `json:"maxExecutionTimeInSeconds"`
	Type                      JobType         `json:"type"`
	CloudToDeviceMethod       *methodWire     `json:"cloudToDeviceMethod"`
	UpdateTwin                json.RawMessage `json:"updateTwin"`
	Status                    JobStatus       `json:"status"`
	FailureReason             string          `json:"failureReason"`
	StatusMessage             string          `json:"statusMessage"`
	DeviceJobStatistics       *statsWire      `json:"deviceJobStatistics"`
}

type methodWire struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds json.Number     `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  json.Number     `json:"connectTimeoutInSeconds"`
}

type statsWire struct {
	DeviceCount    json.Number `json:"deviceCount"`
	FailedCount    json.Number `json:"failedCount"`
	SucceededCount json.Number `json:"succeededCount"`
	RunningCount   json.Number `json:"runningCount"`
	PendingCount   json.Number `json:"pendingCount"`
}

// ValidateJobID checks a job id; dmctl applies the device id rules (1 to
// 128 ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '), which
// every hub accepts (the hub's own rules are UNCONFIRMED).
func ValidateJobID(id string) error { return validateID("job id", id) }

// ValidateQueryCondition checks a job's queryCondition: not empty, and
// short enough for the hub's query length limit.
func ValidateQueryCondition(cond string) error {
	if strings.TrimSpace(cond) == "" {
		return &InputError{Input: "query condition", Reason: "it is empty (use * for every device)"}
	}
	if n := utf8.RuneCountInString(cond); n > MaxQueryConditionLength {
		return inputErr("query condition", cond, "it is %d characters long; IoT Hub accepts queries of at most %d characters, which leaves %d for the condition",
			n, MaxQueryLength, MaxQueryConditionLength)
	}
	return nil
}

// QuoteString writes s as a string literal of the IoT Hub query language:
// in single quotes, or in double quotes when s holds a single quote (device
// ids may; they never hold a double quote). Double quotes inside are
// backslash-escaped.
func QuoteString(s string) string {
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// DeviceIDCondition is the queryCondition selecting exactly these devices:
// deviceId IN ['a', 'b', ...].
func DeviceIDCondition(ids []string) string {
	var b strings.Builder
	b.WriteString("deviceId IN [")
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(QuoteString(id))
	}
	b.WriteString("]")
	return b.String()
}

// hubTimeLayout is how dmctl writes times for the hub (Node's toISOString).
const hubTimeLayout = "2006-01-02T15:04:05.000Z"

func (req JobRequest) body() ([]byte, error) {
	if err := ValidateJobID(req.JobID); err != nil {
		return nil, err
	}
	typ := req.Type
	if typ == "" {
		typ = JobTypeDeviceMethod
	}
	if err := ValidateQueryCondition(req.QueryCondition); err != nil {
		return nil, err
	}
	b := jobBody{JobID: req.JobID, Type: typ, QueryCondition: req.QueryCondition}
	switch typ {
	case JobTypeDeviceMethod:
		if req.Method == nil {
			return nil, &InputError{Input: "job", Reason: "a scheduleDeviceMethod job needs a method"}
		}
		respSec, connSec, err := validateRequest(*req.Method)
		if err != nil {
			return nil, err
		}
		b.CloudToDeviceMethod = &methodBody{MethodName: req.Method.MethodName, Payload: req.Method.Payload,
			ResponseTimeoutInSeconds: respSec, ConnectTimeoutInSeconds: connSec}
	case JobTypeUpdateTwin:
		t := bytes.TrimSpace(req.UpdateTwin)
		if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
			return nil, &InputError{Input: "twin patch", Reason: "a scheduleUpdateTwin job needs a JSON object"}
		}
		b.UpdateTwin = t
	default:
		return nil, &InputError{Input: "job type", Value: string(typ), Reason: "use scheduleDeviceMethod or scheduleUpdateTwin"}
	}
	if !req.StartTime.IsZero() {
		s := req.StartTime.UTC().Format(hubTimeLayout)
		b.StartTime = &s
	}
	if req.MaxExecutionTime != 0 {
		if req.MaxExecutionTime < time.Second || req.MaxExecutionTime%time.Second != 0 || req.MaxExecutionTime > MaxJobExecutionTime {
			return nil, &InputError{Input: "max execution time", Value: req.MaxExecutionTime.String(),
				Reason: fmt.Sprintf("it must be whole seconds between 1s and %s", MaxJobExecutionTime)}
		}
		n := int64(req.MaxExecutionTime / time.Second)
		b.MaxExecutionTimeInSeconds = &n
	}
	return marshalNoEscape(b)
}

// CreateJob schedules a job (PUT /jobs/v2/{jobId}) and returns the hub's
// JobResponse. A job id in use gives a *ResponseError with
// CodeJobAlreadyExists; too many active jobs CodeMaxActiveJobCountExceeded.
// Bad arguments are *InputError (nothing sent). One attempt.
func (c *Client) CreateJob(ctx context.Context, req JobRequest) (Job, error) {
	body, err := req.body()
	if err != nil {
		return Job{}, err
	}
	return c.jobCall(ctx, http.MethodPut, []string{"jobs", "v2", req.JobID}, body)
}

// ScheduleDeviceMethodJob schedules a scheduleDeviceMethod job: method on
// every device queryCondition selects, starting at start (zero: now), for
// at most maxExecution (zero: the hub's default).
func (c *Client) ScheduleDeviceMethodJob(ctx context.Context, jobID, queryCondition string, method MethodRequest, start time.Time, maxExecution time.Duration) (Job, error) {
	return c.CreateJob(ctx, JobRequest{JobID: jobID, Type: JobTypeDeviceMethod, QueryCondition: queryCondition,
		Method: &method, StartTime: start, MaxExecutionTime: maxExecution})
}

// GetJob reads a job (GET /jobs/v2/{jobId}); an unknown id gives a
// *ResponseError with CodeJobNotFound.
func (c *Client) GetJob(ctx context.Context, jobID string) (Job, error) {
	if err := ValidateJobID(jobID); err != nil {
		return Job{}, err
	}
	return c.jobCall(ctx, http.MethodGet, []string{"jobs", "v2", jobID}, nil)
}

// CancelJob cancels a job (POST /jobs/v2/{jobId}/cancel) and returns it.
func (c *Client) CancelJob(ctx context.Context, jobID string) (Job, error) {
	if err := ValidateJobID(jobID); err != nil {
		return Job{}, err
	}
	return c.jobCall(ctx, http.MethodPost, []string{"jobs", "v2", jobID, "cancel"}, nil)
}

func (c *Client) jobCall(ctx context.Context, method string, segments []string, body []byte) (Job, error) {
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	resp, payload, err := c.send(ctx, method, segments, nil, body)
	if err != nil {
		return Job{}, err
	}
	if !isSuccess(resp.StatusCode) {
		return Job{}, parseError(resp.StatusCode, resp.Header, payload, time.Now())
	}
	job, err := ParseJob(payload)
	if err != nil {
		return Job{}, unreadable(resp, payload, err.Error())
	}
	return job, nil
}

// ParseJob decodes a JobResponse. Numbers may be JSON numbers or strings;
// times may lack a zone (taken as UTC) and .NET's "0001-01-01T00:00:00"
// means none.
func ParseJob(b []byte) (Job, error) {
	var w jobWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return Job{}, fmt.Errorf("a job must be a JSON object: %v", err)
	}
	if w.JobID == "" {
		return Job{}, fmt.Errorf(`the job has no "jobId"`)
	}
	j := Job{
		JobID:          w.JobID,
		Type:           w.Type,
		Status:         JobStatus(strings.ToLower(string(w.Status))),
		QueryCondition: w.QueryCondition,
		UpdateTwin:     w.UpdateTwin,
		FailureReason:  w.FailureReason,
		StatusMessage:  w.StatusMessage,
	}
	if t, ok := ParseTime(w.CreatedTime); ok {
		j.CreatedTime = t
	}
	if t, ok := ParseTime(w.StartTime); ok {
		j.StartTime = t
	}
	if t, ok := ParseTime(w.EndTime); ok {
		j.EndTime = t
	}
	j.MaxExecutionTime = time.Duration(number(w.MaxExecutionTimeInSeconds)) * time.Second
	if m := w.CloudToDeviceMethod; m != nil {
		j.Method = &MethodRequest{MethodName: m.MethodName, Payload: m.Payload,
			ResponseTimeout: time.Duration(number(m.ResponseTimeoutInSeconds)) * time.Second,
			ConnectTimeout:  time.Duration(number(m.ConnectTimeoutInSeconds)) * time.Second}
	}
	if s := w.DeviceJobStatistics; s != nil {
		j.Statistics = DeviceJobStatistics{DeviceCount: int(number(s.DeviceCount)), FailedCount: int(number(s.FailedCount)),
			SucceededCount: int(number(s.SucceededCount)), RunningCount: int(number(s.RunningCount)), PendingCount: int(number(s.PendingCount))}
	}
	return j, nil
}

func number(n json.Number) int64 {
	if v, err := n.Int64(); err == nil {
		return v
	}
	f, _ := n.Float64()
	return int64(f)
}

// ParseTime reads a time as hubs and SDKs write it: RFC 3339, or without a
// zone (UTC). The empty string and .NET's minimum value give ok=false.
func ParseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() <= 1 {
				return time.Time{}, false
			}
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// JobsQueryOptions filters and pages GET /jobs/v2/query. A nil
// *JobsQueryOptions lists every job in pages of the hub's size.
type JobsQueryOptions struct {
	Type     JobType   // "" = any
	Status   JobStatus // "" = any
	PageSize int       // x-ms-max-item-count; 0 = the hub's default
	Retry    PageRetry // resends a failed page fetch; nil: one attempt
}

// JobsPage is one page of jobs.
type JobsPage struct {
	Jobs              []Job
	ContinuationToken string // "" on the last page
}

// JobsPager walks GET /jobs/v2/query, feeding x-ms-continuation back:
// azcore's runtime.Pager (after a failed page it has no more pages).
type JobsPager = runtime.Pager[JobsPage]

// NewJobsPager returns a pager over the hub's jobs (most hubs keep 30 days).
func (c *Client) NewJobsPager(opts *JobsQueryOptions) *JobsPager {
	var o JobsQueryOptions
	if opts != nil {
		o = *opts
	}
	return runtime.NewPager(runtime.PagingHandler[JobsPage]{
		More: func(p JobsPage) bool { return strings.TrimSpace(p.ContinuationToken) != "" },
		Fetcher: func(ctx context.Context, cur *JobsPage) (JobsPage, error) {
			token := ""
			if cur != nil {
				token = cur.ContinuationToken
			}
			var page JobsPage
			err := o.Retry.Run(ctx, func(ctx context.Context) error {
				var e error
				page, e = c.jobsPage(ctx, o, token)
				return e
			})
			return page, err
		},
	})
}

// jobsPage fetches one page of jobs after the continuation token.
func (c *Client) jobsPage(ctx context.Context, o JobsQueryOptions, token string) (JobsPage, error) {
	if o.PageSize < 0 {
		return JobsPage{}, &InputError{Input: "page size", Value: strconv.Itoa(o.PageSize), Reason: "it must be 0 (hub default) or more"}
	}
	u := c.url([]string{"jobs", "v2", "query"})
	q := u.RawQuery
	if o.Type != "" {
		q += "&jobType=" + url.QueryEscape(string(o.Type))
	}
	if o.Status != "" {
		q += "&jobStatus=" + url.QueryEscape(string(o.Status))
	}
	u.RawQuery = q
	header := http.Header{}
	if o.PageSize > 0 {
		header.Set(headerMaxItemCount, strconv.Itoa(o.PageSize))
	}
	if token != "" {
		header.Set(headerContinuation, token)
	}
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	resp, payload, err := c.sendURL(ctx, http.MethodGet, u, header, nil)
	if err != nil {
		return JobsPage{}, err
	}
	if !isSuccess(resp.StatusCode) {
		return JobsPage{}, parseError(resp.StatusCode, resp.Header, payload, time.Now())
	}
	var items []json.RawMessage
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '[' || json.Unmarshal(trimmed, &items) != nil {
		return JobsPage{}, unreadable(resp, payload, "a jobs page must be a JSON array")
	}
	page := JobsPage{Jobs: make([]Job, 0, len(items)), ContinuationToken: resp.Header.Get(headerContinuation)}
	for i, it := range items {
		j, err := ParseJob(it)
		if err != nil {
			return JobsPage{}, unreadable(resp, payload, fmt.Sprintf("item %d: %v", i+1, err))
		}
		page.Jobs = append(page.Jobs, j)
	}
	return page, nil
}

// DeviceJobsQuery is the query for a job's per-device results:
// SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '<jobID>'.
func DeviceJobsQuery(jobID string) string {
	return "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = " + QuoteString(jobID)
}

// NewDeviceJobsPager returns a query pager over a job's device-job records
// (POST /devices/query with DeviceJobsQuery); decode items with
// ParseDeviceJob.
func (c *Client) NewDeviceJobsPager(jobID string, opts *QueryOptions) *QueryPager {
	return c.NewQueryPager(DeviceJobsQuery(jobID), opts)
}

// DeviceJob is one device's part of a job (a devices.jobs record,
// iothub-contract.md §3.5). Times are zero when absent.
type DeviceJob struct {
	DeviceID        string
	ModuleID        string
	JobID           string
	JobType         JobType
	Status          DeviceJobStatus
	StartTime       time.Time
	EndTime         time.Time
	CreatedTime     time.Time
	LastUpdatedTime time.Time
	// Response is outcome.deviceMethodResponse: the device's answer; nil
	// when the device did not answer (or for twin jobs).
	Response *MethodResult
	// Error is why the operation failed; nil when it did not.
	Error *DeviceJobError
}

// DeviceJobError is a device job's error {code, description}.
type DeviceJobError struct {
	Code        string // as the hub wrote it: a name such as "DeviceNotOnline" or a number
	Description string
}

// ErrorCode returns the six-digit IoT Hub code of the error: Code itself
// when it is a number, else the code of the name (DeviceNotOnline is
// 404103); 0 when unknown.
func (e *DeviceJobError) ErrorCode() int {
	if e == nil {
		return 0
	}
	c := strings.TrimSpace(e.Code)
	if n, err := strconv.Atoi(c); err == nil {
		return n
	}
	for name, code := range errorCodeNames {
		if strings.EqualFold(name, c) {
			return code
		}
	}
	return 0
}

// ErrorCodeName returns the error's code name ("DeviceNotOnline"), also
// when the hub wrote the number; "" when unknown.
func (e *DeviceJobError) ErrorCodeName() string {
	if e == nil {
		return ""
	}
	if code := e.ErrorCode(); code != 0 {
		if name := ErrorCodeName(code); name != "" {
			return name
		}
	}
	if _, err := strconv.Atoi(strings.TrimSpace(e.Code)); err == nil {
		return ""
	}
	return strings.TrimSpace(e.Code)
}

type deviceJobWire struct {
	DeviceID               string          `json:"deviceId"`
	ModuleID               string          `json:"moduleId"`
	JobID                  string          `json:"jobId"`
	JobType                JobType         `json:"jobType"`
	Status                 DeviceJobStatus `json:"status"`
	StartTimeUtc           string          `json:"startTimeUtc"`
	EndTimeUtc             string          `json:"endTimeUtc"`
	CreatedDateTimeUtc     string          `json:"createdDateTimeUtc"`
	LastUpdatedDateTimeUtc string          `json:"lastUpdatedDateTimeUtc"`
	Outcome                *struct {
		DeviceMethodResponse *struct {
			Status  *json.Number    `json:"status"`
			Payload json.RawMessage `json:"payload"`
		} `json:"deviceMethodResponse"`
	} `json:"outcome"`
	Error *struct {
		Code        json.RawMessage `json:"code"`
		Description string          `json:"description"`
	} `json:"error"`
}

// ParseDeviceJob decodes one devices.jobs item.
func ParseDeviceJob(b []byte) (DeviceJob, error) {
	var w deviceJobWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return DeviceJob{}, fmt.Errorf("a device job must be a JSON object: %v", err)
	}
	if w.DeviceID == "" {
		return DeviceJob{}, fmt.Errorf(`the device job has no "deviceId"`)
	}
	dj := DeviceJob{DeviceID: w.DeviceID, ModuleID: w.ModuleID, JobID: w.JobID, JobType: w.JobType,
		Status: DeviceJobStatus(strings.ToLower(string(w.Status)))}
	dj.StartTime, _ = ParseTime(w.StartTimeUtc)
	dj.EndTime, _ = ParseTime(w.EndTimeUtc)
	dj.CreatedTime, _ = ParseTime(w.CreatedDateTimeUtc)
	dj.LastUpdatedTime, _ = ParseTime(w.LastUpdatedDateTimeUtc)
	if w.Outcome != nil && w.Outcome.DeviceMethodResponse != nil && w.Outcome.DeviceMethodResponse.Status != nil {
		r := w.Outcome.DeviceMethodResponse
		status, err := r.Status.Int64()
		if err != nil {
			return DeviceJob{}, fmt.Errorf("device job of %q: deviceMethodResponse.status %q is not an integer", w.DeviceID, r.Status.String())
		}
		payload := r.Payload
		if len(payload) == 0 {
			payload = json.RawMessage("null")
		}
		dj.Response = &MethodResult{Status: int(status), Payload: payload}
	}
	if w.Error != nil {
		code := strings.TrimSpace(string(w.Error.Code)) // a number as it is
		var name string
		if json.Unmarshal(w.Error.Code, &name) == nil || code == "null" {
			code = name
		}
		if code != "" || w.Error.Description != "" {
			dj.Error = &DeviceJobError{Code: code, Description: w.Error.Description}
		}
	}
	return dj, nil
}

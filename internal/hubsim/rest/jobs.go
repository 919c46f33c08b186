package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/jobs"
)

// Jobs v2 error codes (iothub-contract.md §1.6, §3).
const (
	CodeJobNotFound       = 404002
	CodeJobAlreadyExists  = 409104
	CodeMaxActiveJobCount = 429004
)

const (
	// maxExecutionTimeInSeconds bounds: a job's history is kept 30 days.
	maxJobExecutionSeconds = 30 * 24 * 3600
)

func init() {
	// The iothub-errorcode header names of the jobs codes (errors.go holds
	// the others).
	errorNames[CodeJobNotFound] = "JobNotFound"
	errorNames[CodeJobAlreadyExists] = "JobAlreadyExists"
	errorNames[CodeMaxActiveJobCount] = "ThrottlingMaxActiveJobCountExceeded"
}

// The jobs v2 API:
//
//	PUT  /jobs/v2/{id}          create (scheduleDeviceMethod, scheduleUpdateTwin)
//	GET  /jobs/v2/{id}          get
//	POST /jobs/v2/{id}/cancel   cancel
//	GET  /jobs/v2/query         list, ?jobType=&jobStatus=, paged with headers
//
// and GET /jobs (import/export jobs: none) in serveImportExportJobs.

// serveJobGet serves GET /jobs/v2/{id}.
func (h *Handler) serveJobGet(c *call) int {
	resp, err := h.jobs.Get(c.job)
	if err != nil {
		return h.fail(c, h.jobError(err, c.job))
	}
	return h.writeJSON(c, resp, nil)
}

// serveJobCancel serves POST /jobs/v2/{id}/cancel.
func (h *Handler) serveJobCancel(c *call) int {
	resp, err := h.jobs.Cancel(c.job)
	if err != nil {
		return h.fail(c, h.jobError(err, c.job))
	}
	return h.writeJSON(c, resp, nil)
}

// serveImportExportJobs serves GET /jobs: the hub's import and export
// jobs (Jobs_GetImportExportJobs, a JSON array of JobProperties). hubsim
// runs none, so the list is empty; `az iot hub job list` reads it beside
// /jobs/v2/query. It is a registry read.
func (h *Handler) serveImportExportJobs(c *call) int {
	return h.writeJSON(c, []struct{}{}, nil)
}

// jobRequest is the JobRequest body of PUT /jobs/v2/{id}.
type jobRequest struct {
	JobID                     *string         `json:"jobId"`
	Type                      *string         `json:"type"`
	CloudToDeviceMethod       json.RawMessage `json:"cloudToDeviceMethod"`
	UpdateTwin                json.RawMessage `json:"updateTwin"`
	QueryCondition            *string         `json:"queryCondition"`
	StartTime                 *string         `json:"startTime"`
	MaxExecutionTimeInSeconds json.RawMessage `json:"maxExecutionTimeInSeconds"`
}

// decodeJob reads the JobRequest of PUT /jobs/v2/{id}. The method is checked exactly
// as a direct call's (name, payload size, timeouts); connectTimeoutInSeconds
// defaults to 0 when absent (the Node SDK never sends it); a null or absent
// startTime means now; an absent maxExecutionTimeInSeconds means 3600.
func decodeJob(_ *Handler, c *call) *hubError {
	id := c.job
	body, err := readBody(c.r)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return newError(CodeIotHubFormatError, "The request body is empty; expected a JobRequest JSON object.")
	}
	var req jobRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return newError(CodeIotHubFormatError, "The request body is not a valid JobRequest JSON object: "+jsonErrorText(err))
	}
	if req.JobID != nil && *req.JobID != "" && *req.JobID != id {
		return newError(CodeArgumentInvalid, "The jobId in the body ('"+displayID(*req.JobID)+"') differs from the job id in the path ('"+displayID(id)+"').")
	}
	if req.Type == nil || *req.Type == "" {
		return newError(CodeArgumentInvalid, "The job type is required (scheduleDeviceMethod or scheduleUpdateTwin).")
	}
	typ, ok := jobs.ParseType(*req.Type)
	if !ok {
		return newError(CodeArgumentInvalid, "Job type '"+displayID(*req.Type)+"' is not supported: /jobs/v2 runs scheduleDeviceMethod and scheduleUpdateTwin jobs.")
	}
	spec := jobs.Spec{ID: id, Type: typ}
	switch typ {
	case jobs.TypeDeviceMethod:
		if len(req.CloudToDeviceMethod) == 0 || string(req.CloudToDeviceMethod) == "null" {
			return newError(CodeArgumentInvalid, "cloudToDeviceMethod is required for a scheduleDeviceMethod job.")
		}
		name, payload, connect, response, herr := parseMethodRequest(req.CloudToDeviceMethod)
		if herr != nil {
			herr.message = "cloudToDeviceMethod: " + herr.message
			return herr
		}
		spec.Method = &jobs.Method{Name: name, Payload: payload, ConnectTimeout: connect, ResponseTimeout: response}
	case jobs.TypeUpdateTwin:
		spec.UpdateTwin = req.UpdateTwin
	}
	if req.QueryCondition != nil {
		spec.QueryCondition = *req.QueryCondition
	}
	if req.StartTime != nil && strings.TrimSpace(*req.StartTime) != "" {
		t, ok := parseHubTime(*req.StartTime)
		if !ok {
			return newError(CodeArgumentInvalid, "startTime '"+displayID(*req.StartTime)+"' is not an ISO-8601 date and time (e.g. 2026-03-04T05:06:07Z).")
		}
		spec.StartTime = t
	}
	secs, ok := parseSeconds(req.MaxExecutionTimeInSeconds, int64(jobs.DefaultMaxExecutionTime/time.Second))
	if !ok || secs < 1 || secs > maxJobExecutionSeconds {
		return newError(CodeArgumentInvalid, "maxExecutionTimeInSeconds must be a whole number within [1; 2592000].")
	}
	spec.MaxExecutionTime = time.Duration(secs) * time.Second

	c.in = spec
	return nil
}

// serveJobCreate starts (or schedules) the job.
func (h *Handler) serveJobCreate(c *call) int {
	resp, err := h.jobs.Create(c.in.(jobs.Spec))
	if err != nil {
		return h.fail(c, h.jobError(err, c.job))
	}
	return h.writeJSON(c, resp, nil)
}

// parseHubTime reads an ISO-8601 time as SDKs send it: RFC 3339 (Node's
// toISOString, Go), or .NET's round-trip form without a zone (taken as UTC).
func parseHubTime(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// decodeJobsQuery reads GET /jobs/v2/query[?jobType=...][&jobStatus=...]:
// a bare JSON array of JobResponse, paged with x-ms-max-item-count and
// x-ms-continuation (absent on the last page), item type jobResponse.
func decodeJobsQuery(_ *Handler, c *call) *hubError {
	r := c.r
	var typ jobs.Type
	if v, _ := queryParam(r.URL.RawQuery, "jobType"); v != "" {
		t, ok := jobs.ParseType(v)
		if !ok {
			return newError(CodeArgumentInvalid, "jobType '"+displayID(v)+"' is not a job type (scheduleDeviceMethod or scheduleUpdateTwin).")
		}
		typ = t
	}
	var status jobs.Status
	if v, _ := queryParam(r.URL.RawQuery, "jobStatus"); v != "" {
		st, ok := jobs.ParseStatus(v)
		if !ok {
			return newError(CodeArgumentInvalid, "jobStatus '"+displayID(v)+"' is not a job status (queued, scheduled, running, completed, failed, cancelled).")
		}
		status = st
	}
	pageSize, herr := maxItemCount(r)
	if herr != nil {
		return herr
	}
	c.in = jobsQuery{typ: typ, status: status, pageSize: pageSize}
	return nil
}

// jobsQuery is a decoded GET /jobs/v2/query.
type jobsQuery struct {
	typ      jobs.Type
	status   jobs.Status
	pageSize int
}

// serveJobsQuery answers one page of the job list.
func (h *Handler) serveJobsQuery(c *call) int {
	in := c.in.(jobsQuery)
	items, next, err := h.jobs.List(in.typ, in.status, c.r.Header.Get("x-ms-continuation"), in.pageSize)
	if err != nil {
		return h.fail(c, h.jobError(err, ""))
	}
	if items == nil {
		items = []jobs.Response{}
	}
	hd := http.Header{"X-Ms-Item-Type": {"jobResponse"}}
	if next != "" {
		hd["X-Ms-Continuation"] = []string{next}
	}
	return h.writeJSON(c, items, hd)
}

// eachDeviceJob adapts the engine's device-job records to the registry's
// Each signature for POST /devices/query ... FROM devices.jobs.
func (h *Handler) eachDeviceJob(_, cursor string, fn func(cursor string, doc map[string]any) bool) {
	h.jobs.EachDeviceJob(cursor, fn)
}

func (h *Handler) jobError(err error, id string) *hubError {
	var ie *jobs.InvalidError
	switch {
	case errors.As(err, &ie):
		return newError(CodeArgumentInvalid, strings.TrimSuffix(ie.Msg, ".")+".")
	case errors.Is(err, jobs.ErrNotFound):
		return newError(CodeJobNotFound, "Job "+displayID(id)+" not found.")
	case errors.Is(err, jobs.ErrExists):
		return newError(CodeJobAlreadyExists, "A job with id "+displayID(id)+" already exists.")
	case errors.Is(err, jobs.ErrTooManyActive):
		return newError(CodeMaxActiveJobCount, "The hub's limit of active jobs is reached: "+h.cfg.Tier+" allows "+
			strconv.Itoa(h.cfg.MaxConcurrentJobs)+" (queued, scheduled and running jobs count); wait for a job to finish or cancel one.")
	case errors.Is(err, jobs.ErrClosed):
		return newError(CodeServiceUnavailable, "The hub is shutting down.")
	}
	h.log.Printf("job %q: %v", id, err)
	return newError(CodeServerError, "An internal server error occurred.")
}

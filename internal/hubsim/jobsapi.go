package hubsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/jobs"
)

// Jobs v2 error codes (iothub-contract.md §1.6, §3).
const (
	codeJobNotFound       = 404002
	codeJobAlreadyExists  = 409104
	codeMaxActiveJobCount = 429004
)

const (
	jobsPathPrefix = "/jobs/v2/"
	jobsQueryPath  = jobsPathPrefix + "query"
	jobsThrottle   = "jobs operations" // throttle class named in 429001 messages
	// maxExecutionTimeInSeconds bounds: a job's history is kept 30 days.
	maxJobExecutionSeconds = 30 * 24 * 3600
)

func init() {
	// The iothub-errorcode header names of the jobs codes (errors.go holds
	// the others).
	errorNames[codeJobNotFound] = "JobNotFound"
	errorNames[codeJobAlreadyExists] = "JobAlreadyExists"
	errorNames[codeMaxActiveJobCount] = "ThrottlingMaxActiveJobCountExceeded"
}

// newJobEngine builds the hub's job engine: device operations through the
// registry, paced by the jobs device-operation throttle, with the tier's
// limit on active jobs (none when unthrottled).
func (s *Server) newJobEngine() *jobs.Engine {
	return jobs.New(jobs.Options{
		Registry:          s.reg,
		Limiter:           s.limiter,
		MaxConcurrentJobs: s.limits.MaxConcurrentJobs,
		Now:               s.now,
		Log:               s.log,
	})
}

// routeJobs serves the jobs v2 API:
//
//	PUT  /jobs/v2/{id}          create (scheduleDeviceMethod, scheduleUpdateTwin)
//	GET  /jobs/v2/{id}          get
//	POST /jobs/v2/{id}/cancel   cancel
//	GET  /jobs/v2/query         list, ?jobType=&jobStatus=, paged with headers
//
// and GET /jobs (import/export jobs: none) in handleImportExportJobs.
func (s *Server) routeJobs(w http.ResponseWriter, r *http.Request, reqID, path string) (route, int) {
	rest := strings.TrimPrefix(path, jobsPathPrefix)
	if path == jobsQueryPath {
		if r.Method != http.MethodGet {
			return routeJobsQuery, s.methodNotAllowed(w, reqID, "GET")
		}
		return routeJobsQuery, s.handleJobsQuery(w, r, reqID)
	}
	idEsc, tail, hasTail := strings.Cut(rest, "/")
	rt := routeJobGet
	switch {
	case hasTail && tail == "cancel":
		rt = routeJobCancel
		if r.Method != http.MethodPost {
			return rt, s.methodNotAllowed(w, reqID, "POST")
		}
	case hasTail || idEsc == "":
		return routeUnknown, s.fail(w, reqID, newError(codeGenericNotFound, "The requested resource "+displayID(r.URL.Path)+" was not found."))
	case r.Method == http.MethodPut:
		rt = routeJobPut
	case r.Method != http.MethodGet:
		return rt, s.methodNotAllowed(w, reqID, "GET, PUT")
	}
	id, err := url.PathUnescape(idEsc)
	if err != nil || id == "" {
		return rt, s.fail(w, reqID, newError(codeArgumentInvalid, "The job id in the path is empty or not percent-encoded correctly."))
	}
	if herr := checkAPIVersion(r); herr != nil {
		return rt, s.fail(w, reqID, herr)
	}
	want := accessRead
	if rt != routeJobGet {
		want = accessInvoke // writing jobs needs ServiceConnect (Entra: Data Contributor)
	}
	if herr := s.auth.authorize(r, want, resource{}); herr != nil {
		return rt, s.fail(w, reqID, herr)
	}
	switch rt {
	case routeJobPut:
		return rt, s.handleJobCreate(w, r, reqID, id)
	case routeJobCancel:
		if st, ok := s.throttleWait(r, reqID, w, s.limiter.AllowJobOp, jobsThrottle); !ok {
			return rt, st
		}
		resp, err := s.jobs.Cancel(id)
		if err != nil {
			return rt, s.fail(w, reqID, s.jobError(err, id))
		}
		return rt, s.writeJSON(w, reqID, resp, nil)
	default:
		if st, ok := s.throttleWait(r, reqID, w, s.limiter.AllowJobOp, jobsThrottle); !ok {
			return rt, st
		}
		resp, err := s.jobs.Get(id)
		if err != nil {
			return rt, s.fail(w, reqID, s.jobError(err, id))
		}
		return rt, s.writeJSON(w, reqID, resp, nil)
	}
}

// handleImportExportJobs serves GET /jobs: the hub's import and export
// jobs (Jobs_GetImportExportJobs, a JSON array of JobProperties). hubsim
// runs none, so the list is empty; `az iot hub job list` reads it beside
// /jobs/v2/query. It is a registry read.
func (s *Server) handleImportExportJobs(w http.ResponseWriter, r *http.Request, reqID string) int {
	if st, ok := s.hubRead(w, r, reqID, resource{}, s.limiter.AllowJobOp, jobsThrottle); !ok {
		return st
	}
	return s.writeJSON(w, reqID, []struct{}{}, nil)
}

// hubRead admits a GET of res (resource{} for a hub-wide one): the method,
// the api-version, a registry read (RegistryRead or above) and the throttle
// class allow. It returns false, with the status written, when the request
// was refused.
func (s *Server) hubRead(w http.ResponseWriter, r *http.Request, reqID string, res resource, allow func() (time.Duration, bool), class string) (int, bool) {
	if r.Method != http.MethodGet {
		return s.methodNotAllowed(w, reqID, "GET"), false
	}
	if herr := checkAPIVersion(r); herr != nil {
		return s.fail(w, reqID, herr), false
	}
	if herr := s.auth.authorize(r, accessRead, res); herr != nil {
		return s.fail(w, reqID, herr), false
	}
	return s.throttleWait(r, reqID, w, allow, class)
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

// handleJobCreate serves PUT /jobs/v2/{id}. The method is checked exactly
// as a direct call's (name, payload size, timeouts); connectTimeoutInSeconds
// defaults to 0 when absent (the Node SDK never sends it); a null or absent
// startTime means now; an absent maxExecutionTimeInSeconds means 3600.
func (s *Server) handleJobCreate(w http.ResponseWriter, r *http.Request, reqID, id string) int {
	body, err := readBody(r)
	if err != nil {
		return s.fail(w, reqID, bodyError(err))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return s.fail(w, reqID, newError(codeIotHubFormatError, "The request body is empty; expected a JobRequest JSON object."))
	}
	var req jobRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return s.fail(w, reqID, newError(codeIotHubFormatError, "The request body is not a valid JobRequest JSON object: "+jsonErrorText(err)))
	}
	if req.JobID != nil && *req.JobID != "" && *req.JobID != id {
		return s.fail(w, reqID, newError(codeArgumentInvalid, "The jobId in the body ('"+displayID(*req.JobID)+"') differs from the job id in the path ('"+displayID(id)+"')."))
	}
	if req.Type == nil || *req.Type == "" {
		return s.fail(w, reqID, newError(codeArgumentInvalid, "The job type is required (scheduleDeviceMethod or scheduleUpdateTwin)."))
	}
	typ, ok := jobs.ParseType(*req.Type)
	if !ok {
		return s.fail(w, reqID, newError(codeArgumentInvalid, "Job type '"+displayID(*req.Type)+"' is not supported: /jobs/v2 runs scheduleDeviceMethod and scheduleUpdateTwin jobs."))
	}
	spec := jobs.Spec{ID: id, Type: typ}
	switch typ {
	case jobs.TypeDeviceMethod:
		if len(req.CloudToDeviceMethod) == 0 || string(req.CloudToDeviceMethod) == "null" {
			return s.fail(w, reqID, newError(codeArgumentInvalid, "cloudToDeviceMethod is required for a scheduleDeviceMethod job."))
		}
		name, payload, connect, response, herr := parseMethodRequest(req.CloudToDeviceMethod)
		if herr != nil {
			herr.message = "cloudToDeviceMethod: " + herr.message
			return s.fail(w, reqID, herr)
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
			return s.fail(w, reqID, newError(codeArgumentInvalid, "startTime '"+displayID(*req.StartTime)+"' is not an ISO-8601 date and time (e.g. 2026-03-04T05:06:07Z)."))
		}
		spec.StartTime = t
	}
	secs, ok := parseSeconds(req.MaxExecutionTimeInSeconds, int64(jobs.DefaultMaxExecutionTime/time.Second))
	if !ok || secs < 1 || secs > maxJobExecutionSeconds {
		return s.fail(w, reqID, newError(codeArgumentInvalid, "maxExecutionTimeInSeconds must be a whole number within [1; 2592000]."))
	}
	spec.MaxExecutionTime = time.Duration(secs) * time.Second

	if st, ok := s.throttleWait(r, reqID, w, s.limiter.AllowJobOp, jobsThrottle); !ok {
		return st
	}
	resp, err := s.jobs.Create(spec)
	if err != nil {
		return s.fail(w, reqID, s.jobError(err, id))
	}
	return s.writeJSON(w, reqID, resp, nil)
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

// handleJobsQuery serves GET /jobs/v2/query[?jobType=...][&jobStatus=...]:
// a bare JSON array of JobResponse, paged with x-ms-max-item-count and
// x-ms-continuation (absent on the last page), item type jobResponse.
func (s *Server) handleJobsQuery(w http.ResponseWriter, r *http.Request, reqID string) int {
	if herr := checkAPIVersion(r); herr != nil {
		return s.fail(w, reqID, herr)
	}
	if herr := s.auth.authorize(r, accessRead, resource{}); herr != nil {
		return s.fail(w, reqID, herr)
	}
	var typ jobs.Type
	if v, _ := queryParam(r.URL.RawQuery, "jobType"); v != "" {
		t, ok := jobs.ParseType(v)
		if !ok {
			return s.fail(w, reqID, newError(codeArgumentInvalid, "jobType '"+displayID(v)+"' is not a job type (scheduleDeviceMethod or scheduleUpdateTwin)."))
		}
		typ = t
	}
	var status jobs.Status
	if v, _ := queryParam(r.URL.RawQuery, "jobStatus"); v != "" {
		st, ok := jobs.ParseStatus(v)
		if !ok {
			return s.fail(w, reqID, newError(codeArgumentInvalid, "jobStatus '"+displayID(v)+"' is not a job status (queued, scheduled, running, completed, failed, cancelled)."))
		}
		status = st
	}
	pageSize := defaultPageSize
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return s.fail(w, reqID, newError(codeArgumentInvalid, "The x-ms-max-item-count header must be a whole number of at least 1."))
		}
		pageSize = min(n, maxPageSize)
	}
	if st, ok := s.throttleWait(r, reqID, w, s.limiter.AllowJobOp, jobsThrottle); !ok {
		return st
	}
	items, next, err := s.jobs.List(typ, status, r.Header.Get("x-ms-continuation"), pageSize)
	if err != nil {
		return s.fail(w, reqID, s.jobError(err, ""))
	}
	if items == nil {
		items = []jobs.Response{}
	}
	h := http.Header{"X-Ms-Item-Type": {"jobResponse"}}
	if next != "" {
		h["X-Ms-Continuation"] = []string{next}
	}
	return s.writeJSON(w, reqID, items, h)
}

// eachDeviceJob adapts the engine's device-job records to the registry's
// Each signature for POST /devices/query ... FROM devices.jobs.
func (s *Server) eachDeviceJob(_, cursor string, fn func(cursor string, doc map[string]any) bool) {
	s.jobs.EachDeviceJob(cursor, fn)
}

func (s *Server) jobError(err error, id string) *hubError {
	var ie *jobs.InvalidError
	switch {
	case errors.As(err, &ie):
		return newError(codeArgumentInvalid, strings.TrimSuffix(ie.Msg, ".")+".")
	case errors.Is(err, jobs.ErrNotFound):
		return newError(codeJobNotFound, "Job "+displayID(id)+" not found.")
	case errors.Is(err, jobs.ErrExists):
		return newError(codeJobAlreadyExists, "A job with id "+displayID(id)+" already exists.")
	case errors.Is(err, jobs.ErrTooManyActive):
		return newError(codeMaxActiveJobCount, "The hub's limit of active jobs is reached: "+s.tierDesc+" allows "+
			strconv.Itoa(s.limits.MaxConcurrentJobs)+" (queued, scheduled and running jobs count); wait for a job to finish or cancel one.")
	case errors.Is(err, jobs.ErrClosed):
		return newError(codeServiceUnavailable, "The hub is shutting down.")
	}
	s.log.Printf("job %q: %v", id, err)
	return newError(codeServerError, "An internal server error occurred.")
}

// writeJSON answers 200 with v as JSON.
func (s *Server) writeJSON(w http.ResponseWriter, reqID string, v any, extra http.Header) int {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Printf("encode answer: %v", err)
		return s.fail(w, reqID, newError(codeServerError, "An internal server error occurred."))
	}
	h := w.Header()
	for k, vs := range extra {
		h[k] = vs
	}
	h["Content-Type"] = contentTypeJSONValue
	h["X-Ms-Request-Id"] = []string{reqID}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return http.StatusOK
}

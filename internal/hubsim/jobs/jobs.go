// Package jobs is hubsim's job engine: IoT Hub's jobs v2 (scheduled direct
// methods and twin updates over a query condition, iothub-contract.md §3).
//
// A job is created queued (start time now or past) or scheduled (start time
// in the future). When it starts, its queryCondition is evaluated against the
// device twins once; every matching device gets a device-job record (status
// pending) and the job is running. Device operations are dispatched one
// after another through the hub's jobs device-operation throttle
// (throttle.Limiter.AllowJobDeviceOp; S1: 10 per second) and run with a
// bounded number in flight. Methods go through Registry.InvokeMethod, so the
// method log, delivery counters and simulated life cycles see job deliveries
// exactly like direct calls (the delivery's request id is
// "jobs/<jobId>/<deviceId>").
//
// Per device: a device that answered is completed whatever its status (the
// status and payload are in outcome.deviceMethodResponse); one that could
// not be reached (offline, no answer in time, gone) is failed with an error
// {code, description}, the code being the hub error name (DeviceNotOnline,
// GatewayTimeout, DeviceNotFound...). deviceJobStatistics counts pending,
// running, succeeded (completed) and failed devices as the job runs;
// canceled devices are in deviceCount only.
//
// A job ends completed when every device was handled, cancelled when Cancel
// stopped it (devices not yet dispatched become canceled; operations in
// flight finish), and failed when maxExecutionTimeInSeconds passed first
// (devices not yet dispatched become canceled). Jobs that are queued,
// scheduled or running are active and count against MaxConcurrentJobs
// (429004 past it).
//
// Choices where the contract is silent: statuses are exactly the wire values
// (jobs "cancelled", device jobs "canceled"); device records appear when the
// job starts, never before (so the device status "scheduled" is not used);
// cancelling a job that already ended returns it unchanged.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dmctl/dmctl/internal/ctxtime"
	"log"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/query"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/hubsim/throttle"
)

// Type is a job type as written on the wire.
type Type string

// The job types the engine runs.
const (
	TypeDeviceMethod Type = "scheduleDeviceMethod"
	TypeUpdateTwin   Type = "scheduleUpdateTwin"
)

// ParseType reads a job type case-insensitively (Node sends
// "scheduleDeviceMethod", C# "ScheduleDeviceMethod").
func ParseType(s string) (Type, bool) {
	for _, t := range []Type{TypeDeviceMethod, TypeUpdateTwin} {
		if strings.EqualFold(s, string(t)) {
			return t, true
		}
	}
	return "", false
}

// Status is a job's status (note the spelling "cancelled").
type Status string

// Job statuses.
const (
	StatusQueued    Status = "queued"
	StatusScheduled Status = "scheduled"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Active reports whether a job with this status counts against the
// concurrent-jobs limit.
func (s Status) Active() bool {
	return s == StatusQueued || s == StatusScheduled || s == StatusRunning
}

// ParseStatus reads a job status case-insensitively; the swagger's other
// values (unknown, enqueued) are accepted for filters and match nothing.
func ParseStatus(s string) (Status, bool) {
	for _, st := range []Status{StatusQueued, StatusScheduled, StatusRunning, StatusCompleted, StatusFailed, StatusCancelled, "unknown", "enqueued"} {
		if strings.EqualFold(s, string(st)) {
			return st, true
		}
	}
	return "", false
}

// DeviceStatus is a device job's status (note the spelling "canceled").
type DeviceStatus string

// Device job statuses.
const (
	DevicePending   DeviceStatus = "pending"
	DeviceRunning   DeviceStatus = "running"
	DeviceCompleted DeviceStatus = "completed"
	DeviceFailed    DeviceStatus = "failed"
	DeviceCanceled  DeviceStatus = "canceled"
)

// Defaults and limits.
const (
	// DefaultMaxExecutionTime applies when a job does not say (the Node SDK
	// default, and what hubsim assumes the hub does).
	DefaultMaxExecutionTime = time.Hour
	// DefaultWorkers bounds a job's device operations in flight.
	DefaultWorkers = 64
	// MaxIDLength is the longest job id accepted.
	MaxIDLength = 128
)

// Method is the direct method a scheduleDeviceMethod job invokes.
type Method struct {
	Name            string
	Payload         json.RawMessage // never empty: JSON null when absent
	ResponseTimeout time.Duration
	ConnectTimeout  time.Duration
}

// Spec is a job to create, already checked by the REST layer for wire-level
// validity (method name, payload size, timeouts).
type Spec struct {
	ID             string
	Type           Type
	Method         *Method         // TypeDeviceMethod
	UpdateTwin     json.RawMessage // TypeUpdateTwin: a twin patch (tags, properties.desired, optional etag)
	QueryCondition string
	// StartTime is when the job should start; zero (or a time in the past)
	// means now.
	StartTime time.Time
	// MaxExecutionTime bounds the run from its start; 0 means
	// DefaultMaxExecutionTime.
	MaxExecutionTime time.Duration
}

// Registry is what the engine needs from the device registry
// (*registry.Registry implements it).
type Registry interface {
	DeviceIDs(registeredOnly bool) []string
	Each(collection, cursor string, fn func(cursor string, doc map[string]any) bool)
	InvokeMethod(ctx context.Context, deviceID, moduleID, method string, payload json.RawMessage,
		connectTimeout, responseTimeout time.Duration) (status int, response json.RawMessage, err error)
	PatchTwin(deviceID, moduleID string, patch map[string]any, ifMatch string) (map[string]any, error)
}

// Options configure an Engine.
type Options struct {
	Registry Registry
	// Limiter paces device operations (AllowJobDeviceOp); nil: unthrottled.
	Limiter *throttle.Limiter
	// MaxConcurrentJobs is the number of active jobs allowed; 0: no limit.
	MaxConcurrentJobs int
	// Workers bounds a job's device operations in flight; 0: DefaultWorkers.
	Workers int
	// Now is the clock for timestamps, start times and deadlines; nil: time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends (then it returns false); nil: a real
	// timer. Waiting for a start time and for the throttle goes through it.
	Sleep func(ctx context.Context, d time.Duration) bool
	// Log receives diagnostics; nil: discarded.
	Log *log.Logger
}

// Errors Create, Get and Cancel return; the REST layer maps them to hub codes.
var (
	// ErrExists: 409 / 409104 JobAlreadyExists.
	ErrExists = errors.New("a job with this id already exists")
	// ErrNotFound: 404 / 404002 JobNotFound.
	ErrNotFound = errors.New("job not found")
	// ErrTooManyActive: 429 / 429004 ThrottlingMaxActiveJobCountExceeded.
	ErrTooManyActive = errors.New("too many active jobs")
	// ErrClosed: the engine is shutting down.
	ErrClosed = errors.New("the job engine is closed")
)

// InvalidError is a job the engine refuses (400 / 400004); Msg says why.
type InvalidError struct{ Msg string }

// Error returns the message.
func (e *InvalidError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

// Statistics are a job's deviceJobStatistics.
type Statistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// MethodJSON is the cloudToDeviceMethod of a JobResponse.
type MethodJSON struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int64           `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int64           `json:"connectTimeoutInSeconds"`
}

// Response is a JobResponse (iothub-contract.md §3.3) as hubsim sends it.
// Times are UTC ISO-8601 with seven fractional digits, as .NET writes them;
// endTime is absent until the job ends.
type Response struct {
	JobID                     string          `json:"jobId"`
	QueryCondition            string          `json:"queryCondition,omitempty"`
	CreatedTime               string          `json:"createdTime,omitempty"`
	StartTime                 string          `json:"startTime,omitempty"`
	EndTime                   string          `json:"endTime,omitempty"`
	MaxExecutionTimeInSeconds int64           `json:"maxExecutionTimeInSeconds"`
	Type                      Type            `json:"type"`
	CloudToDeviceMethod       *MethodJSON     `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                json.RawMessage `json:"updateTwin,omitempty"`
	Status                    Status          `json:"status"`
	FailureReason             string          `json:"failureReason,omitempty"`
	StatusMessage             string          `json:"statusMessage,omitempty"`
	DeviceJobStatistics       Statistics      `json:"deviceJobStatistics"`
}

// FormatTime writes t as the hub does: UTC, seven fractional digits, Z.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// Engine runs jobs. It is safe for concurrent use.
type Engine struct {
	reg     Registry
	limiter *throttle.Limiter
	maxJobs int
	workers int
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) bool
	log     *log.Logger

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	byID   map[string]*job
	order  []*job // by seq (creation order)
	seq    int64
	active int
	closed bool
}

// New returns an engine; Close stops it.
func New(opts Options) *Engine {
	e := &Engine{
		reg:     opts.Registry,
		limiter: opts.Limiter,
		maxJobs: opts.MaxConcurrentJobs,
		workers: opts.Workers,
		now:     opts.Now,
		sleep:   opts.Sleep,
		log:     opts.Log,
		byID:    map[string]*job{},
	}
	if e.workers <= 0 {
		e.workers = DefaultWorkers
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.sleep == nil {
		e.sleep = ctxtime.SleepOK
	}
	if e.log == nil {
		e.log = log.New(discard{}, "", 0)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Close stops dispatching, cancels operations in flight and waits for every
// job's goroutines. Jobs keep their last state.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
}

// job is one job and its device records.
type job struct {
	seq     int64
	spec    Spec
	cond    *query.Condition
	created time.Time
	start   time.Time // when it starts (or started)
	maxExec time.Duration
	active  bool               // counted in Engine.active (under Engine.mu)
	ctx     context.Context    // ends when the job is cancelled, its run ends, or the engine closes
	stop    context.CancelFunc // ends ctx
	done    chan struct{}      // closed when run returns

	mu        sync.Mutex
	status    Status
	end       time.Time
	failure   string
	stats     Statistics
	records   []record // sorted by deviceId, set when the job starts
	cancelled bool
}

// record is one device job.
type record struct {
	deviceID string
	status   DeviceStatus
	start    time.Time
	end      time.Time
	updated  time.Time
	answered bool
	status0  int // the device's status when answered
	payload  any // the device's payload, decoded (json.Number for numbers)
	errCode  string
	errDesc  string
}

// Create checks spec and adds the job: queued when it starts now, scheduled
// when StartTime is in the future. Errors: *InvalidError, ErrExists,
// ErrTooManyActive, ErrClosed.
func (e *Engine) Create(spec Spec) (Response, error) {
	if err := checkID(spec.ID); err != nil {
		return Response{}, err
	}
	switch spec.Type {
	case TypeDeviceMethod:
		if spec.Method == nil || spec.Method.Name == "" {
			return Response{}, invalid("cloudToDeviceMethod with a methodName is required for a %s job", spec.Type)
		}
		if len(spec.Method.Payload) == 0 {
			m := *spec.Method
			m.Payload = json.RawMessage("null")
			spec.Method = &m
		}
	case TypeUpdateTwin:
		if err := checkTwinPatch(spec.UpdateTwin); err != nil {
			return Response{}, err
		}
	default:
		return Response{}, invalid("Job type '%s' is not supported; use scheduleDeviceMethod or scheduleUpdateTwin", spec.Type)
	}
	if strings.TrimSpace(spec.QueryCondition) == "" {
		return Response{}, invalid("queryCondition is required (a WHERE clause without WHERE, or * for every device)")
	}
	cond, err := query.ParseCondition(spec.QueryCondition)
	if err != nil {
		return Response{}, invalid("queryCondition: %v", err)
	}
	if spec.MaxExecutionTime < 0 {
		return Response{}, invalid("maxExecutionTimeInSeconds must be positive")
	}
	now := e.now()
	j := &job{spec: spec, cond: cond, created: now, start: spec.StartTime, maxExec: spec.MaxExecutionTime, status: StatusQueued}
	if j.maxExec == 0 {
		j.maxExec = DefaultMaxExecutionTime
	}
	if j.start.IsZero() || !j.start.After(now) {
		j.start = now
	} else {
		j.status = StatusScheduled
	}
	j.ctx, j.stop = context.WithCancel(e.ctx)
	j.done = make(chan struct{})

	e.mu.Lock()
	switch {
	case e.closed:
		e.mu.Unlock()
		j.stop()
		return Response{}, ErrClosed
	case e.byID[spec.ID] != nil:
		e.mu.Unlock()
		j.stop()
		return Response{}, ErrExists
	case e.maxJobs > 0 && e.active >= e.maxJobs:
		n := e.active
		e.mu.Unlock()
		j.stop()
		return Response{}, fmt.Errorf("%w: %d active, the limit is %d", ErrTooManyActive, n, e.maxJobs)
	}
	e.seq++
	j.seq = e.seq
	j.active = true
	e.active++
	e.byID[spec.ID] = j
	e.order = append(e.order, j)
	e.wg.Add(1)
	e.mu.Unlock()

	r := j.response() // as created: the run may change it at once
	if r.Status == StatusScheduled {
		// IoT Hub answers the creation of a job that starts later with
		// "queued" and says "scheduled" from the next get on (Microsoft's
		// Node service SDK end-to-end test for scheduled jobs expects that).
		r.Status = StatusQueued
	}
	go e.run(j)
	return r, nil
}

// checkID applies IoT Hub's id rules (ASCII letters, digits and
// - : . + % _ # * ? ! ( ) , = @ ; $ ', at most 128) to a job id; "query"
// is refused because GET /jobs/v2/query lists jobs.
func checkID(id string) error {
	if id == "" {
		return invalid("The job id is empty")
	}
	if len(id) > MaxIDLength {
		return invalid("The job id is %d characters long; the maximum is %d", len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-:.+%_#*?!(),=@;$'", c) >= 0 {
			continue
		}
		return invalid("The job id contains %q: job ids may use ASCII letters, digits and - : . + %% _ # * ? ! ( ) , = @ ; $ '", rune(c))
	}
	if strings.EqualFold(id, "query") {
		return invalid("The job id 'query' is reserved (GET /jobs/v2/query lists jobs)")
	}
	return nil
}

// checkTwinPatch checks the updateTwin of a scheduleUpdateTwin job: a JSON
// object; only tags, properties.desired and etag are applied, and an empty
// properties.reported is ignored (registry.EmptyReported).
func checkTwinPatch(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return invalid("updateTwin is required for a scheduleUpdateTwin job")
	}
	var patch map[string]any
	if err := json.Unmarshal(raw, &patch); err != nil || patch == nil {
		return invalid("updateTwin must be a twin JSON object")
	}
	if p, ok := patch["properties"].(map[string]any); ok {
		if r, ok := p["reported"]; ok && !registry.EmptyReported(r) {
			return invalid("updateTwin: properties.reported cannot be written by the service")
		}
	}
	if v, ok := patch["etag"]; ok && v != nil {
		if _, ok := v.(string); !ok {
			return invalid("updateTwin: etag must be a string")
		}
	}
	return nil
}

// Get returns a job (ErrNotFound when there is none).
func (e *Engine) Get(id string) (Response, error) {
	e.mu.Lock()
	j := e.byID[id]
	e.mu.Unlock()
	if j == nil {
		return Response{}, ErrNotFound
	}
	return j.response(), nil
}

// Done returns a channel that is closed once the job's run has ended: it
// started, dispatched and finished (or was cancelled, or the engine closed),
// and no operation of it is in flight any more. It is how a caller (a test)
// knows that nothing more will happen to the job. ErrNotFound when there is
// no such job.
func (e *Engine) Done(id string) (<-chan struct{}, error) {
	e.mu.Lock()
	j := e.byID[id]
	e.mu.Unlock()
	if j == nil {
		return nil, ErrNotFound
	}
	return j.done, nil
}

// WaitSettled returns nil once the run of every job that has ended
// (completed, failed or cancelled) has returned, so no operation of an ended
// job is in flight or still to come; or ctx.Err() when ctx ends first. Jobs
// still queued, scheduled or running are not waited for.
func (e *Engine) WaitSettled(ctx context.Context) error {
	e.mu.Lock()
	all := make([]*job, 0, len(e.byID))
	for _, j := range e.byID {
		all = append(all, j)
	}
	e.mu.Unlock()
	for _, j := range all {
		j.mu.Lock()
		active := j.status.Active()
		j.mu.Unlock()
		if active {
			continue
		}
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Cancel stops a queued, scheduled or running job: its status becomes
// cancelled at once, devices not yet dispatched become canceled, and
// operations in flight finish. A job that already ended is returned as it is.
func (e *Engine) Cancel(id string) (Response, error) {
	e.mu.Lock()
	j := e.byID[id]
	e.mu.Unlock()
	if j == nil {
		return Response{}, ErrNotFound
	}
	now := e.now()
	j.mu.Lock()
	if j.status.Active() {
		j.cancelled = true
		j.status = StatusCancelled
		j.end = now
		j.cancelPendingLocked(now)
	}
	j.mu.Unlock()
	e.release(j)
	j.stop() // stop waiting for the start or for the throttle
	return j.response(), nil
}

// release takes j out of the active count (once).
func (e *Engine) release(j *job) {
	e.mu.Lock()
	if j.active {
		j.active = false
		e.active--
	}
	e.mu.Unlock()
}

// cancelPendingLocked marks every pending device canceled.
func (j *job) cancelPendingLocked(now time.Time) {
	for i := range j.records {
		r := &j.records[i]
		if r.status == DevicePending {
			r.status = DeviceCanceled
			r.updated = now
			j.stats.PendingCount--
		}
	}
}

// Active returns the number of active jobs.
func (e *Engine) Active() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active
}

// run is a job's life: wait for the start, select devices, dispatch, end.
func (e *Engine) run(j *job) {
	defer e.wg.Done()
	defer close(j.done)
	defer e.release(j)
	defer j.stop()

	if d := j.start.Sub(e.now()); d > 0 {
		e.sleep(j.ctx, d)
	}
	if j.ctx.Err() != nil { // cancelled before the start, or shutdown
		return
	}

	ids := e.selectDevices(j)
	now := e.now()
	j.mu.Lock()
	if j.cancelled {
		j.mu.Unlock()
		return
	}
	j.records = make([]record, len(ids))
	for i, id := range ids {
		j.records[i] = record{deviceID: id, status: DevicePending, updated: now}
	}
	j.stats = Statistics{DeviceCount: len(ids), PendingCount: len(ids)}
	j.status = StatusRunning
	j.start = now
	j.mu.Unlock()

	expired := e.dispatch(j, now.Add(j.maxExec))

	if e.ctx.Err() != nil {
		return // shutdown: the job stays as it is
	}
	now = e.now()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cancelled {
		return // Cancel set the status and end time
	}
	j.end = now
	if expired {
		j.cancelPendingLocked(now)
		j.status = StatusFailed
		j.failure = fmt.Sprintf("The job did not finish within its maximum execution time of %d seconds; %d devices were not processed.",
			int64(j.maxExec/time.Second), j.stats.DeviceCount-j.stats.SucceededCount-j.stats.FailedCount)
		return
	}
	j.status = StatusCompleted
}

// selectDevices evaluates the job's condition once, at its start; the ids
// come back sorted.
func (e *Engine) selectDevices(j *job) []string {
	if j.cond.MatchesAll() {
		return e.reg.DeviceIDs(false)
	}
	var ids []string
	e.reg.Each("devices", "", func(cursor string, doc map[string]any) bool {
		if j.cond.Match(doc) {
			ids = append(ids, cursor)
		}
		return e.ctx.Err() == nil
	})
	return ids
}

// dispatch runs the device operations: one token of the jobs
// device-operation throttle each, at most e.workers in flight. It returns
// true when the deadline stopped it with devices left.
func (e *Engine) dispatch(j *job, deadline time.Time) (expired bool) {
	j.mu.Lock()
	n := len(j.records)
	j.mu.Unlock()
	if n == 0 {
		return false
	}
	// Each item carries its dispatch time: the device's startTimeUtc.
	type item struct {
		i  int
		at time.Time
	}
	work := make(chan item)
	var wg sync.WaitGroup
	for range min(e.workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if e.start(j, it.i, it.at) {
					e.operate(j, it.i)
				}
			}
		}()
	}
	defer func() {
		close(work)
		wg.Wait()
	}()
	for i := 0; i < n; i++ {
		j.mu.Lock()
		pending := j.records[i].status == DevicePending
		cancelled := j.cancelled
		j.mu.Unlock()
		if cancelled || e.ctx.Err() != nil {
			return false
		}
		if !pending {
			continue
		}
		if !e.now().Before(deadline) {
			return true
		}
		if !e.takeToken(j) {
			return false
		}
		select {
		case work <- item{i, e.now()}: // the worker marks it running when it takes it
		case <-e.ctx.Done():
			return false
		}
	}
	return false
}

// start marks device i running since at, unless the job was cancelled
// (or the device handled) since it was dispatched.
func (e *Engine) start(j *job, i int, at time.Time) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := &j.records[i]
	if j.cancelled || r.status != DevicePending {
		return false
	}
	r.status, r.start, r.updated = DeviceRunning, at, e.now()
	j.stats.PendingCount--
	j.stats.RunningCount++
	return true
}

// throttleRetry is how long the dispatcher waits when the throttle refuses
// outright (its backlog is full), before asking again.
const throttleRetry = 50 * time.Millisecond

// takeToken waits for one jobs device operation of the throttle budget. It
// returns false when the job was cancelled or the engine closed meanwhile.
func (e *Engine) takeToken(j *job) bool {
	for {
		wait, ok := e.limiter.AllowJobDeviceOp()
		if ok {
			return wait <= 0 || e.sleep(j.ctx, wait)
		}
		if !e.sleep(j.ctx, throttleRetry) {
			return false
		}
	}
}

// operate runs one device operation and records its result.
func (e *Engine) operate(j *job, i int) {
	j.mu.Lock()
	deviceID := j.records[i].deviceID
	j.mu.Unlock()
	ctx := registry.WithRequestID(e.ctx, "jobs/"+j.spec.ID+"/"+deviceID)
	switch j.spec.Type {
	case TypeDeviceMethod:
		m := j.spec.Method
		status, resp, err := e.reg.InvokeMethod(ctx, deviceID, "", m.Name, m.Payload, m.ConnectTimeout, m.ResponseTimeout)
		if err != nil {
			code, desc := deviceError(err, m.ConnectTimeout)
			e.finish(j, i, func(r *record) { r.status, r.errCode, r.errDesc = DeviceFailed, code, desc })
			return
		}
		payload := decodePayload(resp)
		e.finish(j, i, func(r *record) {
			r.status, r.answered, r.status0, r.payload = DeviceCompleted, true, status, payload
		})
	case TypeUpdateTwin:
		var patch map[string]any
		_ = json.Unmarshal(j.spec.UpdateTwin, &patch) // checked in Create; a fresh copy per device
		ifMatch := "*"
		if s, ok := patch["etag"].(string); ok && s != "" {
			ifMatch = s
		}
		_, err := e.reg.PatchTwin(deviceID, "", patch, ifMatch)
		if err != nil {
			code, desc := deviceError(err, 0)
			e.finish(j, i, func(r *record) { r.status, r.errCode, r.errDesc = DeviceFailed, code, desc })
			return
		}
		e.finish(j, i, func(r *record) { r.status = DeviceCompleted })
	}
}

// finish applies a device's result and moves it out of the running count.
func (e *Engine) finish(j *job, i int, set func(r *record)) {
	now := e.now()
	j.mu.Lock()
	defer j.mu.Unlock()
	r := &j.records[i]
	set(r)
	r.end, r.updated = now, now
	j.stats.RunningCount--
	switch r.status {
	case DeviceCompleted:
		j.stats.SucceededCount++
	case DeviceFailed:
		j.stats.FailedCount++
	}
}

// deviceError names why a device operation failed, as a device job's
// error {code, description}.
func deviceError(err error, connect time.Duration) (code, desc string) {
	switch {
	case errors.Is(err, registry.ErrDeviceNotOnline):
		return "DeviceNotOnline", fmt.Sprintf("The device is not online or has not subscribed to direct methods (connect timeout %ds).", int64(connect/time.Second))
	case errors.Is(err, registry.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "GatewayTimeout", "Timed out waiting for the response from device."
	case errors.Is(err, registry.ErrDeviceNotFound):
		return "DeviceNotFound", "The device is no longer registered."
	case errors.Is(err, registry.ErrPreconditionFailed):
		return "PreconditionFailed", "The twin's etag does not match the job's updateTwin etag."
	case errors.Is(err, registry.ErrInvalidPatch):
		return "ArgumentInvalid", err.Error()
	case errors.Is(err, context.Canceled):
		return "ServiceUnavailable", "The hub stopped while the operation was in flight."
	}
	return "ServerError", "The operation failed: " + err.Error()
}

// decodePayload decodes a device's answer for the device-job document
// (numbers as json.Number, so they keep their text); anything undecodable
// is kept as a string.
func decodePayload(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return string(b)
	}
	return v
}

// response renders the job as a JobResponse.
func (j *job) response() Response {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := Response{
		JobID:                     j.spec.ID,
		QueryCondition:            j.spec.QueryCondition,
		CreatedTime:               FormatTime(j.created),
		StartTime:                 FormatTime(j.start),
		MaxExecutionTimeInSeconds: int64(j.maxExec / time.Second),
		Type:                      j.spec.Type,
		Status:                    j.status,
		FailureReason:             j.failure,
		DeviceJobStatistics:       j.stats,
	}
	if !j.end.IsZero() {
		r.EndTime = FormatTime(j.end)
	}
	if m := j.spec.Method; m != nil {
		r.CloudToDeviceMethod = &MethodJSON{
			MethodName:               m.Name,
			Payload:                  m.Payload,
			ResponseTimeoutInSeconds: int64(m.ResponseTimeout / time.Second),
			ConnectTimeoutInSeconds:  int64(m.ConnectTimeout / time.Second),
		}
	}
	if j.spec.Type == TypeUpdateTwin {
		r.UpdateTwin = j.spec.UpdateTwin
	}
	return r
}

// List returns up to limit jobs (limit <= 0: all) in creation order after
// cursor ("" = from the first), keeping those whose type and status match
// the filters ("" = any), and the cursor of the next page ("" when there is
// none). A cursor that is not one List returned is an *InvalidError.
func (e *Engine) List(jobType Type, status Status, cursor string, limit int) ([]Response, string, error) {
	after := int64(0)
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 0 {
			return nil, "", invalid("The continuation token is not valid for this query")
		}
		after = n
	}
	e.mu.Lock()
	jobs := e.order
	e.mu.Unlock()
	i := sort.Search(len(jobs), func(i int) bool { return jobs[i].seq > after })
	var out []Response
	last := int64(0)
	for ; i < len(jobs); i++ {
		j := jobs[i]
		if jobType != "" && j.spec.Type != jobType {
			continue
		}
		r := j.response()
		if status != "" && r.Status != status {
			continue
		}
		if limit > 0 && len(out) == limit {
			return out, strconv.FormatInt(last, 10), nil
		}
		out = append(out, r)
		last = j.seq
	}
	return out, "", nil
}

// EachDeviceJob visits the device-job records of every job, in job creation
// order and then by device id, starting after cursor ("" = from the
// start). fn gets each record's cursor and its devices.jobs document
// (iothub-contract.md §3.5); it returns false to stop. The signature
// matches the registry's Each, so the query endpoint pages both alike.
func (e *Engine) EachDeviceJob(cursor string, fn func(cursor string, doc map[string]any) bool) {
	afterSeq, afterDev := int64(0), ""
	if cursor != "" {
		s, d, _ := strings.Cut(cursor, "/")
		n, err := strconv.ParseInt(s, 10, 64)
		if err == nil {
			afterSeq, afterDev = n, d
		}
	}
	e.mu.Lock()
	jobs := e.order
	e.mu.Unlock()
	i := sort.Search(len(jobs), func(i int) bool { return jobs[i].seq >= afterSeq })
	for ; i < len(jobs); i++ {
		j := jobs[i]
		j.mu.Lock()
		k := 0
		if j.seq == afterSeq && afterDev != "" {
			k = sort.Search(len(j.records), func(k int) bool { return j.records[k].deviceID > afterDev })
		}
		j.mu.Unlock()
		for ; ; k++ {
			j.mu.Lock()
			if k >= len(j.records) {
				j.mu.Unlock()
				break
			}
			doc := j.deviceDocLocked(&j.records[k])
			cur := strconv.FormatInt(j.seq, 10) + "/" + j.records[k].deviceID
			j.mu.Unlock()
			if !fn(cur, doc) {
				return
			}
		}
	}
}

// deviceDocLocked renders a device-job record as its devices.jobs document.
func (j *job) deviceDocLocked(r *record) map[string]any {
	doc := map[string]any{
		"deviceId":               r.deviceID,
		"jobId":                  j.spec.ID,
		"jobType":                string(j.spec.Type),
		"status":                 string(r.status),
		"createdDateTimeUtc":     FormatTime(j.created),
		"lastUpdatedDateTimeUtc": FormatTime(r.updated),
	}
	if !r.start.IsZero() {
		doc["startTimeUtc"] = FormatTime(r.start)
	}
	if !r.end.IsZero() {
		doc["endTimeUtc"] = FormatTime(r.end)
	}
	var resp any
	if r.answered {
		resp = map[string]any{"status": json.Number(strconv.Itoa(r.status0)), "payload": r.payload}
	}
	doc["outcome"] = map[string]any{"deviceMethodResponse": resp}
	if r.errCode != "" {
		doc["error"] = map[string]any{"code": r.errCode, "description": r.errDesc}
	}
	return doc
}

package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/query"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/hubsim/sim"
	"github.com/dmctl/dmctl/internal/hubsim/throttle"
	"github.com/dmctl/dmctl/internal/testkit"
)

func ptr[T any](v T) *T { return &v }

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// newClock returns a fake clock at t0: with auto its Sleep advances the
// clock at once (nothing really waits); otherwise Sleep blocks until the test
// advances the clock past its end or ctx ends.
func newClock(auto bool) *testkit.FakeClock {
	if auto {
		return testkit.NewAutoClock(t0)
	}
	return testkit.NewFakeClock(t0)
}

// waitDone waits for the job's run to end: nothing more happens to it then.
func waitDone(t *testing.T, e *Engine, id string) {
	t.Helper()
	done, err := e.Done(id)
	require.NoError(t, err)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the run of job %s did not end", id)
	}
}

// deliveries records what the registry delivered.
type deliveries struct {
	mu sync.Mutex
	ds []registry.Delivery
}

func (d *deliveries) add(x registry.Delivery) {
	d.mu.Lock()
	d.ds = append(d.ds, x)
	d.mu.Unlock()
}

func (d *deliveries) all() []registry.Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]registry.Delivery(nil), d.ds...)
}

// fleet builds a registry: 6 "plant-a" devices (a-001..a-006), 4 "plant-b"
// devices (b-001..b-004) whose "fail" method answers 500, and 4 offline
// devices (off-1..off-4). Online devices echo any other method.
func fleet(t *testing.T, now func() time.Time) (*registry.Registry, *deliveries) {
	t.Helper()
	reg := registry.NewRegistry(registry.Options{HostName: "127.0.0.1:1", Seed: 7, Now: now})
	spec := &sim.FleetSpec{Groups: []sim.Group{
		{Name: "a", IDPattern: "a-%03d", Count: 6, Tags: map[string]any{"site": "plant-a"},
			Methods: map[string]sim.MethodSpec{"*": {}}},
		{Name: "b", IDPattern: "b-%03d", Count: 4, Tags: map[string]any{"site": "plant-b"},
			Methods: map[string]sim.MethodSpec{"*": {}, "fail": {Status: ptr(500), Payload: json.RawMessage(`{"why":"broken"}`)}}},
		{Name: "off", IDPattern: "off-%d", Count: 4, Connection: sim.Connection{OnlineShare: ptr(0.0)}},
	}}
	require.NoError(t, reg.Apply(spec))
	d := &deliveries{}
	reg.OnDelivered(d.add)
	return reg, d
}

func methodSpec(id, method, cond string) Spec {
	return Spec{ID: id, Type: TypeDeviceMethod, QueryCondition: cond,
		Method: &Method{Name: method, Payload: json.RawMessage(`{"x":1}`), ResponseTimeout: 5 * time.Second}}
}

// waitStatus polls until the job has status want.
func waitStatus(t *testing.T, e *Engine, id string, want Status) Response {
	t.Helper()
	var r Response
	require.Eventually(t, func() bool {
		var err error
		r, err = e.Get(id)
		require.NoError(t, err)
		return r.Status == want
	}, 10*time.Second, 2*time.Millisecond, "job %s should become %s", id, want)
	return r
}

// deviceDocs returns the devices.jobs documents of one job, through the
// query engine as the REST endpoint runs it.
func deviceDocs(t *testing.T, e *Engine, jobID string) []map[string]any {
	t.Helper()
	q, err := query.Parse("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '" + jobID + "'")
	require.NoError(t, err)
	rows, err := q.Run(func(yield func(map[string]any) bool) {
		e.EachDeviceJob("", func(_ string, doc map[string]any) bool { return yield(doc) })
	})
	require.NoError(t, err)
	return rows
}

func TestJobOverTagQueryCompletes(t *testing.T) {
	reg, log := fleet(t, nil)
	e := New(Options{Registry: reg})
	defer e.Close()

	r, err := e.Create(methodSpec("job1", "getTemp", "tags.site = 'plant-a'"))
	require.NoError(t, err)
	assert.Equal(t, StatusQueued, r.Status, "a job starting now is queued")
	assert.Equal(t, "job1", r.JobID)
	assert.Equal(t, TypeDeviceMethod, r.Type)
	assert.EqualValues(t, 3600, r.MaxExecutionTimeInSeconds, "default max execution time")
	require.NotNil(t, r.CloudToDeviceMethod)
	assert.EqualValues(t, 0, r.CloudToDeviceMethod.ConnectTimeoutInSeconds)
	assert.EqualValues(t, 5, r.CloudToDeviceMethod.ResponseTimeoutInSeconds)

	r = waitStatus(t, e, "job1", StatusCompleted)
	assert.Equal(t, Statistics{DeviceCount: 6, SucceededCount: 6}, r.DeviceJobStatistics)
	assert.NotEmpty(t, r.EndTime)

	ds := log.all()
	require.Len(t, ds, 6, "one delivery per matching device")
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.DeviceID)
		assert.Equal(t, "getTemp", d.Method)
		assert.Equal(t, 200, d.Status)
		assert.Equal(t, "jobs/job1/"+d.DeviceID, d.RequestID, "job deliveries are recognisable in the method log")
	}
	sort.Strings(ids)
	assert.Equal(t, []string{"a-001", "a-002", "a-003", "a-004", "a-005", "a-006"}, ids)

	docs := deviceDocs(t, e, "job1")
	require.Len(t, docs, 6)
	for _, doc := range docs {
		assert.Equal(t, "completed", doc["status"])
		assert.Equal(t, "scheduleDeviceMethod", doc["jobType"])
		for _, f := range []string{"startTimeUtc", "endTimeUtc", "createdDateTimeUtc", "lastUpdatedDateTimeUtc"} {
			assert.NotEmpty(t, doc[f], f)
		}
		b, err := json.Marshal(doc["outcome"])
		require.NoError(t, err)
		assert.JSONEq(t, `{"deviceMethodResponse":{"status":200,"payload":{"method":"getTemp","received":{"x":1}}}}`, string(b))
		assert.NotContains(t, doc, "error")
	}
	assert.Equal(t, 0, e.Active())
}

func TestFailingDevices(t *testing.T) {
	reg, _ := fleet(t, nil)
	e := New(Options{Registry: reg})
	defer e.Close()

	_, err := e.Create(methodSpec("mixed", "fail", "tags.site = 'plant-b' OR STARTSWITH(deviceId, 'off-')"))
	require.NoError(t, err)
	r := waitStatus(t, e, "mixed", StatusCompleted)
	assert.Equal(t, Statistics{DeviceCount: 8, SucceededCount: 4, FailedCount: 4}, r.DeviceJobStatistics,
		"a device that answers 500 completed (its answer is data); an offline one failed")

	for _, doc := range deviceDocs(t, e, "mixed") {
		id := doc["deviceId"].(string)
		b, _ := json.Marshal(doc)
		if strings.HasPrefix(id, "off-") {
			assert.Equal(t, "failed", doc["status"], id)
			assert.JSONEq(t, `{"code":"DeviceNotOnline","description":"The device is not online or has not subscribed to direct methods (connect timeout 0s)."}`,
				mustJSON(t, doc["error"]), id)
			assert.Equal(t, map[string]any{"deviceMethodResponse": nil}, doc["outcome"], string(b))
		} else {
			assert.Equal(t, "completed", doc["status"], id)
			assert.JSONEq(t, `{"deviceMethodResponse":{"status":500,"payload":{"why":"broken"}}}`, mustJSON(t, doc["outcome"]), id)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestQueryCondition(t *testing.T) {
	reg, _ := fleet(t, nil)
	e := New(Options{Registry: reg})
	defer e.Close()

	tests := []struct {
		cond string
		want int
	}{
		{"*", 14},
		{"deviceId IN ['a-002', 'b-004', 'nope']", 2},
		{"tags.site = 'plant-b'", 4},
		{"tags.site = 'nowhere'", 0},
		{"connectionState = 'Disconnected'", 4},
	}
	for i, tc := range tests {
		id := "q" + string(rune('a'+i))
		_, err := e.Create(methodSpec(id, "ping", tc.cond))
		require.NoError(t, err, tc.cond)
		r := waitStatus(t, e, id, StatusCompleted)
		assert.Equal(t, tc.want, r.DeviceJobStatistics.DeviceCount, tc.cond)
		assert.Equal(t, tc.cond, r.QueryCondition)
	}

	for _, bad := range []string{"", "   ", "tags.site = ", "SELECT * FROM devices"} {
		_, err := e.Create(methodSpec("bad", "ping", bad))
		var ie *InvalidError
		require.ErrorAs(t, err, &ie, "%q", bad)
		assert.Contains(t, ie.Msg, "queryCondition")
	}
	_, err := e.Get("bad")
	assert.ErrorIs(t, err, ErrNotFound, "a refused job is not stored")
}

func TestStartTimeInTheFuture(t *testing.T) {
	clock := newClock(false)
	reg, log := fleet(t, clock.Now)
	e := New(Options{Registry: reg, Now: clock.Now, Sleep: clock.SleepOK})
	defer e.Close()

	spec := methodSpec("later", "ping", "tags.site = 'plant-a'")
	spec.StartTime = t0.Add(10 * time.Minute)
	r, err := e.Create(spec)
	require.NoError(t, err)
	assert.Equal(t, StatusQueued, r.Status, "the creation answers queued, as IoT Hub does")
	assert.Equal(t, FormatTime(t0.Add(10*time.Minute)), r.StartTime)
	r, err = e.Get("later")
	require.NoError(t, err)
	assert.Equal(t, StatusScheduled, r.Status, "a get after it says scheduled")
	assert.Equal(t, "2026-03-04T05:16:07.0000000Z", r.StartTime, "hub time format")
	assert.Equal(t, 1, e.Active(), "a scheduled job is active")

	clock.WaitForSleepers(t, 1, 5*time.Second) // the job waits for its start
	clock.Advance(9 * time.Minute)
	// Advance wakes the sleepers it reaches before it returns: the job is
	// still asleep, so nothing below can have changed yet.
	require.Equal(t, 1, clock.Sleepers(), "still a minute to go: the job keeps waiting")
	r, _ = e.Get("later")
	assert.Equal(t, StatusScheduled, r.Status, "still a minute to go")
	assert.Empty(t, log.all(), "nothing delivered before the start time")
	assert.Empty(t, deviceDocs(t, e, "later"), "no device records before the start")

	clock.Advance(time.Minute)
	r = waitStatus(t, e, "later", StatusCompleted)
	assert.Equal(t, 6, r.DeviceJobStatistics.SucceededCount)
	assert.Len(t, log.all(), 6)

	// A start time in the past means now.
	spec = methodSpec("past", "ping", "deviceId = 'a-001'")
	spec.StartTime = t0.Add(-time.Hour)
	r, err = e.Create(spec)
	require.NoError(t, err)
	assert.Equal(t, StatusQueued, r.Status)
	waitStatus(t, e, "past", StatusCompleted)
}

func TestCancelScheduledJob(t *testing.T) {
	clock := newClock(false)
	reg, log := fleet(t, clock.Now)
	e := New(Options{Registry: reg, Now: clock.Now, Sleep: clock.SleepOK, MaxConcurrentJobs: 1})
	defer e.Close()

	spec := methodSpec("sched", "ping", "*")
	spec.StartTime = t0.Add(time.Hour)
	_, err := e.Create(spec)
	require.NoError(t, err)

	_, err = e.Create(methodSpec("second", "ping", "*"))
	require.ErrorIs(t, err, ErrTooManyActive, "S1 allows one active job, a scheduled one included")

	r, err := e.Cancel("sched")
	require.NoError(t, err)
	assert.Equal(t, StatusCancelled, r.Status)
	assert.NotEmpty(t, r.EndTime)
	assert.Equal(t, 0, e.Active(), "a cancelled job frees its slot at once")

	clock.Advance(2 * time.Hour) // past the start: a run that ignored the cancel would go now
	waitDone(t, e, "sched")
	r, _ = e.Get("sched")
	assert.Equal(t, StatusCancelled, r.Status)
	assert.Empty(t, log.all(), "a job cancelled before its start delivers nothing")

	_, err = e.Create(methodSpec("second", "ping", "deviceId = 'a-001'"))
	require.NoError(t, err, "the slot is free again")
	r = waitStatus(t, e, "second", StatusCompleted)

	// Cancelling a job that ended returns it unchanged.
	again, err := e.Cancel("second")
	require.NoError(t, err)
	assert.Equal(t, StatusCompleted, again.Status)
	assert.Equal(t, r.EndTime, again.EndTime)

	_, err = e.Cancel("nope")
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = e.Done("nope")
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestCancelRunningJob(t *testing.T) {
	reg := registry.NewRegistry(registry.Options{HostName: "h", Seed: 1})
	lat := sim.Duration(30 * time.Millisecond)
	require.NoError(t, reg.Apply(&sim.FleetSpec{Groups: []sim.Group{{
		IDPattern: "s-%02d", Count: 40,
		Methods: map[string]sim.MethodSpec{"slow": {Latency: &sim.Latency{Dist: "fixed", Value: lat}}},
	}}}))
	log := &deliveries{}
	reg.OnDelivered(log.add)
	e := New(Options{Registry: reg, Workers: 1})
	defer e.Close()

	_, err := e.Create(methodSpec("run", "slow", "*"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(log.all()) >= 2 }, 5*time.Second, time.Millisecond)
	r, err := e.Cancel("run")
	require.NoError(t, err)
	assert.Equal(t, StatusCancelled, r.Status)

	// WaitSettled returns only once the cancelled job's run has ended (the
	// operation in flight finished).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.WaitSettled(ctx))
	done, err := e.Done("run")
	require.NoError(t, err)
	select {
	case <-done:
	default:
		t.Fatal("WaitSettled returned before the cancelled job's run ended")
	}
	r, _ = e.Get("run")
	s := r.DeviceJobStatistics
	assert.Equal(t, StatusCancelled, r.Status, "the run ending does not overwrite cancelled")
	assert.Equal(t, 40, s.DeviceCount)
	assert.Zero(t, s.PendingCount)
	assert.Zero(t, s.RunningCount)
	delivered := len(log.all())
	assert.Equal(t, delivered, s.SucceededCount, "every delivery is a completed device job")
	assert.Less(t, delivered, 40, "cancel stopped the dispatch")

	canceled, completed := 0, 0
	for _, doc := range deviceDocs(t, e, "run") {
		switch doc["status"] {
		case "canceled":
			canceled++
			assert.NotContains(t, doc, "startTimeUtc", "a canceled device never started")
		case "completed":
			completed++
		default:
			t.Errorf("unexpected device status %v", doc["status"])
		}
	}
	assert.Equal(t, 40-delivered, canceled, `device jobs are "canceled" (one l)`)
	assert.Equal(t, delivered, completed)
}

func TestStatisticsWhileRunning(t *testing.T) {
	reg := registry.NewRegistry(registry.Options{HostName: "h", Seed: 1})
	lat := sim.Duration(200 * time.Millisecond)
	require.NoError(t, reg.Apply(&sim.FleetSpec{Groups: []sim.Group{{
		IDPattern: "s-%02d", Count: 6,
		Methods: map[string]sim.MethodSpec{"slow": {Latency: &sim.Latency{Dist: "fixed", Value: lat}}},
	}}}))
	e := New(Options{Registry: reg, Workers: 2})
	defer e.Close()
	_, err := e.Create(methodSpec("stats", "slow", "*"))
	require.NoError(t, err)

	var mid Response
	require.Eventually(t, func() bool {
		mid, _ = e.Get("stats")
		return mid.Status == StatusRunning && mid.DeviceJobStatistics.RunningCount == 2
	}, 5*time.Second, time.Millisecond)
	s := mid.DeviceJobStatistics
	assert.Equal(t, 6, s.DeviceCount)
	assert.Equal(t, 6, s.PendingCount+s.RunningCount+s.SucceededCount+s.FailedCount, "every device is counted once: %+v", s)
	assert.LessOrEqual(t, s.RunningCount, 2, "at most Workers in flight")
	assert.Empty(t, mid.EndTime)

	running := 0
	for _, doc := range deviceDocs(t, e, "stats") {
		if doc["status"] == "running" {
			running++
		}
	}
	assert.LessOrEqual(t, running, 2)

	r := waitStatus(t, e, "stats", StatusCompleted)
	assert.Equal(t, Statistics{DeviceCount: 6, SucceededCount: 6}, r.DeviceJobStatistics)
}

func TestThrottlePacesDeviceOperations(t *testing.T) {
	clock := newClock(true)
	reg := registry.NewRegistry(registry.Options{HostName: "h", Seed: 1, Now: clock.Now})
	require.NoError(t, reg.Apply(sim.GenerateFleet(30)))
	log := &deliveries{}
	reg.OnDelivered(log.add)
	limits, err := throttle.LimitsFor("S1", 1)
	require.NoError(t, err)
	require.EqualValues(t, 10, limits.JobDeviceOpsPerSec)
	e := New(Options{Registry: reg, Limiter: throttle.New(limits, clock.Now), Now: clock.Now, Sleep: clock.SleepOK, Workers: 1})
	defer e.Close()

	_, err = e.Create(methodSpec("paced", "ping", "*"))
	require.NoError(t, err)
	waitStatus(t, e, "paced", StatusCompleted)

	require.Len(t, log.all(), 30)
	// The dispatch times (startTimeUtc, stamped when the throttle let the
	// operation go) on the fake clock. S1: a burst of one second of budget
	// (10 operations), then one every 100 ms, so the 30th goes about 2 s
	// after the first.
	var starts []time.Time
	for _, doc := range deviceDocs(t, e, "paced") {
		st, err := time.Parse(time.RFC3339Nano, doc["startTimeUtc"].(string))
		require.NoError(t, err)
		starts = append(starts, st)
	}
	require.Len(t, starts, 30)
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	span := starts[29].Sub(starts[0])
	assert.GreaterOrEqual(t, span, 1900*time.Millisecond, "30 operations at 10/s with a 10-operation burst")
	assert.LessOrEqual(t, span, 2100*time.Millisecond)
	for k := 12; k < 30; k++ {
		gap := starts[k].Sub(starts[k-1])
		assert.InDelta(t, float64(100*time.Millisecond), float64(gap), float64(time.Millisecond), "gap before operation %d", k+1)
	}
	for k := 1; k < 10; k++ {
		assert.Equal(t, starts[0], starts[k], "the burst goes at once (operation %d)", k+1)
	}

	// Unthrottled (nil limiter): no waiting at all.
	clock2 := newClock(true)
	e2 := New(Options{Registry: reg, Now: clock2.Now, Sleep: clock2.SleepOK})
	defer e2.Close()
	_, err = e2.Create(methodSpec("free", "ping", "*"))
	require.NoError(t, err)
	waitStatus(t, e2, "free", StatusCompleted)
	assert.Empty(t, clock2.Slept())
}

func TestMaxExecutionTime(t *testing.T) {
	reg := registry.NewRegistry(registry.Options{HostName: "h", Seed: 1})
	lat := sim.Duration(40 * time.Millisecond)
	require.NoError(t, reg.Apply(&sim.FleetSpec{Groups: []sim.Group{{
		IDPattern: "s-%02d", Count: 30,
		Methods: map[string]sim.MethodSpec{"slow": {Latency: &sim.Latency{Dist: "fixed", Value: lat}}},
	}}}))
	e := New(Options{Registry: reg, Workers: 1})
	defer e.Close()
	spec := methodSpec("short", "slow", "*")
	spec.MaxExecutionTime = 150 * time.Millisecond
	_, err := e.Create(spec)
	require.NoError(t, err)
	r := waitStatus(t, e, "short", StatusFailed)
	s := r.DeviceJobStatistics
	assert.Less(t, s.SucceededCount, 30)
	assert.Greater(t, s.SucceededCount, 0)
	assert.Zero(t, s.PendingCount, "the rest were canceled")
	assert.Contains(t, r.FailureReason, "maximum execution time")
	assert.Equal(t, 0, e.Active())
}

func TestCreateRefusals(t *testing.T) {
	reg, _ := fleet(t, nil)
	e := New(Options{Registry: reg})
	defer e.Close()
	_, err := e.Create(methodSpec("dup", "ping", "deviceId = 'a-001'"))
	require.NoError(t, err)
	_, err = e.Create(methodSpec("dup", "ping", "deviceId = 'a-002'"))
	assert.ErrorIs(t, err, ErrExists)

	tests := []struct {
		name string
		spec Spec
		msg  string
	}{
		{"empty id", methodSpec("", "ping", "*"), "job id is empty"},
		{"slash in id", methodSpec("a/b", "ping", "*"), `contains '/'`},
		{"long id", methodSpec(strings.Repeat("j", 129), "ping", "*"), "maximum is 128"},
		{"reserved id", methodSpec("query", "ping", "*"), "reserved"},
		{"no method", Spec{ID: "x", Type: TypeDeviceMethod, QueryCondition: "*"}, "methodName"},
		{"bad type", Spec{ID: "x", Type: "export", QueryCondition: "*"}, "not supported"},
		{"twin without patch", Spec{ID: "x", Type: TypeUpdateTwin, QueryCondition: "*"}, "updateTwin is required"},
		{"twin reported", Spec{ID: "x", Type: TypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`{"properties":{"reported":{"a":1}}}`)}, "reported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Create(tc.spec)
			var ie *InvalidError
			require.ErrorAs(t, err, &ie)
			assert.Contains(t, ie.Msg, tc.msg)
		})
	}
}

func TestUpdateTwinJob(t *testing.T) {
	reg, log := fleet(t, nil)
	e := New(Options{Registry: reg})
	defer e.Close()
	_, err := e.Create(Spec{ID: "tw", Type: TypeUpdateTwin, QueryCondition: "tags.site = 'plant-b'",
		UpdateTwin: json.RawMessage(`{"etag":"*","tags":{"ring":"canary"},"properties":{"desired":{"interval":30}}}`)})
	require.NoError(t, err)
	r := waitStatus(t, e, "tw", StatusCompleted)
	assert.Equal(t, Statistics{DeviceCount: 4, SucceededCount: 4}, r.DeviceJobStatistics)
	assert.JSONEq(t, `{"etag":"*","tags":{"ring":"canary"},"properties":{"desired":{"interval":30}}}`, string(r.UpdateTwin))
	assert.Nil(t, r.CloudToDeviceMethod)
	assert.Empty(t, log.all(), "a twin job delivers no method")

	tw, err := reg.Twin("b-003", "")
	require.NoError(t, err)
	assert.Equal(t, "canary", tw["tags"].(map[string]any)["ring"])
	assert.EqualValues(t, 30, tw["properties"].(map[string]any)["desired"].(map[string]any)["interval"])
	tw, _ = reg.Twin("a-001", "")
	assert.NotContains(t, tw["tags"], "ring", "only matching devices")
	for _, doc := range deviceDocs(t, e, "tw") {
		assert.Equal(t, "scheduleUpdateTwin", doc["jobType"])
		assert.Equal(t, "completed", doc["status"])
	}

	// Microsoft's schedule_job.js sample sends "reported": {} beside the
	// desired properties: ignored, as by a real hub.
	_, err = e.Create(Spec{ID: "tw-sample", Type: TypeUpdateTwin, QueryCondition: "tags.site = 'plant-b'",
		UpdateTwin: json.RawMessage(`{"etag":"*","properties":{"desired":{"interval":45},"reported":{}}}`)})
	require.NoError(t, err)
	r = waitStatus(t, e, "tw-sample", StatusCompleted)
	assert.Equal(t, Statistics{DeviceCount: 4, SucceededCount: 4}, r.DeviceJobStatistics)
}

func TestListAndDeviceJobPaging(t *testing.T) {
	reg, _ := fleet(t, nil)
	e := New(Options{Registry: reg})
	defer e.Close()
	for _, id := range []string{"j1", "j2", "j3"} {
		_, err := e.Create(methodSpec(id, "ping", "tags.site = 'plant-a'"))
		require.NoError(t, err)
		waitStatus(t, e, id, StatusCompleted)
	}
	_, err := e.Create(Spec{ID: "t1", Type: TypeUpdateTwin, QueryCondition: "deviceId = 'a-001'", UpdateTwin: json.RawMessage(`{"tags":{"x":1}}`)})
	require.NoError(t, err)
	waitStatus(t, e, "t1", StatusCompleted)

	all, next, err := e.List("", "", "", 0)
	require.NoError(t, err)
	assert.Empty(t, next)
	assert.Equal(t, []string{"j1", "j2", "j3", "t1"}, jobIDs(all))

	methods, _, err := e.List(TypeDeviceMethod, StatusCompleted, "", 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"j1", "j2", "j3"}, jobIDs(methods))
	none, _, err := e.List("", StatusRunning, "", 0)
	require.NoError(t, err)
	assert.Empty(t, none)

	// Pages of 2 over the method jobs.
	p1, next, err := e.List(TypeDeviceMethod, "", "", 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"j1", "j2"}, jobIDs(p1))
	require.NotEmpty(t, next)
	p2, next, err := e.List(TypeDeviceMethod, "", next, 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"j3"}, jobIDs(p2))
	assert.Empty(t, next)
	_, _, err = e.List("", "", "garbage", 2)
	var ie *InvalidError
	assert.ErrorAs(t, err, &ie)

	// Device jobs in pages of 4: 3x6 + 1 records, each exactly once, in
	// job then device order.
	var seen []string
	cursor := ""
	for {
		n := 0
		last := ""
		e.EachDeviceJob(cursor, func(cur string, doc map[string]any) bool {
			if n == 4 {
				return false
			}
			seen = append(seen, doc["jobId"].(string)+":"+doc["deviceId"].(string))
			n++
			last = cur
			return true
		})
		if n < 4 {
			break
		}
		cursor = last
	}
	require.Len(t, seen, 19)
	assert.Equal(t, "j1:a-001", seen[0])
	assert.Equal(t, "j2:a-001", seen[6])
	assert.Equal(t, "t1:a-001", seen[18])
	assert.Len(t, uniq(seen), 19)
}

func jobIDs(rs []Response) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.JobID)
	}
	return out
}

func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

func TestCloseStopsScheduledAndRunningJobs(t *testing.T) {
	reg, _ := fleet(t, nil)
	e := New(Options{Registry: reg})
	spec := methodSpec("far", "ping", "*")
	spec.StartTime = time.Now().Add(time.Hour)
	_, err := e.Create(spec)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { e.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	_, err = e.Create(methodSpec("after", "ping", "*"))
	assert.True(t, errors.Is(err, ErrClosed))
}

func TestParseTypeAndStatus(t *testing.T) {
	for in, want := range map[string]Type{"scheduleDeviceMethod": TypeDeviceMethod, "ScheduleDeviceMethod": TypeDeviceMethod, "SCHEDULEUPDATETWIN": TypeUpdateTwin} {
		got, ok := ParseType(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got)
	}
	_, ok := ParseType("export")
	assert.False(t, ok)
	st, ok := ParseStatus("Cancelled")
	assert.True(t, ok)
	assert.Equal(t, StatusCancelled, st)
	_, ok = ParseStatus("canceled")
	assert.False(t, ok, "jobs are spelled cancelled")
	assert.True(t, StatusScheduled.Active())
	assert.False(t, StatusCompleted.Active())
}

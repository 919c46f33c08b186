package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/testkit"
)

func TestParseCondition(t *testing.T) {
	cases := []struct {
		in      string
		path    string
		negate  bool
		values  []string
		wantErr string
	}{
		{in: "properties.reported.iothubDM.firmwareUpdate.status == applyComplete", path: "properties.reported.iothubDM.firmwareUpdate.status", values: []string{"applyComplete"}},
		{in: "connectionState=Connected", path: "connectionState", values: []string{"Connected"}},
		{in: "properties.reported.fw != '1.2 beta'", path: "properties.reported.fw", negate: true, values: []string{"1.2 beta"}},
		{in: `properties.reported.s in (a, "b c",'d')`, path: "properties.reported.s", values: []string{"a", "b c", "d"}},
		{in: "properties.reported.s NOT IN (x)", path: "properties.reported.s", negate: true, values: []string{"x"}},
		{in: "  tags.n == 3  ", path: "tags.n", values: []string{"3"}},
		{in: "", wantErr: "empty"},
		{in: "reported.fw == 1", wantErr: "top level"},
		{in: "properties..x == 1", wantErr: "empty step"},
		{in: "properties.reported.x", wantErr: "expected PATH == VALUE"},
		{in: "properties.reported.x ~ 1", wantErr: "expected ==, !=, in or not in"},
		{in: "properties.reported.x ==", wantErr: "value is missing"},
		{in: "properties.reported.x == 'open", wantErr: "not closed"},
		{in: "properties.reported.x == 'a' b", wantErr: "unexpected"},
		{in: "properties.reported.x in a, b", wantErr: "parentheses"},
		{in: "properties.reported.x in (a b c", wantErr: "parentheses"},
		{in: "properties.reported.x in (a,,b)", wantErr: "missing"},
		{in: "properties.reported['x'] == 1", wantErr: "names separated by dots"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseCondition(c.in)
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.path, got.PathText())
			assert.Equal(t, c.negate, got.Negate)
			assert.Equal(t, c.values, got.Values)
		})
	}
}

func TestConditionHolds(t *testing.T) {
	doc, err := decodeDoc([]byte(`{"connectionState":"Connected","properties":{"reported":{
		"s":"Apply Firmware Image Complete","n":3,"f":1.5,"b":true,"z":null,"o":{"a":1},"arr":[1]}}}`))
	require.NoError(t, err)
	cases := []struct {
		cond string
		want bool
	}{
		{"properties.reported.s == 'apply firmware image complete'", true}, // case-insensitive
		{"properties.reported.s != 'apply firmware image complete'", false},
		{"properties.reported.s in (x, 'APPLY FIRMWARE IMAGE COMPLETE')", true},
		{"properties.reported.s not in (x, y)", true},
		{"properties.reported.n == 3.0", true},
		{"properties.reported.n == 03", true},
		{"properties.reported.n == three", false},
		{"properties.reported.f != 1.5", false},
		{"properties.reported.b == TRUE", true},
		{"properties.reported.z == null", true},
		{"properties.reported.o == x", false},
		{"properties.reported.o != x", false}, // objects match nothing
		{"properties.reported.arr != x", false},
		{"properties.reported.missing != x", false}, // absent matches nothing
		{"properties.reported.missing == x", false},
		{"connectionState == connected", true},
	}
	for _, c := range cases {
		cond, err := ParseCondition(c.cond)
		require.NoError(t, err, c.cond)
		assert.Equal(t, c.want, cond.Holds(doc), c.cond)
	}
}

// fakeTwins is a hub's twins for the wait phase: documents by device,
// changed by a hook before each read; it answers the wait's own queries.
type fakeTwins struct {
	mu      sync.Mutex
	docs    map[string]map[string]any
	reads   int      // queries and GETs
	queries []string // query texts
	gets    int
	before  func(read int, docs map[string]map[string]any)
	fail    error // returned by every read when set
}

var (
	inList  = regexp.MustCompile(`'((?:[^']|'')*)'`)
	aliases = regexp.MustCompile(`, ([^,]+?) AS v(\d+)`)
)

func (f *fakeTwins) hook() {
	f.reads++
	if f.before != nil {
		f.before(f.reads, f.docs)
	}
}

func (f *fakeTwins) GetTwin(_ context.Context, deviceID, _ string) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	f.hook()
	if f.fail != nil {
		return nil, f.fail
	}
	doc, ok := f.docs[deviceID]
	if !ok {
		return nil, &iothub.ResponseError{StatusCode: 404, ErrorCode: iothub.CodeDeviceNotFound}
	}
	b, err := json.Marshal(doc)
	return b, err
}

func (f *fakeTwins) Query(sql string, opts iothub.QueryOptions) Pager {
	return &fakeTwinPager{f: f, sql: sql, retry: opts.Retry}
}

type fakeTwinPager struct {
	f     *fakeTwins
	sql   string
	done  bool
	retry iothub.PageRetry
}

func (p *fakeTwinPager) More() bool { return !p.done }

// NextPage applies the pager's retry as iothub's pager does.
func (p *fakeTwinPager) NextPage(ctx context.Context) (iothub.QueryPage, error) {
	var page iothub.QueryPage
	fetch := func(context.Context) error {
		var err error
		page, err = p.fetch()
		return err
	}
	err := p.retry.Run(ctx, fetch)
	return page, err
}

func (p *fakeTwinPager) fetch() (iothub.QueryPage, error) {
	f := p.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, p.sql)
	f.hook()
	if f.fail != nil {
		return iothub.QueryPage{}, f.fail
	}
	p.done = true
	_, list, _ := strings.Cut(p.sql, " IN [")
	var items []json.RawMessage
	as := aliases.FindAllStringSubmatch(p.sql, -1)
	for _, m := range inList.FindAllStringSubmatch(list, -1) {
		doc, ok := f.docs[m[1]]
		if !ok {
			continue
		}
		row := map[string]any{"deviceId": m[1]}
		if strings.Contains(p.sql, "version, etag") { // a drift check's query
			row["version"], row["etag"] = doc["version"], doc["etag"]
		}
		for _, a := range as {
			if v, ok := Lookup(doc, strings.Split(a[1], ".")); ok {
				row["v"+a[2]] = v
			}
		}
		b, _ := json.Marshal(row)
		items = append(items, b)
	}
	return iothub.QueryPage{Items: items}, nil
}

// queryCounter counts query waits and never sleeps.
type queryCounter struct {
	mu sync.Mutex
	n  int
}

func (l *queryCounter) Wait(ctx context.Context) error {
	l.mu.Lock()
	l.n++
	l.mu.Unlock()
	return ctx.Err()
}
func (l *queryCounter) Observe(bool)  {}
func (l *queryCounter) Rate() float64 { return 0 }

func fwDoc(status string) map[string]any {
	return map[string]any{"connectionState": "Connected", "properties": map[string]any{"reported": map[string]any{
		"iothubDM": map[string]any{"firmwareUpdate": map[string]any{"status": status}}}}}
}

func runWait(t *testing.T, targets []Target, w *Wait, clk *testkit.FakeClock) []Result {
	t.Helper()
	results, err := NewRunner(funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) { return okAnswer() })).
		RunTargets(context.Background(), targets, RunOptions{
			Request: iothub.MethodRequest{MethodName: "firmwareUpdate"}, Retry: policy(1), Concurrency: 4,
			Now: clk.Now, Sleep: clk.Sleep, Wait: w,
		})
	require.NoError(t, err)
	require.Len(t, results, len(targets))
	return results
}

func TestWaitFirmwareFleet(t *testing.T) {
	clk := newClock()
	twins := &fakeTwins{docs: map[string]map[string]any{}}
	targets := devices(5)
	for _, tg := range targets {
		twins.docs[tg.DeviceID] = fwDoc("waiting")
	}
	// Second round of reads: d0001 and d0002 complete (two spellings),
	// d0003 fails (Node sample spelling), d0004 sets a custom flag, d0005
	// never finishes.
	twins.before = func(read int, docs map[string]map[string]any) {
		if read == 2 {
			docs["d0001"] = fwDoc("applyComplete")
			docs["d0002"] = fwDoc("APPLY FIRMWARE IMAGE COMPLETE")
			docs["d0003"] = fwDoc("Download image failed")
			docs["d0004"] = fwDoc("applying")
			docs["d0004"]["tags"] = map[string]any{"bad": "yes"}
		}
	}
	failIf, err := ParseCondition("tags.bad == yes")
	require.NoError(t, err)
	lim := &queryCounter{}
	w := &Wait{Preset: PresetFirmware, FailIf: []Condition{failIf}, Timeout: 30 * time.Second, Twins: twins, Limiter: lim, Interval: 5 * time.Second}
	got := byDevice(runWait(t, targets, w, clk))

	assert.Equal(t, OutcomeSucceeded, got["d0001"].Outcome)
	assert.Equal(t, OutcomeSucceeded, got["d0002"].Outcome)
	assert.Equal(t, OutcomeWaitFailed, got["d0003"].Outcome)
	assert.Contains(t, got["d0003"].Error.Message, "Download image failed")
	assert.Equal(t, OutcomeWaitFailed, got["d0004"].Outcome)
	assert.Contains(t, got["d0004"].Error.Message, "--fail-if tags.bad == yes")
	assert.Equal(t, OutcomeWaitTimeout, got["d0005"].Outcome)
	assert.Contains(t, got["d0005"].Error.Message, "--wait-timeout 30s")
	assert.JSONEq(t, `{"properties.reported.iothubDM.firmwareUpdate.status":"waiting"}`, string(got["d0005"].WaitValue))
	assert.JSONEq(t, `{"properties.reported.iothubDM.firmwareUpdate.status":"Download image failed"}`, string(got["d0003"].WaitValue))
	for _, r := range got {
		require.NotNil(t, r.Status, r.DeviceID)
		assert.Equal(t, 200, *r.Status, "the method's answer is kept")
		assert.Positive(t, r.WaitMs, r.DeviceID)
	}
	assert.Empty(t, twins.gets > 0 && len(twins.queries) == 0, "a fleet is read with queries")
	assert.Equal(t, len(twins.queries), lim.n, "every query waits for the query pace")
	for _, q := range twins.queries {
		assert.Contains(t, q, "SELECT deviceId, properties.reported.iothubDM.firmwareUpdate.status AS v0, properties.reported.iothubDM.firmwareUpdate.error AS v1, tags.bad AS v2 FROM devices WHERE deviceId IN [")
	}
	// The timeout is 30s of the fake clock at 5s a round: the queries
	// stop once every target is final, a handful of rounds, not a storm.
	assert.LessOrEqual(t, len(twins.queries), 9)
}

func TestWaitBatchesStayUnderTheQueryLimit(t *testing.T) {
	clk := newClock()
	twins := &fakeTwins{docs: map[string]map[string]any{}}
	var targets []Target
	for i := range 2000 {
		id := fmt.Sprintf("a-rather-long-device-identifier-%06d", i)
		targets = append(targets, Target{DeviceID: id})
		twins.docs[id] = fwDoc("applyComplete")
	}
	w := &Wait{Preset: PresetFirmware, Timeout: time.Minute, Twins: twins, Limiter: &queryCounter{}}
	results := runWait(t, targets, w, clk)
	for _, r := range results {
		require.Equal(t, OutcomeSucceeded, r.Outcome, r.DeviceID)
	}
	require.Greater(t, len(twins.queries), 1, "2000 ids do not fit one query")
	seen := 0
	for _, q := range twins.queries {
		assert.LessOrEqual(t, len(q), iothub.MaxQueryLength)
		seen += len(inList.FindAllString(strings.SplitN(q, " IN [", 2)[1], -1))
	}
	assert.Equal(t, 2000, seen+twins.gets, "every device asked for once (a batch of one is a GET)")
	assert.Less(t, twins.gets, 100)
}

func TestWaitRebootSingleDevice(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	rebootDoc := func(state string, dm map[string]any) map[string]any {
		return map[string]any{"connectionState": state, "properties": map[string]any{"reported": map[string]any{
			"iothubDM": map[string]any{"reboot": dm}}}}
	}
	cases := []struct {
		name string
		// states by read number (1-based); the last one stays
		docs []map[string]any
		want Outcome
	}{
		{"lastReboot after the call and connected", []map[string]any{
			rebootDoc("Connected", map[string]any{"lastReboot": ts(start.Add(-time.Hour))}),
			rebootDoc("Disconnected", map[string]any{"lastReboot": ts(start.Add(-time.Hour))}),
			rebootDoc("Connected", map[string]any{"lastReboot": ts(start.Add(3 * time.Second))}),
		}, OutcomeSucceeded},
		{"an old lastReboot never counts", []map[string]any{
			rebootDoc("Connected", map[string]any{"lastReboot": ts(start.Add(-time.Second))}),
		}, OutcomeWaitTimeout},
		{"lastReboot after the call but still disconnected", []map[string]any{
			rebootDoc("Disconnected", map[string]any{"lastReboot": ts(start.Add(time.Second))}),
		}, OutcomeWaitTimeout},
		{"startedRebootTime only: needs a disconnection seen, or 30 s connected (not within a 20 s wait)", []map[string]any{
			rebootDoc("Connected", map[string]any{"startedRebootTime": ts(start.Add(time.Second))}),
		}, OutcomeWaitTimeout},
		{"startedRebootTime, down, up again", []map[string]any{
			rebootDoc("Connected", map[string]any{"startedRebootTime": ts(start.Add(time.Second))}),
			rebootDoc("Disconnected", map[string]any{"startedRebootTime": ts(start.Add(time.Second))}),
			rebootDoc("Connected", map[string]any{"startedRebootTime": ts(start.Add(time.Second))}),
		}, OutcomeSucceeded},
		{"a whole-second time counts for its second", []map[string]any{
			rebootDoc("Connected", map[string]any{"lastReboot": start.Format(time.RFC3339)}),
		}, OutcomeSucceeded},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := testkit.NewAutoClock(start)
			twins := &fakeTwins{docs: map[string]map[string]any{}}
			twins.before = func(read int, docs map[string]map[string]any) {
				docs["d0001"] = c.docs[min(read, len(c.docs))-1]
			}
			w := &Wait{Preset: PresetReboot, Timeout: 20 * time.Second, Twins: twins, Limiter: &queryCounter{}}
			results, err := NewRunner(funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) { return okAnswer() })).
				RunTargets(context.Background(), devices(1), RunOptions{Request: iothub.MethodRequest{MethodName: "reboot"},
					Retry: policy(1), Now: clk.Now, Sleep: clk.Sleep, Wait: w})
			require.NoError(t, err)
			require.Len(t, results, 1)
			assert.Equal(t, c.want, results[0].Outcome)
			assert.Empty(t, twins.queries, "one device is read with GET /twins")
			assert.Positive(t, twins.gets)
			assert.Contains(t, string(results[0].WaitValue), "connectionState")
		})
	}
}

// TestWaitRebootSimulated: Microsoft's dmpatterns_reboot_device.js
// reports startedRebootTime and stays connected; --wait reboot succeeds
// once the device has been seen connected RebootStayedConnected after it,
// not before.
func TestWaitRebootSimulated(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	doc := map[string]any{"connectionState": "Connected", "properties": map[string]any{"reported": map[string]any{
		"iothubDM": map[string]any{"reboot": map[string]any{"startedRebootTime": start.Add(time.Second).Format(time.RFC3339Nano)}}}}}
	clk := testkit.NewAutoClock(start)
	twins := &fakeTwins{docs: map[string]map[string]any{"d0001": doc}}
	w := &Wait{Preset: PresetReboot, Timeout: 2 * time.Minute, Twins: twins, Limiter: &queryCounter{}}
	results, err := NewRunner(funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) { return okAnswer() })).
		RunTargets(context.Background(), devices(1), RunOptions{Request: iothub.MethodRequest{MethodName: "reboot"},
			Retry: policy(1), Now: clk.Now, Sleep: clk.Sleep, Wait: w})
	require.NoError(t, err)
	require.Len(t, results, 1)
	assert.Equal(t, OutcomeSucceeded, results[0].Outcome)
	took := time.Duration(results[0].WaitMs * float64(time.Millisecond))
	assert.GreaterOrEqual(t, took, RebootStayedConnected, "not before the device was seen connected that long")
	assert.Less(t, took, RebootStayedConnected+10*time.Second, "soon after")
}

func TestWaitReadFailures(t *testing.T) {
	clk := newClock()
	twins := &fakeTwins{docs: map[string]map[string]any{"d0001": fwDoc("waiting"), "d0002": fwDoc("waiting")},
		fail: &iothub.ResponseError{StatusCode: 403, ErrorCode: 403004, Message: "no read permission"}}
	w := &Wait{Preset: PresetFirmware, Timeout: time.Minute, Twins: twins, Limiter: &queryCounter{}}
	got := byDevice(runWait(t, devices(2), w, clk))
	for _, r := range got {
		assert.Equal(t, OutcomeWaitFailed, r.Outcome, "a refused read ends the wait at once")
		assert.Contains(t, r.Error.Message, "could not read the twin: 403")
	}

	// Throttled reads keep the targets waiting (retried through
	// internal/retry, then the next round) until the timeout.
	clk = newClock()
	twins = &fakeTwins{docs: map[string]map[string]any{"d0001": fwDoc("waiting"), "d0002": fwDoc("waiting")},
		fail: &iothub.ResponseError{StatusCode: 429, ErrorCode: 429001, Message: "throttled"}}
	w = &Wait{Preset: PresetFirmware, Timeout: 10 * time.Second, Twins: twins, Limiter: &queryCounter{}, Retry: policy(2)}
	got = byDevice(runWait(t, devices(2), w, clk))
	for _, r := range got {
		assert.Equal(t, OutcomeWaitTimeout, r.Outcome)
		assert.Contains(t, r.Error.Message, "last twin read failed: 429")
	}
	assert.Greater(t, twins.reads, 2, "resent and read again in later rounds")
}

func TestWaitInterrupted(t *testing.T) {
	twins := &fakeTwins{docs: map[string]map[string]any{"d0001": fwDoc("waiting"), "d0002": fwDoc("waiting")}}
	ctx, cancel := context.WithCancel(context.Background())
	twins.before = func(int, map[string]map[string]any) { cancel() }
	w := &Wait{Preset: PresetFirmware, Timeout: time.Hour, Twins: twins, Limiter: &queryCounter{}, Interval: time.Millisecond}
	results, err := NewRunner(funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) { return okAnswer() })).
		RunTargets(ctx, devices(2), RunOptions{Request: iothub.MethodRequest{MethodName: "m"}, Retry: policy(1), Wait: w})
	assert.ErrorIs(t, err, context.Canceled)
	require.Len(t, results, 2)
	for _, r := range results {
		assert.Equal(t, OutcomeWaitTimeout, r.Outcome)
		assert.Contains(t, r.Error.Message, "interrupted")
	}
}

func TestWaitJournalRecordsFinalResult(t *testing.T) {
	clk := newClock()
	twins := &fakeTwins{docs: map[string]map[string]any{"d0001": fwDoc("applyFailed"), "d0002": fwDoc("applyComplete")}}
	path := t.TempDir() + "/j.jsonl"
	j, err := CreateJournal(path, JournalHeader{Method: "firmwareUpdate", StartTime: clk.Now()})
	require.NoError(t, err)
	w := &Wait{Preset: PresetFirmware, Timeout: time.Minute, Twins: twins, Limiter: &queryCounter{}}
	_, err = NewRunner(funcInvoker(func(context.Context, Target) (iothub.MethodResult, error) { return okAnswer() })).
		RunTargets(context.Background(), devices(2), RunOptions{Request: iothub.MethodRequest{MethodName: "firmwareUpdate"},
			Retry: policy(1), Now: clk.Now, Sleep: clk.Sleep, Wait: w, Journal: j})
	require.NoError(t, err)
	require.NoError(t, j.Close())
	st, err := ReadJournal(path)
	require.NoError(t, err)
	assert.Equal(t, 1, st.FinalSummary.ByOutcome[OutcomeWaitFailed])
	assert.Equal(t, 1, st.FinalSummary.ByOutcome[OutcomeSucceeded])
	assert.False(t, st.Pending(Target{DeviceID: "d0001"}, false), "a waitFailed target is final: the method ran")
}

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

func readAll(t *testing.T, text, module string) ([]Target, error) {
	t.Helper()
	var got []Target
	err := ReadTargets(strings.NewReader(text), "--devices-file ids.txt", module, func(tg Target) error {
		got = append(got, tg)
		return nil
	})
	return got, err
}

func TestReadTargets(t *testing.T) {
	text := "\xef\xbb\xbfthermostat-1\n" +
		"  thermostat-2  \r\n" +
		"\n# a comment\n" +
		"gw-1/telemetry\n" +
		`{"deviceId":"a#b?c%d","method":"reboot","outcome":"failed","status":500,"payload":{"big":[1,2,3]},"attempts":1}` + "\n" +
		`{"deviceId":"gw-2","moduleId":"edge"}` + "\n" +
		`{"dmctlJournal":1,"method":"reboot"}` + "\n" +
		`{"event":"dispatched","deviceId":"ignored"}` + "\n" +
		"last-without-newline"
	got, err := readAll(t, text, "")
	require.NoError(t, err)
	assert.Equal(t, []Target{
		{DeviceID: "thermostat-1"}, {DeviceID: "thermostat-2"}, {DeviceID: "gw-1", ModuleID: "telemetry"},
		{DeviceID: "a#b?c%d"}, {DeviceID: "gw-2", ModuleID: "edge"}, {DeviceID: "last-without-newline"},
	}, got, "ids, device/module and -o jsonl lines; journal bookkeeping ignored")

	got, err = readAll(t, "d1\nd2/m\n{\"deviceId\":\"d3\",\"moduleId\":\"m\"}\n", "m")
	require.NoError(t, err)
	assert.Equal(t, []Target{{DeviceID: "d1", ModuleID: "m"}, {DeviceID: "d2", ModuleID: "m"}, {DeviceID: "d3", ModuleID: "m"}}, got,
		"--module applies to lines that name none")
}

func TestReadTargetsErrors(t *testing.T) {
	tests := []struct {
		name, text, module, want string
	}{
		{"bad id", "ok-1\nbad id\n", "", `--devices-file ids.txt: line 2: invalid device id "bad id": character " " at position 4 is not allowed; IoT Hub ids may contain only ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '`},
		{"empty module", "d/\n", "", `--devices-file ids.txt: line 1: "d/": nothing after the /; write device or device/module`},
		{"bad module", "d/m/x\n", "", `--devices-file ids.txt: line 1: invalid module id "m/x": character "/" at position 2 is not allowed; IoT Hub ids may contain only ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '`},
		{"json without id", "a\n\n{\"outcome\":\"failed\"}\n", "", `--devices-file ids.txt: line 3: the JSON object has no "deviceId"`},
		{"broken json", "{\"deviceId\":\n", "", `--devices-file ids.txt: line 1: not a JSON object with a deviceId: unexpected end of JSON input`},
		{"wrong type", `{"deviceId":7}`, "", `--devices-file ids.txt: line 1: not a JSON object with a deviceId: json: cannot unmarshal number into Go struct field .deviceId of type string`},
		{"module conflict", "d/a\n", "b", `--devices-file ids.txt: line 1: names module "a" but --module is "b"`},
		{"too long id", strings.Repeat("x", 129) + "\n", "", `--devices-file ids.txt: line 1: invalid device id "` + strings.Repeat("x", 40) + `…": it is 129 characters long; IoT Hub allows at most 128`},
		{"huge line", strings.Repeat("x", MaxLineBytes+10), "", "--devices-file ids.txt: line 1: longer than 4 MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAll(t, tt.text, tt.module)
			var ie *InputError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, tt.want, err.Error())
		})
	}
	stop := errors.New("stop")
	err := ReadTargets(strings.NewReader("a\nb\n"), "x", "", func(Target) error { return stop })
	assert.ErrorIs(t, err, stop, "fn's error comes back as it is")
}

func TestDedupeAndFilter(t *testing.T) {
	src := Dedupe(NewSliceSource([]Target{{DeviceID: "a"}, {DeviceID: "b"}, {DeviceID: "a"}, {DeviceID: "a", ModuleID: "m"}, {DeviceID: "b"}}))
	var got []Target
	for {
		tg, err := src.Next(context.Background())
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, tg)
	}
	assert.Equal(t, []Target{{DeviceID: "a"}, {DeviceID: "b"}, {DeviceID: "a", ModuleID: "m"}}, got)
	assert.Equal(t, 2, src.Dropped)
	assert.False(t, IsRemote(src))

	s := NewTargetSet()
	assert.True(t, s.Add(Target{DeviceID: "x"}))
	assert.False(t, s.Add(Target{DeviceID: "x"}))
	assert.True(t, s.Add(Target{DeviceID: "x", ModuleID: "y"}), "a module of a device is another target")
	assert.Equal(t, 2, s.Len())
	assert.True(t, s.Has(Target{DeviceID: "x"}))
	s.Remove(Target{DeviceID: "x"})
	assert.False(t, s.Has(Target{DeviceID: "x"}))
}

func TestSpoolRoundTrip(t *testing.T) {
	sp, err := NewSpool(t.TempDir())
	require.NoError(t, err)
	want := []Target{{DeviceID: "a#b?c%d"}, {DeviceID: "gw", ModuleID: "m-1"}, {DeviceID: "z"}}
	for _, tg := range want {
		require.NoError(t, sp.Add(tg))
	}
	assert.Equal(t, 3, sp.Len())
	src, err := sp.Source()
	require.NoError(t, err)
	var got []Target
	for {
		tg, err := src.Next(context.Background())
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, tg)
	}
	assert.Equal(t, want, got)
	name := sp.f.Name()
	require.NoError(t, sp.Close())
	_, err = os.Stat(name)
	assert.True(t, os.IsNotExist(err), "Close removes the spool file")
}

type fakePager struct {
	pages [][]string
	fail  []error // per fetch, consumed first
	calls int
	i     int
	retry iothub.PageRetry // as iothub's pager applies QueryOptions.Retry
}

func (p *fakePager) More() bool { return p.i < len(p.pages) }
func (p *fakePager) NextPage(ctx context.Context) (iothub.QueryPage, error) {
	var page iothub.QueryPage
	fetch := func(context.Context) error {
		var err error
		page, err = p.fetch()
		return err
	}
	err := p.retry.Run(ctx, fetch)
	return page, err
}

func (p *fakePager) fetch() (iothub.QueryPage, error) {
	p.calls++
	if len(p.fail) > 0 {
		err := p.fail[0]
		p.fail = p.fail[1:]
		if err != nil {
			return iothub.QueryPage{}, err
		}
	}
	var items []json.RawMessage
	for _, s := range p.pages[p.i] {
		items = append(items, json.RawMessage(s))
	}
	p.i++
	return iothub.QueryPage{Items: items}, nil
}

func TestQuerySource(t *testing.T) {
	pager := &fakePager{
		pages: [][]string{
			{`{"deviceId":"d1","tags":{"x":1}}`, `{"deviceId":"d2"}`},
			{},
			{`{"deviceId":"d3","moduleId":"own"}`},
		},
		fail:  []error{&iothub.ResponseError{StatusCode: 429, ErrorCode: 429001}, nil, &iothub.ResponseError{StatusCode: 503}},
		retry: retry.Pages(policy(3)),
	}
	q := NewQuerySource(pager, "m")
	assert.True(t, IsRemote(q))
	var got []Target
	for {
		tg, err := q.Next(context.Background())
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, tg)
	}
	assert.Equal(t, []Target{{DeviceID: "d1", ModuleID: "m"}, {DeviceID: "d2", ModuleID: "m"}, {DeviceID: "d3", ModuleID: "own"}}, got)
	assert.Equal(t, 3, q.Pages)
	assert.Equal(t, 5, pager.calls, "a throttled or unavailable page is read again (reads are idempotent)")

	bad := NewQuerySource(&fakePager{pages: [][]string{{`{"n":3}`}}}, "")
	_, err := bad.Next(context.Background())
	var qe *QueryError
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, "query page 1: an item has no deviceId: the query must select deviceId (or *) FROM devices or devices.modules", err.Error())

	refusedPager := &fakePager{pages: [][]string{{}}, fail: []error{&iothub.ResponseError{StatusCode: 400, ErrorCode: 400000, Message: "syntax"}}, retry: retry.Pages(policy(3))}
	refused := NewQuerySource(refusedPager, "")
	_, err = refused.Next(context.Background())
	require.ErrorAs(t, err, &qe)
	re, ok := iothub.AsResponseError(err)
	require.True(t, ok)
	assert.Equal(t, 400, re.StatusCode)
	assert.Equal(t, 1, refusedPager.calls, "a 400 is not resent")
}

func TestTallyPercentiles(t *testing.T) {
	tl := NewTally()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 100; i++ {
		tl.Add(Result{Outcome: OutcomeSucceeded, Attempts: 1, StartTime: t0, DurationMs: float64(i)})
	}
	tl.Add(Result{Outcome: OutcomeSkipped, StartTime: t0.Add(time.Hour)})
	s := tl.Summary()
	assert.Equal(t, Percentiles{P50: 50 * time.Millisecond, P95: 95 * time.Millisecond, P99: 99 * time.Millisecond, N: 100}, s.Latency)
	assert.Equal(t, 100*time.Millisecond, s.Elapsed)
	assert.InDelta(t, 1000, s.CallsPerSecond(), 1e-6)

	big := NewTally()
	for i := 1; i <= 20000; i++ {
		big.Add(Result{Outcome: OutcomeSucceeded, Attempts: 1, StartTime: t0, DurationMs: float64(i) / 2}) // 0.5ms..10s
	}
	p := big.Summary().Latency
	assert.Equal(t, 20000, p.N)
	assert.InEpsilon(t, float64(5000*time.Millisecond), float64(p.P50), 0.011, "histogram percentiles are within 1%%")
	assert.InEpsilon(t, float64(9500*time.Millisecond), float64(p.P95), 0.011)
	assert.InEpsilon(t, float64(9900*time.Millisecond), float64(p.P99), 0.011)

	assert.Equal(t, Percentiles{}, NewTally().Summary().Latency)
}

func TestSummaryMerge(t *testing.T) {
	s200 := 200
	a := Summarize([]Result{{Outcome: OutcomeSucceeded, Status: &s200, Attempts: 2}})
	b := Summarize([]Result{{Outcome: OutcomeOffline, Attempts: 1}, {Outcome: OutcomeSucceeded, Status: &s200, Attempts: 1}})
	m := a.Merge(b)
	assert.Equal(t, 3, m.Targets)
	assert.Equal(t, map[Outcome]int{OutcomeSucceeded: 2, OutcomeOffline: 1}, m.ByOutcome)
	assert.Equal(t, map[int]int{200: 2}, m.ByStatus)
	assert.Equal(t, 4, m.Attempts)
	assert.Equal(t, 1, m.Retries)
	assert.Equal(t, 1, a.ByOutcome[OutcomeSucceeded], "Merge does not touch its operands")
}

func TestParseWaves(t *testing.T) {
	p, err := ParseWaves("1, 10%,50%,100%")
	require.NoError(t, err)
	assert.True(t, p.NeedsTotal())
	assert.Equal(t, "1,10%,50%,100%", p.String())
	assert.Equal(t, []int{1, 10, 50, 100}, p.ends(100))
	assert.Equal(t, []int{1, 2, 8, 15}, p.ends(15), "percentages round up")
	assert.Equal(t, []int{1, 2, 3}, p.ends(3))
	assert.Equal(t, []int{1, 2}, p.ends(2), "empty waves (10% and 50% of 2 are no more than the first) are dropped")
	p2, err := ParseWaves("5,20,100%")
	require.NoError(t, err)
	assert.Equal(t, []int{5, 12}, p2.ends(12), "counts past the total are clamped")
	assert.True(t, WavePlan{}.IsZero())
	assert.Equal(t, "batches of 7", WavePlan{BatchSize: 7}.String())

	for in, want := range map[string]string{
		"":            `"": an empty wave (write sizes like 1,10%,50%,100%)`,
		"1,,100%":     `"1,,100%": an empty wave (write sizes like 1,10%,50%,100%)`,
		"10%,5%":      `"5%": waves are cumulative, so each percentage must be larger than the one before`,
		"10,5,100%":   `"5": waves are cumulative, so each count must be larger than the one before`,
		"1,50%":       `the last wave must be 100% so that every target is covered (waves are cumulative, e.g. 1,10%,50%,100%)`,
		"0,100%":      `"0" is not a number of targets (1 or more) or a percentage`,
		"x,100%":      `"x" is not a number of targets (1 or more) or a percentage`,
		"150%":        `"150%" is not a percentage between 0 and 100`,
		"1,1e1%,100%": `"1e1%" is not a percentage between 0 and 100`,
	} {
		_, err := ParseWaves(in)
		if assert.Error(t, err, in) {
			assert.Equal(t, want, err.Error(), in)
		}
	}
}

func TestParseThreshold(t *testing.T) {
	th, err := ParseThreshold("5")
	require.NoError(t, err)
	assert.True(t, th.IsSet())
	assert.False(t, th.Exceeded(5, 10))
	assert.True(t, th.Exceeded(6, 10))
	assert.Equal(t, "5", th.String())
	zero, err := ParseThreshold("0")
	require.NoError(t, err)
	assert.True(t, zero.Exceeded(1, 1), "0 stops at the first failure")
	assert.False(t, zero.Exceeded(0, 100))
	pct, err := ParseThreshold("2.5%")
	require.NoError(t, err)
	assert.Equal(t, "2.5%", pct.String())
	assert.False(t, pct.Exceeded(1, 40))
	assert.True(t, pct.Exceeded(2, 40))
	assert.False(t, pct.Exceeded(0, 0))
	assert.False(t, Threshold{}.Exceeded(100, 100))
	for _, bad := range []string{"", "-1", "x", "0%", "100%", "abc%", "1.5"} {
		_, err := ParseThreshold(bad)
		assert.Error(t, err, bad)
	}
	assert.True(t, Failed(OutcomeOffline))
	assert.True(t, Failed(OutcomeUnknown))
	assert.False(t, Failed(OutcomeSucceeded))
	assert.False(t, Failed(OutcomeSkipped))
}

func TestReadJournalErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
		return p
	}
	header := `{"dmctlJournal":1,"method":"m","startTime":"2026-01-01T00:00:00Z"}` + "\n"
	tests := []struct {
		name, text, want string
	}{
		{"empty", "", "it is empty"},
		{"not a journal", `{"deviceId":"d","outcome":"succeeded"}` + "\n", `line 1: this is not a dmctl journal (the first line has no "dmctlJournal")`},
		{"future version", `{"dmctlJournal":9}` + "\n", "line 1: journal format 9 is not supported (this dmctl reads format 1)"},
		{"garbage in the middle", header + "nope\n" + `{"deviceId":"d","outcome":"succeeded"}` + "\n", "line 2: not a journal line: invalid character 'o' in literal null (expecting 'u')"},
		{"no outcome", header + `{"deviceId":"d"}` + "\n", `line 2: a result with no "outcome"`},
		{"two headers", header + header, "line 2: a second journal header: the file mixes two runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tt.name, " ", "-"), tt.text)
			_, err := ReadJournal(p)
			var je *JournalError
			require.ErrorAs(t, err, &je)
			assert.Equal(t, p+": "+tt.want, err.Error())
		})
	}
	// A line cut short by a crash at the end is ignored.
	p := write("torn", header+`{"event":"dispatched","deviceId":"a","time":"2026-01-01T00:00:01Z"}`+"\n"+`{"deviceId":"a","outcome":"succ`)
	st, err := ReadJournal(p)
	require.NoError(t, err)
	require.Len(t, st.Unknown, 1)
	assert.Equal(t, "a", st.Unknown[0].DeviceID)
	assert.Equal(t, time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC), st.Unknown[0].StartTime)
	assert.Contains(t, st.Unknown[0].Error.Message, "in flight")
	// An event this version does not know is skipped (the format is additive).
	p = write("future-event", header+`{"event":"paused","deviceId":"a"}`+"\n")
	st, err = ReadJournal(p)
	require.NoError(t, err)
	assert.Empty(t, st.Unknown)
	assert.Equal(t, 0, st.Final.Len())
}

func TestJournalLinesReachTheFileBeforeClose(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j")
	j, err := CreateJournal(p, JournalHeader{Method: "m"})
	require.NoError(t, err)
	require.NoError(t, j.Dispatched(Target{DeviceID: "d", ModuleID: "x"}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("Y", 3600))))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 2, "written before Dispatched returns: a killed process loses nothing")
	assert.JSONEq(t, `{"event":"dispatched","deviceId":"d","moduleId":"x","time":"2025-12-31T23:00:00Z"}`, lines[1])
	require.NoError(t, j.Result(Result{DeviceID: "d", ModuleID: "x", Method: "m", Outcome: OutcomeSucceeded, Attempts: 1}))
	require.NoError(t, j.Close())
	require.NoError(t, j.Close(), "Close twice is harmless")
	assert.Error(t, j.Dispatched(Target{DeviceID: "e"}, time.Now()), "writing after Close fails")
	st, err := ReadJournal(p)
	require.NoError(t, err)
	assert.True(t, st.Final.Has(Target{DeviceID: "d", ModuleID: "x"}))
}

func TestOutcomeUnknownJSON(t *testing.T) {
	r := Result{DeviceID: "d", Method: "m", Outcome: OutcomeUnknown, Attempts: 1, Error: &ResultError{Message: "lost"}, StartTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"deviceId":"d","method":"m","outcome":"unknown","error":{"message":"lost"},"attempts":1,"startTime":"2026-01-01T00:00:00Z","durationMs":0}`, string(b))
	assert.Contains(t, fmt.Sprint(Outcomes), "unknown")
	assert.Equal(t, OutcomeUnknown, OutcomeOf(iothub.MethodResult{}, &iothub.TransportError{Err: errors.New("EOF"), RequestWritten: true}, StatusSet{}))
	assert.Equal(t, OutcomeError, OutcomeOf(iothub.MethodResult{}, &iothub.TransportError{Err: errors.New("refused")}, StatusSet{}))
}

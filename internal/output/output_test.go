package output

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/fleet"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func intp(n int) *int { return &n }

func sampleResults() []fleet.Result {
	return []fleet.Result{
		{DeviceID: "thermostat-2", Method: "reboot", Outcome: fleet.OutcomeFailed, Status: intp(500),
			Payload: json.RawMessage(`{"error":"disk full"}`), Attempts: 1, StartTime: t0, DurationMs: 12.5},
		{DeviceID: "thermostat-1", Method: "reboot", Outcome: fleet.OutcomeSucceeded, Status: intp(200),
			Payload: json.RawMessage(`{"rebooted":true,"at":"2026-03-04T05:06:07Z","note":"a rather long payload to be cut"}`), Attempts: 2, StartTime: t0, DurationMs: 1250},
		{DeviceID: "a#b?c%d", Method: "reboot", Outcome: fleet.OutcomeOffline, Attempts: 1, StartTime: t0, DurationMs: 0.8,
			Error: &fleet.ResultError{HTTPStatus: 404, Code: 404103, CodeName: "DeviceNotOnline", Message: "The device is not online.", TrackingID: "trk-9"}},
	}
}

func render(t *testing.T, format Format, tty bool, results []fleet.Result) (string, []string) {
	t.Helper()
	ios, _, out, _ := Test()
	ios.SetStdoutTTY(tty)
	p, err := NewResultPrinter(format, ios)
	require.NoError(t, err)
	var afterEachAdd []string
	for _, r := range results {
		require.NoError(t, p.Add(r))
		afterEachAdd = append(afterEachAdd, out.String())
	}
	require.NoError(t, p.Flush())
	return out.String(), afterEachAdd
}

func TestTablePlain(t *testing.T) {
	got, streamed := render(t, FormatTable, false, sampleResults())
	want := "" +
		"DEVICE         OUTCOME     STATUS   DURATION\n" +
		"a#b?c%d        offline     -        800µs\n" +
		"thermostat-1   succeeded   200      1.2s (2 attempts)\n" +
		"thermostat-2   failed      500      12ms\n"
	assert.Equal(t, want, got)
	assert.Equal(t, []string{"", "", ""}, streamed, "tables print once, at the end")
	assert.NotContains(t, got, "\x1b[")
}

func TestTableColorOnTTYOnly(t *testing.T) {
	got, _ := render(t, FormatTable, true, sampleResults())
	assert.Contains(t, got, ansiGreen+"succeeded"+ansiReset)
	assert.Contains(t, got, ansiRed+"failed"+ansiReset)
	assert.Contains(t, got, ansiYellow+"offline"+ansiReset)
	// Colour does not disturb the alignment of what is visible.
	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	require.Len(t, lines, 4)
	col := strings.Index(lines[0], "STATUS")
	for _, l := range lines[1:] {
		visible := stripANSI(l)
		require.Greater(t, len(visible), col)
		assert.NotEqual(t, byte(' '), visible[col], visible)
		assert.Equal(t, "   ", visible[col-3:col], visible)
	}

	ios, _, out, _ := Test()
	ios.SetStdoutTTY(true)
	ios.SetNoColor(true)
	p, err := NewResultPrinter(FormatTable, ios)
	require.NoError(t, err)
	for _, r := range sampleResults() {
		require.NoError(t, p.Add(r))
	}
	require.NoError(t, p.Flush())
	assert.NotContains(t, out.String(), "\x1b[", "NO_COLOR turns colour off even on a terminal")
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && s[i] != 'm' {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestTableWithModuleColumn(t *testing.T) {
	results := []fleet.Result{
		{DeviceID: "gw-1", ModuleID: "telemetry", Outcome: fleet.OutcomeSucceeded, Status: intp(200), Attempts: 1, DurationMs: 5},
		{DeviceID: "gw-1", Outcome: fleet.OutcomeSkipped},
	}
	got, _ := render(t, FormatTable, false, results)
	want := "" +
		"DEVICE   MODULE      OUTCOME     STATUS   DURATION\n" +
		"gw-1                 skipped     -        -\n" +
		"gw-1     telemetry   succeeded   200      5ms\n"
	assert.Equal(t, want, got)
}

func TestWide(t *testing.T) {
	got, _ := render(t, FormatWide, false, sampleResults())
	want := "" +
		"DEVICE         OUTCOME     STATUS   DURATION   ATTEMPTS   ERROR CODE               TRACKING ID   PAYLOAD\n" +
		"a#b?c%d        offline     -        800µs      1          404103 DeviceNotOnline   trk-9         -\n" +
		"thermostat-1   succeeded   200      1.2s       2          -                        -             {\"rebooted\":true,\"at\":\"2026-03-04T05:...\n" +
		"thermostat-2   failed      500      12ms       1          -                        -             {\"error\":\"disk full\"}\n"
	assert.Equal(t, want, got)
}

func TestJSON(t *testing.T) {
	for _, tty := range []bool{false, true} {
		got, streamed := render(t, FormatJSON, tty, sampleResults())
		assert.Equal(t, []string{"", "", ""}, streamed)
		var back []map[string]any
		require.NoError(t, json.Unmarshal([]byte(got), &back))
		require.Len(t, back, 3)
		var ids []any
		for _, r := range back {
			ids = append(ids, r["deviceId"])
		}
		assert.Equal(t, []any{"a#b?c%d", "thermostat-1", "thermostat-2"}, ids, "json is sorted by device, whatever the completion order")
		assert.Equal(t, "failed", back[2]["outcome"])
		assert.Equal(t, float64(500), back[2]["status"])
		assert.Equal(t, "2026-03-04T05:06:07Z", back[2]["startTime"])
		assert.Equal(t, map[string]any{"error": "disk full"}, back[2]["payload"])
		assert.Equal(t, float64(404103), back[0]["error"].(map[string]any)["code"])
		assert.NotContains(t, got, "\x1b[", "no colour in JSON, even on a terminal")
		assert.True(t, strings.HasPrefix(got, "[\n  {\n"), "indented")
	}
	empty, _ := render(t, FormatJSON, false, nil)
	assert.Equal(t, "[]\n", empty)
}

func TestJSONLStreams(t *testing.T) {
	results := sampleResults()
	results[0].Payload = json.RawMessage(`{"html":"<b>&</b>"}`)
	got, streamed := render(t, FormatJSONL, true, results)
	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	require.Len(t, lines, 3)
	for i, l := range lines {
		assert.Equal(t, strings.Join(lines[:i+1], "\n")+"\n", streamed[i], "line %d is written as soon as the result is added", i)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
	}
	assert.Contains(t, lines[0], `"payload":{"html":"<b>&</b>"}`, "HTML is not escaped")
	assert.Contains(t, lines[2], `"deviceId":"a#b?c%d"`)
}

func TestName(t *testing.T) {
	results := append(sampleResults(), fleet.Result{DeviceID: "gw-1", ModuleID: "mod", Outcome: fleet.OutcomeSucceeded})
	got, _ := render(t, FormatName, true, results)
	assert.Equal(t, "a#b?c%d\ngw-1/mod\nthermostat-1\nthermostat-2\n", got)
}

func TestParseFormat(t *testing.T) {
	for _, f := range Formats() {
		got, err := ParseFormat(f)
		require.NoError(t, err)
		assert.Equal(t, Format(f), got)
	}
	_, err := ParseFormat("yaml")
	require.Error(t, err)
	assert.Equal(t, `"yaml" is not an output format (use one of table, wide, json, jsonl, name)`, err.Error())
	_, err = NewResultPrinter("xml", &IOStreams{})
	assert.Error(t, err)
}

func TestWriteSummary(t *testing.T) {
	s := fleet.Summarize(sampleResults())
	var b strings.Builder
	require.NoError(t, WriteSummary(&b, s, false))
	assert.Equal(t, "3 targets: 1 succeeded, 1 failed, 1 offline; device statuses 200 x1, 500 x1\n"+
		"4 calls (1 retry) in 1.2s, 3.20 calls/s; latency p50 12ms, p95 1.2s, p99 1.2s\n", b.String())

	b.Reset()
	one := fleet.Summarize([]fleet.Result{{Outcome: fleet.OutcomeSucceeded, Status: intp(200), Attempts: 1, StartTime: t0, DurationMs: 3}})
	require.NoError(t, WriteSummary(&b, one, true))
	assert.Equal(t, "1 target: 1 "+ansiGreen+"succeeded"+ansiReset+"; device status 200 x1\n"+
		"1 call (0 retries) in 3ms, 333 calls/s; latency p50 3ms, p95 3ms, p99 3ms\n", b.String())
}

func TestWriteProblems(t *testing.T) {
	var b strings.Builder
	require.NoError(t, WriteProblems(&b, sampleResults(), 0, false))
	assert.Equal(t, ""+
		"thermostat-2: failed: the device answered status 500: disk full\n"+
		"a#b?c%d: offline: 404 404103 DeviceNotOnline: The device is not online. (tracking id trk-9)\n", b.String())

	var many []fleet.Result
	for i := 0; i < 5; i++ {
		many = append(many, fleet.Result{DeviceID: "d", Outcome: fleet.OutcomeError, Attempts: 3, Error: &fleet.ResultError{Message: "connection refused\x1b[31m"}})
	}
	b.Reset()
	require.NoError(t, WriteProblems(&b, many, 2, false))
	assert.Equal(t, ""+
		"d: error: connection refused[31m (after 3 attempts)\n"+
		"d: error: connection refused[31m (after 3 attempts)\n"+
		"... and 3 more; use -o wide or -o json to see every result\n", b.String(), "control characters are dropped, the list is capped")
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "0µs",
		850 * time.Microsecond:  "850µs",
		12 * time.Millisecond:   "12ms",
		1250 * time.Millisecond: "1.2s",
		59 * time.Second:        "59.0s",
		125 * time.Second:       "2m5s",
	} {
		assert.Equal(t, want, FormatDuration(d), d.String())
	}
}

func TestTestStreams(t *testing.T) {
	ios, _, _, _ := Test()
	assert.False(t, ios.IsStdoutTTY())
	assert.False(t, ios.ColorEnabled())
	ios.SetStdoutTTY(true)
	ios.SetStderrTTY(true)
	ios.SetStdinTTY(true)
	assert.True(t, ios.IsStdinTTY())
	assert.True(t, ios.ColorEnabled())
	assert.True(t, ios.ErrColorEnabled())
	ios.SetNoColor(true)
	assert.False(t, ios.ColorEnabled())
	assert.False(t, ios.ErrColorEnabled())
}

func TestSystemReadsNoColor(t *testing.T) {
	s := System(func(k string) (string, bool) { return "", k == "NO_COLOR" })
	s.SetStdoutTTY(true)
	assert.False(t, s.ColorEnabled())
	s = System(func(string) (string, bool) { return "", false })
	s.SetStdoutTTY(true)
	assert.True(t, s.ColorEnabled())
}

func TestDeviceMessage(t *testing.T) {
	for payload, want := range map[string]string{
		`{"message":"Method 'x' is not implemented by this device"}`: "Method 'x' is not implemented by this device",
		`"low battery"`:                           "low battery",
		`{"error":"busy"}`:                        "busy",
		`{"error":{"code":7,"message":"denied"}}`: "denied",
		`{"code": 7}`:                             `{"code":7}`,
		`null`:                                    "",
		``:                                        "",
		`{"message":"a\n   b"}`:                   "a b",
	} {
		assert.Equal(t, want, DeviceMessage(json.RawMessage(payload)), payload)
	}
	long := `{"message":"` + strings.Repeat("x", 500) + `"}`
	assert.Len(t, []rune(DeviceMessage(json.RawMessage(long))), maxDeviceMessage)
}

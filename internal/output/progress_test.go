package output

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/testkit"
)

func TestProgressLine(t *testing.T) {
	b := NewProgressBar(&bytes.Buffer{}, nil, nil)
	tests := []struct {
		name string
		s    fleet.ProgressSnapshot
		rate float64
		want string
	}{
		{"known total", fleet.ProgressSnapshot{Total: 10000, Done: 3750, Failed: 3}, 812,
			"[#########---------------]  3,750/10,000  37%  812/s  ETA 8s  3 failed"},
		{"waves and throttles", fleet.ProgressSnapshot{Total: 200, Done: 200, Throttles: 4, Wave: 4, Waves: 4}, 40,
			"[########################]  200/200  100%  40.0/s  4 throttled  wave 4/4"},
		{"streaming query", fleet.ProgressSnapshot{Seen: 2500, Done: 1200, Wave: 2}, 2.5,
			"1,200 done  2,500 read  2.50/s  wave 2"},
		{"parked targets", fleet.ProgressSnapshot{Total: 100, Done: 60, Failed: 2, Parked: 12}, 5,
			"[##############----------]  60/100  60%  5.00/s  ETA 8s  2 failed  12 parked"},
		{"nothing yet", fleet.ProgressSnapshot{Total: 5}, 0,
			"[------------------------]  0/5  0%  0.00/s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, b.Line(tt.s, tt.rate))
		})
	}
}

func TestProgressBarDrawsAndClears(t *testing.T) {
	var w testkit.SyncBuffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	done := 0
	b := NewProgressBar(&w, func() fleet.ProgressSnapshot { return fleet.ProgressSnapshot{Total: 100, Done: done} },
		func() time.Time { return now })
	b.Draw()
	now = now.Add(2 * time.Second)
	done = 50
	b.Draw()
	assert.Equal(t, "\r\x1b[K[------------------------]  0/100  0%  0.00/s"+
		"\r\x1b[K[############------------]  50/100  50%  25.0/s  ETA 2s", w.String())
	var out bytes.Buffer
	sw := SuspendingWriter(b, &out)
	_, err := sw.Write([]byte("data\n"))
	require.NoError(t, err)
	assert.Equal(t, "data\n", out.String())
	assert.True(t, strings.HasSuffix(w.String(), "\r\x1b[K"), "the bar is cleared before data is written to the terminal")
	b.Stop()
	assert.True(t, strings.HasSuffix(w.String(), "\r\x1b[K"))
}

func TestProblemsStreaming(t *testing.T) {
	p := NewProblems(2)
	p.Add(fleet.Result{DeviceID: "ok", Outcome: fleet.OutcomeSucceeded})
	p.Add(fleet.Result{DeviceID: "s", Outcome: fleet.OutcomeSkipped})
	p.Add(fleet.Result{DeviceID: "u", Outcome: fleet.OutcomeUnknown, Attempts: 1, Error: &fleet.ResultError{Message: "lost"}})
	p.Add(fleet.Result{DeviceID: "f", Outcome: fleet.OutcomeFailed, Status: intp(500), Payload: json.RawMessage(`"big"`)})
	p.Add(fleet.Result{DeviceID: "x", Outcome: fleet.OutcomeError, Error: &fleet.ResultError{Message: "boom"}})
	var b strings.Builder
	require.NoError(t, p.Write(&b, false))
	assert.Equal(t, "u: unknown: lost\nf: failed: the device answered status 500: big\n... and 1 more; use -o wide or -o json to see every result\n", b.String())
	assert.Nil(t, p.shown[1].Payload, "payloads are not held")
}

func TestSummaryThrottlesAndRetries(t *testing.T) {
	s := fleet.Summary{Targets: 2, ByOutcome: map[fleet.Outcome]int{fleet.OutcomeSucceeded: 2}, Attempts: 5, Retries: 3, Throttles: 3,
		Elapsed: 2 * time.Second, Latency: fleet.Percentiles{P50: time.Second, P95: 1500 * time.Millisecond, P99: 1900 * time.Millisecond, N: 2}}
	var b strings.Builder
	require.NoError(t, WriteSummary(&b, s, false))
	assert.Equal(t, "2 targets: 2 succeeded\n5 calls (3 retries, 3 throttled with 429) in 2.0s, 2.50 calls/s; latency p50 1.0s, p95 1.5s, p99 1.9s\n", b.String())
	b.Reset()
	require.NoError(t, WriteSummary(&b, fleet.Summary{ByOutcome: map[fleet.Outcome]int{}}, false))
	assert.Equal(t, "0 targets: nothing to do\n0 calls (0 retries) in 0µs\n", b.String())
	b.Reset()
	require.NoError(t, WriteSummary(&b, fleet.Summary{Targets: 3, ByOutcome: map[fleet.Outcome]int{fleet.OutcomeSucceeded: 2, fleet.OutcomeOffline: 1},
		ByStatus: map[int]int{200: 2}, Attempts: 5, Parked: 3, Unparked: 2}, false))
	assert.Equal(t, "3 targets: 2 succeeded, 1 offline; device status 200 x2; 3 targets parked offline (--until-online), 2 calls once connected\n5 calls (0 retries) in 0µs\n", b.String())
}

func TestDryRunOutput(t *testing.T) {
	d := DryRun{Method: "reboot", Hub: "h.example", Targets: 12, Sample: []fleet.Target{{DeviceID: "a"}, {DeviceID: "b", ModuleID: "m"}},
		Rate: 40, RateSource: "--rate", Estimate: 300 * time.Millisecond, Waves: "1,100%"}
	var b strings.Builder
	require.NoError(t, WriteDryRun(&b, d, FormatTable))
	assert.Equal(t, "Dry run: would invoke \"reboot\" on 12 targets on hub h.example (nothing was sent).\n  a\n  b/m\n  ... and 10 more\n"+
		"Waves: 1,100%\nEstimated duration: 300ms at 40.0 calls/s (--rate)\n", b.String())
	b.Reset()
	require.NoError(t, WriteDryRun(&b, d, FormatJSONL))
	assert.JSONEq(t, `{"dryRun":true,"method":"reboot","hub":"h.example","targets":12,"sample":[{"deviceId":"a"},{"deviceId":"b","moduleId":"m"}],
		"rate":40,"rateSource":"--rate","estimatedSeconds":0.3,"waves":"1,100%"}`, b.String())
	assert.Equal(t, 1, strings.Count(b.String(), "\n"), "jsonl is one line")
}

func TestFlushingWriter(t *testing.T) {
	var dst testkit.SyncBuffer
	f := NewFlushingWriter(&dst, time.Hour)
	_, err := f.Write([]byte("one\n"))
	require.NoError(t, err)
	assert.Empty(t, dst.String(), "buffered until a flush")
	require.NoError(t, f.Flush())
	assert.Equal(t, "one\n", dst.String())
	_, err = f.Write([]byte("two\n"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.Equal(t, "one\ntwo\n", dst.String())
	require.NoError(t, f.Close(), "closing twice is harmless")

	var ticked testkit.SyncBuffer
	g := NewFlushingWriter(&ticked, 5*time.Millisecond)
	defer g.Close()
	_, err = g.Write([]byte("soon\n"))
	require.NoError(t, err)
	ticked.WaitUntil(t, 5*time.Second, "a flush by the ticker", func(s string) bool { return s == "soon\n" })
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		assert.Equal(t, want, Thousands(n))
	}
}

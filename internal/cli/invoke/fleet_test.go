package invoke

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

// pager is a fake query pager over fixed pages of device ids.
type pager struct {
	pages [][]string
	i     int
	err   error
	sql   string
}

func (p *pager) More() bool { return p.i < len(p.pages) }
func (p *pager) NextPage(context.Context) (iothub.QueryPage, error) {
	if p.err != nil {
		return iothub.QueryPage{}, p.err
	}
	var items []json.RawMessage
	for _, id := range p.pages[p.i] {
		items = append(items, json.RawMessage(fmt.Sprintf(`{"deviceId":%q}`, id)))
	}
	p.i++
	return iothub.QueryPage{Items: items}, nil
}

func withQuery(te *cmdtest.Env, p *pager) {
	te.F.Query = func(sql string, _ iothub.QueryOptions) (fleet.Pager, error) {
		p.sql = sql
		return p, nil
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func TestInvokeFleetFlagsToOptions(t *testing.T) {
	te := newTestEnv(t, nil)
	o, _, err := parseInvoke(t, te, "reboot", "--query", "SELECT deviceId FROM devices WHERE tags.site = 'a'",
		"-c", "64", "--rate", "auto", "--tier", "s2", "--units", "3", "--waves", "1,10%,100%", "--wave-pause", "30s",
		"--max-failures", "2%", "--grace", "5s", "--yes", "--journal", filepath.Join(t.TempDir(), "new.journal"))
	require.NoError(t, err)
	assert.Equal(t, 64, o.Concurrency)
	assert.True(t, o.RateAuto)
	assert.Equal(t, "S2", o.Tier)
	assert.Equal(t, 3, o.Units)
	assert.Equal(t, "1,10%,100%", o.Waves.String())
	assert.Equal(t, 30*time.Second, o.WavePause)
	assert.Equal(t, "2%", o.MaxFailures.String())
	assert.Equal(t, 5*time.Second, o.Grace)
	assert.True(t, o.Yes)

	te = newTestEnv(t, nil)
	o, _, err = parseInvoke(t, te, "reboot", "--device", "d")
	require.NoError(t, err)
	assert.Zero(t, o.Concurrency, "the default is auto")
	assert.Positive(t, o.MaxInFlight)
	assert.LessOrEqual(t, o.MaxInFlight, DefaultMaxConcurrency)
	assert.Equal(t, DefaultGrace, o.Grace)
	assert.False(t, o.RateAuto)
	assert.Zero(t, o.Rate)
	assert.True(t, o.Waves.IsZero())

	te = newTestEnv(t, nil)
	o, _, err = parseInvoke(t, te, "reboot", "--devices-file", "ids.txt", "--rate", "2400/m", "--batch-size", "50", "--max-failures", "3")
	require.NoError(t, err)
	assert.InDelta(t, 40, o.Rate, 1e-9)
	assert.Equal(t, 50, o.Waves.BatchSize)
	assert.Equal(t, []string{"ids.txt"}, o.DevicesFiles)
}

func TestInFlightFollowsTheOpenFileLimit(t *testing.T) {
	for _, tt := range []struct {
		name        string
		fl          invokeFlags
		openFiles   int
		wantFixed   int
		wantMax     int
		wantNote    string
		wantFDBound bool
	}{
		{"auto under the limit", invokeFlags{concurrency: "auto", maxInFlight: 500}, 20000, 0, 500, "", false},
		{"auto default above the limit", invokeFlags{concurrency: "auto", maxInFlight: DefaultMaxConcurrency}, 1024, 0, 960, "", true},
		{"auto given above the limit", invokeFlags{concurrency: "AUTO", maxInFlight: 5000, maxInFlightSet: true}, 1024, 0, 960,
			"--max-concurrency 5000: the open-file limit (1024, ulimit -n) allows 960 calls in flight; using 960", true},
		{"fixed above the limit", invokeFlags{concurrency: "2000", maxInFlight: DefaultMaxConcurrency}, 1024, 960, DefaultMaxConcurrency,
			"--concurrency 2000: the open-file limit (1024, ulimit -n) allows 960 calls in flight; using 960", false},
		{"limit unknown", invokeFlags{concurrency: "auto", maxInFlight: DefaultMaxConcurrency}, 0, 0, DefaultMaxConcurrency, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var o Options
			require.NoError(t, checkInFlight(&o, &tt.fl, tt.openFiles))
			assert.Equal(t, tt.wantFixed, o.Concurrency)
			assert.Equal(t, tt.wantMax, o.MaxInFlight)
			assert.Equal(t, tt.wantNote, o.inFlightNote)
			assert.Equal(t, tt.wantFDBound, o.fdBound)
		})
	}
}

func TestInvokeFleetFlagErrors(t *testing.T) {
	existing := writeFile(t, "old.journal", "{}\n")
	tests := []struct {
		name     string
		args     []string
		stdinTTY bool
		want     string
	}{
		{"empty query", []string{"m", "--query", " "}, false, "--query: the value is empty; give a value or leave the flag out (an empty shell variable?)"},
		{"not a device query", []string{"m", "--query", "SELECT * FROM jobs"}, false, `--query: "SELECT * FROM jobs" is not a device query: write SELECT deviceId FROM devices [WHERE ...] (or FROM devices.modules)`},
		{"jobs", []string{"m", "--query", "SELECT * FROM devices.jobs"}, false, "--query: targets come from FROM devices or FROM devices.modules, not devices.jobs"},
		{"module and modules query", []string{"m", "--query", "SELECT * FROM devices.modules", "--module", "x"}, false, "--module cannot be combined with a FROM devices.modules query: the query already names the modules"},
		{"stdin twice", []string{"m", "--devices-file", "-", "--payload", "-"}, false, "--devices-file - and --payload - both read stdin; put one of them in a file"},
		{"list from terminal", []string{"m", "--devices-file", "-"}, true, "--devices-file - (stdin): stdin is a terminal; pipe the list in, or use --devices-file FILE"},
		{"concurrency 0", []string{"m", "--device", "d", "-c", "0"}, false, "--concurrency: 0 is out of range: use auto, or 1 to 100000"},
		{"concurrency big", []string{"m", "--device", "d", "--concurrency", "500000"}, false, "--concurrency: 500000 is out of range: use auto, or 1 to 100000"},
		{"concurrency huge", []string{"m", "--device", "d", "-c", "99999999999999"}, false, "--concurrency: 99999999999999 is out of range: use auto, or 1 to 100000"},
		{"concurrency word", []string{"m", "--device", "d", "-c", "many"}, false, `--concurrency: "many" is not auto or a whole number of calls in flight`},
		{"concurrency sign", []string{"m", "--device", "d", "-c", "+5"}, false, `--concurrency: "+5" is not auto or a whole number of calls in flight`},
		{"max with fixed", []string{"m", "--device", "d", "-c", "10", "--max-concurrency", "20"}, false, "--max-concurrency bounds --concurrency auto; with a fixed --concurrency 10 leave it out"},
		{"max 0", []string{"m", "--device", "d", "--max-concurrency", "0"}, false, "--max-concurrency: 0 is out of range: use 1 to 100000"},
		{"bad rate", []string{"m", "--device", "d", "--rate", "fast"}, false, `--rate: "fast" is not a rate (use auto, or calls per second like 40 or 40/s, or 2400/m)`},
		{"bad tier", []string{"m", "--device", "d", "--tier", "B1"}, false, `--tier: "B1" is not an IoT Hub tier with direct methods (use F1, S1, S2, S3)`},
		{"zero units", []string{"m", "--device", "d", "--units", "0"}, false, "--units: 0 is out of range: a hub has at least 1 unit"},
		{"F1 units", []string{"m", "--device", "d", "--tier", "F1", "--units", "2"}, false, "--tier: tier F1 has exactly 1 unit (got 2)"},
		{"waves and batches", []string{"m", "--device", "d", "--waves", "1,100%", "--batch-size", "5"}, false, "--waves and --batch-size both split the run into waves; use one of them"},
		{"bad waves", []string{"m", "--device", "d", "--waves", "1,50%"}, false, "--waves: the last wave must be 100% so that every target is covered (waves are cumulative, e.g. 1,10%,50%,100%)"},
		{"negative batch", []string{"m", "--device", "d", "--batch-size", "-1"}, false, "--batch-size: -1 is out of range: use 1 or more"},
		{"pause without waves", []string{"m", "--device", "d", "--wave-pause", "1m"}, false, "--wave-pause needs --waves or --batch-size"},
		{"percent without waves", []string{"m", "--device", "d", "--max-failures", "5%"}, false, "--max-failures 5%: a percentage is checked when a wave ends; add --waves or --batch-size, or give a number of failures"},
		{"bad threshold", []string{"m", "--device", "d", "--max-failures", "many"}, false, `--max-failures: "many" is not a number of failures (0 or more) or a percentage like 5%`},
		{"grace too long", []string{"m", "--device", "d", "--grace", "10m"}, false, "--grace: 10m is longer than 5m"},
		{"journal exists", []string{"m", "--device", "d", "--journal", existing}, false, "--journal " + existing + ": the file already exists; continue that run with --resume " + existing + ", or choose a new file"},
		{"journal and resume differ", []string{"m", "--device", "d", "--journal", "a", "--resume", existing}, false, "--resume " + existing + ": line 1: this is not a dmctl journal (the first line has no \"dmctlJournal\")"},
		{"resume missing", []string{"--resume", "/nonexistent/j"}, false, "--resume /nonexistent/j: cannot read it: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			te.IOS.SetStdinTTY(tt.stdinTTY)
			o, code, err := parseInvoke(t, te, tt.args...)
			require.Error(t, err)
			assert.Nil(t, o)
			assert.Equal(t, tt.want, err.Error())
			assert.Equal(t, cmdutil.ExitUsage, code)
		})
	}
}

// fleetOpts are Options for runs over a fake invoker.
func fleetOpts(te *cmdtest.Env, format output.Format) *Options {
	return &Options{
		IO: te.IOS, Invoker: te.F.Invoker, Query: te.F.Query, Now: te.F.Now, Sleep: te.F.Sleep,
		Output: format, Method: "reboot", Timeout: 30 * time.Second, MaxAttempts: 3, RetryFor: time.Minute,
		Concurrency: 4, Units: 1, TempDir: te.Tmp,
	}
}

func TestInvokeDevicesFileAndQueryCombined(t *testing.T) {
	te := newTestEnv(t, nil)
	te.Tmp = t.TempDir()
	p := &pager{pages: [][]string{{"q1", "f1"}, {"q2"}}}
	withQuery(te, p)
	file := writeFile(t, "ids.txt", "f1\nf2\n# comment\nd1\n")
	o := fleetOpts(te, output.FormatName)
	o.Targets = targets("d1")
	o.DevicesFiles = []string{file}
	o.QuerySQL = "SELECT deviceId FROM devices"
	require.NoError(t, invokeRun(context.Background(), o))
	assert.Equal(t, "d1\nf1\nf2\nq1\nq2\n", te.Out.String(), "flags, file and query, each target once")
	assert.Len(t, te.Inv.Calls, 5)
	assert.Contains(t, te.ErrOut.String(), "note: 2 duplicate targets removed\n")
	assert.Equal(t, "SELECT deviceId FROM devices", p.sql)
	entries, err := os.ReadDir(te.Tmp)
	require.NoError(t, err)
	assert.Empty(t, entries, "the spool file is removed")
}

func TestInvokeDevicesFileBadLineSendsNothing(t *testing.T) {
	te := newTestEnv(t, nil)
	file := writeFile(t, "ids.txt", "ok-1\nok-2\nnot ok\n")
	code := te.Run("invoke", "reboot", "--devices-file", file)
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Empty(t, te.Inv.Calls, "nothing is sent when a line is bad")
	assert.Equal(t, "Error: --devices-file "+file+`: line 3: invalid device id "not ok": character " " at position 4 is not allowed; IoT Hub ids may contain only ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '`+"\n"+
		"Run 'dmctl invoke --help' for usage.\n", te.ErrOut.String())
}

func TestInvokeDevicesFileFromStdin(t *testing.T) {
	te := newTestEnv(t, nil)
	te.In.WriteString(`{"deviceId":"a","outcome":"failed"}` + "\n" + `{"deviceId":"b","outcome":"offline"}` + "\n")
	code := te.Run("invoke", "reboot", "--devices-file", "-", "-o", "name")
	assert.Equal(t, 0, code, te.ErrOut.String())
	assert.Equal(t, "a\nb\n", te.Out.String())
	assert.ElementsMatch(t, targets("a", "b"), te.Inv.Calls)
}

func TestInvokeQueryRefused(t *testing.T) {
	te := newTestEnv(t, nil)
	withQuery(te, &pager{pages: [][]string{{}}, err: &iothub.ResponseError{StatusCode: 400, ErrorCode: 400000, ErrorCodeName: "BadRequest", Message: "syntax error at 'FRM'"}})
	code := te.Run("invoke", "reboot", "--query", "SELECT * FROM devices WHERE x ==")
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Contains(t, te.ErrOut.String(), "Error: --query: query page 1: hub answered 400 400000 BadRequest: syntax error at 'FRM'\n")
	assert.Empty(t, te.Inv.Calls)

	te = newTestEnv(t, nil)
	withQuery(te, &pager{pages: [][]string{{}}, err: &iothub.ResponseError{StatusCode: 401, ErrorCode: 401002, Message: "no"}})
	assert.Equal(t, cmdutil.ExitAuth, te.Run("invoke", "reboot", "--query", "SELECT * FROM devices"))
	assert.Empty(t, te.Inv.Calls)

	te = newTestEnv(t, nil)
	withQuery(te, &pager{pages: [][]string{{}}})
	assert.Equal(t, 0, te.Run("invoke", "reboot", "--query", "SELECT * FROM devices WHERE 1 = 0"))
	assert.Contains(t, te.ErrOut.String(), "note: no targets: nothing was sent\n")
}

func TestInvokeDryRun(t *testing.T) {
	te := newTestEnv(t, nil)
	var ids []string
	for i := 1; i <= 25; i++ {
		ids = append(ids, fmt.Sprintf("sim-%03d", i))
	}
	withQuery(te, &pager{pages: [][]string{ids[:20], ids[20:]}})
	code := te.Run("invoke", "reboot", "--query", "SELECT deviceId FROM devices", "--dry-run", "--rate", "auto", "--tier", "S1", "--units", "2")
	assert.Equal(t, 0, code, te.ErrOut.String())
	assert.Empty(t, te.Inv.Calls, "a dry run sends no method")
	want := "Dry run: would invoke \"reboot\" on 25 targets on hub hub.example.test (nothing was sent).\n"
	for _, id := range ids[:10] {
		want += "  " + id + "\n"
	}
	want += "  ... and 15 more\nEstimated duration: 312ms at 80.0 calls/s (--rate auto from the published throttle of tier S1, 2 units)\n"
	assert.Equal(t, want, te.Out.String())

	te = newTestEnv(t, nil)
	var many []string
	for i := 1; i <= 4000; i++ {
		many = append(many, fmt.Sprintf("d%d", i))
	}
	withQuery(te, &pager{pages: [][]string{many}})
	require.Equal(t, 0, te.Run("invoke", "reboot", "--query", "SELECT deviceId FROM devices", "--dry-run", "--rate", "40/s", "-o", "json", "--waves", "1,10%,100%"))
	var got map[string]any
	require.NoError(t, json.Unmarshal(te.Out.Bytes(), &got))
	assert.Equal(t, true, got["dryRun"])
	assert.Equal(t, float64(4000), got["targets"])
	assert.Equal(t, float64(100), got["estimatedSeconds"])
	assert.Equal(t, "--rate", got["rateSource"])
	assert.Equal(t, "1,10%,100%", got["waves"])
	assert.Len(t, got["sample"], 10)

	te = newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("invoke", "reboot", "--device", "a", "--device", "b", "--dry-run"))
	assert.Contains(t, te.Out.String(), "Estimated duration: unknown without --rate or --tier: the run is bounded by the calls in flight (--concurrency) and the devices' answer times\n")
}

func TestInvokeConfirmation(t *testing.T) {
	tests := []struct {
		name       string
		tty        bool
		args       []string
		answer     string
		code       int
		calls      int
		wantPrompt bool
	}{
		{"terminal, yes", true, []string{"--device", "a", "--device", "b"}, "y\n", 0, 2, true},
		{"terminal, no", true, []string{"--device", "a", "--device", "b"}, "n\n", cmdutil.ExitUsage, 0, true},
		{"terminal, empty answer", true, []string{"--device", "a", "--device", "b"}, "\n", cmdutil.ExitUsage, 0, true},
		{"terminal, --yes", true, []string{"--device", "a", "--device", "b", "--yes"}, "", 0, 2, false},
		{"terminal, one target", true, []string{"--device", "a"}, "", 0, 1, false},
		{"not a terminal", false, []string{"--device", "a", "--device", "b"}, "", 0, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			te.IOS.SetStdinTTY(tt.tty)
			te.IOS.SetStderrTTY(tt.tty)
			te.In.WriteString(tt.answer)
			code := te.Run(append([]string{"invoke", "reboot", "-o", "name"}, tt.args...)...)
			assert.Equal(t, tt.code, code, te.ErrOut.String())
			assert.Len(t, te.Inv.Calls, tt.calls)
			prompt := `Invoke "reboot" on 2 targets on hub hub.example.test? [y/N] `
			if tt.wantPrompt {
				assert.True(t, strings.HasPrefix(te.ErrOut.String(), prompt), te.ErrOut.String())
			} else {
				assert.NotContains(t, te.ErrOut.String(), "[y/N]")
			}
			if tt.code == cmdutil.ExitUsage {
				assert.Contains(t, te.ErrOut.String(), "Cancelled: nothing was sent.\n")
			}
		})
	}
}

func TestInvokeMaxFailuresExit5(t *testing.T) {
	scripts := map[string][]cmdtest.Answer{}
	for i := 1; i <= 30; i++ {
		scripts[fmt.Sprintf("d%02d", i)] = []cmdtest.Answer{cmdtest.OK(500, `null`)}
	}
	te := newTestEnv(t, scripts)
	args := []string{"invoke", "reboot", "-o", "jsonl", "--waves", "2,100%", "--max-failures", "1", "-c", "1"}
	for i := 1; i <= 30; i++ {
		args = append(args, "--device", fmt.Sprintf("d%02d", i))
	}
	code := te.Run(args...)
	assert.Equal(t, cmdutil.ExitThreshold, code)
	assert.Len(t, te.Inv.Calls, 2, "the first wave of 2 failed: more than 1 failure stops before the next")
	lines := strings.Split(strings.TrimSpace(te.Out.String()), "\n")
	require.Len(t, lines, 30, "every target is reported, untouched ones as skipped")
	skipped := 0
	for _, l := range lines {
		if strings.Contains(l, `"outcome":"skipped"`) {
			skipped++
		}
	}
	assert.Equal(t, 28, skipped)
	assert.Contains(t, te.ErrOut.String(), "wave 1 of 2: targets 1 to 2\n")
	assert.Contains(t, te.ErrOut.String(), "Stopped: the rollout stopped after wave 1 of 2: 2 of 2 finished targets failed, more than --max-failures 1; 28 targets were not started\n")
}

func TestInvokeJournalThenResume(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "run.journal")
	te := newTestEnv(t, map[string][]cmdtest.Answer{"b": {cmdtest.OK(500, `null`)}})
	code := te.Run("invoke", "reboot", "--device", "a", "--device", "b", "--device", "c", "--device", "d",
		"--journal", journal, "--payload", `{"v":1}`, "--timeout", "45", "-o", "name")
	assert.Equal(t, cmdutil.ExitTargets, code)
	raw, err := os.ReadFile(journal)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), `{"v":1}`, "the payload is not stored (it may hold secrets)")
	assert.Contains(t, string(raw), `"payloadSha256":"`)

	// Simulate a crash: c was dispatched and never answered, d never started.
	var kept []string
	for _, l := range strings.SplitAfter(string(raw), "\n") {
		switch {
		case strings.Contains(l, `"deviceId":"d"`):
		case strings.Contains(l, `"deviceId":"c"`) && !strings.Contains(l, `"dispatched"`):
		default:
			kept = append(kept, l)
		}
	}
	require.NoError(t, os.WriteFile(journal, []byte(strings.Join(kept, "")), 0o600))

	// Resume: the targets come from the journal's header.
	te = newTestEnv(t, nil)
	code = te.Run("invoke", "--resume", journal, "--payload", `{"v":1}`, "-o", "jsonl")
	assert.Equal(t, cmdutil.ExitTargets, code, "b failed in the first run and c is unknown: the rollout did not fully succeed")
	assert.Equal(t, targets("d"), te.Inv.Calls, "only d runs: a and b have results, c was in flight")
	require.Len(t, te.Inv.Reqs, 1)
	assert.Equal(t, 45*time.Second, te.Inv.Reqs[0].ResponseTimeout, "options come from the journal")
	assert.JSONEq(t, `{"v":1}`, string(te.Inv.Reqs[0].Payload))
	lines := strings.Split(strings.TrimSpace(te.Out.String()), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], `"deviceId":"c"`)
	assert.Contains(t, lines[0], `"outcome":"unknown"`)
	assert.Contains(t, te.ErrOut.String(), "resumed from "+journal+": 2 targets already had a final result and were not run again\n")
	assert.Contains(t, te.ErrOut.String(), "hint: for an unknown target nobody can tell whether the device ran the method")

	// Target flags cannot add to a resumed run.
	te = newTestEnv(t, nil)
	code = te.Run("invoke", "--resume", journal, "--device", "e", "--payload", `{"v":1}`)
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Contains(t, te.ErrOut.String(), "--resume "+journal+" takes its targets from the journal; --device cannot add to or replace them")
	assert.Empty(t, te.Inv.Calls)

	// With --idempotent the unknown target runs again; the rest are final.
	te = newTestEnv(t, nil)
	code = te.Run("invoke", "reboot", "--resume", journal, "--payload", `{"v":1}`, "--idempotent", "-o", "name")
	assert.Equal(t, cmdutil.ExitTargets, code)
	assert.Equal(t, targets("c"), te.Inv.Calls)

	// Everything is final now: nothing runs, the exit code still tells the rollout's outcome.
	te = newTestEnv(t, nil)
	code = te.Run("invoke", "--resume", journal, "--payload", `{"v":1}`)
	assert.Equal(t, cmdutil.ExitTargets, code)
	assert.Empty(t, te.Inv.Calls)
}

func TestInvokeResumeChecks(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	te := newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("invoke", "reboot", "--device", "a", "--journal", journal, "--payload", `{"v":1}`, "-o", "name"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"other method", []string{"invoke", "restart", "--resume", journal, "--payload", `{"v":1}`}, `--resume ` + journal + `: the journal's run invoked "reboot", not "restart"`},
		{"payload missing", []string{"invoke", "--resume", journal}, `--resume ` + journal + `: the run sent a payload, which the journal does not store (it may hold secrets); give the same --payload again`},
		{"payload differs", []string{"invoke", "--resume", journal, "--payload", `{"v":2}`}, `--resume ` + journal + `: --payload differs from the payload the run sent`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			assert.Equal(t, cmdutil.ExitUsage, te.Run(tt.args...))
			assert.Contains(t, te.ErrOut.String(), "Error: "+tt.want+"\n")
			assert.Empty(t, te.Inv.Calls)
		})
	}
	// The targets come from the journal when none are given.
	te = newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("invoke", "--resume", journal, "--payload", `{"v":1}`, "-o", "name"))
	assert.Empty(t, te.Inv.Calls, "a already has its result")
	assert.Contains(t, te.ErrOut.String(), "1 target already had a final result and was not run again")
}

func TestInvokeInterruptHintsResume(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	ctx, cancel := context.WithCancel(context.Background())
	te := newTestEnv(t, nil)
	inner := te.Inv
	te.F.Invoker = func() (fleet.Invoker, *auth.Credential, error) {
		return cancelAfterFirst{inner: inner, cancel: cancel}, te.Cred, nil
	}
	opts := fleetOpts(te, output.FormatJSONL)
	opts.Concurrency = 1
	opts.Targets = targets("a", "b", "c")
	opts.Journal = journal
	err := invokeRun(ctx, opts)
	assert.Equal(t, cmdutil.ExitInterrupted, cmdutil.ExitCode(err))
	assert.Contains(t, te.ErrOut.String(), "hint: continue with: dmctl invoke --resume "+journal+"\n")
	st, err := fleet.ReadJournal(journal)
	require.NoError(t, err)
	assert.True(t, st.Final.Has(fleet.Target{DeviceID: "a"}))
	assert.True(t, st.Pending(fleet.Target{DeviceID: "b"}, false))
	assert.True(t, st.Pending(fleet.Target{DeviceID: "c"}, false))
}

func TestInvokeProgressBarOnlyOnTerminal(t *testing.T) {
	te := newTestEnv(t, nil)
	te.IOS.SetStderrTTY(true)
	opts := fleetOpts(te, output.FormatJSON)
	opts.Targets = targets("a", "b", "c")
	opts.Yes = true
	require.NoError(t, invokeRun(context.Background(), opts))
	assert.Contains(t, te.ErrOut.String(), "\r\x1b[K", "the bar draws and clears itself on a terminal")
	assert.Regexp(t, regexp.MustCompile(`\[[#-]{24}\]  \d/3  \d+%`), te.ErrOut.String())

	te = newTestEnv(t, nil)
	opts = fleetOpts(te, output.FormatJSON)
	opts.Targets = targets("a", "b", "c")
	require.NoError(t, invokeRun(context.Background(), opts))
	assert.NotContains(t, te.ErrOut.String(), "\r", "no bar when stderr is not a terminal")
}

// TestJournalShow: every target of a stopped rollout is in the journal,
// the ones never started as skipped, and journal show prints them all.
func TestJournalShow(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "run.journal")
	te := newTestEnv(t, map[string][]cmdtest.Answer{"b": {cmdtest.OK(500, `{"message":"disk full"}`)}})
	args := []string{"invoke", "reboot"}
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	for _, id := range ids {
		args = append(args, "--device", id)
	}
	code := te.Run(append(args, "--max-failures", "0", "-c", "1", "--journal", journal, "-o", "name")...)
	require.Equal(t, cmdutil.ExitThreshold, code, te.ErrOut.String())
	called := len(te.Inv.Calls)

	te = newTestEnv(t, nil)
	assert.Equal(t, cmdutil.ExitTargets, te.Run("journal", "show", journal, "-o", "jsonl"))
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(te.Out.String()), "\n") {
		var r struct{ DeviceID, Outcome string }
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		got[r.DeviceID] = r.Outcome
	}
	// The stop comes once b's result is counted; a target or two more may
	// already be in the pipeline then, the rest are never started.
	require.Len(t, got, len(ids), "every target once")
	assert.Equal(t, "succeeded", got["a"])
	assert.Equal(t, "failed", got["b"])
	skipped := 0
	for _, id := range ids[2:] {
		assert.Contains(t, []string{"succeeded", "skipped"}, got[id], id)
		if got[id] == "skipped" {
			skipped++
		}
	}
	assert.Equal(t, len(ids)-called, skipped, "skipped are exactly the targets never called")
	assert.GreaterOrEqual(t, skipped, 5)
	assert.Contains(t, te.ErrOut.String(), "b: failed: the device answered status 500: disk full\n")
	assert.Contains(t, te.ErrOut.String(), fmt.Sprintf("10 targets: %d succeeded, 1 failed, %d skipped;", called-1, skipped))
	assert.Empty(t, te.Inv.Calls, "journal show sends nothing")

	te = newTestEnv(t, nil)
	assert.Equal(t, cmdutil.ExitUsage, te.Run("journal", "show", filepath.Join(t.TempDir(), "missing")))
	assert.Contains(t, te.ErrOut.String(), "cannot read it: no such file or directory")
}

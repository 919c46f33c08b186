package e2e

// The bad-input corpus (issue 10, design.md §3 "Bad input", "Secrets", "Exit
// codes"): every case runs the built dmctl against one hubsim and must exit
// 2 with a message on stderr that names the input, show no 8-character run
// of any key in stdout or stderr, print no stack trace, and deliver nothing.
// "Nothing delivered" is checked per case (hubsim's per-method delivery
// counters, each case invoking its own method name) and once all bad cases
// have finished: no method call, no job, no request but the few a case is
// declared to have refused by the hub (400), and an empty method log once
// hubsim has stopped and flushed it. Positive controls run against a second
// hubsim, so that a dmctl that refused everything would fail them.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
)

// corpusFleet: 20 devices that answer any method with status 200 (so a
// delivery is never mistaken for a refusal), a module on the main group,
// tags to select by, and reported properties that --wait-until can test.
const corpusFleet = `{"groups":[
 {"name":"main","idPattern":"d-%02d","count":16,"tags":{"grp":"main"},"reported":{"state":"ready","ver":"2"},"modules":["m1"],"methods":{"*":{"status":200}}},
 {"name":"q1","idPattern":"q1-%d","count":2,"tags":{"grp":"q1"},"reported":{"state":"ready","ver":"2"},"methods":{"*":{"status":200}}},
 {"name":"q2","idPattern":"q2-%d","count":2,"tags":{"grp":"q2"},"reported":{"state":"ready","ver":"2"},"methods":{"*":{"status":200}}}
]}`

// corpusParallel bounds how many dmctl processes a group runs at once (on
// top of go test's -parallel).
const corpusParallel = 4

// corpusCaseTimeout stops a case that hangs (a bad input taken for a real
// run that then waits); it is reported, never expected.
const corpusCaseTimeout = 30 * time.Second

// Hub routes a refused case may reach (hubsim's /hubsim/stats names).
const (
	corpusRouteJobPut = "PUT /jobs/v2/{id}"
	corpusRouteQuery  = "POST /devices/query"
	corpusRouteStats  = "GET /hubsim/stats"
)

// badCase is one bad input. In args, env values, stdin and file contents,
// %M is the case's own method name, %H the hub's host, %CS its service
// connection string, %CA its CA file, %K and %L two keys embedded in
// malformed connection strings (both are checked like hubsim's keys).
type badCase struct {
	name  string
	args  []string
	env   map[string]string // on top of the base environment; "" sets a variable to empty
	unset []string          // base variables to leave out (e.g. IOTHUB_CONNECTION_STRING)
	stdin string
	files map[string]string // path relative to the case's directory -> content
	dirs  []string          // directories to create there
	// want are regular expressions (case-insensitive) stderr must match:
	// the input's name (flag, variable, path, line), and what is wrong where
	// the corpus pins it down.
	want []string
	// hubRefuses is the route the case may send one request to, which the
	// hub must refuse with 400 (input only the hub can judge).
	hubRefuses string
}

// corpusHub is a hubsim for the corpus, the secrets no output may hold
// (hubsim's keys and Entra secrets, and the embedded keys), and the
// placeholders of a case.
type corpusHub struct {
	hub     *fleetHub
	secrets []namedSecret
	repl    func(method string) *strings.Replacer
}

type namedSecret struct{ name, value string }

func newCorpusHub(t *testing.T, keys [2]string) *corpusHub {
	t.Helper()
	h := startFleetHub(t, corpusFleet)
	c := &corpusHub{hub: h}
	for _, k := range []struct{ name, cs string }{
		{"hubsim service key", h.ServiceConnectionString}, {"hubsim iothubowner key", h.OwnerConnectionString},
		{"hubsim registryRead key", h.RegistryReadConnectionString}, {"hubsim registryReadWrite key", h.RegistryReadWriteConnectionString},
	} {
		cs, err := connstr.Parse(k.cs)
		require.NoError(t, err, k.name)
		require.NotEmpty(t, cs.SharedAccessKey, k.name)
		c.secrets = append(c.secrets, namedSecret{k.name, cs.SharedAccessKey})
	}
	for id, s := range h.DeviceConnectionStrings {
		if cs, err := connstr.Parse(s); err == nil && cs.SharedAccessKey != "" {
			c.secrets = append(c.secrets, namedSecret{"hubsim device key of " + id, cs.SharedAccessKey})
		}
	}
	for _, p := range h.Entra.Principals {
		if p.ClientSecret != "" {
			c.secrets = append(c.secrets, namedSecret{"hubsim Entra secret of " + p.Name, p.ClientSecret})
		}
	}
	c.secrets = append(c.secrets, namedSecret{"embedded key %K", keys[0]}, namedSecret{"embedded key %L", keys[1]})
	c.repl = func(method string) *strings.Replacer {
		return strings.NewReplacer("%CS", h.ServiceConnectionString, "%CA", h.CAFile, "%M", method,
			"%H", h.HostName, "%K", keys[0], "%L", keys[1])
	}
	return c
}

// corpusKey is a random base64 key of 32 bytes that starts with "+/", so
// that it is also no valid host name (it must be refused wherever it lands).
func corpusKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	k := []byte(base64.StdEncoding.EncodeToString(b))
	k[0], k[1] = '+', '/'
	_, err = base64.StdEncoding.DecodeString(string(k))
	require.NoError(t, err)
	return string(k)
}

// leaks returns the secrets of which some 8-character run appears in out.
func secretLeaks(out string, secrets []namedSecret) []string {
	var found []string
	for _, s := range secrets {
		for i := 0; i+8 <= len(s.value); i++ {
			if strings.Contains(out, s.value[i:i+8]) {
				found = append(found, fmt.Sprintf("%s (characters %d-%d)", s.name, i+1, i+8))
				break
			}
		}
	}
	return found
}

// masked is out with every 8-character run of a secret replaced, for
// failure messages.
func maskSecrets(out string, secrets []namedSecret) string {
	for _, s := range secrets {
		for i := 0; i+8 <= len(s.value); i++ {
			out = strings.ReplaceAll(out, s.value[i:i+8], "********")
		}
	}
	return connstr.Redact(out)
}

// caseRun is one run of dmctl for a case.
type caseRun struct {
	dmctlRun
	timedOut bool
}

// run runs dmctl for c in a fresh directory with the base environment: a
// private HOME and config directory, the hub's CA through SSL_CERT_FILE (so
// --ca-file stays free for the cases about it) and the service connection
// string in IOTHUB_CONNECTION_STRING.
func (ch *corpusHub) run(t *testing.T, c badCase, method string) caseRun {
	t.Helper()
	r := ch.repl(method)
	dir := t.TempDir()
	for _, d := range c.dirs {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o700))
	}
	for name, content := range c.files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte(r.Replace(content)), 0o600))
	}
	env := map[string]string{
		"DMCTL_CONFIG_DIR":         filepath.Join(dir, "cfg"),
		"SSL_CERT_FILE":            ch.hub.CAFile,
		"IOTHUB_CONNECTION_STRING": ch.hub.ServiceConnectionString,
	}
	for k, v := range c.env {
		env[k] = r.Replace(v)
	}
	for _, k := range c.unset {
		delete(env, k)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	full := cleanEnv(t, dmctlCmd{})
	for _, k := range keys {
		full = append(full, k+"="+env[k])
	}
	args := make([]string, len(c.args))
	for i, a := range c.args {
		args[i] = r.Replace(a)
	}

	ctx, cancel := context.WithTimeout(context.Background(), corpusCaseTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, "dmctl"), args...)
	cmd.Dir = dir
	cmd.Env = full
	cmd.Stdin = strings.NewReader(r.Replace(c.stdin))
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := caseRun{dmctlRun: dmctlRun{stdout: stdout.String(), stderr: stderr.String()}, timedOut: ctx.Err() != nil}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		out.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running dmctl: %v", err)
	}
	return out
}

// firstErrorLine is the line of stderr to show in a report: the "Error:"
// line, else the first non-empty one.
func corpusErrorLine(stderr string) string {
	first := ""
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "Error:") {
			return l
		}
		if first == "" {
			first = l
		}
	}
	return first
}

func corpusShorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

var stackTraceRe = regexp.MustCompile(`panic|goroutine \d+ \[|\.go:\d+`)

// delivered reads hubsim's per-method delivery counters.
func corpusDelivered(t *testing.T, h *fleetHub) map[string]int {
	t.Helper()
	st := h.stats(t)
	reg, _ := st["registry"].(map[string]any)
	by, _ := reg["deliveredByMethod"].(map[string]any)
	out := map[string]int{}
	for m, n := range by {
		if f, ok := n.(float64); ok && f > 0 {
			out[m] = int(f)
		}
	}
	return out
}

func TestBadInputCorpus(t *testing.T) {
	keys := [2]string{corpusKey(t), corpusKey(t)}
	// The leak check finds any 8-character run of a secret, and nothing shorter.
	probe := []namedSecret{{"probe", keys[0]}}
	// '!' is no base64 character, so it never extends a run of the key (a
	// letter there did one time in 64, when the key's next character was it).
	require.NotEmpty(t, secretLeaks("!"+keys[0][5:13]+"!", probe))
	require.Empty(t, secretLeaks("!"+keys[0][5:12]+"!", probe))
	require.NotContains(t, maskSecrets("a"+keys[0]+"b", probe), keys[0][5:13])
	cases := corpusCases()
	require.GreaterOrEqual(t, len(cases), 150, "the corpus has at least 150 cases")
	names := map[string]bool{}
	for _, c := range cases {
		require.False(t, names[c.name], "two cases are named %q", c.name)
		names[c.name] = true
		require.NotEmpty(t, c.want, "case %q names no input to look for", c.name)
	}

	ch := newCorpusHub(t, keys)
	methods := map[string]string{} // method name -> case
	refusals := map[string]int{}   // route -> cases allowed one refused request there
	sem := make(chan struct{}, corpusParallel)
	t.Run("bad", func(t *testing.T) {
		for i, c := range cases {
			method := fmt.Sprintf("bi%03d", i)
			methods[method] = c.name
			if c.hubRefuses != "" {
				refusals[c.hubRefuses]++
			}
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				r := ch.run(t, c, method)
				args := ch.args(c, method)
				repl := ch.repl(method)
				var problems []string
				if r.timedOut {
					problems = append(problems, fmt.Sprintf("did not finish within %s", corpusCaseTimeout))
				}
				if r.code != 2 {
					problems = append(problems, fmt.Sprintf("exit %d, want 2", r.code))
				}
				for _, w := range c.want {
					w = repl.Replace(w)
					if !regexp.MustCompile(`(?i)` + w).MatchString(r.stderr) {
						problems = append(problems, fmt.Sprintf("stderr does not match /%s/", w))
					}
				}
				if l := secretLeaks(r.stdout+r.stderr, ch.secrets); len(l) > 0 {
					problems = append(problems, "SECRET IN OUTPUT: "+strings.Join(l, ", "))
				}
				if stackTraceRe.MatchString(r.stderr) {
					problems = append(problems, "stderr holds a panic or stack trace")
				}
				if strings.TrimSpace(r.stdout) != "" {
					problems = append(problems, fmt.Sprintf("stdout is not empty: %q", corpusShorten(maskSecrets(r.stdout, ch.secrets), 120)))
				}
				// A method call is counted before dmctl has its answer, so
				// a delivery by this case is in the counters by now.
				for m, n := range corpusDelivered(t, ch.hub) {
					if m == method || indexOf(args, m) >= 0 {
						problems = append(problems, fmt.Sprintf("DELIVERED %d call(s) of %q", n, m))
					}
				}
				t.Logf("exit %d: %s", r.code, corpusShorten(maskSecrets(corpusErrorLine(r.stderr), ch.secrets), 400))
				if len(problems) > 0 {
					t.Errorf("%s\n    args: %s\n    stderr: %s", strings.Join(problems, "; "), corpusShorten(maskSecrets(fmt.Sprintf("%q", args), ch.secrets), 300),
						corpusShorten(maskSecrets(corpusErrorLine(r.stderr), ch.secrets), 400))
				}
			})
		}
	})

	// Every bad case has finished: nothing reached a device, no job was
	// created, and the hub saw no request but the refusals declared.
	t.Run("nothing delivered", func(t *testing.T) {
		st := ch.hub.stats(t)
		assert.EqualValues(t, 0, st["methodsDelivered"], "methods delivered to devices by bad cases")
		for m, n := range corpusDelivered(t, ch.hub) {
			t.Errorf("method %q was delivered %d time(s) (case %q)", m, n, methods[m])
		}
		reqs, _ := st["requests"].(map[string]any)
		for route, v := range reqs {
			rc, _ := v.(map[string]any)
			by, _ := rc["byStatus"].(map[string]any)
			total, _ := rc["total"].(float64)
			switch {
			case route == corpusRouteStats:
			case refusals[route] > 0:
				for status, n := range by {
					if status != "400" {
						t.Errorf("%s answered %s %v time(s): only a 400 refusal is allowed", route, status, n)
					}
				}
				if int(total) > refusals[route] {
					t.Errorf("%s got %v requests; %d case(s) may send one each", route, total, refusals[route])
				}
			default:
				t.Errorf("bad cases sent %v request(s) to %s (by status %v): bad input sends nothing", total, route, by)
			}
		}
		// The base environment works against this hub (so refusals above were
		// about the inputs), and no job exists.
		r := ch.run(t, badCase{args: []string{"jobs", "list", "-o", "json"}}, "unused")
		require.Equal(t, 0, r.code, "jobs list with the base environment: %s", maskSecrets(r.stderr, ch.secrets))
		var jobs []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &jobs), r.stdout)
		for _, j := range jobs {
			b, _ := json.Marshal(j)
			t.Errorf("a bad case created a job: %s", maskSecrets(string(b), ch.secrets))
		}
		// hubsim flushes its method log when it stops.
		require.NoError(t, ch.hub.Stop())
		for _, d := range readStoppedMethodLog(t, ch.hub.methodLog) {
			t.Errorf("method log: %s delivered to %s (case %q)", d.Method, deliveryTarget(d), methods[d.Method])
		}
	})

	t.Run("controls", func(t *testing.T) { runCorpusControls(t, keys) })
}

// args is the case's argument list as dmctl got it.
func (ch *corpusHub) args(c badCase, method string) []string {
	r := ch.repl(method)
	out := make([]string, len(c.args))
	for i, a := range c.args {
		out[i] = r.Replace(a)
	}
	return out
}

// deliveryTarget is "device" or "device/module".
func deliveryTarget(d delivery) string {
	if d.ModuleID != "" {
		return d.DeviceID + "/" + d.ModuleID
	}
	return d.DeviceID
}

// readStoppedMethodLog reads the method log of a hubsim that has stopped (and so
// flushed it).
func readStoppedMethodLog(t *testing.T, path string) []delivery {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []delivery
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var d delivery
		require.NoError(t, json.Unmarshal(sc.Bytes(), &d), sc.Text())
		out = append(out, d)
	}
	require.NoError(t, sc.Err())
	return out
}

// controlCase is a run that must succeed and deliver exactly want (target
// -> calls of the case's method): repeatable flags stay repeatable, and a
// single-value flag given once works.
type controlCase struct {
	name  string
	args  []string
	env   map[string]string
	stdin string
	files map[string]string
	want  map[string]int
}

func runCorpusControls(t *testing.T, keys [2]string) {
	ch := newCorpusHub(t, keys)
	controls := []controlCase{
		{name: "--device repeated, duplicates removed", args: []string{"invoke", "%M", "--device", "d-01", "--device", "d-02", "--device", "d-01"},
			want: map[string]int{"d-01": 1, "d-02": 1}},
		{name: "--devices-file repeated, the files combine", args: []string{"invoke", "%M", "--devices-file", "a.txt", "--devices-file", "b.txt", "--device", "d-03"},
			files: map[string]string{"a.txt": "d-03\nd-04\n", "b.txt": "d-04\nd-05\n"}, want: map[string]int{"d-03": 1, "d-04": 1, "d-05": 1}},
		{name: "--devices-file - with --device", args: []string{"invoke", "%M", "--devices-file", "-", "--device", "d-12"},
			stdin: "d-12\n{\"deviceId\":\"d-13\"}\n", want: map[string]int{"d-12": 1, "d-13": 1}},
		{name: "--wait-until repeated", args: []string{"invoke", "%M", "--device", "d-06", "--wait-until", "properties.reported.state == ready",
			"--wait-until", "properties.reported.ver == '2'", "--wait-timeout", "30s"}, want: map[string]int{"d-06": 1}},
		{name: "--fail-if repeated", args: []string{"invoke", "%M", "--device", "d-07", "--wait-until", "properties.reported.state == ready",
			"--fail-if", "properties.reported.state == broken", "--fail-if", "properties.reported.ver == '1'", "--wait-timeout", "30s"}, want: map[string]int{"d-07": 1}},
		{name: "single-value flags given once", args: []string{"invoke", "%M", "--device", "d-08", "--module", "m1", "--payload", `{"a":1}`,
			"--timeout", "30", "-o", "json", "--ok-status", "200", "--concurrency", "4", "--journal", "run.jsonl"}, want: map[string]int{"d-08/m1": 1}},
		{name: "--payload a JSON empty string", args: []string{"invoke", "%M", "--device", "d-09", "--payload", `""`}, want: map[string]int{"d-09": 1}},
		{name: "--query once, conditions combined with OR", args: []string{"invoke", "%M", "--query", "SELECT deviceId FROM devices WHERE tags.grp = 'q1' OR tags.grp = 'q2'"},
			want: map[string]int{"q1-1": 1, "q1-2": 1, "q2-1": 1, "q2-2": 1}},
		{name: "DMCTL_OUTPUT set", args: []string{"invoke", "%M", "--device", "d-14"}, env: map[string]string{"DMCTL_OUTPUT": "json"},
			want: map[string]int{"d-14": 1}},
		{name: "jobs create --device repeated, duplicates removed", args: []string{"jobs", "create", "%M", "--device", "d-10", "--device", "d-11", "--device", "d-10", "--wait", "--poll-interval", "200ms"},
			want: map[string]int{"d-10": 1, "d-11": 1}},
	}
	methods := map[string]string{}
	t.Run("run", func(t *testing.T) {
		for i, c := range controls {
			method := fmt.Sprintf("ctl%02d", i)
			methods[method] = c.name
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := ch.run(t, badCase{args: c.args, env: c.env, stdin: c.stdin, files: c.files}, method)
				assert.False(t, r.timedOut, "did not finish")
				assert.Equal(t, 0, r.code, "stderr: %s", maskSecrets(r.stderr, ch.secrets))
				assert.Empty(t, secretLeaks(r.stdout+r.stderr, ch.secrets), "no secret in the output")
			})
		}
	})
	require.NoError(t, ch.hub.Stop())
	got := map[string]map[string]int{}
	for _, d := range readStoppedMethodLog(t, ch.hub.methodLog) {
		if got[d.Method] == nil {
			got[d.Method] = map[string]int{}
		}
		got[d.Method][deliveryTarget(d)]++
	}
	for i, c := range controls {
		method := fmt.Sprintf("ctl%02d", i)
		assert.Equal(t, c.want, got[method], "%s: the targets invoked, from the method log", c.name)
		delete(got, method)
	}
	assert.Empty(t, got, "deliveries of no control (methods %v)", methods)
}

// ---- the corpus ----

// flagNameRe matches a flag's name in a message: --name (not a longer flag
// that starts with it), or -o/-c for the ones with a shorthand.
func flagNameRe(name string) string {
	long := `--` + regexp.QuoteMeta(name) + `([^-a-z0-9]|$)`
	switch name {
	case "output":
		return `(^|[^-a-z0-9])-o([^-a-z0-9]|$)|` + long
	case "concurrency":
		return `(^|[^-a-z0-9])-c([^-a-z0-9]|$)|` + long
	}
	return long
}

func reLit(s string) string { return regexp.QuoteMeta(s) }

const (
	emptyMsgRe = `empty`
	twiceMsgRe = `more than once|twice|repeated|only once|two values`
)

// biInvoke is `dmctl invoke %M --device d-01` followed by extra.
func biInvoke(extra ...string) []string {
	return append([]string{"invoke", "%M", "--device", "d-01"}, extra...)
}

// biJobsCreate is `dmctl jobs create %M --device d-01` followed by extra.
func biJobsCreate(extra ...string) []string {
	return append([]string{"jobs", "create", "%M", "--device", "d-01"}, extra...)
}

// A valid journal of a run of %M over d-01 and d-02: d-01 has its result,
// d-02 is pending (a resumed run would invoke it).
const (
	corpusJournalHeader = `{"dmctlJournal":1,"method":"%M","startTime":"2026-01-02T03:04:05Z","run":{"devices":["d-01","d-02"],"timeout":"30s","connectTimeout":"0s","okStatus":"2xx","waitOnline":"0s","maxAttempts":5,"retryFor":"2m0s"}}` + "\n"
	corpusJournalD01    = `{"event":"dispatched","deviceId":"d-01","time":"2026-01-02T03:04:05Z"}` + "\n" +
		`{"deviceId":"d-01","method":"%M","outcome":"succeeded","status":200,"attempts":1,"startTime":"2026-01-02T03:04:05Z","durationMs":1}` + "\n"
	corpusJournal = corpusJournalHeader + corpusJournalD01
	// corpusPayloadJournal's run sent a payload (only its digest is stored).
	corpusPayloadJournal = `{"dmctlJournal":1,"method":"%M","startTime":"2026-01-02T03:04:05Z","run":{"devices":["d-01","d-02"],"payloadSha256":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","timeout":"30s","connectTimeout":"0s","okStatus":"2xx","waitOnline":"0s","maxAttempts":5,"retryFor":"2m0s"}}` + "\n" + corpusJournalD01
)

// corpusPlan is a valid plan of %M on d-01 and d-02 of the corpus hub;
// corpusPlanEdit is it with one edit (old -> new, once).
const corpusPlan = `{"dmctlPlan": 1, "created": "2026-01-02T03:04:05Z", "hub": "%H", "method": "%M", "run": {"timeout": "30s", "okStatus": "2xx"},
  "sources": {"devices": ["d-01", "d-02"]},
  "targets": [
    {"deviceId":"d-01","version":1,"etag":"AAAAAAAAAAE="},
    {"deviceId":"d-02","version":1,"etag":"AAAAAAAAAAE="}]}
`

func corpusPlanEdit(old, new string) string {
	if !strings.Contains(corpusPlan, old) {
		panic("corpusPlanEdit: no " + old)
	}
	return strings.Replace(corpusPlan, old, new, 1)
}

// corpusApplyJournal is a journal of dmctl apply of a plan (no longer there).
const corpusApplyJournal = `{"dmctlJournal":1,"method":"%M","startTime":"2026-01-02T03:04:05Z","run":{"timeout":"30s","connectTimeout":"0s","okStatus":"2xx","waitOnline":"0s","maxAttempts":5,"retryFor":"2m0s","plan":"/nonexistent/p.plan","planSha256":"00"}}` + "\n" + corpusJournalD01

// corpusConfig has one profile, lab, that is current and works (it only sets
// the output format).
const corpusConfig = "current: lab\nprofiles:\n  lab:\n    output: json\n"

// corpusConnectionStrings embed a key (%K, %L) in every position a
// hurried paste can put it.
var corpusConnectionStrings = []struct{ name, cs string }{
	{"SharedAccessKey:KEY", "HostName=%H;SharedAccessKeyName=service;SharedAccessKey:%K"},
	{"key without SharedAccessKey=", "HostName=%H;SharedAccessKeyName=service;%K"},
	{"key in HostName", "HostName=%K;SharedAccessKeyName=service;SharedAccessKey=%L"},
	{"misspelt SharedAccessKey", "HostName=%H;SharedAccessKeyName=service;SharedAccesKey=%K"},
	{"key not base64", "HostName=%H;SharedAccessKeyName=service;SharedAccessKey=%K!!"},
	{"key split by a space", "HostName=%H;SharedAccessKeyName=service;SharedAccessKey=%K %L"},
	{"no SharedAccessKeyName", "HostName=%H;SharedAccessKey=%K"},
	{"no HostName", "SharedAccessKeyName=service;SharedAccessKey=%K"},
	{"no SharedAccessKey", "HostName=%H;SharedAccessKeyName=service"},
	{"device connection string", "HostName=%H;DeviceId=d-01;SharedAccessKey=%K"},
	{"the key alone", "%K"},
	{"Event Hubs string", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=service;SharedAccessKey=%K"},
	{"SharedAccessKey twice", "HostName=%H;SharedAccessKeyName=service;SharedAccessKey=%K;SharedAccessKey=%L"},
	{"quotes pasted with it", `"HostName=%H;SharedAccessKeyName=service;SharedAccessKey=%K"`},
	{"SharedAccessSignature instead of key", "HostName=%H;SharedAccessKeyName=service;SharedAccessSignature=SharedAccessSignature sr=%H&sig=%K&se=4102444800&skn=service"},
	{"key in ModuleId", "HostName=%H;ModuleId=%K;SharedAccessKeyName=service;SharedAccessKey=%L"},
	{"key in x509", "HostName=%H;SharedAccessKeyName=service;SharedAccessKey=%L;x509=%K"},
	{"HostName is a URL", "HostName=https://%H/;SharedAccessKeyName=service;SharedAccessKey=%K"},
}

func corpusCases() []badCase {
	var cs []badCase
	add := func(c ...badCase) { cs = append(cs, c...) }

	// --- Empty values of every flag that takes one ("--flag ''" and "--flag=").
	invokeFlags := []string{"devices-file", "query", "module", "payload", "timeout", "connect-timeout", "ok-status", "wait-online",
		"max-attempts", "retry-for", "concurrency", "max-concurrency", "rate", "tier", "units", "journal", "resume", "waves", "batch-size", "wave-pause",
		"max-failures", "abort-if", "min-sample", "gate", "gate-timeout", "until-online", "grace", "wait", "wait-until", "fail-if", "wait-timeout", "via", "plan",
		"api-version", "auth", "ca-file", "connection-string", "connection-string-file", "hub", "output", "profile"}
	add(badCase{name: `invoke --device ""`, args: []string{"invoke", "%M", "--device", ""}, want: []string{flagNameRe("device"), emptyMsgRe}})
	add(badCase{name: `invoke --device=`, args: []string{"invoke", "%M", "--device="}, want: []string{flagNameRe("device"), emptyMsgRe}})
	for _, f := range invokeFlags {
		add(badCase{name: fmt.Sprintf(`invoke --%s ""`, f), args: biInvoke("--"+f, ""), want: []string{flagNameRe(f), emptyMsgRe}})
		add(badCase{name: fmt.Sprintf(`invoke --%s=`, f), args: biInvoke("--" + f + "="), want: []string{flagNameRe(f), emptyMsgRe}})
	}
	add(badCase{name: `invoke -o ""`, args: biInvoke("-o", ""), want: []string{flagNameRe("output"), emptyMsgRe}},
		badCase{name: `invoke -c ""`, args: biInvoke("-c", ""), want: []string{flagNameRe("concurrency"), emptyMsgRe}},
		badCase{name: `invoke --payload "   " (only spaces)`, args: biInvoke("--payload", "   "), want: []string{flagNameRe("payload"), emptyMsgRe}},
		badCase{name: `invoke --yes=`, args: biInvoke("--yes="), want: []string{flagNameRe("yes")}})
	for _, f := range []string{"payload", "timeout", "connect-timeout", "start-time", "max-execution-time", "job-id", "ok-status", "poll-interval"} {
		add(badCase{name: fmt.Sprintf(`jobs create --%s ""`, f), args: biJobsCreate("--"+f, ""), want: []string{flagNameRe(f), emptyMsgRe}})
	}
	add(badCase{name: `jobs create --query-condition ""`, args: []string{"jobs", "create", "%M", "--query-condition", ""}, want: []string{flagNameRe("query-condition"), emptyMsgRe}},
		badCase{name: `jobs create --query-condition=`, args: []string{"jobs", "create", "%M", "--query-condition="}, want: []string{flagNameRe("query-condition"), emptyMsgRe}},
		badCase{name: `jobs create --device ""`, args: []string{"jobs", "create", "%M", "--device", ""}, want: []string{flagNameRe("device"), emptyMsgRe}},
		badCase{name: `jobs create --job-id=`, args: biJobsCreate("--job-id="), want: []string{flagNameRe("job-id"), emptyMsgRe}},
		badCase{name: `jobs list --status ""`, args: []string{"jobs", "list", "--status", ""}, want: []string{flagNameRe("status"), emptyMsgRe}},
		badCase{name: `jobs list --type ""`, args: []string{"jobs", "list", "--type", ""}, want: []string{flagNameRe("type"), emptyMsgRe}},
		badCase{name: `jobs list --limit ""`, args: []string{"jobs", "list", "--limit", ""}, want: []string{flagNameRe("limit"), emptyMsgRe}},
		badCase{name: `jobs list --status=`, args: []string{"jobs", "list", "--status="}, want: []string{flagNameRe("status"), emptyMsgRe}},
		badCase{name: `jobs wait --ok-status ""`, args: []string{"jobs", "wait", "job-1", "--ok-status", ""}, want: []string{flagNameRe("ok-status"), emptyMsgRe}},
		badCase{name: `jobs wait --poll-interval ""`, args: []string{"jobs", "wait", "job-1", "--poll-interval", ""}, want: []string{flagNameRe("poll-interval"), emptyMsgRe}},
		badCase{name: `jobs results --ok-status ""`, args: []string{"jobs", "results", "job-1", "--ok-status", ""}, want: []string{flagNameRe("ok-status"), emptyMsgRe}},
		badCase{name: `jobs show --api-version ""`, args: []string{"jobs", "show", "job-1", "--api-version", ""}, want: []string{flagNameRe("api-version"), emptyMsgRe}},
		badCase{name: `jobs cancel --connection-string ""`, args: []string{"jobs", "cancel", "job-1", "--connection-string", ""}, want: []string{flagNameRe("connection-string"), emptyMsgRe}},
		badCase{name: `jobs list --profile ""`, args: []string{"jobs", "list", "--profile", ""}, want: []string{flagNameRe("profile"), emptyMsgRe}},
		badCase{name: `twin show --device ""`, args: []string{"twin", "show", "--device", ""}, want: []string{flagNameRe("device"), emptyMsgRe}},
		badCase{name: `twin show --module ""`, args: []string{"twin", "show", "--device", "d-01", "--module", ""}, want: []string{flagNameRe("module"), emptyMsgRe}},
		badCase{name: `twin show --path ""`, args: []string{"twin", "show", "--device", "d-01", "--path", ""}, want: []string{flagNameRe("path"), emptyMsgRe}},
		badCase{name: `twin show --path=`, args: []string{"twin", "show", "--device", "d-01", "--path="}, want: []string{flagNameRe("path"), emptyMsgRe}},
		badCase{name: `twin show --ca-file ""`, args: []string{"twin", "show", "--device", "d-01", "--ca-file", ""}, want: []string{flagNameRe("ca-file"), emptyMsgRe}},
		badCase{name: `config set-profile --hub ""`, args: []string{"config", "set-profile", "lab", "--hub", ""}, want: []string{flagNameRe("hub"), emptyMsgRe}},
		badCase{name: `config set-profile --auth ""`, args: []string{"config", "set-profile", "lab", "--auth", ""}, want: []string{flagNameRe("auth"), emptyMsgRe}},
		badCase{name: `config set-profile --ca-file ""`, args: []string{"config", "set-profile", "lab", "--ca-file", ""}, want: []string{flagNameRe("ca-file"), emptyMsgRe}},
		badCase{name: `config set-profile -o ""`, args: []string{"config", "set-profile", "lab", "-o", ""}, want: []string{flagNameRe("output"), emptyMsgRe}},
		badCase{name: `config get-profile --profile ""`, args: []string{"config", "get-profile", "--profile", ""}, files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{flagNameRe("profile"), emptyMsgRe}},
		badCase{name: `config use "" (empty NAME)`, args: []string{"config", "use", ""}, files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{`name`}},
		badCase{name: `config delete "" (empty NAME)`, args: []string{"config", "delete", ""}, files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{`name`}},
		badCase{name: `doctor --timeout ""`, args: []string{"doctor", "--timeout", ""}, want: []string{flagNameRe("timeout"), emptyMsgRe}},
		badCase{name: `doctor --hub ""`, args: []string{"doctor", "--hub", ""}, want: []string{flagNameRe("hub"), emptyMsgRe}},
		badCase{name: `doctor --connection-string-file=`, args: []string{"doctor", "--connection-string-file="}, want: []string{flagNameRe("connection-string-file"), emptyMsgRe}},
		badCase{name: `version -o ""`, args: []string{"version", "-o", ""}, want: []string{flagNameRe("output"), emptyMsgRe}},
	)
	for _, f := range []string{"journal", "resume", "connection-string", "output", "ca-file"} {
		add(badCase{name: fmt.Sprintf(`apply --%s ""`, f), args: []string{"apply", "p.plan", "--" + f, ""}, files: map[string]string{"p.plan": corpusPlan},
			want: []string{flagNameRe(f), emptyMsgRe}},
			badCase{name: fmt.Sprintf(`apply --%s=`, f), args: []string{"apply", "p.plan", "--" + f + "="}, files: map[string]string{"p.plan": corpusPlan},
				want: []string{flagNameRe(f), emptyMsgRe}})
	}
	add(badCase{name: `apply --allow-drift=`, args: []string{"apply", "p.plan", "--allow-drift="}, files: map[string]string{"p.plan": corpusPlan}, want: []string{flagNameRe("allow-drift")}},
		badCase{name: `apply --journal twice`, args: []string{"apply", "p.plan", "--journal", "a.jsonl", "--journal", "b.jsonl"}, files: map[string]string{"p.plan": corpusPlan},
			want: []string{flagNameRe("journal"), twiceMsgRe}},
		badCase{name: `invoke --plan twice`, args: biInvoke("--plan", "a.plan", "--plan", "b.plan"), want: []string{flagNameRe("plan"), twiceMsgRe}})

	// --- Plans: --plan's combinations, and plan files apply refuses.
	add(badCase{name: "invoke --plan with --dry-run", args: biInvoke("--plan", "p.plan", "--dry-run"), want: []string{flagNameRe("plan"), flagNameRe("dry-run")}},
		badCase{name: "invoke --plan with --journal", args: biInvoke("--plan", "p.plan", "--journal", "j.jsonl"), want: []string{flagNameRe("plan"), flagNameRe("journal")}},
		badCase{name: "invoke --plan with --via job", args: biInvoke("--plan", "p.plan", "--via", "job"), want: []string{flagNameRe("plan"), flagNameRe("via")}},
		badCase{name: "invoke --plan naming a directory", args: biInvoke("--plan", "sub"), dirs: []string{"sub"}, want: []string{flagNameRe("plan"), `directory`}},
		badCase{name: "invoke --plan in a missing directory", args: biInvoke("--plan", "missing/p.plan"), want: []string{flagNameRe("plan"), `missing`}},
		badCase{name: "invoke --plan with a secret in the payload", args: biInvoke("--plan", "p.plan", "--payload", `{"cs":"HostName=%H;SharedAccessKeyName=service;SharedAccessKey=%K"}`),
			want: []string{flagNameRe("plan"), `secret`}},
		badCase{name: "invoke --plan with a bad --rate", args: biInvoke("--plan", "p.plan", "--rate", "fast"), want: []string{flagNameRe("rate")}},
		badCase{name: "apply without PLAN", args: []string{"apply"}, want: []string{`PLAN`}},
		badCase{name: `apply "" (empty PLAN)`, args: []string{"apply", ""}, want: []string{`PLAN`, emptyMsgRe}},
		badCase{name: "apply of a missing plan", args: []string{"apply", "missing.plan"}, want: []string{reLit("missing.plan")}},
		badCase{name: "apply of a directory", args: []string{"apply", "sub"}, dirs: []string{"sub"}, want: []string{`plan sub`}},
		badCase{name: "apply --journal and --resume naming different files", args: []string{"apply", "p.plan", "--journal", "a.jsonl", "--resume", "b.jsonl"},
			files: map[string]string{"p.plan": corpusPlan}, want: []string{flagNameRe("journal"), flagNameRe("resume")}},
		badCase{name: "apply --resume of a journal of invoke", args: []string{"apply", "p.plan", "--resume", "j.jsonl"},
			files: map[string]string{"p.plan": corpusPlan, "j.jsonl": corpusJournal}, want: []string{flagNameRe("resume"), `dmctl invoke --resume`}},
		badCase{name: "apply --resume of a journal of another plan", args: []string{"apply", "p.plan", "--resume", "j.jsonl"},
			files: map[string]string{"p.plan": corpusPlan, "j.jsonl": corpusApplyJournal}, want: []string{flagNameRe("resume"), `differs`}},
		badCase{name: "invoke --resume of a journal of apply", args: []string{"invoke", "--resume", "j.jsonl"},
			files: map[string]string{"j.jsonl": corpusApplyJournal}, want: []string{flagNameRe("resume"), `dmctl apply`}},
		badCase{name: "apply --journal naming an existing file", args: []string{"apply", "p.plan", "--journal", "old.jsonl"},
			files: map[string]string{"p.plan": corpusPlan, "old.jsonl": corpusJournal}, want: []string{flagNameRe("journal"), reLit("old.jsonl")}},
	)
	for _, c := range []struct{ name, plan, want string }{
		{"not JSON", "hello\n", `not a JSON plan`},
		{"results, not a plan", `{"deviceId":"d-01","method":"%M","outcome":"succeeded"}`, `dmctlPlan`},
		{"format 99", corpusPlanEdit(`"dmctlPlan": 1`, `"dmctlPlan": 99`), `format 99`},
		{"an unknown field", corpusPlanEdit(`"run": {`, `"rnu": {}, "run": {`), `rnu`},
		{"a target twice", corpusPlanEdit(`"deviceId":"d-02"`, `"deviceId":"d-01"`), `targets\[1\].*twice`},
		{"a target without version", corpusPlanEdit(`"version":1,"etag":"AAAAAAAAAAE="},`, `"etag":"AAAAAAAAAAE="},`), `targets\[0\].*version`},
		{"a target without etag", corpusPlanEdit(`{"deviceId":"d-02","version":1,"etag":"AAAAAAAAAAE="}`, `{"deviceId":"d-02","version":1}`), `targets\[1\].*etag`},
		{"a bad device id", corpusPlanEdit(`"deviceId":"d-02"`, `"deviceId":"d 02"`), `targets\[1\].*deviceId`},
		{"a bad method", corpusPlanEdit(`"method": "%M"`, `"method": "%M x"`), `method`},
		{"another hub", corpusPlanEdit(`"hub": "%H"`, `"hub": "other.azure-devices.net"`), `other\.azure-devices\.net`},
		{"an empty hub", corpusPlanEdit(`"hub": "%H"`, `"hub": ""`), `hub`},
		{"a payload invoke refuses", corpusPlanEdit(`"run": {`, `"payload": "`+strings.Repeat("x", 130*1024)+`", "run": {`), `payload`},
		{"a rate invoke refuses", corpusPlanEdit(`"timeout": "30s"`, `"timeout": "30s", "rate": "fast"`), `--rate`},
		{"a timeout invoke refuses", corpusPlanEdit(`"timeout": "30s"`, `"timeout": "1s"`), `timeout`},
		{"a percentage without waves", corpusPlanEdit(`"timeout": "30s"`, `"timeout": "30s", "maxFailures": "5%"`), `--max-failures`},
		{"--wait-timeout without a wait", corpusPlanEdit(`"timeout": "30s"`, `"timeout": "30s", "waitTimeout": "5m"`), `--wait-timeout`},
		{"an abort criterion of no class", corpusPlanEdit(`"timeout": "30s"`, `"timeout": "30s", "abortIf": ["sleepy>2"]`), `--abort-if`},
	} {
		add(badCase{name: "apply of a plan with " + c.name, args: []string{"apply", "p.plan"}, files: map[string]string{"p.plan": c.plan},
			want: []string{`plan p\.plan`, c.want}})
	}

	// --- Empty environment variables that stand for flags.
	for _, v := range []string{"DMCTL_HUB", "DMCTL_OUTPUT", "DMCTL_AUTH", "DMCTL_PROFILE", "DMCTL_CONFIG_DIR", "IOTHUB_CONNECTION_STRING"} {
		add(badCase{name: "invoke with " + v + "=", args: biInvoke(), env: map[string]string{v: ""}, want: []string{v, emptyMsgRe}})
	}
	add(badCase{name: `invoke with DMCTL_OUTPUT="  "`, args: biInvoke(), env: map[string]string{"DMCTL_OUTPUT": "  "}, want: []string{"DMCTL_OUTPUT", emptyMsgRe}},
		badCase{name: `invoke with IOTHUB_CONNECTION_STRING="  "`, args: biInvoke(), env: map[string]string{"IOTHUB_CONNECTION_STRING": "  "}, want: []string{"IOTHUB_CONNECTION_STRING", emptyMsgRe}},
		badCase{name: "jobs create with IOTHUB_CONNECTION_STRING=", args: biJobsCreate(), env: map[string]string{"IOTHUB_CONNECTION_STRING": ""}, want: []string{"IOTHUB_CONNECTION_STRING", emptyMsgRe}},
		badCase{name: "twin show with IOTHUB_CONNECTION_STRING=", args: []string{"twin", "show", "--device", "d-01"}, env: map[string]string{"IOTHUB_CONNECTION_STRING": ""}, want: []string{"IOTHUB_CONNECTION_STRING", emptyMsgRe}},
		badCase{name: "jobs list with DMCTL_OUTPUT=", args: []string{"jobs", "list"}, env: map[string]string{"DMCTL_OUTPUT": ""}, want: []string{"DMCTL_OUTPUT", emptyMsgRe}},
		badCase{name: "twin show with DMCTL_AUTH=", args: []string{"twin", "show", "--device", "d-01"}, env: map[string]string{"DMCTL_AUTH": ""}, want: []string{"DMCTL_AUTH", emptyMsgRe}},
		badCase{name: "config list with DMCTL_CONFIG_DIR=", args: []string{"config", "list"}, env: map[string]string{"DMCTL_CONFIG_DIR": ""}, want: []string{"DMCTL_CONFIG_DIR", emptyMsgRe}},
		badCase{name: "invoke with DMCTL_PROFILE= and a current profile", args: biInvoke(), env: map[string]string{"DMCTL_PROFILE": ""},
			files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{"DMCTL_PROFILE", emptyMsgRe}},
		badCase{name: "invoke with DMCTL_OUTPUT=xml", args: biInvoke(), env: map[string]string{"DMCTL_OUTPUT": "xml"}, want: []string{"DMCTL_OUTPUT", "xml"}},
		badCase{name: "invoke with DMCTL_AUTH=nope", args: biInvoke(), env: map[string]string{"DMCTL_AUTH": "nope"}, want: []string{"DMCTL_AUTH", "nope"}},
		badCase{name: "invoke with DMCTL_HUB=https://x/", args: biInvoke(), env: map[string]string{"DMCTL_HUB": "https://x/"}, want: []string{"DMCTL_HUB|--hub"}},
	)

	// --- Single-value flags given twice.
	twice := func(name string, args []string, flag string) badCase {
		return badCase{name: name, args: args, want: []string{flagNameRe(flag), twiceMsgRe}}
	}
	add(twice(`invoke --payload twice`, biInvoke("--payload", "{}", "--payload", "{}"), "payload"),
		twice(`invoke --module twice`, biInvoke("--module", "a", "--module", "b"), "module"),
		twice(`invoke --wait twice`, biInvoke("--wait", "reboot", "--wait", "firmware", "--wait-timeout", "5s"), "wait"),
		twice(`invoke --timeout twice`, biInvoke("--timeout", "30", "--timeout", "40"), "timeout"),
		twice(`invoke --timeout= and --timeout`, biInvoke("--timeout=30", "--timeout", "30"), "timeout"),
		twice(`invoke -o twice`, biInvoke("-o", "json", "-o", "table"), "output"),
		twice(`invoke -o and --output`, biInvoke("-o", "json", "--output", "json"), "output"),
		twice(`invoke --connection-string twice`, biInvoke("--connection-string", "%CS", "--connection-string", "%CS"), "connection-string"),
		badCase{name: `invoke --connection-string-file twice`, args: biInvoke("--connection-string-file", "cs.txt", "--connection-string-file", "cs.txt"),
			files: map[string]string{"cs.txt": "%CS\n"}, want: []string{flagNameRe("connection-string-file"), twiceMsgRe}},
		twice(`invoke --query twice`, []string{"invoke", "%M", "--query", "SELECT deviceId FROM devices WHERE tags.grp = 'q1'", "--query", "SELECT deviceId FROM devices WHERE tags.grp = 'q2'"}, "query"),
		twice(`invoke --journal twice`, biInvoke("--journal", "a.jsonl", "--journal", "b.jsonl"), "journal"),
		badCase{name: `invoke --resume twice`, args: []string{"invoke", "--resume", "j.jsonl", "--resume", "j.jsonl"},
			files: map[string]string{"j.jsonl": corpusJournal}, want: []string{flagNameRe("resume"), twiceMsgRe}},
		twice(`invoke --concurrency twice`, biInvoke("--concurrency", "4", "-c", "8"), "concurrency"),
		twice(`invoke --max-concurrency twice`, biInvoke("--max-concurrency", "400", "--max-concurrency", "800"), "max-concurrency"),
		twice(`invoke -c auto twice`, biInvoke("-c", "auto", "--concurrency", "auto"), "concurrency"),
		twice(`invoke --rate twice`, biInvoke("--rate", "10/s", "--rate", "20/s"), "rate"),
		twice(`invoke --tier twice`, biInvoke("--tier", "S1", "--tier", "S2"), "tier"),
		twice(`invoke --ok-status twice`, biInvoke("--ok-status", "200", "--ok-status", "2xx"), "ok-status"),
		twice(`invoke --via twice`, biInvoke("--via", "direct", "--via", "direct"), "via"),
		twice(`invoke --max-attempts twice`, biInvoke("--max-attempts", "1", "--max-attempts", "2"), "max-attempts"),
		twice(`invoke --ca-file twice`, biInvoke("--ca-file", "%CA", "--ca-file", "%CA"), "ca-file"),
		twice(`invoke --auth twice`, biInvoke("--auth", "sas", "--auth", "sas"), "auth"),
		twice(`invoke --api-version twice`, biInvoke("--api-version", "2021-04-12", "--api-version", "2021-04-12"), "api-version"),
		twice(`jobs create --query-condition twice`, []string{"jobs", "create", "%M", "--query-condition", "tags.grp = 'q1'", "--query-condition", "tags.grp = 'q2'"}, "query-condition"),
		twice(`jobs create --job-id twice`, biJobsCreate("--job-id", "j-a", "--job-id", "j-b"), "job-id"),
		twice(`jobs create --start-time twice`, biJobsCreate("--start-time", "+1h", "--start-time", "+2h"), "start-time"),
		twice(`jobs list --status twice`, []string{"jobs", "list", "--status", "running", "--status", "failed"}, "status"),
		twice(`jobs wait --poll-interval twice`, []string{"jobs", "wait", "job-1", "--poll-interval", "1s", "--poll-interval", "2s"}, "poll-interval"),
		twice(`twin show --device twice`, []string{"twin", "show", "--device", "d-01", "--device", "d-02"}, "device"),
		twice(`twin show --path twice`, []string{"twin", "show", "--device", "d-01", "--path", "tags", "--path", "properties"}, "path"),
		twice(`doctor --timeout twice`, []string{"doctor", "--timeout", "5s", "--timeout", "6s"}, "timeout"),
		badCase{name: `invoke --profile twice`, args: biInvoke("--profile", "lab", "--profile", "lab"), files: map[string]string{"cfg/config.yaml": corpusConfig},
			want: []string{flagNameRe("profile"), twiceMsgRe}},
	)

	// --- --resume with target flags.
	for _, f := range [][]string{{"--device", "d-03"}, {"--query", "SELECT deviceId FROM devices"}, {"--devices-file", "ids.txt"}, {"--module", "m1"}} {
		add(badCase{name: "invoke --resume with " + f[0], args: append([]string{"invoke", "--resume", "j.jsonl"}, f...),
			files: map[string]string{"j.jsonl": corpusJournal, "ids.txt": "d-03\n"}, want: []string{flagNameRe("resume"), flagNameRe(f[0][2:])}})
	}

	// --- Journals.
	add(badCase{name: "invoke --resume missing file", args: []string{"invoke", "--resume", "missing.jsonl"}, want: []string{flagNameRe("resume"), reLit("missing.jsonl")}},
		badCase{name: "invoke --resume of a text file", args: []string{"invoke", "--resume", "notes.txt"}, files: map[string]string{"notes.txt": "hello world\n"},
			want: []string{reLit("notes.txt"), `line 1`}},
		badCase{name: "invoke --resume of a journal with a corrupt header", args: []string{"invoke", "--resume", "corrupt.jsonl"},
			files: map[string]string{"corrupt.jsonl": `{"dmctlJournal":1,"method":"%M","startTime":` + "\n" + corpusJournalD01}, want: []string{reLit("corrupt.jsonl"), `line 1`}},
		badCase{name: "invoke --resume of a journal of format 99", args: []string{"invoke", "--resume", "v99.jsonl"},
			files: map[string]string{"v99.jsonl": strings.Replace(corpusJournal, `"dmctlJournal":1`, `"dmctlJournal":99`, 1)}, want: []string{reLit("v99.jsonl"), `line 1`}},
		badCase{name: "invoke --resume of results, not a journal", args: []string{"invoke", "--resume", "results.jsonl"},
			files: map[string]string{"results.jsonl": `{"deviceId":"d-02","method":"%M","outcome":"failed","status":500}` + "\n"}, want: []string{reLit("results.jsonl"), `line 1`}},
		badCase{name: "invoke --resume of a journal with a bad line 3", args: []string{"invoke", "--resume", "line3.jsonl"},
			files: map[string]string{"line3.jsonl": corpusJournalHeader + `{"event":"dispatched","deviceId":"d-01","time":"2026-01-02T03:04:05Z"}` + "\n" + `{"deviceId":"d-01"}` + "\n"},
			want:  []string{reLit("line3.jsonl"), `line 3`}},
		badCase{name: "invoke --resume of a journal with two headers", args: []string{"invoke", "--resume", "two.jsonl"},
			files: map[string]string{"two.jsonl": corpusJournalHeader + corpusJournalHeader}, want: []string{reLit("two.jsonl"), `line 2`}},
		badCase{name: "invoke --resume of a directory", args: []string{"invoke", "--resume", "sub"}, dirs: []string{"sub"}, want: []string{flagNameRe("resume"), `sub`}},
		badCase{name: "invoke --resume with a different METHOD", args: []string{"invoke", "%Mx", "--resume", "j.jsonl"}, files: map[string]string{"j.jsonl": corpusJournal},
			want: []string{flagNameRe("resume"), `%Mx|method`}},
		badCase{name: "invoke --resume without the run's --payload", args: []string{"invoke", "--resume", "jp.jsonl"}, files: map[string]string{"jp.jsonl": corpusPayloadJournal},
			want: []string{flagNameRe("resume"), flagNameRe("payload")}},
		badCase{name: "invoke --resume with a different --payload", args: []string{"invoke", "--resume", "jp.jsonl", "--payload", `{"other":1}`},
			files: map[string]string{"jp.jsonl": corpusPayloadJournal}, want: []string{flagNameRe("resume"), flagNameRe("payload")}},
		badCase{name: "invoke --resume with a --payload the run did not send", args: []string{"invoke", "--resume", "j.jsonl", "--payload", `{}`},
			files: map[string]string{"j.jsonl": corpusJournal}, want: []string{flagNameRe("resume"), flagNameRe("payload")}},
		badCase{name: "invoke --journal naming an existing file", args: biInvoke("--journal", "old.jsonl"), files: map[string]string{"old.jsonl": corpusJournal},
			want: []string{flagNameRe("journal"), reLit("old.jsonl")}},
		badCase{name: "invoke --journal naming a directory", args: biInvoke("--journal", "sub"), dirs: []string{"sub"}, want: []string{flagNameRe("journal"), `sub`}},
		badCase{name: "invoke --journal and --resume naming different files", args: []string{"invoke", "--resume", "j.jsonl", "--journal", "other.jsonl"},
			files: map[string]string{"j.jsonl": corpusJournal}, want: []string{flagNameRe("journal"), flagNameRe("resume")}},
		badCase{name: "invoke --resume with --via job", args: []string{"invoke", "--resume", "j.jsonl", "--via", "job"}, files: map[string]string{"j.jsonl": corpusJournal},
			want: []string{flagNameRe("via"), flagNameRe("resume")}},
	)

	// --- Connection strings, from the flag, a file and the environment.
	for _, m := range corpusConnectionStrings {
		add(badCase{name: "--connection-string " + m.name, args: biInvoke("--connection-string", m.cs), want: []string{flagNameRe("connection-string")}},
			badCase{name: "--connection-string-file " + m.name, args: biInvoke("--connection-string-file", "cs.txt"), files: map[string]string{"cs.txt": m.cs + "\n"},
				want: []string{reLit("cs.txt")}},
			badCase{name: "IOTHUB_CONNECTION_STRING " + m.name, args: biInvoke(), env: map[string]string{"IOTHUB_CONNECTION_STRING": m.cs},
				want: []string{"IOTHUB_CONNECTION_STRING"}})
	}
	add(badCase{name: "--debug --connection-string SharedAccessKey:KEY", args: biInvoke("--debug", "--connection-string", corpusConnectionStrings[0].cs), want: []string{flagNameRe("connection-string")}},
		badCase{name: "jobs create --connection-string key in HostName", args: biJobsCreate("--connection-string", corpusConnectionStrings[2].cs), want: []string{flagNameRe("connection-string")}},
		badCase{name: "twin show IOTHUB_CONNECTION_STRING key without prefix", args: []string{"twin", "show", "--device", "d-01"},
			env: map[string]string{"IOTHUB_CONNECTION_STRING": corpusConnectionStrings[1].cs}, want: []string{"IOTHUB_CONNECTION_STRING"}},
		badCase{name: "--connection-string-file missing", args: biInvoke("--connection-string-file", "missing.txt"), want: []string{reLit("missing.txt")}},
		badCase{name: "--connection-string-file empty", args: biInvoke("--connection-string-file", "empty.txt"), files: map[string]string{"empty.txt": ""}, want: []string{reLit("empty.txt"), emptyMsgRe}},
		badCase{name: "--connection-string-file a directory", args: biInvoke("--connection-string-file", "sub"), dirs: []string{"sub"}, want: []string{flagNameRe("connection-string-file"), `sub`}},
		badCase{name: "--connection-string and --connection-string-file", args: biInvoke("--connection-string", "%CS", "--connection-string-file", "cs.txt"),
			files: map[string]string{"cs.txt": "%CS\n"}, want: []string{flagNameRe("connection-string"), flagNameRe("connection-string-file")}},
		badCase{name: "--auth azure-cli with --connection-string", args: biInvoke("--auth", "azure-cli", "--connection-string", "%CS"), want: []string{flagNameRe("auth")}},
		badCase{name: "--auth managed-identity without --hub", args: biInvoke("--auth", "managed-identity"), unset: []string{"IOTHUB_CONNECTION_STRING"}, want: []string{flagNameRe("hub")}},
		badCase{name: "--hub other than the connection string's", args: biInvoke("--hub", "other.azure-devices.net"), want: []string{flagNameRe("hub"), reLit("other.azure-devices.net")}},
		badCase{name: "--hub a URL", args: biInvoke("--hub", "https://x.azure-devices.net/"), want: []string{flagNameRe("hub")}},
		badCase{name: "--ca-file missing", args: biInvoke("--ca-file", "missing.pem"), want: []string{flagNameRe("ca-file"), reLit("missing.pem")}},
		badCase{name: "--ca-file without PEM", args: biInvoke("--ca-file", "notpem.txt"), files: map[string]string{"notpem.txt": "not a certificate\n"}, want: []string{flagNameRe("ca-file"), reLit("notpem.txt")}},
	)

	// --- Profiles and config files.
	brokenConfig := map[string]string{"cfg/config.yaml": "profiles: [\n"}
	add(badCase{name: "malformed config.yaml with --profile", args: biInvoke("--profile", "lab"), files: brokenConfig, want: []string{reLit("config.yaml")}},
		badCase{name: "malformed config.yaml without --profile", args: biInvoke(), files: brokenConfig, want: []string{reLit("config.yaml")}},
		badCase{name: "malformed config.yaml: config list", args: []string{"config", "list"}, files: brokenConfig, want: []string{reLit("config.yaml")}},
		badCase{name: "malformed config.yaml: config use", args: []string{"config", "use", "lab"}, files: brokenConfig, want: []string{reLit("config.yaml")}},
		badCase{name: "config.yaml profile holding a bare connection string", args: biInvoke("--profile", "lab"), unset: []string{"IOTHUB_CONNECTION_STRING"},
			files: map[string]string{"cfg/config.yaml": "current: lab\nprofiles:\n  lab: \"HostName=%H;SharedAccessKeyName=service;SharedAccessKey=%K\"\n"}, want: []string{reLit("config.yaml")}},
		badCase{name: "config.yaml connectionString not a string", args: biInvoke("--profile", "lab"), unset: []string{"IOTHUB_CONNECTION_STRING"},
			files: map[string]string{"cfg/config.yaml": "profiles:\n  lab:\n    connectionString: [\"HostName=%H\", \"SharedAccessKey=%K\"]\n"}, want: []string{reLit("config.yaml")}},
		badCase{name: "--profile unknown", args: biInvoke("--profile", "nope"), files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{flagNameRe("profile"), `nope`}},
		badCase{name: "--profile invalid name", args: biInvoke("--profile", "bad name!"), files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{flagNameRe("profile"), `bad name!`}},
		badCase{name: "DMCTL_PROFILE unknown", args: biInvoke(), env: map[string]string{"DMCTL_PROFILE": "nope"}, files: map[string]string{"cfg/config.yaml": corpusConfig},
			want: []string{"DMCTL_PROFILE", `nope`}},
		badCase{name: "current profile unknown", args: biInvoke(), files: map[string]string{"cfg/config.yaml": "current: gone\nprofiles:\n  lab:\n    output: json\n"}, want: []string{`gone`}},
		badCase{name: "profile with output xml", args: biInvoke(), files: map[string]string{"cfg/config.yaml": "current: lab\nprofiles:\n  lab:\n    output: xml\n"},
			want: []string{flagNameRe("output"), `lab`}},
		badCase{name: "profile with auth nope", args: biInvoke(), unset: []string{"IOTHUB_CONNECTION_STRING"},
			files: map[string]string{"cfg/config.yaml": "current: lab\nprofiles:\n  lab:\n    hub: h.azure-devices.net\n    auth: nope\n"}, want: []string{flagNameRe("auth"), `lab|nope`}},
		badCase{name: "profile with a missing caFile", args: biInvoke(), files: map[string]string{"cfg/config.yaml": "current: lab\nprofiles:\n  lab:\n    caFile: missing.pem\n"},
			want: []string{reLit("missing.pem")}},
		badCase{name: "profile with hub a URL", args: biInvoke(), unset: []string{"IOTHUB_CONNECTION_STRING"},
			files: map[string]string{"cfg/config.yaml": "current: lab\nprofiles:\n  lab:\n    hub: https://x.azure-devices.net/\n    auth: azure-cli\n"}, want: []string{flagNameRe("hub")}},
		badCase{name: "config use unknown", args: []string{"config", "use", "nope"}, files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{`nope`}},
		badCase{name: "config delete unknown", args: []string{"config", "delete", "nope"}, files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{`nope`}},
		badCase{name: "config get-profile unknown", args: []string{"config", "get-profile", "nope"}, files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{`nope`}},
		badCase{name: "config set-profile invalid name", args: []string{"config", "set-profile", "bad/name", "--hub", "h.azure-devices.net"}, want: []string{reLit("bad/name")}},
		badCase{name: "config set-profile without NAME", args: []string{"config", "set-profile", "--hub", "h.azure-devices.net"}, want: []string{`name`}},
		badCase{name: "config use with two NAMEs", args: []string{"config", "use", "lab", "other"}, files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{`name`}},
		badCase{name: "config set-profile with nothing to change", args: []string{"config", "set-profile", "lab"}, files: map[string]string{"cfg/config.yaml": corpusConfig}, want: []string{`lab`}},
		badCase{name: "config set-profile --store-connection-string without one", args: []string{"config", "set-profile", "lab", "--store-connection-string"},
			unset: []string{"IOTHUB_CONNECTION_STRING"}, want: []string{flagNameRe("store-connection-string")}},
		badCase{name: "config set-profile --store-connection-string malformed", args: []string{"config", "set-profile", "lab", "--store-connection-string", "--connection-string", corpusConnectionStrings[0].cs},
			want: []string{flagNameRe("connection-string")}},
		badCase{name: "config set-profile --ca-file missing", args: []string{"config", "set-profile", "lab", "--ca-file", "missing.pem"}, want: []string{reLit("missing.pem")}},
		badCase{name: "config set-profile --hub a URL", args: []string{"config", "set-profile", "lab", "--hub", "https://x/"}, want: []string{flagNameRe("hub")}},
		badCase{name: "config set-profile --auth nope", args: []string{"config", "set-profile", "lab", "--auth", "nope"}, want: []string{flagNameRe("auth"), `nope`}},
		badCase{name: "config set-profile -o xml", args: []string{"config", "set-profile", "lab", "-o", "xml"}, want: []string{flagNameRe("output"), `xml`}},
	)
	for _, i := range []int{0, 1, 2, 4, 9} {
		m := corpusConnectionStrings[i]
		add(badCase{name: "profile storing " + m.name, args: biInvoke(), unset: []string{"IOTHUB_CONNECTION_STRING"},
			files: map[string]string{"cfg/config.yaml": "current: lab\nprofiles:\n  lab:\n    connectionString: '" + m.cs + "'\n"}, want: []string{`profile`, `lab`}})
	}

	// --- Payloads.
	big := `"` + strings.Repeat("a", 128*1024) + `"`
	add(badCase{name: "--payload invalid JSON", args: biInvoke("--payload", "{"), want: []string{flagNameRe("payload"), `JSON`}},
		badCase{name: "--payload trailing comma", args: biInvoke("--payload", `{"a":1,}`), want: []string{flagNameRe("payload"), `JSON`}},
		badCase{name: "--payload two JSON values", args: biInvoke("--payload", "{} {}"), want: []string{flagNameRe("payload"), `more than one|extra`}},
		badCase{name: "--payload bare word", args: biInvoke("--payload", "reboot"), want: []string{flagNameRe("payload"), `JSON`}},
		badCase{name: "--payload @file over 128 KB", args: biInvoke("--payload", "@big.json"), files: map[string]string{"big.json": big}, want: []string{reLit("big.json"), `128`}},
		badCase{name: "--payload - over 128 KB", args: biInvoke("--payload", "-"), stdin: big, want: []string{flagNameRe("payload"), `128`}},
		badCase{name: "--payload @missing-file", args: biInvoke("--payload", "@missing.json"), want: []string{reLit("missing.json")}},
		badCase{name: "--payload @ alone", args: biInvoke("--payload", "@"), want: []string{flagNameRe("payload"), `@`}},
		badCase{name: "--payload @empty file", args: biInvoke("--payload", "@empty.json"), files: map[string]string{"empty.json": ""}, want: []string{reLit("empty.json"), emptyMsgRe}},
		badCase{name: "--payload @directory", args: biInvoke("--payload", "@sub"), dirs: []string{"sub"}, want: []string{flagNameRe("payload"), `sub`}},
		badCase{name: "--payload @file with invalid JSON", args: biInvoke("--payload", "@bad.json"), files: map[string]string{"bad.json": "{\"a\":\n"}, want: []string{reLit("bad.json"), `JSON`}},
		badCase{name: "--payload - empty stdin", args: biInvoke("--payload", "-"), want: []string{flagNameRe("payload"), emptyMsgRe}},
		badCase{name: "--payload - invalid JSON on stdin", args: biInvoke("--payload", "-"), stdin: "{nope}", want: []string{flagNameRe("payload"), `JSON`}},
		badCase{name: "--devices-file - and --payload -", args: []string{"invoke", "%M", "--devices-file", "-", "--payload", "-"}, stdin: "d-01\n",
			want: []string{flagNameRe("devices-file"), flagNameRe("payload")}},
		badCase{name: "jobs create --payload invalid JSON", args: biJobsCreate("--payload", "{"), want: []string{flagNameRe("payload"), `JSON`}},
		badCase{name: "jobs create --payload @missing-file", args: biJobsCreate("--payload", "@missing.json"), want: []string{reLit("missing.json")}},
	)

	// --- Ids and method names.
	long129 := strings.Repeat("x", 129)
	add(badCase{name: "METHOD with a space", args: []string{"invoke", "re boot", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "METHOD with $", args: []string{"invoke", "$reboot", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "METHOD with /", args: []string{"invoke", "a/b", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "METHOD with :", args: []string{"invoke", "a:b", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "METHOD with a tab", args: []string{"invoke", "a\tb", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "METHOD not ASCII", args: []string{"invoke", "réboot", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "METHOD over 100 characters", args: []string{"invoke", strings.Repeat("m", 101), "--device", "d-01"}, want: []string{`METHOD`, `100`}},
		badCase{name: "METHOD empty", args: []string{"invoke", "", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "METHOD missing", args: []string{"invoke", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "two METHODs", args: []string{"invoke", "%M", "extra", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "--device with a space", args: []string{"invoke", "%M", "--device", "a b"}, want: []string{flagNameRe("device")}},
		badCase{name: "--device over 128 characters", args: []string{"invoke", "%M", "--device", long129}, want: []string{flagNameRe("device"), `128`}},
		badCase{name: "--device .", args: []string{"invoke", "%M", "--device", "."}, want: []string{flagNameRe("device")}},
		badCase{name: "--device ..", args: []string{"invoke", "%M", "--device", ".."}, want: []string{flagNameRe("device")}},
		badCase{name: "--device with /", args: []string{"invoke", "%M", "--device", "a/b"}, want: []string{flagNameRe("device")}},
		badCase{name: "--device not ASCII", args: []string{"invoke", "%M", "--device", "dév"}, want: []string{flagNameRe("device")}},
		badCase{name: "--device with a newline", args: []string{"invoke", "%M", "--device", "d-01\n"}, want: []string{flagNameRe("device")}},
		badCase{name: "--module with a space", args: biInvoke("--module", "a b"), want: []string{flagNameRe("module")}},
		badCase{name: "--module ..", args: biInvoke("--module", ".."), want: []string{flagNameRe("module")}},
		badCase{name: "--module over 128 characters", args: biInvoke("--module", long129), want: []string{flagNameRe("module"), `128`}},
		badCase{name: "jobs show JOB-ID with a space", args: []string{"jobs", "show", "a b"}, want: []string{`JOB-ID`}},
		badCase{name: "jobs cancel JOB-ID ..", args: []string{"jobs", "cancel", ".."}, want: []string{`JOB-ID`}},
		badCase{name: "jobs wait JOB-ID with /", args: []string{"jobs", "wait", "a/b"}, want: []string{`JOB-ID`}},
		badCase{name: "jobs results JOB-ID over 128 characters", args: []string{"jobs", "results", long129}, want: []string{`JOB-ID`, `128`}},
		badCase{name: "jobs show JOB-ID .", args: []string{"jobs", "show", "."}, want: []string{`JOB-ID`}},
		badCase{name: "jobs cancel JOB-ID empty", args: []string{"jobs", "cancel", ""}, want: []string{`JOB-ID`}},
		badCase{name: "jobs create METHOD with a space", args: []string{"jobs", "create", "re boot", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "jobs create METHOD empty", args: []string{"jobs", "create", "", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "jobs create METHOD with $", args: []string{"jobs", "create", "$x", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "jobs create --job-id with a space", args: biJobsCreate("--job-id", "a b"), want: []string{flagNameRe("job-id")}},
		badCase{name: "jobs create --device ..", args: []string{"jobs", "create", "%M", "--device", ".."}, want: []string{flagNameRe("device")}},
		badCase{name: "twin show --device with a space", args: []string{"twin", "show", "--device", "a b"}, want: []string{flagNameRe("device")}},
		badCase{name: "twin show --module ..", args: []string{"twin", "show", "--device", "d-01", "--module", ".."}, want: []string{flagNameRe("module")}},
	)

	// --- Queries.
	longQuery := "SELECT deviceId FROM devices WHERE deviceId = 'd-01'" + strings.Repeat(" OR deviceId = 'd-0000000000000000000001'", 200)
	add(badCase{name: "--query not from devices", args: []string{"invoke", "%M", "--query", "SELECT * FROM jobs"}, want: []string{flagNameRe("query")}},
		badCase{name: "--query not a SELECT", args: []string{"invoke", "%M", "--query", "DELETE FROM devices"}, want: []string{flagNameRe("query")}},
		badCase{name: "--query a bare condition", args: []string{"invoke", "%M", "--query", "tags.grp = 'q1'"}, want: []string{flagNameRe("query")}},
		badCase{name: "--query FROM devices.jobs", args: []string{"invoke", "%M", "--query", "SELECT * FROM devices.jobs"}, want: []string{flagNameRe("query"), `jobs`}},
		badCase{name: "--query only spaces", args: []string{"invoke", "%M", "--query", "   "}, want: []string{flagNameRe("query"), emptyMsgRe}},
		badCase{name: "--module with FROM devices.modules", args: []string{"invoke", "%M", "--module", "m1", "--query", "SELECT * FROM devices.modules"},
			want: []string{flagNameRe("module"), `devices\.modules`}},
		badCase{name: "--query over 8 KB", args: []string{"invoke", "%M", "--query", longQuery}, want: []string{flagNameRe("query"), `8 ?KB|8192|8,192`}},
		badCase{name: "--via job --query with TOP", args: []string{"invoke", "%M", "--via", "job", "--query", "SELECT TOP 5 deviceId FROM devices"}, want: []string{flagNameRe("via"), `TOP`}},
		badCase{name: "--via job --query with GROUP BY", args: []string{"invoke", "%M", "--via", "job", "--query", "SELECT deviceId FROM devices GROUP BY tags.grp"}, want: []string{flagNameRe("via"), `GROUP BY`}},
		badCase{name: "--via job --query FROM devices.modules", args: []string{"invoke", "%M", "--via", "job", "--query", "SELECT * FROM devices.modules"}, want: []string{flagNameRe("via"), `modules`}},
		badCase{name: "--query the hub refuses (400)", args: []string{"invoke", "%M", "--query", "SELECT deviceId FROM devices WHERE foo ==== bar"},
			want: []string{flagNameRe("query"), `syntax error`}, hubRefuses: corpusRouteQuery},
		badCase{name: "--via job --query the hub refuses (400)", args: []string{"invoke", "%M", "--via", "job", "--query", "SELECT deviceId FROM devices WHERE foo ==== bar"},
			want: []string{`query`, `syntax error`}, hubRefuses: corpusRouteJobPut},
	)

	// --- Devices files.
	add(badCase{name: "--devices-file missing", args: []string{"invoke", "%M", "--devices-file", "missing.txt"}, want: []string{flagNameRe("devices-file"), reLit("missing.txt")}},
		badCase{name: "--devices-file bad id on line 3", args: []string{"invoke", "%M", "--devices-file", "ids.txt"}, files: map[string]string{"ids.txt": "d-01\nd-02\nbad id\n"},
			want: []string{reLit("ids.txt"), `line 3`}},
		badCase{name: "--devices-file JSON line without deviceId", args: []string{"invoke", "%M", "--devices-file", "ids.jsonl"},
			files: map[string]string{"ids.jsonl": `{"moduleId":"m1"}` + "\n"}, want: []string{reLit("ids.jsonl"), `line 1`, `deviceId`}},
		badCase{name: "--devices-file broken JSON on line 2", args: []string{"invoke", "%M", "--devices-file", "ids.jsonl"},
			files: map[string]string{"ids.jsonl": `{"deviceId":"d-01"}` + "\n" + `{"deviceId":` + "\n"}, want: []string{reLit("ids.jsonl"), `line 2`}},
		badCase{name: "--devices-file a directory", args: []string{"invoke", "%M", "--devices-file", "sub"}, dirs: []string{"sub"}, want: []string{flagNameRe("devices-file"), `sub`}},
		badCase{name: "--devices-file bad module on line 2", args: []string{"invoke", "%M", "--devices-file", "ids.txt"}, files: map[string]string{"ids.txt": "d-01\nd-02/bad mod\n"},
			want: []string{reLit("ids.txt"), `line 2`}},
		badCase{name: "--devices-file id over 128 characters on line 2", args: []string{"invoke", "%M", "--devices-file", "ids.txt"},
			files: map[string]string{"ids.txt": "d-01\n" + long129 + "\n"}, want: []string{reLit("ids.txt"), `line 2`, `128`}},
		badCase{name: "--devices-file line naming another module than --module", args: []string{"invoke", "%M", "--module", "m1", "--devices-file", "ids.txt"},
			files: map[string]string{"ids.txt": "d-01/m2\n"}, want: []string{reLit("ids.txt"), `line 1`}},
		badCase{name: "--devices-file - bad id on line 2 of stdin", args: []string{"invoke", "%M", "--devices-file", "-"}, stdin: "d-01\n..\n",
			want: []string{`stdin|--devices-file -`, `line 2`}},
		badCase{name: "--devices-file - twice", args: []string{"invoke", "%M", "--devices-file", "-", "--devices-file", "-"}, stdin: "d-01\n",
			want: []string{`--devices-file -`, `stdin|more than once|twice`}},
		badCase{name: "--devices-file second file bad", args: []string{"invoke", "%M", "--devices-file", "ok.txt", "--devices-file", "bad.txt"},
			files: map[string]string{"ok.txt": "d-01\n", "bad.txt": "d-02\nno way\n"}, want: []string{reLit("bad.txt"), `line 2`}},
		badCase{name: "--via job --devices-file naming a module", args: []string{"invoke", "%M", "--via", "job", "--devices-file", "ids.txt"},
			files: map[string]string{"ids.txt": "d-01/m1\n"}, want: []string{flagNameRe("via"), `module`}},
	)

	// --- Numbers, durations and enums.
	num := func(name string, args []string, flag string, extra ...string) badCase {
		return badCase{name: name, args: args, want: append([]string{flagNameRe(flag)}, extra...)}
	}
	add(num("--timeout 4", biInvoke("--timeout", "4"), "timeout"),
		num("--timeout 301", biInvoke("--timeout", "301"), "timeout"),
		num("--timeout 1.5s", biInvoke("--timeout", "1.5s"), "timeout"),
		num("--timeout soon", biInvoke("--timeout", "soon"), "timeout"),
		num("--timeout -5", biInvoke("--timeout", "-5"), "timeout"),
		num("--connect-timeout 301", biInvoke("--connect-timeout", "301"), "connect-timeout"),
		num("--connect-timeout 1.5s", biInvoke("--connect-timeout", "1.5s"), "connect-timeout"),
		num("--concurrency 0", biInvoke("--concurrency", "0"), "concurrency"),
		num("--concurrency 100001", biInvoke("--concurrency", "100001"), "concurrency"),
		num("--concurrency -5", biInvoke("--concurrency=-5"), "concurrency"),
		num("--max-concurrency 0", biInvoke("--max-concurrency", "0"), "max-concurrency"),
		num("--max-concurrency 100001", biInvoke("--max-concurrency", "100001"), "max-concurrency"),
		num("--max-concurrency with a fixed --concurrency", biInvoke("-c", "10", "--max-concurrency", "20"), "max-concurrency"),
		num("-c many", biInvoke("-c", "many"), "concurrency"),
		num("--max-attempts 0", biInvoke("--max-attempts", "0"), "max-attempts"),
		num("--max-attempts 101", biInvoke("--max-attempts", "101"), "max-attempts"),
		num("--rate fast", biInvoke("--rate", "fast"), "rate"),
		num("--rate 0/s", biInvoke("--rate", "0/s"), "rate"),
		num("--rate -1/s", biInvoke("--rate", "-1/s"), "rate"),
		num("--tier S9", biInvoke("--tier", "S9"), "tier"),
		num("--units 0", biInvoke("--units", "0"), "units"),
		num("--units -1", biInvoke("--units", "-1"), "units"),
		num("--waves 1,50% (last not 100%)", biInvoke("--waves", "1,50%"), "waves"),
		num("--waves decreasing", biInvoke("--waves", "50%,10%,100%"), "waves"),
		num("--waves abc", biInvoke("--waves", "abc"), "waves"),
		num("--waves with --batch-size", biInvoke("--waves", "1,100%", "--batch-size", "2"), "waves", flagNameRe("batch-size")),
		num("--batch-size -1", biInvoke("--batch-size", "-1"), "batch-size"),
		num("--max-failures 5% without waves", biInvoke("--max-failures", "5%"), "max-failures"),
		num("--max-failures abc", biInvoke("--max-failures", "abc"), "max-failures"),
		num("--max-failures -1", biInvoke("--max-failures", "-1"), "max-failures"),
		num("--abort-if bogus>1 (no such class)", biInvoke("--abort-if", "bogus>1"), "abort-if", "offline, timeout"),
		num("--abort-if offline (no limit)", biInvoke("--abort-if", "offline"), "abort-if"),
		num("--abort-if offline>100%", biInvoke("--abort-if", "offline>100%"), "abort-if"),
		num("--abort-if succeeded>1", biInvoke("--abort-if", "succeeded>1"), "abort-if"),
		num("--abort-if with one bad of two", biInvoke("--abort-if", "offline>5", "--abort-if", "timeout>x"), "abort-if", "timeout>x"),
		num("--min-sample 0", biInvoke("--abort-if", "offline>5%", "--min-sample", "0"), "min-sample"),
		num("--min-sample without a percentage", biInvoke("--abort-if", "offline>5", "--min-sample", "20"), "min-sample"),
		num("--via job with --abort-if", biInvoke("--via", "job", "--abort-if", "offline>5"), "via", flagNameRe("abort-if")),
		num("--gate without waves", biInvoke("--gate", "true"), "gate", "waves"),
		num("--gate-timeout without --gate", biInvoke("--waves", "1,100%", "--gate-timeout", "5m"), "gate-timeout"),
		num("--gate-after-last without --gate", biInvoke("--waves", "1,100%", "--gate-after-last"), "gate-after-last"),
		num("--gate-timeout 0", biInvoke("--waves", "1,100%", "--gate", "true", "--gate-timeout", "0"), "gate-timeout"),
		num("--gate-timeout 25h", biInvoke("--waves", "1,100%", "--gate", "true", "--gate-timeout", "25h"), "gate-timeout"),
		num("--gate-timeout soon", biInvoke("--waves", "1,100%", "--gate", "true", "--gate-timeout", "soon"), "gate-timeout"),
		num("--via job with --gate", biInvoke("--via", "job", "--gate", "true"), "via", flagNameRe("gate")),
		num("--until-online 800h", biInvoke("--until-online", "800h"), "until-online"),
		num("--until-online soon", biInvoke("--until-online", "soon"), "until-online"),
		num("--until-online with --wait-online", biInvoke("--until-online", "1h", "--wait-online", "5m"), "until-online", flagNameRe("wait-online")),
		num("--via job with --until-online", biInvoke("--via", "job", "--until-online", "1h"), "via", flagNameRe("until-online")),
		num("--wave-pause without waves", biInvoke("--wave-pause", "5s"), "wave-pause"),
		num("--wave-pause 25h", biInvoke("--waves", "1,100%", "--wave-pause", "25h"), "wave-pause"),
		num("--via job with --module", biInvoke("--via", "job", "--module", "m1"), "via", flagNameRe("module")),
		num("--via job with --rate", biInvoke("--via", "job", "--rate", "10/s"), "via", flagNameRe("rate")),
		num("--via job with --journal", biInvoke("--via", "job", "--journal", "j.jsonl"), "via", flagNameRe("journal")),
		num("--via job with --concurrency", biInvoke("--via", "job", "--concurrency", "4"), "via", flagNameRe("concurrency")),
		num("--via job with --waves", biInvoke("--via", "job", "--waves", "1,100%"), "via", flagNameRe("waves")),
		num("--via nope", biInvoke("--via", "nope"), "via", `nope`),
		num("--auth nope", biInvoke("--auth", "nope"), "auth", `nope`),
		num("-o xml", biInvoke("-o", "xml"), "output", `xml`),
		num("--api-version 2021", biInvoke("--api-version", "2021"), "api-version"),
		num("--ok-status 9xx", biInvoke("--ok-status", "9xx"), "ok-status"),
		num("--ok-status abc", biInvoke("--ok-status", "abc"), "ok-status"),
		num("--ok-status 1000", biInvoke("--ok-status", "1000"), "ok-status"),
		num("--grace 10h", biInvoke("--grace", "10h"), "grace"),
		num("--grace abc", biInvoke("--grace", "abc"), "grace"),
		num("--wait nope", biInvoke("--wait", "nope"), "wait", `nope`),
		num("--wait-until bad condition", biInvoke("--wait-until", "bad condition"), "wait-until"),
		num("--fail-if bad condition", biInvoke("--wait", "reboot", "--fail-if", "what?"), "fail-if"),
		num("--fail-if without a wait", biInvoke("--fail-if", "properties.reported.state == broken"), "fail-if"),
		num("--wait-timeout without a wait", biInvoke("--wait-timeout", "5m"), "wait-timeout"),
		num("--wait-online 25h", biInvoke("--wait-online", "25h"), "wait-online"),
		num("--retry-for 25h", biInvoke("--retry-for", "25h"), "retry-for"),
		num("--idempotent=maybe", biInvoke("--idempotent=maybe"), "idempotent"),
		num("jobs create --start-time yesterday", biJobsCreate("--start-time", "yesterday"), "start-time"),
		num("jobs create --start-time month 13", biJobsCreate("--start-time", "2026-13-01T00:00:00Z"), "start-time"),
		num("jobs create --max-execution-time 0", biJobsCreate("--max-execution-time", "0"), "max-execution-time"),
		num("jobs create --max-execution-time 721h", biJobsCreate("--max-execution-time", "721h"), "max-execution-time"),
		num("jobs create --timeout 4", biJobsCreate("--timeout", "4"), "timeout"),
		num("jobs create --connect-timeout 301", biJobsCreate("--connect-timeout", "301"), "connect-timeout"),
		num("jobs create --ok-status 9xx", biJobsCreate("--ok-status", "9xx", "--wait"), "ok-status"),
		num("jobs create --poll-interval 1ms", biJobsCreate("--wait", "--poll-interval", "1ms"), "poll-interval"),
		num("jobs wait --poll-interval 1ms", []string{"jobs", "wait", "job-1", "--poll-interval", "1ms"}, "poll-interval"),
		num("jobs list --limit -1", []string{"jobs", "list", "--limit", "-1"}, "limit"),
		num("jobs list --limit many", []string{"jobs", "list", "--limit", "many"}, "limit"),
		num("jobs list --status nope", []string{"jobs", "list", "--status", "nope"}, "status", `nope`),
		num("jobs list --type nope", []string{"jobs", "list", "--type", "nope"}, "type", `nope`),
		num("doctor --timeout soon", []string{"doctor", "--timeout", "soon"}, "timeout"),
		num("twin show -o table", []string{"twin", "show", "--device", "d-01", "-o", "table"}, "output"),
	)

	// --- Job commands.
	var manyDevices []string
	for i := 0; i < 400; i++ {
		manyDevices = append(manyDevices, "--device", fmt.Sprintf("device-with-a-long-name-%05d", i))
	}
	add(badCase{name: "jobs create without METHOD", args: []string{"jobs", "create", "--device", "d-01"}, want: []string{`METHOD`}},
		badCase{name: "jobs create with --query-condition and --device", args: []string{"jobs", "create", "%M", "--query-condition", "tags.grp = 'q1'", "--device", "d-01"},
			want: []string{flagNameRe("query-condition"), flagNameRe("device")}},
		badCase{name: "jobs create without devices", args: []string{"jobs", "create", "%M"}, want: []string{flagNameRe("query-condition"), flagNameRe("device")}},
		badCase{name: "jobs create --query-condition with WHERE", args: []string{"jobs", "create", "%M", "--query-condition", "WHERE tags.grp = 'q1'"},
			want: []string{flagNameRe("query-condition"), `WHERE`}},
		badCase{name: "jobs create --query-condition over 8 KB", args: []string{"jobs", "create", "%M", "--query-condition", "tags.grp = '" + strings.Repeat("q", 8300) + "'"},
			want: []string{flagNameRe("query-condition"), `8 ?KB|8192|8,192|\b\d{4} characters`}},
		badCase{name: "jobs create --device over 8 KB of ids", args: append([]string{"jobs", "create", "%M"}, manyDevices...), want: []string{flagNameRe("device"), `8 ?KB|8192|8,192`}},
		badCase{name: "jobs create --query-condition the hub refuses (400)", args: []string{"jobs", "create", "%M", "--query-condition", "foo ==== bar"},
			want: []string{`query-?condition`, `syntax error`}, hubRefuses: corpusRouteJobPut},
		badCase{name: "jobs show without JOB-ID", args: []string{"jobs", "show"}, want: []string{`JOB-ID`}},
		badCase{name: "jobs show with two JOB-IDs", args: []string{"jobs", "show", "job-1", "job-2"}, want: []string{`JOB-ID`}},
		badCase{name: "jobs cancel without JOB-ID", args: []string{"jobs", "cancel"}, want: []string{`JOB-ID`}},
		badCase{name: "jobs wait with two JOB-IDs", args: []string{"jobs", "wait", "job-1", "job-2"}, want: []string{`JOB-ID`}},
		badCase{name: "jobs results without JOB-ID", args: []string{"jobs", "results"}, want: []string{`JOB-ID`}},
		badCase{name: "twin show without --device", args: []string{"twin", "show"}, want: []string{flagNameRe("device")}},
		badCase{name: "twin show --path a..b", args: []string{"twin", "show", "--device", "d-01", "--path", "a..b"}, want: []string{flagNameRe("path"), reLit("a..b")}},
		badCase{name: "twin show --path .a", args: []string{"twin", "show", "--device", "d-01", "--path", ".a"}, want: []string{flagNameRe("path")}},
	)

	// --- Unknown flags and commands, extra arguments.
	add(badCase{name: "unknown command", args: []string{"nope"}, want: []string{`nope`}},
		badCase{name: "jobs unknown subcommand", args: []string{"jobs", "nope"}, want: []string{`nope`}},
		badCase{name: "twin unknown subcommand", args: []string{"twin", "nope"}, want: []string{`nope`}},
		badCase{name: "config unknown subcommand", args: []string{"config", "nope"}, want: []string{`nope`}},
		badCase{name: "unknown root flag", args: []string{"--nope"}, want: []string{`--nope`}},
		badCase{name: "invoke unknown flag", args: biInvoke("--nope"), want: []string{`--nope`}},
		badCase{name: "invoke misspelt --devices", args: []string{"invoke", "%M", "--devices", "d-01"}, want: []string{`--devices\b`}},
		badCase{name: "invoke unknown shorthand", args: biInvoke("-Z"), want: []string{`-Z|'Z'|"Z"`}},
		badCase{name: "invoke --device without a value", args: []string{"invoke", "%M", "--device"}, want: []string{flagNameRe("device")}},
		badCase{name: "invoke --timeout without a value", args: biInvoke("--timeout"), want: []string{flagNameRe("timeout")}},
		badCase{name: "invoke without anything", args: []string{"invoke"}, want: []string{`METHOD`}},
		badCase{name: "invoke without targets", args: []string{"invoke", "%M"}, want: []string{flagNameRe("device"), flagNameRe("devices-file"), flagNameRe("query")}},
		badCase{name: "jobs create unknown flag", args: biJobsCreate("--nope"), want: []string{`--nope`}},
		badCase{name: "jobs list unknown flag", args: []string{"jobs", "list", "--nope"}, want: []string{`--nope`}},
		badCase{name: "jobs list extra argument", args: []string{"jobs", "list", "extra"}, want: []string{`extra|argument`}},
		badCase{name: "twin show extra argument", args: []string{"twin", "show", "--device", "d-01", "extra"}, want: []string{`extra|argument`}},
		badCase{name: "doctor extra argument", args: []string{"doctor", "extra"}, want: []string{`extra|argument`}},
		badCase{name: "version extra argument", args: []string{"version", "extra"}, want: []string{`extra|argument`}},
		badCase{name: "config list extra argument", args: []string{"config", "list", "extra"}, want: []string{`extra|argument`}},
	)
	return cs
}

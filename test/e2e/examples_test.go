package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/dmctl/dmctl/test/testbin"
)

// binPath is a PATH with the freshly built dmctl and hubsim first, as the
// examples expect them on PATH.
func binPath(t *testing.T) string {
	t.Helper()
	dmctl := testbin.Build(t, "dmctl")
	hubsim := testbin.Build(t, "hubsim")
	require.Equal(t, filepath.Dir(dmctl), filepath.Dir(hubsim))
	return filepath.Dir(dmctl) + ":/usr/local/bin:/usr/bin:/bin"
}

type scriptRun struct {
	stdout, stderr string
	code           int
}

// runScript runs a bash script (a file or, with inline, text) with env and
// stdin closed, as CI would.
func runScript(t *testing.T, env map[string]string, script string, inline bool, args ...string) scriptRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if inline {
		cmd = exec.CommandContext(ctx, "bash", append([]string{"--noprofile", "--norc", "-eo", "pipefail", "-c", script, "step"}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	}
	root, err := testbin.ModuleRoot()
	require.NoError(t, err)
	cmd.Dir = root
	cmd.Env = []string{"HOME=" + t.TempDir(), "LANG=C"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", script, err)
	}
	return scriptRun{stdout.String(), stderr.String(), code}
}

func hubEnv(t *testing.T, hub *testbin.Hubsim, extra ...string) map[string]string {
	env := map[string]string{
		"PATH":                     binPath(t),
		"IOTHUB_CONNECTION_STRING": hub.ServiceConnectionString,
		"SSL_CERT_FILE":            hub.CAFile,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

func writeFleet(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

func TestExampleRebootByTagInWaves(t *testing.T) {
	fleet := writeFleet(t, `
groups:
  - {name: a, idPattern: a-%02d, count: 12, tags: {site: plant-a}}
  - {name: b, idPattern: b-%02d, count: 8, tags: {site: plant-b}}
`)
	hub := testbin.StartHubsim(t, "--fleet", fleet, "--no-throttle", "--seed", "4")
	journal := filepath.Join(t.TempDir(), "reboot.journal")
	r := runScript(t, hubEnv(t, hub, "SITE", "plant-a", "WAVE_PAUSE", "0s", "JOURNAL", journal), "examples/reboot-by-tag-in-waves.sh", false)
	require.Equal(t, 0, r.code, r.stderr)
	results := jsonLines(t, r.stdout)
	require.Len(t, results, 12)
	for _, res := range results {
		assert.True(t, strings.HasPrefix(res["deviceId"].(string), "a-"), res["deviceId"])
		assert.Equal(t, "succeeded", res["outcome"])
	}
	assert.Contains(t, r.stderr, "12", "the dry run counts the targets")
	b, err := os.ReadFile(journal)
	require.NoError(t, err)
	assert.Equal(t, 12, strings.Count(string(b), `"outcome":"succeeded"`))

	bad := runScript(t, hubEnv(t, hub, "SITE", "x' OR 1=1 --"), "examples/reboot-by-tag-in-waves.sh", false)
	assert.Equal(t, 2, bad.code)
}

func TestExampleFirmwareUpdateAndWait(t *testing.T) {
	fleet := writeFleet(t, `
groups:
  - name: ok
    idPattern: fw-ok-%d
    count: 2
    methods: {firmwareUpdate: {stepDuration: 100ms}}
  - name: bad
    idPattern: fw-bad-%d
    count: 1
    methods: {firmwareUpdate: {stepDuration: 100ms, failureRate: 1}}
`)
	hub := testbin.StartHubsim(t, "--fleet", fleet, "--no-throttle", "--seed", "5")
	env := hubEnv(t, hub, "FW_URI", "https://example.com/fw-2.0.bin", "POLL", "0.2", "WAIT_TIMEOUT", "60")

	r := runScript(t, env, "examples/firmware-update-and-wait.sh", false, "fw-ok-1", "fw-ok-2")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "fw-ok-1 applyComplete\n")
	assert.Contains(t, r.stdout, "fw-ok-2 applyComplete\n")

	r = runScript(t, env, "examples/firmware-update-and-wait.sh", false, "fw-ok-1", "fw-bad-1")
	assert.Equal(t, 4, r.code, r.stdout+r.stderr)
	assert.Contains(t, r.stdout, "fw-ok-1 applyComplete\n")
	assert.Regexp(t, `fw-bad-1 (downloadFailed|applyFailed)\n`, r.stdout)

	env["FW_URI"] = "http://example.com/fw.bin"
	r = runScript(t, env, "examples/firmware-update-and-wait.sh", false, "fw-ok-1")
	assert.Equal(t, 2, r.code)
}

func TestExampleRetryFailuresFromJournal(t *testing.T) {
	fleet := writeFleet(t, `
groups:
  - {name: g, idPattern: g-%02d, count: 20, connection: {onlineShare: 0.8}, methods: {"*": {status: 200}}}
`)
	hub := testbin.StartHubsim(t, "--fleet", fleet, "--no-throttle", "--seed", "6")
	dir := t.TempDir()
	journal := filepath.Join(dir, "ping.journal")
	env := hubEnv(t, hub)
	first := runScript(t, env, `dmctl invoke ping --query "SELECT deviceId FROM devices" --journal "$1" --yes -o jsonl`, true, journal)
	require.Equal(t, 4, first.code, first.stderr)
	var offline, online []string
	for _, res := range jsonLines(t, first.stdout) {
		if res["outcome"] != "succeeded" {
			offline = append(offline, res["deviceId"].(string))
		} else {
			online = append(online, res["deviceId"].(string))
		}
	}
	require.Len(t, offline, 4)

	retryJournal := filepath.Join(dir, "retry.journal")
	r := runScript(t, env, "examples/retry-failures-from-journal.sh", false, journal, retryJournal)
	assert.Equal(t, 4, r.code, "the offline devices are still offline: "+r.stderr)
	var retried []string
	for _, res := range jsonLines(t, r.stdout) {
		retried = append(retried, res["deviceId"].(string))
		assert.Equal(t, "offline", res["outcome"])
	}
	assert.ElementsMatch(t, offline, retried)
	assert.Contains(t, r.stderr, "retrying ping on 4 targets")
	_, err := os.Stat(retryJournal)
	assert.NoError(t, err)

	// A journal where everything succeeded: nothing to retry, exit 0.
	okJournal := filepath.Join(dir, "ok.journal")
	ok := runScript(t, env, `dmctl invoke ping --device "$2" --device "$3" --journal "$1" --yes -o jsonl`, true, okJournal, online[0], online[1])
	require.Equal(t, 0, ok.code, ok.stderr)
	r = runScript(t, env, "examples/retry-failures-from-journal.sh", false, okJournal, filepath.Join(dir, "none.journal"))
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "nothing to retry")
	assert.Empty(t, r.stdout)
	_, err = os.Stat(filepath.Join(dir, "none.journal"))
	assert.True(t, os.IsNotExist(err), "no retry run, no journal")
}

// pipelineStep is a shell step of a CI pipeline file.
type pipelineStep struct{ name, script string }

func githubSteps(t *testing.T, path string) []pipelineStep {
	var doc struct {
		Jobs map[string]struct {
			Steps []struct {
				Name string `yaml:"name"`
				Uses string `yaml:"uses"`
				Run  string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &doc))
	require.Len(t, doc.Jobs, 1)
	var steps []pipelineStep
	for _, j := range doc.Jobs {
		for _, s := range j.Steps {
			if s.Run != "" {
				steps = append(steps, pipelineStep{s.Name, s.Run})
			} else {
				assert.NotEmpty(t, s.Uses, "a step without run: uses an action")
			}
		}
	}
	return steps
}

func azureSteps(t *testing.T, path string) []pipelineStep {
	var doc struct {
		Steps []struct {
			Task        string `yaml:"task"`
			Bash        string `yaml:"bash"`
			DisplayName string `yaml:"displayName"`
		} `yaml:"steps"`
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &doc))
	var steps []pipelineStep
	for _, s := range doc.Steps {
		if s.Bash != "" {
			steps = append(steps, pipelineStep{s.DisplayName, s.Bash})
		} else {
			assert.NotEmpty(t, s.Task, "a step without bash: is a task")
		}
	}
	return steps
}

// TestExamplePipelines runs the shell steps of the GitHub Actions and Azure
// Pipelines examples in order, as their runners would (bash -eo pipefail,
// the runner's temp directory in the environment), with the binaries built
// here on PATH instead of the install step.
func TestExamplePipelines(t *testing.T) {
	cases := []struct {
		file, tempVar string
		steps         func(*testing.T, string) []pipelineStep
		want          []string
	}{
		{"examples/ci/github-actions.yml", "RUNNER_TEMP", githubSteps,
			[]string{"Start hubsim", "Check the setup", "Reboot plant-a in waves", "Stop hubsim"}},
		{"examples/ci/azure-pipelines.yml", "AGENT_TEMPDIRECTORY", azureSteps,
			[]string{"Start hubsim", "Check the setup", "Reboot every device in batches", "Stop hubsim"}},
	}
	root, err := testbin.ModuleRoot()
	require.NoError(t, err)
	for _, c := range cases {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			tmp := t.TempDir()
			env := map[string]string{"PATH": binPath(t), c.tempVar: tmp}
			t.Cleanup(func() { // a failed step must not leave hubsim running
				if b, err := os.ReadFile(filepath.Join(tmp, "hub", "pid")); err == nil {
					if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
						_ = syscall.Kill(pid, syscall.SIGTERM)
					}
				}
			})
			var ran []string
			for _, s := range c.steps(t, filepath.Join(root, c.file)) {
				if strings.HasPrefix(s.name, "Install") {
					continue
				}
				ran = append(ran, s.name)
				if s.name == "Start hubsim" {
					assert.Contains(t, s.script, "hubsim wait --dir", "the pipeline waits for hubsim with hubsim wait")
					assert.NotContains(t, s.script, "sleep", "no polling loop of its own")
				}
				r := runScript(t, env, s.script, true)
				require.Equal(t, 0, r.code, "step %q:\nstdout: %s\nstderr: %s", s.name, r.stdout, r.stderr)
				if s.name == "Check the setup" {
					assert.Contains(t, r.stdout, "PASS  permission")
				}
			}
			assert.Equal(t, c.want, ran)
		})
	}
}

// TestExamplePlanAndApply: the plan step sends nothing, the apply step runs
// the planned ring and journals it, and applying again resumes (nothing left).
func TestExamplePlanAndApply(t *testing.T) {
	h := startFleetHub(t, `{"groups":[
 {"name":"canary","idPattern":"c-%02d","count":6,"tags":{"ring":"canary"},"methods":{"*":{"status":200,"latency":{"dist":"uniform","min":"20ms","max":"150ms"}}}},
 {"name":"rest","idPattern":"r-%02d","count":10,"tags":{"ring":"main"},"methods":{"*":{"status":200}}}]}`, "--no-throttle")
	plan := filepath.Join(t.TempDir(), "canary.plan")
	r := runScript(t, hubEnv(t, h.Hubsim, "RING", "canary", "METHOD", "ping", "PAYLOAD", `{"n":1}`), "examples/plan-and-apply.sh", false, "plan", plan)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, `"ping" on 6 targets`)
	assert.Empty(t, h.deliveries(t, "ping"), "the plan step sends nothing")

	r = runScript(t, hubEnv(t, h.Hubsim), "examples/plan-and-apply.sh", false, "apply", plan)
	require.Equal(t, 0, r.code, r.stderr)
	results := jsonLines(t, r.stdout)
	require.Len(t, results, 6)
	for _, res := range results {
		assert.Equal(t, "succeeded", res["outcome"], res["deviceId"])
	}
	assert.Len(t, h.deliveries(t, "ping"), 6)
	assert.Contains(t, r.stderr, "wave 1: the --gate passed", "the planned gate ran between the waves")
	assert.Contains(t, r.stderr, "wave 2: the --gate passed")
	assert.Contains(t, readFile(t, plan), `"abortIf": [`)

	r = runScript(t, hubEnv(t, h.Hubsim), "examples/plan-and-apply.sh", false, "apply", plan)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "6 targets already had a final result")
	assert.Len(t, h.deliveries(t, "ping"), 6, "the second apply resumed: nothing sent again")
}

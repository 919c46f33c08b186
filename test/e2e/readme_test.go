package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/test/testbin"
)

// The README and the quickstart say: "Run the blocks from the repository
// root, in order". These tests do exactly that: every shell block of each
// file, as printed, one file per bash session, from the repository root.

// shellFences are the fence languages whose blocks run (for console blocks,
// the lines that start with "$ ").
var shellFences = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

// otherFences are fence languages known not to be shell: their blocks are
// not run, whatever they hold (a ```text block is how a doc shows commands
// that cannot run here, e.g. against a real Azure hub).
var otherFences = map[string]bool{
	"text": true, "txt": true, "json": true, "jsonl": true, "yaml": true, "yml": true,
	"js": true, "javascript": true, "ts": true, "go": true, "python": true, "sql": true,
}

// shellWords are first words that make a block of an unknown fence language
// look like shell: such a block fails the test (run it or mark it ```text).
var shellWords = map[string]bool{
	"dmctl": true, "hubsim": true, "make": true, "go": true, "export": true, "source": true, "cd": true,
	"kill": true, "mkdir": true, "jq": true, "npm": true, "node": true, "curl": true, "az": true, "bash": true,
	"sh": true, "cat": true, "echo": true, "rm": true, "git": true, "sudo": true, "unset": true, "grep": true,
}

// readmeScratch are the paths, relative to the repository root, that the
// blocks create; they are removed before and after each run. (bin/ is the
// build output `make build` is documented to write: it stays.)
var readmeScratch = []string{"hub", "results.jsonl", "gw.plan"}

type mdBlock struct {
	file string // as given to markdownBlocks, e.g. docs/quickstart.md
	line int    // the opening fence's line number
	lang string
	text string // the block's content
}

func (b mdBlock) where() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

var fenceRE = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})\\s*([^`\\s]*)")

// markdownBlocks returns the fenced code blocks of a Markdown file.
func markdownBlocks(t *testing.T, root, rel string) []mdBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	require.NoError(t, err)
	var blocks []mdBlock
	var cur *mdBlock
	var fence string
	var body []string
	for i, line := range strings.Split(string(b), "\n") {
		if cur == nil {
			if m := fenceRE.FindStringSubmatch(line); m != nil {
				cur = &mdBlock{file: rel, line: i + 1, lang: strings.ToLower(m[2])}
				fence, body = m[1], nil
			}
			continue
		}
		if t := strings.TrimSpace(line); strings.HasPrefix(t, fence[:3]) && strings.Trim(t, fence[:1]) == "" && len(t) >= len(fence) {
			cur.text = strings.Join(body, "\n") + "\n"
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		body = append(body, line)
	}
	require.Nil(t, cur, "%s: a code block opened at line %d is never closed", rel, func() int {
		if cur != nil {
			return cur.line
		}
		return 0
	}())
	return blocks
}

// consoleCommands returns the commands of a console block: the lines that
// start with "$ ", with the lines a trailing backslash continues them on.
func consoleCommands(text string) string {
	var out []string
	cont := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case cont:
			out = append(out, line)
		case strings.HasPrefix(line, "$ "):
			out = append(out, strings.TrimPrefix(line, "$ "))
		default:
			continue
		}
		cont = strings.HasSuffix(line, `\`)
	}
	return strings.Join(out, "\n") + "\n"
}

// looksLikeShell says whether a block holds shell commands.
func looksLikeShell(text string) bool {
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "$ ") {
			return true
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, _, _ := strings.Cut(line, " ")
		if shellWords[word] || strings.HasPrefix(word, "./") {
			return true
		}
	}
	return false
}

// classify returns the blocks that run (console blocks reduced to their
// commands) and a problem for each block whose fence language is unknown
// and that looks like shell.
func classify(blocks []mdBlock) (run []mdBlock, problems []string) {
	for _, b := range blocks {
		switch {
		case shellFences[b.lang]:
			if b.lang == "console" {
				b.text = consoleCommands(b.text)
			}
			run = append(run, b)
		case otherFences[b.lang]:
		case looksLikeShell(b.text):
			problems = append(problems, fmt.Sprintf("%s: a ```%s block that looks like shell: mark it ```sh so the README test runs it, or ```text when it cannot run here", b.where(), b.lang))
		}
	}
	return run, problems
}

// shellBlocks returns the blocks of rel that run, failing the test for a
// block classify has a problem with.
func shellBlocks(t *testing.T, root, rel string) []mdBlock {
	t.Helper()
	run, problems := classify(markdownBlocks(t, root, rel))
	for _, p := range problems {
		t.Error(p)
	}
	return run
}

// The markers the session script prints.
const (
	markBlock = "==> README-TEST block "
	markFail  = "README-TEST FAILED: "
	markLeft  = "README-TEST LEFT RUNNING: "
	markDone  = "README-TEST: every block ran"
)

// sessionScript is the bash script that runs blocks, as printed, one after
// the other in one shell. It is run with `bash -e`, so the first command
// that fails stops it (the ERR trap says which block and command); the EXIT
// trap reports and kills any background job a block left running.
func sessionScript(blocks []mdBlock) string {
	var b strings.Builder
	b.WriteString(`__readme_block=start
trap '__rc=$?; printf "\n` + markFail + `%s: exit %d: %s\n" "$__readme_block" "$__rc" "$BASH_COMMAND" >&2' ERR
trap '__left=$(jobs -pr); if [ -n "$__left" ]; then printf "` + markLeft + `%s\n" "$__left" >&2; kill -9 $__left; fi' EXIT
`)
	for _, blk := range blocks {
		fmt.Fprintf(&b, "\n__readme_block=%s\nprintf '\\n%s%%s\\n' \"$__readme_block\" >&2\n", blk.where(), markBlock)
		b.WriteString(blk.text)
	}
	b.WriteString("\n__readme_block=end\nprintf '\\n" + markDone + "\\n' >&2\n")
	return b.String()
}

// readmeLock serialises README runs on one working tree (they share ./hub
// and bin/), also across test processes.
func readmeLock(t *testing.T, root string) {
	t.Helper()
	sum := sha256.Sum256([]byte(root))
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "dmctl-readme-"+hex.EncodeToString(sum[:8])+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX))
	t.Cleanup(func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() })
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// freshPath is $PATH without directories that hold a dmctl or hubsim, as
// on a machine where neither is installed: the blocks must build their own.
func freshPath() string {
	var keep []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, "dmctl")); err == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "hubsim")); err == nil {
			continue
		}
		keep = append(keep, d)
	}
	return strings.Join(keep, string(os.PathListSeparator))
}

type session struct {
	out     string // stdout and stderr, interleaved
	code    int
	home    string // HOME, also holding DMCTL_CONFIG_DIR, GOBIN and TMPDIR
	cfgDir  string
	gobin   string
	secrets []string // hubsim's keys from hub/state.json, read before clean-up
	private []string // files under hub/ and the config dir that hold a secret and are readable by others
	hubMade bool
}

// runSession runs the shell blocks of rel as one bash session in the
// repository root, with HOME, DMCTL_CONFIG_DIR, GOBIN and TMPDIR in a
// temporary directory, no module proxy (no network) and DMCTL_README_TEST=1
// (the Makefile's `make test` then skips itself: see its comment).
func runSession(t *testing.T, root, rel string) session {
	t.Helper()
	blocks := shellBlocks(t, root, rel)
	require.NotEmpty(t, blocks, "%s has no shell blocks", rel)
	readmeLock(t, root)

	clean := func() {
		for _, p := range readmeScratch {
			require.NoError(t, os.RemoveAll(filepath.Join(root, p)))
		}
	}
	clean()
	t.Cleanup(clean)
	before := topLevel(t, root)

	home := t.TempDir()
	s := session{home: home, cfgDir: filepath.Join(home, "dmctl-config"), gobin: filepath.Join(home, "gobin")}
	tmp := filepath.Join(home, "tmp")
	require.NoError(t, os.MkdirAll(tmp, 0o700))
	script := filepath.Join(home, "session.sh")
	require.NoError(t, os.WriteFile(script, []byte(sessionScript(blocks)), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-e", script)
	cmd.Dir = root
	cmd.Env = []string{
		"PATH=" + freshPath(), "HOME=" + home, "TMPDIR=" + tmp, "GOBIN=" + s.gobin, "DMCTL_CONFIG_DIR=" + s.cfgDir,
		"DMCTL_README_TEST=1", "NO_COLOR=1", "LANG=C", "TERM=dumb",
		// The Go caches of this machine (HOME moved), and no module proxy:
		// the blocks must build from what the module cache already holds.
		"GOCACHE=" + goEnv(t, "GOCACHE"), "GOMODCACHE=" + goEnv(t, "GOMODCACHE"), "GOPATH=" + goEnv(t, "GOPATH"),
		"GOFLAGS=" + os.Getenv("GOFLAGS"), "GOPROXY=off", "GOTOOLCHAIN=local",
	}
	// Its own process group: whatever a failed run leaves is killed below.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 15 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err := cmd.Wait()
	s.out = out.String()
	var ee *exec.ExitError
	switch {
	case errors.Is(err, exec.ErrWaitDelay):
		t.Errorf("%s: the session ended but something it started still held its output %s later (a background process left running?)", rel, cmd.WaitDelay)
	case errors.As(err, &ee):
		s.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: running the blocks: %v", rel, err)
	}
	if ctx.Err() != nil {
		t.Errorf("%s: the blocks did not finish within 5 minutes", rel)
	}

	// What the blocks left, read before clean-up removes it.
	hub := filepath.Join(root, "hub")
	if _, err := os.Stat(filepath.Join(hub, "state.json")); err == nil {
		s.hubMade = true
		s.secrets = stateSecrets(t, filepath.Join(hub, "state.json"))
	}
	for _, dir := range []string{hub, s.cfgDir} {
		s.private = append(s.private, readableSecrets(t, dir, s.secrets)...)
	}
	for name := range topLevel(t, root) {
		if !before[name] && name != "bin" && !contains(readmeScratch, name) {
			t.Errorf("%s: the blocks created ./%s, which the test does not clean up: add it to readmeScratch", rel, name)
		}
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func topLevel(t *testing.T, root string) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names
}

// stateSecrets returns the keys in hubsim's state.json (policy keys, the
// device key secret, Entra client secrets and signing key).
func stateSecrets(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var st struct {
		Policies        map[string]string `json:"policies"`
		DeviceKeySecret string            `json:"deviceKeySecret"`
		Entra           struct {
			SigningKey string `json:"signingKey"`
			Principals []struct {
				ClientSecret string `json:"clientSecret"`
			} `json:"principals"`
		} `json:"entra"`
	}
	require.NoError(t, json.Unmarshal(b, &st))
	var out []string
	for _, k := range st.Policies {
		out = append(out, k)
	}
	out = append(out, st.DeviceKeySecret)
	for _, p := range st.Entra.Principals {
		out = append(out, p.ClientSecret)
	}
	var keep []string
	for _, s := range out {
		if len(s) >= 16 {
			keep = append(keep, s)
		}
	}
	require.NotEmpty(t, keep, "%s holds no keys", path)
	return keep
}

// readableSecrets lists the files under dir that hold a secret (a hubsim
// key, a SharedAccessKey, a private key) and that others may read.
func readableSecrets(t *testing.T, dir string, secrets []string) []string {
	t.Helper()
	var bad []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		text := string(b)
		secret := strings.Contains(text, "SharedAccessKey=") || strings.Contains(text, "PRIVATE KEY")
		for _, s := range secrets {
			secret = secret || strings.Contains(text, s)
		}
		if secret {
			bad = append(bad, fmt.Sprintf("%s (mode %v)", p, fi.Mode().Perm()))
		}
		return nil
	})
	return bad
}

var sharedAccessKey = regexp.MustCompile(`SharedAccessKey=([A-Za-z0-9+/=%]*)`)

// checkSession asserts what holds for every file's session: every block ran
// and succeeded, nothing was left running, no secret was printed or left
// readable by others, and the hub was stopped.
func checkSession(t *testing.T, rel string, s session) {
	t.Helper()
	require.Equal(t, 0, s.code, "%s: a block failed (see %q):\n%s", rel, markFail, tail(s.out))
	assert.False(t, strings.Contains(s.out, markFail), "%s: a command failed:\n%s", rel, tail(s.out))
	assert.True(t, strings.Contains(s.out, markDone), "%s: every block ran:\n%s", rel, tail(s.out))
	assert.False(t, strings.Contains(s.out, markLeft), "%s: a block left a background process running:\n%s", rel, tail(s.out))
	for _, m := range sharedAccessKey.FindAllStringSubmatch(s.out, -1) {
		assert.Equal(t, "REDACTED", m[1], "%s prints a SharedAccessKey", rel)
	}
	require.True(t, s.hubMade, "%s starts hubsim with --dir hub", rel)
	for _, k := range s.secrets {
		assert.NotContains(t, s.out, k, "%s prints one of hubsim's keys", rel)
		raw, err := base64.StdEncoding.DecodeString(k)
		if err == nil && len(raw) >= 16 {
			assert.NotContains(t, s.out, hex.EncodeToString(raw))
		}
	}
	assert.Empty(t, s.private, "%s leaves secrets in files others can read", rel)
	assert.True(t, strings.Contains(s.out, "hubsim: stopped"), "%s: the last block stops hubsim", rel)
}

func tail(s string) string {
	const n = 3000
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}

// blockOutput returns what the session printed while the block at where ran.
func blockOutput(t *testing.T, out, where string) string {
	t.Helper()
	start := strings.Index(out, markBlock+where+"\n")
	require.GreaterOrEqual(t, start, 0, "block %s ran", where)
	rest := out[start+len(markBlock+where+"\n"):]
	if end := strings.Index(rest, "\n"+markBlock); end >= 0 {
		return rest[:end]
	}
	return rest
}

// blockWith returns the location of the only shell block of rel that
// contains text.
func blockWith(t *testing.T, root, rel, text string) string {
	t.Helper()
	var found []string
	for _, b := range shellBlocks(t, root, rel) {
		if strings.Contains(b.text, text) {
			found = append(found, b.where())
		}
	}
	require.Len(t, found, 1, "%s: one shell block contains %q", rel, text)
	return found[0]
}

// readResults reads ./results.jsonl, which the blocks wrote (clean-up
// removes it after the test).
func readResults(t *testing.T, root string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "results.jsonl"))
	require.NoError(t, err)
	return jsonlOutcomes(t, string(b))
}

func jsonlOutcomes(t *testing.T, text string) map[string]string {
	t.Helper()
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, `{"deviceId"`) {
			continue
		}
		var r struct {
			DeviceID  string         `json:"deviceId"`
			Outcome   string         `json:"outcome"`
			WaitValue map[string]any `json:"waitValue"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		got[r.DeviceID] = r.Outcome
		if s, ok := r.WaitValue["properties.reported.iothubDM.firmwareUpdate.status"].(string); ok {
			got[r.DeviceID] += "/" + s
		}
	}
	return got
}

// TestReadmeFences checks the extractor itself on a document with every
// kind of block, and that README.md and docs/quickstart.md have none it
// cannot classify.
func TestReadmeFences(t *testing.T) {
	dir := t.TempDir()
	doc := "# t\n```sh\nmake build\n```\n\n```console\n$ dmctl invoke reboot \\\n    --device d\nDEVICE OUTCOME\n$ kill %1\n```\n" +
		"```text\ndmctl invoke x\n```\n````bash\necho '```'\n````\n```json\n{}\n```\n```\nplain words\n```\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "doc.md"), []byte(doc), 0o600))
	blocks := shellBlocks(t, dir, "doc.md")
	require.Len(t, blocks, 3)
	assert.Equal(t, "make build\n", blocks[0].text)
	assert.Equal(t, "dmctl invoke reboot \\\n    --device d\nkill %1\n", blocks[1].text)
	assert.Equal(t, "echo '```'\n", blocks[2].text)
	assert.Equal(t, "doc.md:6", blocks[1].where())

	// A block of an unknown language that looks like shell is a problem;
	// one that does not is left alone.
	for _, bad := range []string{"```\ndmctl invoke reboot --device d\n```\n", "```zsh\n$ make demo\n```\n", "```\n./examples/demo.sh\n```\n"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.md"), []byte(bad), 0o600))
		run, problems := classify(markdownBlocks(t, dir, "bad.md"))
		assert.Empty(t, run)
		require.Len(t, problems, 1, "unknown fence with shell in it: %q", bad)
		assert.Contains(t, problems[0], "bad.md:1: a ```")
	}
	_, problems := classify(markdownBlocks(t, dir, "doc.md"))
	assert.Empty(t, problems)

	root, err := testbin.ModuleRoot()
	require.NoError(t, err)
	for _, rel := range []string{"README.md", "docs/quickstart.md"} {
		assert.NotEmpty(t, shellBlocks(t, root, rel), rel)
		text, err := os.ReadFile(filepath.Join(root, rel))
		require.NoError(t, err)
		assert.Contains(t, string(text), "Run the blocks from the repository root, in order", rel)
	}
}

// TestReadmeCommands keeps the README's two commands true — `make demo` runs
// the main job against hubsim and `make test` is what CI runs — and the
// Makefile's guard that lets the README test run the `make test` block.
func TestReadmeCommands(t *testing.T) {
	root, err := testbin.ModuleRoot()
	require.NoError(t, err)
	quick := blockWith(t, root, "README.md", "make demo")
	assert.Equal(t, quick, blockWith(t, root, "README.md", "make test"), "make demo and make test in one shell block")

	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^make test$`, string(ci), ".ci/run must run the README's test command")

	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	for _, target := range []string{"demo", "test", "build", "bench"} {
		assert.Regexp(t, regexp.MustCompile(`(?m)^`+target+`:`), string(makefile), "Makefile target %s", target)
	}
	dryRun := func(env ...string) string {
		cmd := exec.Command("make", "--no-print-directory", "-n", "test")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	assert.Contains(t, dryRun("DMCTL_README_TEST="), "go vet ./...", "without DMCTL_README_TEST, make test runs the suite")
	guarded := dryRun("DMCTL_README_TEST=1")
	assert.Contains(t, guarded, "make test: skipped")
	assert.NotContains(t, guarded, "vet")
}

// TestReadmeBlocks runs README.md's shell blocks as one session.
func TestReadmeBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make demo, make build and hubsim")
	}
	root, err := testbin.ModuleRoot()
	require.NoError(t, err)
	const rel = "README.md"
	s := runSession(t, root, rel)
	checkSession(t, rel, s)

	demo := blockOutput(t, s.out, blockWith(t, root, rel, "make demo"))
	assert.Equal(t, 5, strings.Count(demo, "succeeded   200"), "make demo rebooted five devices:\n%s", demo)
	assert.Contains(t, demo, "dmctl exited 0")
	assert.Contains(t, demo, "make test: skipped: DMCTL_README_TEST is set")

	_, err = os.Stat(filepath.Join(s.gobin, "dmctl"))
	assert.NoError(t, err, "go install ./cmd/dmctl installed into GOBIN")

	hub := blockOutput(t, s.out, blockWith(t, root, rel, "hubsim wait --dir hub"))
	assert.Regexp(t, `(?m)^sim-000001\s+succeeded\s+200\s`, hub, "the reboot table")
	assert.Contains(t, hub, `"moduleId": "edgeAgent"`)
	assert.Contains(t, hub, `"schemaVersion": "1.1"`, "the module's getConfig answer")

	fw := blockOutput(t, s.out, blockWith(t, root, rel, "--wait firmware"))
	outcomes := jsonlOutcomes(t, fw)
	assert.Len(t, outcomes, 20, "the 20 canary thermostats:\n%s", fw)
	for i := 1; i <= 20; i++ {
		assert.Equal(t, "succeeded/applyComplete", outcomes[fmt.Sprintf("thermostat-%02d", i)], "thermostat-%02d", i)
	}
	assert.Regexp(t, `(?m)^gw-1\s+succeeded\s+200\s`, fw, "setConfig waited for config.state applied")

	retry := blockOutput(t, s.out, blockWith(t, root, rel, "results.jsonl"))
	assert.Contains(t, retry, "nothing to do", "every plant-a reboot succeeded, so nothing is sent again")
	results := readResults(t, root)
	assert.Len(t, results, 20, "results.jsonl: one line per plant-a thermostat")
	for id, o := range results {
		assert.True(t, strings.HasPrefix(id, "thermostat-"), id)
		assert.Equal(t, "succeeded", o, id)
	}

	doctor := blockOutput(t, s.out, blockWith(t, root, rel, "dmctl doctor"))
	assert.Contains(t, doctor, "PASS  permission")
	assert.NotContains(t, doctor, "FAIL")
}

// TestReadmeQuickstart runs docs/quickstart.md's shell blocks as one session.
func TestReadmeQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make build and hubsim")
	}
	root, err := testbin.ModuleRoot()
	require.NoError(t, err)
	const rel = "docs/quickstart.md"
	s := runSession(t, root, rel)
	checkSession(t, rel, s)

	doctor := blockOutput(t, s.out, blockWith(t, root, rel, "dmctl doctor"))
	assert.Contains(t, doctor, "PASS  permission")
	assert.NotContains(t, doctor, "FAIL")

	inv := blockOutput(t, s.out, blockWith(t, root, rel, "--waves"))
	assert.Regexp(t, `(?m)^sim-000001\s+succeeded\s+200\s`, inv, "reboot --wait reboot")
	assert.Regexp(t, `(?m)^sim-000002\s+succeeded\s+200\s`, inv, "firmwareUpdate --wait firmware")
	assert.Contains(t, inv, "lastReboot", "twin show prints the reboot's reported properties")
	assert.Contains(t, inv, "100 targets", "the dry run and the waves run cover the fleet")
	results := readResults(t, root)
	assert.Len(t, results, 100, "results.jsonl: one line per device")
	for id, o := range results {
		assert.Equal(t, "succeeded", o, id)
	}

	profile := blockOutput(t, s.out, blockWith(t, root, rel, "set-profile"))
	assert.Regexp(t, `(?m)^sim-000002\s+succeeded\s+200\s`, profile, "factoryReset through the profile")
	fi, err := os.Stat(filepath.Join(s.cfgDir, "config.yaml"))
	require.NoError(t, err, "the profile is saved under DMCTL_CONFIG_DIR")
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

package fleet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// DefaultGateTimeout bounds one run of --gate.
const DefaultGateTimeout = 10 * time.Minute

// MaxGateTimeout is the longest --gate-timeout.
const MaxGateTimeout = 24 * time.Hour

// ShellGate runs a health gate (--gate) between waves: it keeps the results of the run so far
// and of the current wave in JSON-lines files (the -o jsonl shape) for the
// command to read, and runs the command through the shell with
// DMCTL_WAVE, DMCTL_WAVES, DMCTL_WAVE_RESULTS and DMCTL_RESULTS, its
// output on stderr, each line prefixed.
type ShellGate struct {
	command string
	timeout time.Duration
	note    func(format string, args ...any)
	journal *Journal
	now     func() time.Time

	mu    sync.Mutex
	dir   string
	all   *os.File
	wave  *os.File
	waveN int
	buf   []byte
	err   error // the first write that failed
}

// NewShellGate makes the results files in a new temporary directory.
// note receives the gate's output and what it decided, a line at a time;
// journal, when set, records each gate's outcome.
func NewShellGate(command string, timeout time.Duration, note func(string, ...any), journal *Journal, now func() time.Time) (*ShellGate, error) {
	dir, err := os.MkdirTemp("", "dmctl-gate-*")
	if err != nil {
		return nil, fmt.Errorf("--gate: create the results directory: %w", err)
	}
	g := &ShellGate{command: command, timeout: timeout, note: note, journal: journal, now: now, dir: dir}
	if g.all, err = os.OpenFile(filepath.Join(dir, "results.jsonl"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("--gate: %w", err)
	}
	return g, nil
}

// Close removes the results files.
func (g *ShellGate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, f := range []*os.File{g.all, g.wave} {
		if f != nil {
			_ = f.Close()
		}
	}
	_ = os.RemoveAll(g.dir)
}

// StartWave opens the results file of wave n (RunOptions.OnWave).
func (g *ShellGate) StartWave(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wave != nil {
		_ = g.wave.Close()
	}
	f, err := os.OpenFile(filepath.Join(g.dir, "wave-"+strconv.Itoa(n)+".jsonl"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil && g.err == nil {
		g.err = err
	}
	g.wave, g.waveN = f, n
}

// Add appends a final result to the run's file and the wave's (RunOptions.OnResult).
func (g *ShellGate) Add(r Result) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, err := r.AppendJSON(g.buf[:0])
	if err == nil {
		b = append(b, '\n')
		g.buf = b
		for _, f := range []*os.File{g.all, g.wave} {
			if f != nil && err == nil {
				_, err = f.Write(b)
			}
		}
	}
	if err != nil && g.err == nil {
		g.err = err
	}
}

// Run runs the gate after wave (of waves; 0: not known ahead): it is
// RunOptions.Gate. A non-zero exit, a timeout or a command that cannot start
// is a *GateError.
func (g *ShellGate) Run(ctx context.Context, wave, waves int) error {
	g.mu.Lock()
	werr, wavePath := g.err, ""
	if g.wave != nil && g.waveN == wave {
		wavePath = g.wave.Name()
	}
	g.mu.Unlock()
	if werr != nil {
		return g.refused(wave, waves, -1, "could not be given the results: "+werr.Error())
	}
	if wavePath == "" { // a wave without targets: an empty file
		g.StartWave(wave)
		g.mu.Lock()
		wavePath = g.wave.Name()
		g.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell(), "-c", g.command)
	cmd.Env = append(os.Environ(),
		"DMCTL_WAVE="+strconv.Itoa(wave), "DMCTL_WAVES="+wavesText(waves),
		"DMCTL_WAVE_RESULTS="+wavePath, "DMCTL_RESULTS="+g.all.Name())
	out := &prefixWriter{note: g.note, prefix: "gate: "}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second // a gate's children holding its output do not hold dmctl
	g.note("wave %d: running the --gate", wave)
	start := g.now()
	err := cmd.Run()
	out.flush()
	took := g.now().Sub(start)
	var ee *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return g.refused(wave, waves, -1, "timed out after "+g.timeout.String()+" (--gate-timeout)")
	case err == nil:
		g.note("wave %d: the --gate passed (%s)", wave, took.Round(time.Millisecond).String())
		g.record(wave, waves, 0, true, "")
		return nil
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return g.refused(wave, waves, ee.ExitCode(), "exited with status "+strconv.Itoa(ee.ExitCode()))
	case errors.As(err, &ee):
		return g.refused(wave, waves, -1, "was stopped by a signal ("+ee.String()+")")
	}
	return g.refused(wave, waves, -1, "could not run: "+err.Error())
}

func (g *ShellGate) refused(wave, waves, code int, reason string) error {
	g.record(wave, waves, code, false, reason)
	return &GateError{Wave: wave, Waves: waves, ExitCode: code, Reason: reason}
}

func (g *ShellGate) record(wave, waves, code int, passed bool, reason string) {
	if g.journal != nil {
		_ = g.journal.Gate(wave, waves, code, passed, reason, g.now()) // a failed write shows at the journal's close
	}
}

func wavesText(waves int) string {
	if waves <= 0 {
		return ""
	}
	return strconv.Itoa(waves)
}

// shell is the shell --gate runs in: /bin/sh, or sh from PATH where there
// is no /bin/sh (Windows with Git's or MSYS's sh).
func shell() string {
	if _, err := os.Stat("/bin/sh"); err == nil {
		return "/bin/sh"
	}
	return "sh"
}

// prefixWriter turns a command's output into prefixed notes, line by line.
type prefixWriter struct {
	note   func(format string, args ...any)
	prefix string
	mu     sync.Mutex
	buf    bytes.Buffer
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadBytes('\n')
		if err == io.EOF {
			w.buf.Write(line) // keep the partial line
			return len(p), nil
		}
		w.note("%s%s", w.prefix, bytes.TrimRight(line, "\r\n"))
	}
}

func (w *prefixWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	sc := bufio.NewScanner(&w.buf)
	for sc.Scan() {
		w.note("%s%s", w.prefix, sc.Text())
	}
	w.buf.Reset()
}

package invoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/proc"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
	"github.com/dmctl/dmctl/internal/retry"
)

// jsonlFlushInterval bounds how long a result may sit in stdout's buffer
// when stdout is a pipe or a file.
const jsonlFlushInterval = 100 * time.Millisecond

// resolved is a run's resolved targets, and how many of them --resume
// leaves out for having a final result in the journal.
type resolved struct {
	*fleet.Resolved
	inJournal int
}

func (t *resolved) close() {
	if t != nil {
		t.Close()
	}
}

// resolveTargets reads the targets of --device, --devices-file and --query
// through the run's fleet.Plan, leaving out (with --resume) the targets the
// journal has results for. needTotal reads a query to its end first.
func (opts *Options) resolveTargets(ctx context.Context, needTotal bool) (*resolved, error) {
	res := &resolved{}
	p := opts.targetPlan()
	p.Pager, p.PageSize, p.TempDir = opts.Query, QueryPageSize, opts.TempDir
	p.Retry = retry.Policy{MaxAttempts: opts.MaxAttempts, MaxElapsed: opts.RetryFor, Sleep: opts.Sleep, Now: opts.Now}
	p.Keep = func(t fleet.Target) bool { return opts.resumePending(t, &res.inJournal) }
	r, err := p.Resolve(ctx, needTotal)
	res.Resolved = r
	var ie *fleet.InputError
	var qe *fleet.QueryError
	switch {
	case errors.As(err, &ie):
		return res, cmdutil.FlagErrorWrap(err)
	case errors.As(err, &qe):
		return res, queryFailure(err, 0)
	}
	return res, err
}

// targetPlan is the run's fleet.Plan: the --device targets, the files and
// the query (checked by checkInvoke).
func (opts *Options) targetPlan() fleet.Plan {
	return fleet.Plan{Targets: opts.Targets, Files: opts.DevicesFiles, Query: opts.QuerySQL, Module: opts.Module, Stdin: opts.IO.In}
}

// resumePending reports whether t runs under --resume, counting in
// inJournal the targets skipped for having a final result (unknown ones are
// reported separately, as results).
func (opts *Options) resumePending(t fleet.Target, inJournal *int) bool {
	if opts.resume == nil || opts.resume.Pending(t, opts.Idempotent) {
		return true
	}
	if opts.resume.Final.Has(t) {
		*inJournal++
	}
	return false
}

// queryFailure shapes a failed query page. Before any call was sent, the
// hub's answer decides the exit code through cmdutil.ExitCode (a malformed
// query 2, one refused for who is asking 3).
func queryFailure(err error, sent int) error {
	if sent == 0 {
		if _, ok := iothub.AsResponseError(err); ok {
			return &cmdutil.HubError{What: "--query", Err: err}
		}
		var qe *fleet.QueryError
		if errors.As(err, &qe) && !isHubError(err) {
			return cmdutil.FlagErrorf("--query: %v", err)
		}
	}
	return fmt.Errorf("--query: %w", err)
}

func isHubError(err error) bool {
	_, ok := iothub.AsResponseError(err)
	var te *iothub.TransportError
	return ok || errors.As(err, &te)
}

// wouldPrompt reports whether a run over several targets asks first: on a
// terminal (stdin and stderr), without --yes or --dry-run.
func (opts *Options) wouldPrompt() bool {
	return !opts.Yes && !opts.DryRun && opts.IO.IsStdinTTY() && opts.IO.IsStderrTTY()
}

// confirmRun asks whether to invoke the method on count targets.
func (opts *Options) confirmRun(ctx context.Context, count int, hub string) (bool, error) {
	on := ""
	if hub != "" {
		on = " on hub " + hub
	}
	return cmdutil.Confirm(ctx, opts.IO, fmt.Sprintf("Invoke %q on %d targets%s?", opts.Method, count, on))
}

// runFacts are what the hints need to know about a run's results.
type runFacts struct {
	refused, tokenFailed, offline, timedOut, unknown, waitTimedOut int
}

func (f *runFacts) add(r fleet.Result) {
	switch r.Outcome {
	case fleet.OutcomeUnauthorized:
		if r.Error != nil && r.Error.HTTPStatus != 0 {
			f.refused++
		} else {
			f.tokenFailed++
		}
	case fleet.OutcomeOffline:
		f.offline++
	case fleet.OutcomeTimeout:
		f.timedOut++
	case fleet.OutcomeUnknown:
		f.unknown++
	case fleet.OutcomeWaitTimeout:
		f.waitTimedOut++
	}
}

// invokeRun invokes the method on every target, writes results to stdout in
// the chosen format and the per-target problems, hints and summary to
// stderr. It returns a *cmdutil.TargetsError when a target did not succeed, a
// *fleet.ThresholdError when --max-failures or --abort-if stopped the run, cmdutil.ErrInterrupted
// when ctx was cancelled (or stdout closed), and cmdutil.ErrCancelled when
// the user said no.
func invokeRun(ctx context.Context, opts *Options) error {
	if opts.Via == ViaJob {
		return invokeViaJob(ctx, opts)
	}
	if opts.PlanFile != "" {
		return opts.writePlan(ctx)
	}
	inv, cred, err := opts.Invoker()
	if err != nil {
		return err
	}
	hub := ""
	if cred != nil {
		hub = cred.Host
	}
	pc, err := opts.pace()
	if err != nil {
		return err
	}
	if _, err := output.ParseFormat(string(opts.Output)); err != nil {
		return cmdutil.FlagErrorf("-o/--output: %v", err)
	}
	needTotal := opts.DryRun || opts.wouldPrompt() || opts.Waves.NeedsTotal()
	ts, err := opts.resolveTargets(ctx, needTotal)
	defer ts.close()
	if err != nil {
		return err
	}
	if opts.DryRun {
		return opts.dryRun(ts, hub, pc)
	}
	wait, err := opts.waitFor()
	if err != nil {
		return err
	}
	park, err := opts.parkFor(wait)
	if err != nil {
		return err
	}
	if opts.wouldPrompt() && ts.Total > 1 {
		yes, err := opts.confirmRun(ctx, ts.Total, hub)
		if err != nil {
			return err
		}
		if !yes {
			return cmdutil.ErrCancelled
		}
	}
	journal, journalPath, err := opts.openJournal()
	if err != nil {
		return err
	}
	s := newSession(ctx, opts, cred, ts, journal, journalPath)
	defer s.stopRun(nil)
	if err := s.setupOutput(); err != nil {
		return err
	}
	if opts.Gate != "" {
		g, err := fleet.NewShellGate(opts.Gate, opts.GateTimeout, s.note, journal, opts.now)
		if err != nil {
			return err
		}
		defer g.Close()
		s.gate = g
	}
	if opts.inFlightNote != "" {
		_, _ = fmt.Fprintf(s.errOut, "note: %s\n", opts.inFlightNote)
	}
	ro := s.runOptions(pc, wait)
	ro.Park = park
	sum, runErr := s.execute(inv, ro)
	merged, err := s.report(sum, pc)
	if err != nil {
		return err
	}
	return s.verdict(sum, merged, runErr)
}

// openJournal creates --journal's journal (or reopens --resume's) once the
// targets are known to be good, before the first call; nil without one.
func (opts *Options) openJournal() (*fleet.Journal, string, error) {
	switch {
	case opts.Resume != "":
		j, err := fleet.AppendJournal(opts.Resume)
		if err != nil {
			return nil, "", fmt.Errorf("--resume %s: %w", opts.Resume, err)
		}
		return j, opts.Resume, nil
	case opts.Journal != "":
		devices := make([]string, 0, len(opts.Targets))
		for _, t := range opts.Targets {
			devices = append(devices, t.DeviceID)
		}
		h, err := opts.journalHeader(devices)
		if err != nil {
			return nil, "", err
		}
		j, err := fleet.CreateJournal(opts.Journal, h)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return nil, "", cmdutil.FlagErrorf("--journal %s: the file already exists; continue that run with --resume %s, or choose a new file", opts.Journal, opts.Journal)
			}
			return nil, "", fmt.Errorf("--journal %s: %w", opts.Journal, err)
		}
		return j, opts.Journal, nil
	}
	return nil, "", nil
}

// session is one fleet run's streams and bookkeeping: results to stdout
// (stopping the run like an interrupt when stdout is closed), notes, the
// progress bar and the problems, hints and summary on stderr.
type session struct {
	ctx         context.Context
	runCtx      context.Context // ends on ctx, or with ErrStdoutClosed as cause
	stopRun     context.CancelCauseFunc
	opts        *Options
	cred        *auth.Credential
	ts          *resolved
	journal     *fleet.Journal
	journalPath string
	gate        *fleet.ShellGate // --gate, or nil
	carried     []fleet.Result

	errOut       io.Writer
	color        bool
	progress     *fleet.Progress
	flusher      *output.FlushingWriter
	bar          *output.ProgressBar
	printer      output.ResultPrinter
	stdoutFailed error // the first failed write to stdout
	noteMu       sync.Mutex
	problems     *output.Problems
	facts        runFacts
}

func newSession(ctx context.Context, opts *Options, cred *auth.Credential, ts *resolved, journal *fleet.Journal, journalPath string) *session {
	s := &session{ctx: ctx, opts: opts, cred: cred, ts: ts, journal: journal, journalPath: journalPath,
		errOut: opts.IO.ErrOut, color: opts.IO.ErrColorEnabled(), progress: &fleet.Progress{},
		problems: output.NewProblems(output.MaxProblemLines)}
	s.runCtx, s.stopRun = context.WithCancelCause(ctx)
	if opts.resume != nil && !opts.Idempotent {
		s.carried = opts.resume.Unknown
	}
	return s
}

// setupOutput builds stdout's printer: buffered when stdout is a pipe or a
// file, behind the progress bar (on stderr, only when it is a terminal).
func (s *session) setupOutput() error {
	opts := s.opts
	out := opts.IO.Out
	if opts.Output == output.FormatJSONL && !opts.IO.IsStdoutTTY() {
		s.flusher = output.NewFlushingWriter(out, jsonlFlushInterval)
		s.flusher.OnError(func(err error) {
			if cmdutil.IsBrokenPipe(err) {
				s.stopRun(cmdutil.ErrStdoutClosed)
			}
		})
		out = s.flusher
	}
	if opts.IO.IsStderrTTY() && (!s.ts.Known || s.ts.Total+len(s.carried) > 1) {
		s.bar = output.NewProgressBar(s.errOut, s.progress.Snapshot, nil)
		if opts.IO.IsStdoutTTY() {
			out = output.SuspendingWriter(s.bar, out)
		}
	}
	pio := *opts.IO
	pio.Out = out
	printer, err := output.NewResultPrinter(opts.Output, &pio)
	if err != nil {
		return cmdutil.FlagErrorf("-o/--output: %v", err)
	}
	s.printer = printer
	return nil
}

// outputFailed records a failed write to stdout and stops the run: like an
// interrupt when stdout was closed (EPIPE), as an I/O failure otherwise.
func (s *session) outputFailed(err error) {
	if s.stdoutFailed == nil {
		s.stdoutFailed = err
	}
	if cmdutil.IsBrokenPipe(err) {
		s.stopRun(cmdutil.ErrStdoutClosed)
	} else {
		s.stopRun(fmt.Errorf("write results: %w: %w", err, context.Canceled))
	}
}

// note writes a line to stderr without breaking the progress bar. Notes
// come from the run's goroutines too (stopping, a second Ctrl-C).
func (s *session) note(format string, args ...any) {
	s.noteMu.Lock()
	defer s.noteMu.Unlock()
	line := fmt.Sprintf(format, args...) + "\n"
	if s.bar != nil {
		s.bar.Suspend(func() { _, _ = io.WriteString(s.errOut, line) })
		return
	}
	_, _ = io.WriteString(s.errOut, line)
}

// runOptions are the runner's options for this session.
func (s *session) runOptions(pc pace, wait *fleet.Wait) fleet.RunOptions {
	opts := s.opts
	ro := fleet.RunOptions{
		Request: iothub.MethodRequest{
			MethodName: opts.Method, Payload: opts.Payload, ResponseTimeout: opts.Timeout, ConnectTimeout: opts.ConnectTimeout,
		},
		OKStatus: opts.OKStatus, Retry: opts.retryPolicy(), Now: opts.Now,
		InFlight: fleet.InFlightOptions{Fixed: opts.Concurrency, Max: opts.MaxInFlight, Pace: pc.sizingPace(),
			Opening: iothub.HandshakesInProgress, OnResize: proc.FollowInFlight},
		Limiter: pc.limiter, Journal: s.journal, Carried: s.carried,
		Waves: opts.Waves, WavePause: opts.WavePause, MaxFailures: opts.MaxFailures, AbortIf: opts.AbortIf, MinSample: opts.MinSample, Sleep: opts.Sleep,
		Grace: opts.Grace, Abort: opts.HardStop, Progress: s.progress, Wait: wait, Drift: opts.Plan.DriftCheck(),
		OnResult: func(r fleet.Result) {
			if s.stdoutFailed == nil {
				if err := s.printer.Add(r); err != nil {
					s.outputFailed(err)
				}
			}
			s.problems.Add(r)
			s.facts.add(r)
		},
		OnStopping: s.stopping,
		OnWave: func(wave, waves, from, to int) {
			of := ""
			if waves > 0 {
				of = fmt.Sprintf(" of %d", waves)
			}
			if to > 0 {
				s.note("wave %d%s: targets %d to %d", wave, of, from, to)
			} else {
				s.note("wave %d%s: from target %d", wave, of, from)
			}
		},
	}
	if s.ts.Known {
		ro.Total = s.ts.Total
	}
	if g := s.gate; g != nil {
		onResult, onWave := ro.OnResult, ro.OnWave
		ro.OnResult = func(r fleet.Result) { g.Add(r); onResult(r) }
		ro.OnWave = func(wave, waves, from, to int) { g.StartWave(wave); onWave(wave, waves, from, to) }
		ro.Gate, ro.GateAfterLast = g.Run, opts.GateAfterLast
	}
	return ro
}

// stopping says what a stopping run waits for.
func (s *session) stopping(inFlight int) {
	why := "Stopping"
	if errors.Is(context.Cause(s.runCtx), cmdutil.ErrStdoutClosed) {
		why = "Stopping (stdout was closed)"
	}
	if inFlight == 0 {
		s.note("%s: no new calls are started.", why)
		return
	}
	s.note("%s: no new calls; waiting up to %s for %d %s in flight to answer (Ctrl-C again to stop at once).",
		why, cmdutil.FormatDuration(s.opts.Grace), inFlight, cmdutil.Plural(inFlight, "call", "calls"))
}

// execute runs the fan-out, then flushes stdout and closes the journal.
func (s *session) execute(inv fleet.Invoker, ro fleet.RunOptions) (fleet.Summary, error) {
	opts := s.opts
	if ro.Wait != nil {
		s.note("After each call succeeds, waiting for %s (at most %s per target).", ro.Wait.Describe(), cmdutil.FormatDuration(ro.Wait.Timeout))
	}
	runDone, watcherDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watcherDone)
		if opts.HardStop == nil {
			return
		}
		select {
		case <-opts.HardStop.Done():
			s.note("Stopping at once: calls still in flight are reported unknown (they may have reached the device).")
		case <-runDone:
		}
	}()
	if s.bar != nil {
		// The bar's first frame shows the total, as Run will set it.
		s.progress.SetTotal(ro.PlannedTotal())
		s.bar.Start()
	}
	sum, runErr := fleet.NewRunner(inv).Run(s.runCtx, s.ts.Source, ro)
	close(runDone)
	<-watcherDone // nothing writes to stderr behind the summary
	if s.bar != nil {
		s.bar.Stop()
	}
	if s.stdoutFailed == nil {
		if err := s.printer.Flush(); err != nil {
			s.outputFailed(err)
		}
	}
	if s.flusher != nil {
		if err := s.flusher.Close(); err != nil && s.stdoutFailed == nil {
			s.outputFailed(err)
		}
	}
	if s.journal != nil {
		if err := s.journal.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("journal: %w", err)
		}
	}
	return sum, runErr
}

// report writes the problems, hints, notes and summary to stderr, and
// returns the whole rollout's summary (with --resume, the journal's earlier
// results merged in).
func (s *session) report(sum fleet.Summary, pc pace) (fleet.Summary, error) {
	opts, errOut := s.opts, s.errOut
	if err := s.problems.Write(errOut, s.color); err != nil {
		return sum, err
	}
	pv, paceHint, paced := paceView(sum, opts, pc)
	hs := hints(s.facts, s.cred, opts)
	if paceHint != "" {
		hs = append(hs, paceHint)
	}
	for _, h := range hs {
		_, _ = fmt.Fprintf(errOut, "hint: %s\n", h)
	}
	if n := s.ts.Duplicates(); n > 0 {
		_, _ = fmt.Fprintf(errOut, "note: %d duplicate %s removed\n", n, cmdutil.Plural(n, "target", "targets"))
	}
	merged := sum
	if opts.resume != nil {
		n := s.ts.inJournal
		_, _ = fmt.Fprintf(errOut, "resumed from %s: %d %s already had a final result and %s not run again\n",
			opts.Resume, n, cmdutil.Plural(n, "target", "targets"), cmdutil.Plural(n, "was", "were"))
		merged = sum.Merge(opts.resume.FinalSummary)
	}
	if err := output.WriteSummary(errOut, sum, s.color); err != nil {
		return merged, err
	}
	if paced {
		_ = output.WritePace(errOut, pv)
	}
	if opts.resume != nil {
		_ = output.WriteTotals(errOut, "whole rollout (this run and the journal's earlier ones): ", merged, s.color)
	}
	if sum.Unread {
		again := "a run with --journal FILE can be resumed (dmctl invoke --resume FILE), which reads the query again"
		if s.journalPath != "" {
			again = "dmctl invoke --resume " + s.journalPath + " reads the query again and runs them"
		}
		_, _ = fmt.Fprintf(errOut, "note: the run stopped before its targets were read to the end (a second Ctrl-C, or a query page or devices file that could not be read): the targets not read yet are in no result; %s.\n", again)
	}
	return merged, nil
}

// verdict is the run's error, which decides its exit code.
func (s *session) verdict(sum, merged fleet.Summary, runErr error) error {
	var te *fleet.ThresholdError
	var ge *fleet.GateError
	stopped := s.runCtx.Err() != nil
	switch {
	case stopped && s.ctx.Err() == nil && !cmdutil.IsBrokenPipe(s.stdoutFailed):
		// stdout failed for another reason (a full disk): an I/O failure.
		return s.stdoutFailed
	case stopped:
		if s.journalPath != "" {
			_, _ = fmt.Fprintf(s.errOut, "hint: continue with: %s\n", s.opts.Plan.ResumeCommand(s.journalPath))
		} else if s.stdoutFailed != nil {
			_, _ = fmt.Fprintln(s.errOut, "hint: the results stdout did not take are lost; with --journal FILE every result is kept (dmctl journal show FILE prints them) and --resume FILE continues the run.")
		}
		return fmt.Errorf("%w: %w", cmdutil.ErrInterrupted, context.Cause(s.runCtx))
	case s.stdoutFailed != nil:
		return fmt.Errorf("write results: %w", s.stdoutFailed)
	case errors.As(runErr, &te):
		return te
	case errors.As(runErr, &ge):
		return ge
	case runErr != nil:
		var qe *fleet.QueryError
		if errors.As(runErr, &qe) {
			return queryFailure(runErr, sum.Attempts)
		}
		return runErr
	case merged.Targets == 0:
		_, _ = fmt.Fprintln(s.errOut, "note: no targets: nothing was sent")
		return nil
	case !merged.AllSucceeded():
		return &cmdutil.TargetsError{Summary: merged}
	}
	return nil
}

// dryRun prints what the run would do.
func (opts *Options) dryRun(ts *resolved, hub string, pc pace) error {
	d := output.DryRun{Method: opts.Method, Hub: hub, Targets: ts.Total, Rate: pc.rate, RateSource: pc.source}
	if !opts.Waves.IsZero() {
		d.Waves = opts.Waves.String()
	}
	if opts.Output == output.FormatName {
		// The targets are spooled (a dry run reads the query to its end).
		return output.WriteTargetNames(opts.IO.Out, func() (fleet.Target, bool) {
			t, err := ts.Source.Next(context.Background())
			return t, err == nil
		})
	}
	for len(d.Sample) < dryRunSample {
		t, err := ts.Source.Next(context.Background())
		if err != nil {
			break
		}
		d.Sample = append(d.Sample, t)
	}
	if pc.rate > 0 {
		d.Estimate = time.Duration(float64(ts.Total) / pc.rate * float64(time.Second))
	} else {
		d.Note = "unknown without --rate or --tier: the run is bounded by the calls in flight (--concurrency) and the devices' answer times"
	}
	return output.WriteDryRun(opts.IO.Out, d, opts.Output)
}

// hints explains, once each, what to do about the kinds of failure seen.
func hints(f runFacts, cred *auth.Credential, opts *Options) []string {
	var out []string
	if f.refused > 0 && cred != nil {
		out = append(out, cred.RefusedHint())
	}
	if f.tokenFailed > 0 && cred != nil {
		out = append(out, cred.TokenFailureHint())
	}
	switch {
	case f.offline > 0 && opts.UntilOnline > 0:
		out = append(out, "an offline device did not connect within --until-online: resume with a longer --until-online to keep watching for it.")
	case f.offline > 0 && opts.WaitOnline == 0:
		out = append(out, "an offline device may connect later: --wait-online 5m keeps retrying, --connect-timeout 60 lets the hub wait for it, --until-online 24h calls it once it connects.")
	}
	if f.timedOut > 0 && !opts.Idempotent {
		out = append(out, "a method that timed out may still have run on the device, so it was not resent; add --idempotent if running it twice is safe, or raise --timeout.")
	}
	if f.waitTimedOut > 0 {
		out = append(out, "a device that did not report its outcome in time may still finish: check its twin (dmctl twin show --device ID), or raise --wait-timeout.")
	}
	if f.unknown > 0 && !opts.Idempotent {
		out = append(out, "for an unknown target nobody can tell whether the device ran the method; check the device (e.g. its twin), or add --idempotent if running it twice is safe.")
	}
	return out
}

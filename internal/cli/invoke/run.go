package invoke

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
	"github.com/dmctl/dmctl/internal/retry"
)

// jsonlFlushInterval bounds how long a result may sit in stdout's buffer
// when stdout is a pipe or a file.
const jsonlFlushInterval = 100 * time.Millisecond

// resolved is a run's resolved targets.
type resolved struct {
	src   fleet.Source
	total int  // valid when known
	known bool // false: a query still streaming
	spool *fleet.Spool
	// dupes counts removed duplicates; inJournal the targets --resume skips.
	// They grow while a query streams.
	dupes, inJournal *int
}

func (t *resolved) close() {
	if t != nil && t.spool != nil {
		_ = t.spool.Close()
	}
}

// resolveTargets gathers the targets of --device, --devices-file and
// --query, removes duplicates and (with --resume) the targets the journal
// has results for. Files are read to their end and spooled to a temporary
// file, so a bad line stops the run before anything is sent. A query is
// spooled too when the total must be known first (needTotal); otherwise
// its first page is read now (so a refused query stops the run before
// anything is sent) and the rest streams as the run goes.
func (opts *Options) resolveTargets(ctx context.Context, needTotal bool) (*resolved, error) {
	dupes, inJournal := opts.Duplicates, 0
	res := &resolved{dupes: &dupes, inJournal: &inJournal}
	seen := fleet.NewTargetSet()
	for _, t := range opts.Targets {
		seen.Add(t)
	}
	keep := func(t fleet.Target) bool {
		if !seen.Add(t) {
			dupes++
			return false
		}
		return opts.resumePending(t, &inJournal)
	}
	spool, err := fleet.NewSpool(opts.TempDir)
	if err != nil {
		return nil, err
	}
	res.spool = spool
	for _, t := range opts.Targets {
		if !opts.resumePending(t, &inJournal) {
			continue
		}
		if err := spool.Add(t); err != nil {
			return res, fmt.Errorf("write the targets' temporary file: %w", err)
		}
	}
	add := func(t fleet.Target) error {
		if keep(t) {
			if err := spool.Add(t); err != nil {
				return fmt.Errorf("write the targets' temporary file: %w", err)
			}
		}
		return nil
	}
	if err := opts.readDevicesFiles(add); err != nil {
		return res, err
	}
	var stream fleet.Source
	if opts.QuerySQL != "" {
		if opts.Query == nil {
			return res, errors.New("--query: no hub client to run the query with")
		}
		pager, err := opts.Query(opts.QuerySQL, QueryPageSize)
		if err != nil {
			return res, err
		}
		qs := fleet.NewQuerySource(pager, opts.Module, retry.Policy{
			MaxAttempts: opts.MaxAttempts, MaxElapsed: opts.RetryFor, Idempotent: true, Sleep: opts.Sleep, Now: opts.Now,
		})
		first, err := qs.Next(ctx)
		switch {
		case err == io.EOF:
		case err != nil:
			return res, queryFailure(err, 0)
		case needTotal:
			if err := add(first); err != nil {
				return res, err
			}
			for {
				t, err := qs.Next(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					return res, queryFailure(err, 0)
				}
				if err := add(t); err != nil {
					return res, err
				}
			}
		default:
			stream = fleet.NewFilter(fleet.Chain(fleet.NewSliceSource([]fleet.Target{first}), qs), keep)
		}
	}
	src, err := spool.Source()
	if err != nil {
		return res, err
	}
	res.src, res.total, res.known = src, spool.Len(), true
	if stream != nil {
		res.src, res.known = fleet.Chain(src, stream), false
	}
	return res, nil
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

// readDevicesFiles reads every --devices-file (or stdin), in order, and
// calls add with each target.
func (opts *Options) readDevicesFiles(add func(fleet.Target) error) error {
	for _, path := range opts.DevicesFiles {
		if err := opts.readDevicesFile(path, add); err != nil {
			return err
		}
	}
	return nil
}

// readDevicesFile reads one --devices-file (or stdin) and calls add with each target.
func (opts *Options) readDevicesFile(path string, add func(fleet.Target) error) error {
	name := "--devices-file " + path
	var r io.Reader
	if path == "-" {
		name = "--devices-file - (stdin)"
		r = opts.IO.In
	} else {
		f, err := os.Open(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return cmdutil.FlagErrorf("%s: cannot read it: %v", name, err)
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	err := fleet.ReadTargets(r, name, opts.Module, add)
	var ie *fleet.InputError
	if errors.As(err, &ie) {
		return cmdutil.FlagErrorWrap(err)
	}
	return err
}

// queryFailure shapes a failed query page. Before any call was sent, a
// query the hub refuses as malformed is a usage error (exit 2) and one it
// refuses for who is asking an auth error (exit 3).
func queryFailure(err error, sent int) error {
	if sent == 0 {
		if re, ok := iothub.AsResponseError(err); ok {
			switch re.StatusCode {
			case 400:
				return cmdutil.FlagErrorf("--query: the hub refused the query: %s", fleet.ErrorFrom(re).String())
			case 401, 403:
				return &cmdutil.HubError{What: "--query: the hub refused to run the query", Err: re}
			}
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
// *fleet.ThresholdError when --max-failures stopped the run, cmdutil.ErrInterrupted
// when ctx was cancelled, and cmdutil.ErrCancelled when the user said no.
func invokeRun(ctx context.Context, opts *Options) error {
	if opts.Via == ViaJob {
		return invokeViaJob(ctx, opts)
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
	if opts.wouldPrompt() && ts.total > 1 {
		yes, err := opts.confirmRun(ctx, ts.total, hub)
		if err != nil {
			return err
		}
		if !yes {
			return cmdutil.ErrCancelled
		}
	}
	var carried []fleet.Result
	if opts.resume != nil && !opts.Idempotent {
		carried = opts.resume.Unknown
	}

	// The journal: created (or reopened by --resume) once the targets are
	// known to be good, before the first call.
	var journal *fleet.Journal
	switch {
	case opts.Resume != "":
		if journal, err = fleet.AppendJournal(opts.Resume); err != nil {
			return fmt.Errorf("--resume %s: %w", opts.Resume, err)
		}
	case opts.Journal != "":
		devices := make([]string, 0, len(opts.Targets))
		for _, t := range opts.Targets {
			devices = append(devices, t.DeviceID)
		}
		h, err := opts.journalHeader(devices)
		if err != nil {
			return err
		}
		if journal, err = fleet.CreateJournal(opts.Journal, h); err != nil {
			if errors.Is(err, os.ErrExist) {
				return cmdutil.FlagErrorf("--journal %s: the file already exists; continue that run with --resume %s, or choose a new file", opts.Journal, opts.Journal)
			}
			return fmt.Errorf("--journal %s: %w", opts.Journal, err)
		}
	}
	journalPath := opts.Journal
	if opts.Resume != "" {
		journalPath = opts.Resume
	}

	// The run stops like an interrupt when stdout is closed (`| head`):
	// runCtx ends with cmdutil.ErrStdoutClosed as its cause.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	var stdoutFailed error // the first failed write to stdout
	outputFailed := func(err error) {
		if stdoutFailed == nil {
			stdoutFailed = err
		}
		if cmdutil.IsBrokenPipe(err) {
			stopRun(cmdutil.ErrStdoutClosed)
		} else {
			stopRun(fmt.Errorf("write results: %w: %w", err, context.Canceled))
		}
	}

	// Streams: stdout buffered when it is a pipe or a file, the progress
	// bar on stderr only when stderr is a terminal.
	errOut := opts.IO.ErrOut
	color := opts.IO.ErrColorEnabled()
	progress := &fleet.Progress{}
	out := opts.IO.Out
	var flusher *output.FlushingWriter
	if opts.Output == output.FormatJSONL && !opts.IO.IsStdoutTTY() {
		flusher = output.NewFlushingWriter(out, jsonlFlushInterval)
		flusher.OnError(func(err error) {
			if cmdutil.IsBrokenPipe(err) {
				stopRun(cmdutil.ErrStdoutClosed)
			}
		})
		out = flusher
	}
	var bar *output.ProgressBar
	if opts.IO.IsStderrTTY() && (!ts.known || ts.total+len(carried) > 1) {
		bar = output.NewProgressBar(errOut, progress.Snapshot, nil)
		if opts.IO.IsStdoutTTY() {
			out = output.SuspendingWriter(bar, out)
		}
	}
	pio := *opts.IO
	pio.Out = out
	printer, err := output.NewResultPrinter(opts.Output, &pio)
	if err != nil {
		return cmdutil.FlagErrorf("-o/--output: %v", err)
	}
	var noteMu sync.Mutex // notes come from the run's goroutines too (stopping, a second Ctrl-C)
	note := func(format string, args ...any) {
		noteMu.Lock()
		defer noteMu.Unlock()
		line := fmt.Sprintf(format, args...) + "\n"
		if bar != nil {
			bar.Suspend(func() { _, _ = io.WriteString(errOut, line) })
			return
		}
		_, _ = io.WriteString(errOut, line)
	}

	problems := output.NewProblems(output.MaxProblemLines)
	var facts runFacts
	runOpts := fleet.RunOptions{
		Request: iothub.MethodRequest{
			MethodName:      opts.Method,
			Payload:         opts.Payload,
			ResponseTimeout: opts.Timeout,
			ConnectTimeout:  opts.ConnectTimeout,
		},
		OKStatus:    opts.OKStatus,
		Retry:       opts.retryPolicy(),
		Now:         opts.Now,
		Concurrency: opts.Concurrency,
		Limiter:     pc.limiter,
		Journal:     journal,
		Carried:     carried,
		Waves:       opts.Waves,
		WavePause:   opts.WavePause,
		MaxFailures: opts.MaxFailures,
		Sleep:       opts.Sleep,
		Grace:       opts.Grace,
		Abort:       opts.HardStop,
		Progress:    progress,
		Wait:        wait,
		OnResult: func(r fleet.Result) {
			if stdoutFailed == nil {
				if err := printer.Add(r); err != nil {
					outputFailed(err)
				}
			}
			problems.Add(r)
			facts.add(r)
		},
		OnStopping: func(inFlight int) {
			why := "Stopping"
			if errors.Is(context.Cause(runCtx), cmdutil.ErrStdoutClosed) {
				why = "Stopping (stdout was closed)"
			}
			if inFlight == 0 {
				note("%s: no new calls are started.", why)
				return
			}
			note("%s: no new calls; waiting up to %s for %d %s in flight to answer (Ctrl-C again to stop at once).",
				why, cmdutil.FormatDuration(opts.Grace), inFlight, cmdutil.Plural(inFlight, "call", "calls"))
		},
		OnWave: func(wave, waves, from, to int) {
			of := ""
			if waves > 0 {
				of = fmt.Sprintf(" of %d", waves)
			}
			if to > 0 {
				note("wave %d%s: targets %d to %d", wave, of, from, to)
			} else {
				note("wave %d%s: from target %d", wave, of, from)
			}
		},
	}
	if ts.known {
		runOpts.Total = ts.total
	}
	if wait != nil {
		note("After each call succeeds, waiting for %s (at most %s per target).", wait.Describe(), cmdutil.FormatDuration(wait.Timeout))
	}
	runDone, watcherDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watcherDone)
		if opts.HardStop == nil {
			return
		}
		select {
		case <-opts.HardStop.Done():
			note("Stopping at once: calls still in flight are reported unknown (they may have reached the device).")
		case <-runDone:
		}
	}()
	if bar != nil {
		bar.Start()
	}
	sum, runErr := fleet.NewRunner(inv).Run(runCtx, ts.src, runOpts)
	close(runDone)
	<-watcherDone // nothing writes to stderr behind the summary
	if bar != nil {
		bar.Stop()
	}
	if stdoutFailed == nil {
		if err := printer.Flush(); err != nil {
			outputFailed(err)
		}
	}
	if flusher != nil {
		if err := flusher.Close(); err != nil && stdoutFailed == nil {
			outputFailed(err)
		}
	}
	if journal != nil {
		if err := journal.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("journal: %w", err)
		}
	}

	if err := problems.Write(errOut, color); err != nil {
		return err
	}
	for _, h := range hints(facts, cred, opts) {
		_, _ = fmt.Fprintf(errOut, "hint: %s\n", h)
	}
	if n := *ts.dupes; n > 0 {
		_, _ = fmt.Fprintf(errOut, "note: %d duplicate %s removed\n", n, cmdutil.Plural(n, "target", "targets"))
	}
	merged := sum
	if opts.resume != nil {
		prev := opts.resume.FinalSummary
		_, _ = fmt.Fprintf(errOut, "resumed from %s: %d %s already had a final result and %s not run again\n",
			opts.Resume, *ts.inJournal, cmdutil.Plural(*ts.inJournal, "target", "targets"), cmdutil.Plural(*ts.inJournal, "was", "were"))
		merged = sum.Merge(prev)
	}
	if err := output.WriteSummary(errOut, sum, color); err != nil {
		return err
	}
	if opts.resume != nil {
		_ = output.WriteTotals(errOut, "whole rollout (this run and the journal's earlier ones): ", merged, color)
	}
	if sum.Unread {
		again := "a run with --journal FILE can be resumed (dmctl invoke --resume FILE), which reads the query again"
		if journalPath != "" {
			again = "dmctl invoke --resume " + journalPath + " reads the query again and runs them"
		}
		_, _ = fmt.Fprintf(errOut, "note: the run stopped at once, before the query was read to its end: the devices it had not returned yet are in no result; %s.\n", again)
	}

	var te *fleet.ThresholdError
	stopped := runCtx.Err() != nil
	switch {
	case stopped && ctx.Err() == nil && !cmdutil.IsBrokenPipe(stdoutFailed):
		// stdout failed for another reason (a full disk): an I/O failure.
		return stdoutFailed
	case stopped:
		if journalPath != "" {
			_, _ = fmt.Fprintf(errOut, "hint: continue with: dmctl invoke --resume %s\n", journalPath)
		} else if stdoutFailed != nil {
			_, _ = fmt.Fprintln(errOut, "hint: the results stdout did not take are lost; with --journal FILE every result is kept (dmctl journal show FILE prints them) and --resume FILE continues the run.")
		}
		return fmt.Errorf("%w: %w", cmdutil.ErrInterrupted, context.Cause(runCtx))
	case stdoutFailed != nil:
		return fmt.Errorf("write results: %w", stdoutFailed)
	case errors.As(runErr, &te):
		return te
	case runErr != nil:
		var qe *fleet.QueryError
		if errors.As(runErr, &qe) {
			return queryFailure(runErr, sum.Attempts)
		}
		return runErr
	case merged.Targets == 0:
		_, _ = fmt.Fprintln(errOut, "note: no targets: nothing was sent")
		return nil
	case !merged.AllSucceeded():
		return &cmdutil.TargetsError{Summary: merged}
	}
	return nil
}

// dryRun prints what the run would do.
func (opts *Options) dryRun(ts *resolved, hub string, pc pace) error {
	d := output.DryRun{Method: opts.Method, Hub: hub, Targets: ts.total, Rate: pc.rate, RateSource: pc.source}
	if !opts.Waves.IsZero() {
		d.Waves = opts.Waves.String()
	}
	if opts.Output == output.FormatName {
		bw := bufio.NewWriter(opts.IO.Out)
		for {
			t, err := ts.src.Next(context.Background())
			if err != nil {
				break
			}
			_, _ = bw.WriteString(t.String() + "\n")
		}
		return bw.Flush()
	}
	for len(d.Sample) < dryRunSample {
		t, err := ts.src.Next(context.Background())
		if err != nil {
			break
		}
		d.Sample = append(d.Sample, t)
	}
	if pc.rate > 0 {
		d.Estimate = time.Duration(float64(ts.total) / pc.rate * float64(time.Second))
	} else {
		d.Note = fmt.Sprintf("unknown without --rate or --tier: the run is bounded by --concurrency %d and the devices' answer times", opts.Concurrency)
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
	if f.offline > 0 && opts.WaitOnline == 0 {
		out = append(out, "an offline device may connect later: --wait-online 5m keeps retrying, --connect-timeout 60 lets the hub wait for it.")
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

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmctl/dmctl/internal/ctxtime"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// Invoker makes exactly one attempt of a direct method call on one target.
// Retries are the runner's (through internal/retry), never the invoker's.
type Invoker interface {
	Invoke(ctx context.Context, t Target, req iothub.MethodRequest) (iothub.MethodResult, error)
}

// ClientInvoker is the Invoker over the IoT Hub REST client: a device method
// when the target has no module, a module method otherwise.
type ClientInvoker struct {
	Client *iothub.Client
}

// Invoke implements Invoker.
func (c ClientInvoker) Invoke(ctx context.Context, t Target, req iothub.MethodRequest) (iothub.MethodResult, error) {
	if t.ModuleID == "" {
		return c.Client.InvokeDeviceMethod(ctx, t.DeviceID, req)
	}
	return c.Client.InvokeModuleMethod(ctx, t.DeviceID, t.ModuleID, req)
}

// RunOptions say what to invoke and how. The zero value of each field is
// documented on it.
type RunOptions struct {
	// Request is the method call sent to every target.
	Request iothub.MethodRequest
	// OKStatus decides which device statuses count as success; zero means any 2xx.
	OKStatus StatusSet
	// Retry bounds and classifies resends; see internal/retry. Its Sleep
	// is wrapped so that an interrupted run stops resending.
	Retry retry.Policy
	// OnResult, when set, receives every result as soon as it is final, in
	// completion order, before Run returns; skipped targets included. It is
	// never called concurrently.
	OnResult func(Result)
	// Now is the clock for start times and durations; nil means time.Now.
	Now func() time.Time

	// Concurrency is a fixed number of calls in flight when InFlight sets
	// neither Fixed nor Max; 0 or less means 1.
	Concurrency int
	// InFlight sizes the calls in flight (fixed, or the auto rule of
	// inflight.go). Its Pace defaults to the Limiter's rate.
	InFlight InFlightOptions
	// Limiter paces every attempt; nil means no pacing.
	Limiter Limiter
	// Journal, when set, records each target before its first call is sent
	// and its result once known.
	Journal *Journal
	// Carried are results reported before any call without being run (for
	// --resume: targets found in flight in the journal). They are counted,
	// journaled and passed to OnResult first.
	Carried []Result

	// Total is the number of targets the source holds, when known; 0 means
	// unknown. Waves with percentages need it.
	Total int
	// Waves splits the run; between waves Run waits for every answer,
	// checks MaxFailures and pauses for WavePause. Zero: one wave.
	Waves WavePlan
	// WavePause is the pause between waves.
	WavePause time.Duration
	// MaxFailures stops the run: a count as soon as it is exceeded, a
	// percentage when a wave ends. Untouched targets are reported skipped
	// and Run returns a *ThresholdError. Zero: never.
	MaxFailures Threshold
	// AbortIf stops the run as soon as one criterion holds, judged on every
	// result (with or without waves); a percentage once MinSample targets
	// have finished (0: DefaultMinSample). As for MaxFailures, calls in
	// flight finish, untouched targets are reported skipped and Run returns
	// a *ThresholdError naming the criterion.
	AbortIf   []Criterion
	MinSample int
	// Gate, when set, is called once a wave has ended (its results all
	// final, after WavePause) and before the next one starts, and after the
	// last wave too when GateAfterLast; wave is 1-based, waves 0 when not
	// known ahead. An error stops the run as a threshold does: untouched
	// targets are reported skipped and Run returns the error (a *GateError
	// gets its Skipped count).
	Gate          func(ctx context.Context, wave, waves int) error
	GateAfterLast bool
	// OnWave, when set, is called as each wave starts (1-based, of waves;
	// waves is 0 when not known ahead, for batch sizes on a streamed source).
	OnWave func(wave, waves, from, to int)
	// Sleep is used for wave pauses; nil means a real, cancellable sleep.
	Sleep func(context.Context, time.Duration) error

	// Grace is how long calls in flight may take to finish once ctx is
	// cancelled; after it they are cancelled too. 0 cancels them at once.
	Grace time.Duration
	// Abort, when it ends (a second Ctrl-C), cuts the grace period short:
	// calls in flight are cancelled at once (reported unknown when the
	// request may have reached the device) and a remote source is no longer
	// read to report its untouched targets (Summary.Unread says so). nil:
	// never.
	Abort context.Context
	// OnStopping, when set, is called once when ctx ends before the run
	// has finished, with the number of calls in flight then.
	OnStopping func(inFlight int)
	// Progress, when set, is updated as the run goes.
	Progress *Progress
	// Park, when set, parks the targets whose device was offline (404103)
	// and calls each again once it is connected (--until-online; park.go).
	// A parked target's result is final only then, or when Park.For ends.
	Park *Park
	// Wait, when set, holds each succeeded result until the device reports
	// the awaited outcome (or fails it, or the wait times out): only then is
	// the result final, counted, journaled and passed to OnResult. Waves
	// wait for these outcomes too.
	Wait *Wait
	// Drift, when set (dmctl apply), compares each target's twin with its
	// plan's before the first call: a target whose twin changed is not
	// invoked and is reported drifted. nil: no check.
	Drift *DriftCheck
}

// Runner invokes a method on the targets of a source, with a bounded
// number of calls in flight.
type Runner struct {
	Invoker Invoker
}

// NewRunner returns a Runner that calls inv.
func NewRunner(inv Invoker) *Runner { return &Runner{Invoker: inv} }

// ThresholdError says that --max-failures or an --abort-if criterion
// stopped the run.
type ThresholdError struct {
	Threshold Threshold
	// Criterion is the --abort-if that held; its Class zero: --max-failures.
	Criterion Criterion
	Failed    int // targets failed (in the criterion's class) when the run stopped
	Finished  int // targets finished (not skipped) when the run stopped
	Wave      int // the wave that had run last (1-based)
	Waves     int // waves planned; 0 when not known ahead
	Skipped   int // targets reported skipped because of the stop
}

// Error describes the stop.
func (e *ThresholdError) Error() string {
	at := ""
	if e.Wave > 0 && (e.Waves == 0 || e.Waves > 1) {
		if e.Waves > 0 {
			at = fmt.Sprintf(" after wave %d of %d", e.Wave, e.Waves)
		} else {
			at = fmt.Sprintf(" after wave %d", e.Wave)
		}
	}
	rule, ended := "--max-failures "+e.Threshold.String(), "failed"
	if e.Criterion.Class != "" {
		rule = "--abort-if " + e.Criterion.String()
		if e.Criterion.Class != ClassAny {
			ended = "ended " + string(e.Criterion.Class)
		}
	}
	return fmt.Sprintf("the rollout stopped%s: %d of %d finished targets %s, more than %s; %d targets were not started",
		at, e.Failed, e.Finished, ended, rule, e.Skipped)
}

// GateError says that a health gate between waves (--gate) stopped the run.
type GateError struct {
	Wave     int    // the wave after which the gate ran (1-based)
	Waves    int    // waves planned; 0 when not known ahead
	ExitCode int    // the gate's exit status; -1 when it did not exit on its own
	Reason   string // what happened: "exited with status 3", "timed out after 10m0s", ...
	Skipped  int    // targets reported skipped because of the stop
}

// Error describes the stop.
func (e *GateError) Error() string {
	of := ""
	if e.Waves > 0 {
		of = fmt.Sprintf(" of %d", e.Waves)
	}
	return fmt.Sprintf("the rollout stopped after wave %d%s: the --gate %s; %d targets were not started", e.Wave, of, e.Reason, e.Skipped)
}

// Progress is a live view of a run for a progress display. It is safe for
// concurrent use; the zero value is ready.
type Progress struct {
	total     atomic.Int64
	seen      atomic.Int64
	done      atomic.Int64
	failed    atomic.Int64
	attempts  atomic.Int64
	throttles atomic.Int64
	parked    atomic.Int64
	wave      atomic.Int64
	waves     atomic.Int64
	limiter   atomic.Pointer[Limiter]
	slots     atomic.Pointer[inFlight]
}

// ProgressSnapshot is Progress at one moment.
type ProgressSnapshot struct {
	Total     int     // targets in the run; 0 when not known yet
	Seen      int     // targets read from the source so far
	Done      int     // targets with a result
	Failed    int     // results that count as failures (see Failed)
	Attempts  int     // calls sent
	Throttles int     // calls the hub answered 429
	Parked    int     // targets parked now, waiting for their device to connect (--until-online)
	Wave      int     // current wave, 1-based; 0 without waves
	Waves     int     // waves planned; 0 when unknown
	InFlight  int     // calls holding a slot (waiting for the pace, sent, or waiting to be resent)
	Slots     int     // calls that may be in flight now (--concurrency, or the auto rule's)
	Auto      bool    // Slots follow the auto rule
	Held      bool    // every slot was taken, at the bound, while the run was behind its pace
	Rate      float64 // the limiter's current pace, calls/s; 0 without one
}

// Snapshot reads the counters.
func (p *Progress) Snapshot() ProgressSnapshot {
	s := ProgressSnapshot{
		Total: int(p.total.Load()), Seen: int(p.seen.Load()), Done: int(p.done.Load()), Failed: int(p.failed.Load()),
		Attempts: int(p.attempts.Load()), Throttles: int(p.throttles.Load()), Parked: int(p.parked.Load()),
		Wave: int(p.wave.Load()), Waves: int(p.waves.Load()),
	}
	if l := p.limiter.Load(); l != nil {
		s.Rate = (*l).Rate()
	}
	if f := p.slots.Load(); f != nil {
		s.InFlight, s.Slots, s.Held = f.snapshot()
		s.Auto = f.stats.Auto
	}
	return s
}

// PlannedTotal is the number of targets a run with these options reports
// (Total plus the carried results), 0 when Total is not known.
func (o RunOptions) PlannedTotal() int {
	if o.Total <= 0 {
		return 0
	}
	return o.Total + len(o.Carried)
}

// SetTotal records the number of targets (a source read to its end).
func (p *Progress) SetTotal(n int) { p.total.Store(int64(n)) }

// errStopped marks a resend or a pacing wait given up because the run is
// stopping.
var errStopped = fmt.Errorf("the run is stopping: %w", context.Canceled)

// run holds one Run's shared state.
type run struct {
	r        *Runner
	opts     RunOptions
	now      func() time.Time
	progress *Progress

	interrupt   context.Context // the caller's ctx: no resends once it ends
	dispatch    context.Context // ends on interrupt, threshold or a fatal error
	stopAll     context.CancelCauseFunc
	calls       context.Context // calls in flight: ends Grace after interrupt
	cancelCalls context.CancelFunc

	slots   *inFlight
	work    chan Target // to idle workers
	workers sync.WaitGroup
	results chan<- Result
	aw      *awaiter
	park    *parker

	mu         sync.Mutex
	completed  int
	waitFor    int
	waveDone   chan struct{}
	failed     int
	finished   int
	tally      *Tally
	unsent     int   // results skipped without a call
	unread     bool  // the source was not read to its end (Abort)
	journalErr error // the first journal write that failed (guarded by mu)
}

// journalFailed records a failed journal write and stops the run: a run
// that cannot record what it sends must not go on sending.
func (ru *run) journalFailed(err error) {
	ru.mu.Lock()
	if ru.journalErr == nil {
		ru.journalErr = err
	}
	ru.mu.Unlock()
	ru.stop(err)
}

// RunTargets is Run over a slice, returning every result in completion
// order (for small runs and tests).
func (r *Runner) RunTargets(ctx context.Context, targets []Target, opts RunOptions) ([]Result, error) {
	results := make([]Result, 0, len(targets))
	on := opts.OnResult
	opts.OnResult = func(res Result) {
		results = append(results, res)
		if on != nil {
			on(res)
		}
	}
	if opts.Total == 0 {
		opts.Total = len(targets)
	}
	_, err := r.Run(ctx, NewSliceSource(targets), opts)
	return results, err
}

// Run invokes opts.Request on every target of src with at most
// opts.Concurrency calls in flight, and returns the summary of the results
// it passed to opts.OnResult.
//
// When ctx is cancelled (Ctrl-C), Run stops starting calls and resends;
// calls in flight get opts.Grace to finish, and are then cancelled (their
// targets are reported unknown when the request may have been written).
// Targets not started are reported skipped (the rest of a remote source is
// not read). Run then returns ctx's error. A *ThresholdError or a source's
// error stop the run the same way, except that calls in flight finish.
//
// Run is long because it is the run's life in order (set up, start the
// workers and the dispatcher, drain, account for what was not started);
// the parts live in run's methods.
func (r *Runner) Run(ctx context.Context, src Source, opts RunOptions) (Summary, error) {
	if opts.InFlight.Fixed <= 0 && opts.InFlight.Max <= 0 {
		opts.InFlight.Fixed = max(1, opts.Concurrency)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = ctxtime.Sleep
	}
	progress := opts.Progress
	if progress == nil {
		progress = &Progress{}
	}
	if opts.Limiter != nil {
		l := opts.Limiter
		progress.limiter.Store(&l)
	}
	if n := opts.PlannedTotal(); n > 0 {
		progress.SetTotal(n)
	}
	dispatch, stopAll := context.WithCancelCause(ctx)
	defer stopAll(nil)
	calls, cancelCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCalls()
	ru := &run{r: r, opts: opts, now: now, progress: progress, interrupt: ctx, dispatch: dispatch, stopAll: stopAll,
		calls: calls, cancelCalls: cancelCalls, tally: NewTally()}
	if opts.InFlight.Pace == nil && opts.Limiter != nil {
		opts.InFlight.Pace = opts.Limiter.Rate
	}
	ru.slots = newInFlight(opts.InFlight, now, progress.attempts.Load)
	progress.slots.Store(ru.slots)

	// Interrupted: give calls in flight the grace period, then cancel them
	// (at once on Abort).
	abort := opts.Abort
	if abort == nil {
		abort = context.WithoutCancel(ctx)
	}
	graceDone, graceExited := make(chan struct{}), make(chan struct{})
	defer func() {
		close(graceDone)
		<-graceExited // OnStopping has returned before Run does
	}()
	go func() {
		defer close(graceExited)
		select {
		case <-ctx.Done():
		case <-graceDone:
			return
		}
		if opts.OnStopping != nil {
			inUse, _, _ := ru.slots.snapshot()
			opts.OnStopping(inUse)
		}
		t := time.NewTimer(opts.Grace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-abort.Done():
		case <-graceDone:
		}
		cancelCalls()
	}()

	// A short queue to the collector keeps a --max-failures count close
	// behind the results (a fixed -c 1 stops after the failing call).
	resultsQueue := InFlightMin
	if opts.InFlight.Fixed > 0 {
		resultsQueue = min(opts.InFlight.Fixed, resultsQueue)
	}
	results := make(chan Result, resultsQueue)
	collected := make(chan struct{})
	go ru.collect(results, collected)
	for _, c := range opts.Carried {
		results <- c
	}

	if opts.Wait != nil {
		ru.aw = newAwaiter(opts.Wait, now, opts.Sleep, func(r Result) { results <- r })
		go ru.aw.run(ctx)
	}
	ru.results = results
	if opts.Park != nil {
		ru.park = newParker(ru, opts.Park, now, opts.Sleep)
		go ru.park.aw.run(ru.dispatch) // a stopped run stops calling parked targets
	}

	ru.work = make(chan Target)
	leftover, srcErr := ru.dispatchAll(src)
	close(ru.work)
	ru.workers.Wait()
	if ru.park != nil {
		ru.park.finish()
	}
	if ru.aw != nil {
		ru.aw.finish()
	}

	// Report what was never started as skipped.
	stopCause := ru.cause()
	if stopCause != nil {
		skip := func(t Target) {
			results <- skipped(t, opts.Request.MethodName, now())
		}
		for _, t := range leftover {
			skip(t)
		}
		// Every target is accounted for: the rest of the source is read
		// (a query's remaining pages too, which sends no method) and
		// reported skipped, unless Abort cuts it short.
		// A source that failed reads no further (azcore's pager stops at
		// its first failed page): what it still held is unread.
		unread := srcErr != nil
		for !unread {
			if abort.Err() != nil {
				unread = true
				break
			}
			t, err := src.Next(abort)
			if err == io.EOF {
				break
			}
			if err != nil {
				unread = true
				if abort.Err() == nil {
					srcErr = err
				}
				break
			}
			progress.seen.Add(1)
			skip(t)
		}
		ru.unread = unread
	}
	close(results)
	<-collected

	sum := ru.tally.Summary()
	if ru.park != nil {
		sum.Parked, sum.Unparked = ru.park.counts()
	}
	sum.Pacing = ru.slots.finish()
	sum.Pacing.Paced = opts.Limiter != nil
	sum.Unread = ru.unread
	sum.Throttles = int(progress.throttles.Load())
	ru.mu.Lock()
	journalErr := ru.journalErr
	ru.mu.Unlock()
	if journalErr != nil {
		return sum, journalErr
	}
	var te *ThresholdError
	var ge *GateError
	switch {
	case ctx.Err() != nil:
		return sum, context.Cause(ctx)
	case errors.As(stopCause, &te):
		te.Skipped = ru.unsent
		return sum, te
	case errors.As(stopCause, &ge):
		ge.Skipped = ru.unsent
		return sum, ge
	case srcErr != nil:
		return sum, srcErr
	}
	return sum, nil
}

// cause is why dispatching stopped early, or nil.
func (ru *run) cause() error {
	if ru.dispatch.Err() == nil {
		return nil
	}
	return context.Cause(ru.dispatch)
}

// stop ends dispatching with cause (the first cause wins).
func (ru *run) stop(cause error) { ru.stopAll(cause) }

// dispatchAll feeds targets to the workers wave by wave. It returns the
// targets it read but could not hand out, and the source's error.
// It is long because the wave boundary, the pause between waves and the stop
// checks must see one another's state in one loop.
func (ru *run) dispatchAll(src Source) (leftover []Target, srcErr error) {
	opts := ru.opts
	var ends []int
	waves := 0
	if opts.Waves.BatchSize <= 0 && !opts.Waves.IsZero() {
		ends = opts.Waves.ends(opts.Total)
		waves = len(ends)
	}
	if opts.Waves.BatchSize > 0 && opts.Total > 0 {
		waves = (opts.Total + opts.Waves.BatchSize - 1) / opts.Waves.BatchSize
	}
	if waves > 0 {
		ru.progress.waves.Store(int64(waves))
	}
	dispatched := 0
	waveEnd := func(wave int) int { // cumulative end of wave (0-based); -1 none
		switch {
		case opts.Waves.BatchSize > 0:
			return (wave + 1) * opts.Waves.BatchSize
		case ends != nil:
			if wave < len(ends) {
				return ends[wave]
			}
			return math.MaxInt
		}
		return math.MaxInt
	}
	inWaves := !opts.Waves.IsZero()
	var pending *Target // read ahead to learn whether another wave follows
	next := func() (Target, bool) {
		if pending != nil {
			t := *pending
			pending = nil
			return t, true
		}
		if ru.dispatch.Err() != nil {
			return Target{}, false
		}
		t, err := src.Next(ru.dispatch)
		if err != nil {
			if err != io.EOF && ru.dispatch.Err() == nil {
				srcErr = err
				ru.stop(err)
			}
			return Target{}, false
		}
		ru.progress.seen.Add(1)
		return t, true
	}
	for wave := 0; ; wave++ {
		end := waveEnd(wave)
		if inWaves {
			ru.progress.wave.Store(int64(wave + 1))
		}
		started := false
		for dispatched < end {
			t, ok := next()
			if !ok {
				break
			}
			if !started {
				started = true
				if inWaves && opts.OnWave != nil {
					to := end
					switch {
					case opts.Total > 0 && to > opts.Total:
						to = opts.Total
					case to == math.MaxInt:
						to = 0
					}
					opts.OnWave(wave+1, waves, dispatched+1, to)
				}
			}
			if err := ru.slots.acquire(ru.dispatch); err != nil {
				return []Target{t}, srcErr
			}
			ru.start(t)
			dispatched++
		}
		if !inWaves || ru.dispatch.Err() != nil {
			return nil, srcErr
		}
		// End of a wave: wait for its answers, then decide.
		if !ru.waitCompleted(dispatched) {
			return nil, srcErr
		}
		// Is there another wave?
		t, ok := next()
		if !ok {
			if opts.Gate != nil && opts.GateAfterLast && srcErr == nil && ru.dispatch.Err() == nil {
				if err := opts.Gate(ru.dispatch, wave+1, waves); err != nil && ru.dispatch.Err() == nil {
					ru.stop(err)
				}
			}
			return nil, srcErr
		}
		pending = &t
		ru.mu.Lock()
		failed, finished := ru.failed, ru.finished
		ru.mu.Unlock()
		if opts.MaxFailures.Exceeded(failed, finished) {
			ru.stop(&ThresholdError{Threshold: opts.MaxFailures, Failed: failed, Finished: finished, Wave: wave + 1, Waves: waves})
			return []Target{t}, srcErr
		}
		if opts.WavePause > 0 {
			if err := opts.Sleep(ru.dispatch, opts.WavePause); err != nil {
				return []Target{t}, srcErr
			}
		}
		if opts.Gate != nil {
			if err := opts.Gate(ru.dispatch, wave+1, waves); err != nil {
				if ru.dispatch.Err() == nil {
					ru.stop(err)
				}
				return []Target{t}, srcErr
			}
		}
	}
}

// start runs one target on a slot acquired for it: an idle worker takes
// it, or a new worker starts (workers stay for the run, so a goroutine's
// stack grows once, not once per target).
func (ru *run) start(t Target) {
	select {
	case ru.work <- t:
		return
	default:
	}
	ru.workers.Add(1)
	go func() {
		defer ru.workers.Done()
		ru.runOne(t)
		for t := range ru.work {
			ru.runOne(t)
		}
	}()
}

// runOne runs a target and hands its result on.
func (ru *run) runOne(t Target) {
	res := ru.one(t)
	// Only the call holds a slot: a target waiting for its device's
	// outcome does not. The slot is freed once the result is handed on,
	// so that the collector sees it before the next target starts
	// whenever it can (a --max-failures count stops sooner).
	defer ru.slots.release(time.Duration(res.DurationMs * float64(time.Millisecond)))
	if ru.park != nil && res.Outcome == OutcomeOffline && ru.dispatch.Err() == nil {
		ru.park.add(res)
		return
	}
	wasParked := ru.park != nil && ru.park.take(&res)
	if ru.aw != nil && res.Outcome == OutcomeSucceeded {
		ru.aw.add(res)
	} else {
		ru.results <- res
	}
	if wasParked {
		ru.park.close(t)
	}
}

// waitCompleted waits until n results have been collected, or dispatching
// stops (false).
func (ru *run) waitCompleted(n int) bool {
	ru.mu.Lock()
	if ru.completed-len(ru.opts.Carried) >= n {
		ru.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	ru.waitFor, ru.waveDone = n+len(ru.opts.Carried), ch
	ru.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ru.dispatch.Done():
		return false
	}
}

// collect is the one goroutine that sees every result: it counts, journals
// and reports them, and applies the failure count threshold.
func (ru *run) collect(results <-chan Result, done chan<- struct{}) {
	defer close(done)
	opts := ru.opts
	judge := newAbortJudge(opts.AbortIf, opts.MinSample)
	for res := range results {
		ru.tally.Add(res)
		// Skipped targets are journaled too, so the journal accounts for
		// every target; a skipped one stays pending for --resume.
		if opts.Journal != nil {
			if err := opts.Journal.Result(res); err != nil {
				ru.journalFailed(err)
			}
		}
		if opts.OnResult != nil {
			opts.OnResult(res)
		}
		ru.progress.done.Add(1)
		ru.mu.Lock()
		ru.completed++
		if res.Outcome != OutcomeSkipped {
			ru.finished++
		} else if res.Attempts == 0 {
			ru.unsent++
		}
		if Failed(res.Outcome) {
			ru.failed++
			ru.progress.failed.Add(1)
		}
		if ru.waveDone != nil && ru.completed >= ru.waitFor {
			close(ru.waveDone)
			ru.waveDone = nil
		}
		failed, finished := ru.failed, ru.finished
		ru.mu.Unlock()
		if t := opts.MaxFailures; t.IsSet() && t.Percent == 0 && t.Exceeded(failed, finished) && ru.dispatch.Err() == nil {
			ru.stop(&ThresholdError{Threshold: t, Failed: failed, Finished: finished, Wave: int(ru.progress.wave.Load()), Waves: int(ru.progress.waves.Load())})
		}
		if c, n, ok := judge.add(res.Outcome, finished); ok && ru.dispatch.Err() == nil {
			ru.stop(&ThresholdError{Threshold: c.Threshold, Criterion: c, Failed: n, Finished: finished, Wave: int(ru.progress.wave.Load()), Waves: int(ru.progress.waves.Load())})
		}
	}
}

// one runs a target to its result. It is long because it is one call's
// retry loop: pacing, the attempt, the classification and the resend rules
// read top to bottom.
func (ru *run) one(t Target) Result {
	if res, ok := ru.driftCheck(t); !ok {
		return res
	}
	opts := ru.opts
	method := opts.Request.MethodName
	var (
		start  time.Time
		sent   int
		last   error
		answer iothub.MethodResult
		// gaveUp: a resend was not made because the run is stopping.
		gaveUp bool
	)
	policy := opts.Retry
	baseSleep := policy.Sleep
	if baseSleep == nil {
		baseSleep = ctxtime.Sleep
	}
	policy.Sleep = func(ctx context.Context, d time.Duration) error {
		if ru.interrupt.Err() != nil {
			gaveUp = true
			return errStopped
		}
		// Wake up on Ctrl-C, not only when the calls' context ends.
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(ru.interrupt, cancel)()
		err := baseSleep(sctx, d)
		if ru.interrupt.Err() != nil {
			err = errStopped
		}
		if err != nil {
			gaveUp = true
		}
		return err
	}
	// The outcome comes from the last answer (last), not from Do's error,
	// which may also carry why Do stopped.
	attempt := func(ctx context.Context, _ int) error {
		if sent == 0 {
			if opts.Limiter != nil {
				if err := opts.Limiter.Wait(ru.dispatch); err != nil {
					return errStopped
				}
			}
			if ru.dispatch.Err() != nil {
				return errStopped
			}
			start = ru.now()
			if opts.Journal != nil {
				if err := opts.Journal.Dispatched(t, start); err != nil {
					ru.journalFailed(err)
					return errStopped
				}
			}
		} else {
			if ru.interrupt.Err() != nil {
				gaveUp = true
				return errStopped
			}
			if opts.Limiter != nil {
				if err := opts.Limiter.Wait(ru.interrupt); err != nil {
					gaveUp = true
					return errStopped
				}
			}
		}
		sent++
		ru.progress.attempts.Add(1)
		var err error
		answer, err = ru.r.Invoker.Invoke(ctx, t, opts.Request)
		throttled := false
		if iothub.KindOf(err) == iothub.KindThrottled {
			throttled = true
			ru.progress.throttles.Add(1)
		}
		if opts.Limiter != nil && (err == nil || !errors.Is(err, context.Canceled)) {
			opts.Limiter.Observe(throttled)
		}
		last = err
		return err
	}
	_, _ = retry.Do(ru.calls, policy, attempt)
	// A lost answer under a wait is settled from the twin (resolve.go):
	// the method started (the wait goes on), or it did not run (resent,
	// within --max-attempts), or nothing tells (unknown).
	resolved, ambiguous := "", ""
	for opts.Wait != nil && last != nil && answerLost(last) && !gaveUp && ru.interrupt.Err() == nil {
		look := opts.Request.ResponseTimeout
		if look <= 0 {
			look = iothub.DefaultResponseTimeout
		}
		r, why := opts.Wait.resolve(ru.calls, t, start, look, ru.now, func(ctx context.Context, d time.Duration) error {
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(ru.interrupt, cancel)()
			return baseSleep(sctx, d)
		})
		if r == resolveStarted {
			resolved, last, answer = ResolvedStarted, nil, iothub.MethodResult{}
			break
		}
		if r == resolveAmbiguous || ru.interrupt.Err() != nil {
			ambiguous = why
			break
		}
		left := retry.MaxAttemptsOf(policy) - sent
		if left <= 0 {
			ambiguous = why + "; not resent: --max-attempts " + strconv.Itoa(sent) + " reached"
			break
		}
		resolved = ResolvedNotRun
		again := policy
		again.MaxAttempts = left
		_, _ = retry.Do(ru.calls, again, attempt)
	}
	if sent == 0 {
		return skipped(t, method, ru.now())
	}
	res := Result{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Method: method, Attempts: sent,
		StartTime: start.UTC(), DurationMs: millis(ru.now().Sub(start)), Resolved: resolved}
	if last == nil && resolved == ResolvedStarted && answer.Status == 0 {
		res.Outcome = OutcomeSucceeded // no answer, but the twin shows the method started: the wait decides
		return res
	}
	if last == nil {
		status := answer.Status
		res.Status = &status
		res.Payload = answer.Payload
		if len(res.Payload) == 0 {
			res.Payload = json.RawMessage("null")
		}
		res.Outcome = OutcomeOf(answer, nil, opts.OKStatus)
		return res
	}
	res.Error = ErrorFrom(last)
	verdict, _ := retry.Classify(last, policy)
	switch {
	case gaveUp || ru.interrupt.Err() != nil && verdict == retry.Resend:
		// The last answer allowed a resend: the device did not run the
		// method (or it is idempotent), so --resume may run it.
		res.Outcome = OutcomeSkipped
		res.Error.Message += " (not resent: the run was interrupted)"
	case ru.calls.Err() != nil && errors.Is(last, context.Canceled):
		var te *iothub.TransportError
		if errors.As(last, &te) && !te.RequestWritten {
			res.Outcome = OutcomeSkipped
			res.Error = &ResultError{Message: "interrupted before the request was sent"}
		} else {
			res.Outcome = OutcomeUnknown
			res.Error = &ResultError{Message: "interrupted before the device answered (it may have run the method)"}
		}
	case ambiguous != "":
		res.Outcome = OutcomeUnknown
		res.Error.Message += "; the method may have run: " + ambiguous
	default:
		res.Outcome = OutcomeOf(answer, last, opts.OKStatus)
	}
	return res
}

func skipped(t Target, method string, at time.Time) Result {
	return Result{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Method: method, Outcome: OutcomeSkipped,
		StartTime: at.UTC()}
}

// millis is d in milliseconds, rounded to the microsecond.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/ctxtime"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// Preset is a built-in outcome to wait for (--wait).
type Preset string

// The presets.
const (
	PresetNone Preset = ""
	// PresetReboot waits until the device reports a reboot time at or after
	// the call was sent (iothubDM.reboot.lastReboot, or startedRebootTime
	// followed by a disconnection seen by dmctl, or startedRebootTime and
	// RebootStayedConnected without one) and is connected again.
	PresetReboot Preset = "reboot"
	// PresetFirmware waits until iothubDM.firmwareUpdate.status reaches a
	// complete value (succeeded) or a failure value (waitFailed).
	PresetFirmware Preset = "firmware"
)

// Presets lists the presets --wait accepts.
var Presets = []Preset{PresetReboot, PresetFirmware}

// Twin paths the presets read (iothub-contract.md §4.3).
var (
	pathLastReboot     = []string{"properties", "reported", "iothubDM", "reboot", "lastReboot"}
	pathStartedReboot  = []string{"properties", "reported", "iothubDM", "reboot", "startedRebootTime"}
	pathConnection     = []string{"connectionState"}
	pathFirmwareStatus = []string{"properties", "reported", "iothubDM", "firmwareUpdate", "status"}
	pathFirmwareError  = []string{"properties", "reported", "iothubDM", "firmwareUpdate", "error"}
)

// FirmwareComplete and FirmwareFailed are the firmware statuses --wait
// firmware ends on, compared case-insensitively: the tutorial's spellings
// and the current Node SDK sample's (iothub-contract.md §4.3). Any other
// value means the update is still in progress.
var (
	FirmwareComplete = []string{"applyComplete", "apply firmware image complete"}
	FirmwareFailed   = []string{"downloadFailed", "applyFailed", "Download image failed", "Apply image failed"}
)

// Wait phase defaults.
const (
	// RebootStayedConnected: --wait reboot succeeds for a device that
	// reported iothubDM.reboot.startedRebootTime at or after the call and
	// has been seen connected for this long since, without going offline
	// or reporting lastReboot (a simulated reboot, such as Microsoft's
	// dmpatterns_reboot_device.js sample, or one too fast for the twin to
	// show). A device that really restarts disconnects well within it.
	RebootStayedConnected = 30 * time.Second
	// DefaultWaitInterval is the least time between two looks at the same
	// target's twin.
	DefaultWaitInterval = 2 * time.Second
	// DefaultQueriesPerMinute is one S1 unit's query throttle.
	DefaultQueriesPerMinute = 20 // = iothub.DefaultLimits().QueriesPerMinute(), a constant for the zero value
	// waitPageSize is the page size of the twin queries.
	waitPageSize = 1000
)

// TwinReader reads twins for the wait phase: queries for fleets, one GET
// for a single target.
type TwinReader interface {
	Query(sql string, opts iothub.QueryOptions) Pager
	GetTwin(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error)
}

// ClientTwins is the TwinReader over the IoT Hub REST client.
type ClientTwins struct {
	Client *iothub.Client
}

// Query implements TwinReader.
func (c ClientTwins) Query(sql string, opts iothub.QueryOptions) Pager {
	return c.Client.NewQueryPager(sql, &opts)
}

// GetTwin implements TwinReader.
func (c ClientTwins) GetTwin(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error) {
	return c.Client.GetTwin(ctx, deviceID, moduleID)
}

// Wait says what to wait for after a method succeeded, before the result
// is final. Until conditions must all hold (and the preset be reached); any
// FailIf condition holding (or the preset's failure) ends the wait as
// waitFailed; Timeout ends it as waitTimeout.
type Wait struct {
	Preset  Preset
	Until   []Condition
	FailIf  []Condition
	Timeout time.Duration
	Twins   TwinReader
	// QueriesPerMinute paces the twin queries of the whole run; 0 means
	// DefaultQueriesPerMinute.
	QueriesPerMinute float64
	// Interval is the least time between two looks at a target; 0 means
	// DefaultWaitInterval.
	Interval time.Duration
	// Retry bounds the resends of one query or twin read (always idempotent).
	Retry retry.Policy
	// Limiter, when set, paces the queries instead of QueriesPerMinute (tests).
	Limiter Limiter
}

// Describe is the wait in words, for messages: "--wait firmware" or the
// --wait-until conditions.
func (w *Wait) Describe() string {
	var parts []string
	if w.Preset != PresetNone {
		parts = append(parts, "--wait "+string(w.Preset))
	}
	for _, c := range w.Until {
		parts = append(parts, c.Text)
	}
	return strings.Join(parts, " and ")
}

// paths are the twin paths the wait reads, in a stable order.
func (w *Wait) paths() [][]string {
	var out [][]string
	seen := map[string]bool{}
	add := func(p []string) {
		k := strings.Join(p, ".")
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	switch w.Preset {
	case PresetReboot:
		add(pathLastReboot)
		add(pathStartedReboot)
		add(pathConnection)
	case PresetFirmware:
		add(pathFirmwareStatus)
		add(pathFirmwareError)
	}
	for _, c := range w.Until {
		add(c.Path)
	}
	for _, c := range w.FailIf {
		add(c.Path)
	}
	return out
}

// waitState is where a target's wait stands.
type waitState int

const (
	waitPending waitState = iota
	waitDone
	waitFail
)

// watch is one target being waited on.
type watch struct {
	res      Result
	since    time.Time // when the wait started (the method's answer)
	deadline time.Time
	sawDown  bool // a Disconnected connectionState was seen
	// startedUp is when dmctl first saw startedRebootTime (at or after the
	// call) with the device connected; zero until then.
	startedUp time.Time
	last      map[string]any
	lastErr   error
}

// judge decides a target's state from its twin document.
func (w *Wait) judge(doc map[string]any, wt *watch, now time.Time) (waitState, string) {
	for _, c := range w.FailIf {
		if c.Holds(doc) {
			return waitFail, "--fail-if " + c.Text + " holds"
		}
	}
	done := true
	switch w.Preset {
	case PresetFirmware:
		v, _ := Lookup(doc, pathFirmwareStatus)
		s, _ := v.(string)
		switch {
		case matchesAny(s, FirmwareFailed):
			return waitFail, fmt.Sprintf("the firmware update failed: status %q", s)
		case !matchesAny(s, FirmwareComplete):
			done = false
		}
	case PresetReboot:
		connected := false
		if v, ok := Lookup(doc, pathConnection); ok {
			s, _ := v.(string)
			connected = strings.EqualFold(s, "Connected")
			if strings.EqualFold(s, "Disconnected") {
				wt.sawDown = true
			}
		}
		start := wt.res.StartTime
		started := reportedSince(doc, pathStartedReboot, start)
		if started && connected && wt.startedUp.IsZero() {
			wt.startedUp = now
		}
		rebooted := reportedSince(doc, pathLastReboot, start) ||
			(started && wt.sawDown) ||
			// Microsoft's dmpatterns_reboot_device.js sample reports only
			// startedRebootTime and stays connected (its reboot is
			// simulated): a device seen connected RebootStayedConnected
			// after reporting the start has done all it will.
			(started && !wt.startedUp.IsZero() && now.Sub(wt.startedUp) >= RebootStayedConnected)
		done = connected && rebooted
	}
	for _, c := range w.Until {
		if !c.Holds(doc) {
			done = false
		}
	}
	if done {
		return waitDone, ""
	}
	return waitPending, ""
}

func matchesAny(s string, values []string) bool {
	for _, v := range values {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

// fractional matches an ISO time with fractional seconds.
var fractional = regexp.MustCompile(`:\d\d[.,]\d`)

// reportedSince reports whether the time at path is at or after start. A
// time written without fractional seconds stands for its whole second.
func reportedSince(doc map[string]any, path []string, start time.Time) bool {
	v, ok := Lookup(doc, path)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return false
	}
	if !fractional.MatchString(s) {
		start = start.Truncate(time.Second)
	}
	return !t.Before(start)
}

// seen is the last values of the watched paths, as waitValue.
func (w *Wait) seen(doc map[string]any) map[string]any {
	out := map[string]any{}
	for _, p := range w.paths() {
		if v, ok := Lookup(doc, p); ok {
			out[strings.Join(p, ".")] = v
		}
	}
	return out
}

// awaiter runs the wait phase of a run: succeeded results come in with
// add, final results go out through emit.
type awaiter struct {
	w     *Wait
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
	emit  func(Result)
	limit Limiter

	mu       sync.Mutex
	pending  []*watch
	finished bool
	wake     chan struct{}
	done     chan struct{}
}

func newAwaiter(w *Wait, now func() time.Time, sleep func(context.Context, time.Duration) error, emit func(Result)) *awaiter {
	a := &awaiter{w: w, now: now, sleep: sleep, emit: emit, wake: make(chan struct{}, 1), done: make(chan struct{})}
	a.limit = queryLimiter(w.Limiter, w.QueriesPerMinute)
	return a
}

// add starts waiting on a succeeded result.
func (a *awaiter) add(r Result) { a.addUntil(r, a.now().Add(a.w.Timeout)) }

// addUntil starts waiting on r until deadline.
func (a *awaiter) addUntil(r Result, deadline time.Time) {
	at := a.now()
	a.mu.Lock()
	a.pending = append(a.pending, &watch{res: r, since: at, deadline: deadline})
	a.mu.Unlock()
	a.poke()
}

func (a *awaiter) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// finish says no more results will be added, and waits until every
// pending one is final.
func (a *awaiter) finish() {
	a.mu.Lock()
	a.finished = true
	a.mu.Unlock()
	a.poke()
	<-a.done
}

// run polls until finish was called and nothing is pending. When ctx ends,
// every pending target is reported waitTimeout at once.
func (a *awaiter) run(ctx context.Context) {
	defer close(a.done)
	interval := a.w.Interval
	if interval <= 0 {
		interval = DefaultWaitInterval
	}
	var lastRound time.Time
	for {
		a.mu.Lock()
		n, finished := len(a.pending), a.finished
		a.mu.Unlock()
		if ctx.Err() != nil {
			a.resolveAll("the wait was interrupted")
			if finished {
				return
			}
			select {
			case <-a.wake:
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if n == 0 {
			if finished {
				return
			}
			select {
			case <-a.wake:
			case <-ctx.Done():
			}
			continue
		}
		// Give the devices time to report, and pace the rounds.
		if !lastRound.IsZero() {
			if d := interval - a.now().Sub(lastRound); d > 0 {
				if a.sleep(ctx, d) != nil {
					continue
				}
			}
		} else if a.sleep(ctx, interval) != nil {
			continue
		}
		lastRound = a.now()
		a.round(ctx)
	}
}

// resolveAll reports every pending target waitTimeout with why.
func (a *awaiter) resolveAll(why string) {
	a.mu.Lock()
	ws := a.pending
	a.pending = nil
	a.mu.Unlock()
	for _, wt := range ws {
		a.emit(a.final(wt, waitFail, OutcomeWaitTimeout, why))
	}
}

// round looks at every pending target once.
func (a *awaiter) round(ctx context.Context) {
	a.mu.Lock()
	ws := append([]*watch(nil), a.pending...)
	a.mu.Unlock()
	resolved := map[*watch]bool{}
	for _, batch := range a.batches(ws) {
		if ctx.Err() != nil {
			break
		}
		docs, err := a.read(ctx, batch)
		for _, wt := range batch.watches {
			if err != nil {
				if v, _ := retry.Classify(err, retry.Policy{Idempotent: true}); v != retry.Resend && ctx.Err() == nil {
					a.emit(a.final(wt, waitFail, OutcomeWaitFailed, "could not read the twin: "+ErrorFrom(err).String()))
					resolved[wt] = true
					continue
				}
				wt.lastErr = err
				continue
			}
			doc, ok := docs[wt.res.Target()]
			if !ok {
				continue
			}
			wt.last = a.w.seen(doc)
			switch st, why := a.w.judge(doc, wt, a.now()); st {
			case waitDone:
				a.emit(a.final(wt, waitDone, OutcomeSucceeded, ""))
				resolved[wt] = true
			case waitFail:
				a.emit(a.final(wt, waitFail, OutcomeWaitFailed, why))
				resolved[wt] = true
			}
		}
	}
	now := a.now()
	a.mu.Lock()
	kept := a.pending[:0]
	var expired []*watch
	for _, wt := range a.pending {
		switch {
		case resolved[wt]:
		case !now.Before(wt.deadline):
			expired = append(expired, wt)
		default:
			kept = append(kept, wt)
		}
	}
	a.pending = kept
	a.mu.Unlock()
	for _, wt := range expired {
		why := fmt.Sprintf("%s was not reported within --wait-timeout %s", a.w.Describe(), a.w.Timeout)
		if wt.lastErr != nil {
			why += "; last twin read failed: " + ErrorFrom(wt.lastErr).String()
		}
		a.emit(a.final(wt, waitFail, OutcomeWaitTimeout, why))
	}
}

// final is wt's result once its wait ended.
func (a *awaiter) final(wt *watch, st waitState, o Outcome, why string) Result {
	r := wt.res
	r.Outcome = o
	r.WaitMs = millis(a.now().Sub(wt.since))
	if r.WaitMs == 0 {
		r.WaitMs = 0.001 // a wait happened: keep the field
	}
	if wt.last == nil {
		wt.last = map[string]any{}
	}
	if b, err := json.Marshal(wt.last); err == nil {
		r.WaitValue = b
	}
	if st != waitDone {
		r.Error = NewResultError(0, "", "the method succeeded, then "+why)
	}
	return r
}

// batch is a group of targets read with one query (or one GET).
type batch struct {
	module  string // "" for devices
	watches []*watch
	sql     string
}

// batches groups targets by module and cuts each group into queries that
// stay under the hub's query length limit.
func (a *awaiter) batches(ws []*watch) []batch {
	byModule := map[string][]*watch{}
	var modules []string
	for _, wt := range ws {
		m := wt.res.ModuleID
		if _, ok := byModule[m]; !ok {
			modules = append(modules, m)
		}
		byModule[m] = append(byModule[m], wt)
	}
	sort.Strings(modules)
	var out []batch
	for _, m := range modules {
		out = append(out, a.w.cut(m, byModule[m])...)
	}
	return out
}

// cut builds the queries for one module's (or the devices') watches.
func (w *Wait) cut(module string, ws []*watch) []batch {
	head, tail := w.queryParts(module)
	var out []batch
	for _, c := range cutIN(head, tail, len(ws), 0, func(i int) string { return ws[i].res.DeviceID }) {
		out = append(out, batch{module: module, watches: ws[c.from:c.to], sql: c.sql})
	}
	return out
}

// queryParts is the query before and after the list of device ids.
func (w *Wait) queryParts(module string) (head, tail string) {
	var b strings.Builder
	b.WriteString("SELECT deviceId")
	if module != "" {
		b.WriteString(", moduleId")
	}
	for i, p := range w.paths() {
		fmt.Fprintf(&b, ", %s AS v%d", queryPath(p), i)
	}
	if module != "" {
		b.WriteString(" FROM devices.modules WHERE moduleId = " + iothub.QuoteString(module) + " AND deviceId IN [")
	} else {
		b.WriteString(" FROM devices WHERE deviceId IN [")
	}
	return b.String(), "]"
}

var plainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// queryPath writes a twin path in the query language.
func queryPath(p []string) string {
	var b strings.Builder
	for i, s := range p {
		switch {
		case plainName.MatchString(s) && i == 0:
			b.WriteString(s)
		case plainName.MatchString(s):
			b.WriteString("." + s)
		default:
			b.WriteString("[" + iothub.QuoteString(s) + "]")
		}
	}
	return b.String()
}

// read reads the twins of one batch: documents by target.
func (a *awaiter) read(ctx context.Context, b batch) (map[Target]map[string]any, error) {
	policy := a.w.Retry
	policy.Idempotent = true
	out := map[Target]map[string]any{}
	if len(b.watches) == 1 {
		t := b.watches[0].res.Target()
		var raw json.RawMessage
		_, err := retry.Do(ctx, policy, func(ctx context.Context, _ int) error {
			var e error
			raw, e = a.w.Twins.GetTwin(ctx, t.DeviceID, t.ModuleID)
			return e
		})
		if err != nil {
			return nil, err
		}
		doc, err := decodeDoc(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: the twin: %v", iothub.ErrUnreadableAnswer, err)
		}
		out[t] = doc
		return out, nil
	}
	paths := a.w.paths()
	err := queryRows(ctx, a.w.Twins, a.limit, policy, b.sql, func(row map[string]any) error {
		dev, _ := row["deviceId"].(string)
		doc := map[string]any{}
		for i, p := range paths {
			if v, ok := row[fmt.Sprintf("v%d", i)]; ok {
				setPath(doc, p, v)
			}
		}
		out[Target{DeviceID: dev, ModuleID: b.module}] = doc
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decodeDoc(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, errors.New("not a JSON object")
	}
	return doc, nil
}

func setPath(doc map[string]any, p []string, v any) {
	m := doc
	for _, s := range p[:len(p)-1] {
		next, ok := m[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[s] = next
		}
		m = next
	}
	m[p[len(p)-1]] = v
}

// AwaitResults runs the wait phase over results that are already in (a
// job's per-device results): each succeeded result waits for w's outcome;
// the others are returned as they are. The order is kept.
func AwaitResults(ctx context.Context, results []Result, w *Wait, now func() time.Time, sleep func(context.Context, time.Duration) error) []Result {
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = ctxtime.Sleep
	}
	out := append([]Result(nil), results...)
	index := map[Target]int{}
	var mu sync.Mutex
	a := newAwaiter(w, now, sleep, func(r Result) {
		mu.Lock()
		out[index[r.Target()]] = r
		mu.Unlock()
	})
	for i, r := range results {
		index[r.Target()] = i
	}
	go a.run(ctx)
	for _, r := range results {
		if r.Outcome == OutcomeSucceeded {
			a.add(r)
		}
	}
	a.finish()
	return out
}

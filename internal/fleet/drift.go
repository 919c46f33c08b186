package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// DefaultDriftMaxAge is how old a twin version read ahead may be when its
// target's call is due; an older one is read again first.
const DefaultDriftMaxAge = 10 * time.Second

// driftBatchMax is the most targets one drift query names (the query's
// page size: one page answers it).
const driftBatchMax = waitPageSize

// TwinVersion is a twin's version and etag: either changes whenever the
// twin does (tags, desired or reported properties).
type TwinVersion struct {
	Version int64
	ETag    string
}

// String is "version 4, etag AAAAAAAAAAQ=".
func (v TwinVersion) String() string { return fmt.Sprintf("version %d, etag %s", v.Version, v.ETag) }

// PlannedTarget is a target with its twin's version as a plan recorded it.
type PlannedTarget struct {
	Target
	Twin TwinVersion
}

// VersionReader reads the version and etag of twins: batched twin queries
// (deviceId IN [...], each within the 8 KB query limit and one page), paced
// to the hub's query throttle, or one GET for a single twin. The zero
// value is not usable: Twins is required.
type VersionReader struct {
	Twins TwinReader
	// QueriesPerMinute paces the queries; 0 means DefaultQueriesPerMinute.
	QueriesPerMinute float64
	// Limiter, when set, paces the queries instead (tests).
	Limiter Limiter
	// Retry bounds the resends of a page or a GET (always idempotent).
	Retry retry.Policy

	once  sync.Once
	limit Limiter
}

func (r *VersionReader) limiter() Limiter {
	r.once.Do(func() { r.limit = queryLimiter(r.Limiter, r.QueriesPerMinute) })
	return r.limit
}

// Read reads the twins of targets and calls found with each one the hub
// has; a target with no twin (no such device or module) is not reported.
func (r *VersionReader) Read(ctx context.Context, targets []Target, found func(Target, TwinVersion)) error {
	byModule := map[string][]Target{}
	var modules []string
	for _, t := range targets {
		if _, ok := byModule[t.ModuleID]; !ok {
			modules = append(modules, t.ModuleID)
		}
		byModule[t.ModuleID] = append(byModule[t.ModuleID], t)
	}
	for _, m := range modules {
		ts := byModule[m]
		head, tail := versionQueryParts(m)
		for _, b := range cutIN(head, tail, len(ts), driftBatchMax, func(i int) string { return ts[i].DeviceID }) {
			if err := r.readBatch(ctx, m, ts[b.from:b.to], b.sql, found); err != nil {
				return err
			}
		}
	}
	return nil
}

// versionQueryParts is a version query before and after its device ids.
func versionQueryParts(module string) (head, tail string) {
	if module == "" {
		return "SELECT deviceId, version, etag FROM devices WHERE deviceId IN [", "]"
	}
	return "SELECT deviceId, moduleId, version, etag FROM devices.modules WHERE moduleId = " + iothub.QuoteString(module) + " AND deviceId IN [", "]"
}

func (r *VersionReader) readBatch(ctx context.Context, module string, ts []Target, sql string, found func(Target, TwinVersion)) error {
	if len(ts) == 1 {
		policy := r.Retry
		policy.Idempotent = true
		var raw json.RawMessage
		_, err := retry.Do(ctx, policy, func(ctx context.Context, _ int) error {
			var e error
			raw, e = r.Twins.GetTwin(ctx, ts[0].DeviceID, ts[0].ModuleID)
			return e
		})
		if iothub.KindOf(err) == iothub.KindNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		doc, err := decodeDoc(raw)
		if err != nil {
			return fmt.Errorf("%w: the twin: %v", iothub.ErrUnreadableAnswer, err)
		}
		v, err := twinVersionOf(doc)
		if err != nil {
			return err
		}
		found(ts[0], v)
		return nil
	}
	asked := NewTargetSet()
	for _, t := range ts {
		asked.Add(t)
	}
	return queryRows(ctx, r.Twins, r.limiter(), r.Retry, sql, func(row map[string]any) error {
		dev, _ := row["deviceId"].(string)
		t := Target{DeviceID: dev, ModuleID: module}
		if !asked.Has(t) {
			return nil
		}
		v, err := twinVersionOf(row)
		if err != nil {
			return err
		}
		found(t, v)
		return nil
	})
}

// twinVersionOf reads version and etag from a twin or a query row.
func twinVersionOf(doc map[string]any) (TwinVersion, error) {
	n, _ := doc["version"].(json.Number)
	v, err := n.Int64()
	etag, _ := doc["etag"].(string)
	if err != nil || etag == "" {
		return TwinVersion{}, fmt.Errorf("%w: a twin without version or etag", iothub.ErrUnreadableAnswer)
	}
	return TwinVersion{Version: v, ETag: etag}, nil
}

// DriftCheck compares each target's twin, just before its first call, with
// the version its plan recorded (dmctl apply). Versions are read ahead in
// batches: when a target's call is due and no fresh version is at hand,
// one query reads it together with the next planned targets not checked
// yet (up to a page, within the query limit), so a fleet costs about one
// query per few hundred targets. A version read more than MaxAge before
// the call is read again.
type DriftCheck struct {
	Reader *VersionReader
	// Planned are the targets in the order the run sends them.
	Planned []PlannedTarget
	// MaxAge is how old a version read ahead may be; 0 means
	// DefaultDriftMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	once    sync.Once
	mu      sync.Mutex
	index   map[Target]int
	checked []bool
	cache   map[Target]seenTwin
}

// seenTwin is a twin version read ahead; found false: no such twin.
type seenTwin struct {
	v     TwinVersion
	found bool
	at    time.Time
}

func (d *DriftCheck) maxAge() time.Duration {
	if d.MaxAge > 0 {
		return d.MaxAge
	}
	return DefaultDriftMaxAge
}

func (d *DriftCheck) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Check reads t's twin (or takes it from a batch read ahead) and compares
// it with the plan. It returns "" when t may be invoked, else the outcome
// to report instead and why: drifted (the twin changed), notFound (it no
// longer exists), skipped (ctx ended), or the outcome of the read's error.
func (d *DriftCheck) Check(ctx context.Context, t Target) (Outcome, string) {
	d.once.Do(func() {
		d.index = make(map[Target]int, len(d.Planned))
		for i, p := range d.Planned {
			d.index[p.Target] = i
		}
		d.checked = make([]bool, len(d.Planned))
		d.cache = map[Target]seenTwin{}
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	i, ok := d.index[t]
	if !ok {
		return OutcomeDrifted, "the plan records no twin version for this target: not invoked"
	}
	d.checked[i] = true
	seen, ok := d.cache[t]
	if !ok || d.now().Sub(seen.at) > d.maxAge() {
		if err := d.readAhead(ctx, i); err != nil {
			if ctx.Err() != nil {
				return OutcomeSkipped, "not invoked: the run stopped while its twin was read"
			}
			return OutcomeOfKind(iothub.KindOf(err)), "not invoked: could not read the twin to compare it with the plan: " + ErrorFrom(err).String()
		}
		seen = d.cache[t]
	}
	delete(d.cache, t)
	want := d.Planned[i].Twin
	switch {
	case !seen.found:
		return OutcomeNotFound, "not invoked: the twin no longer exists (the plan recorded " + want.String() + ")"
	case seen.v != want:
		return OutcomeDrifted, "not invoked: the twin changed since the plan (" + want.String() + " then, " + seen.v.String() + " now); make a new plan, or apply with --allow-drift"
	}
	return "", ""
}

// readAhead reads the twin of planned target i and of the next unchecked
// targets of the same module into the cache (caller holds d.mu).
func (d *DriftCheck) readAhead(ctx context.Context, i int) error {
	module := d.Planned[i].ModuleID
	batch := []Target{d.Planned[i].Target}
	at := d.now()
	fresh := func(t Target) bool {
		c, ok := d.cache[t]
		return ok && at.Sub(c.at) <= d.maxAge()
	}
	for j := i + 1; j < len(d.Planned) && len(batch) < driftBatchMax; j++ {
		if p := d.Planned[j]; !d.checked[j] && p.ModuleID == module && !fresh(p.Target) {
			batch = append(batch, p.Target)
		}
	}
	head, tail := versionQueryParts(module)
	cut := cutIN(head, tail, len(batch), driftBatchMax, func(k int) string { return batch[k].DeviceID })
	batch = batch[:cut[0].to]
	got := map[Target]TwinVersion{}
	if err := d.Reader.Read(ctx, batch, func(t Target, v TwinVersion) { got[t] = v }); err != nil {
		return err
	}
	for _, t := range batch {
		v, found := got[t]
		d.cache[t] = seenTwin{v: v, found: found, at: at}
	}
	return nil
}

// driftCheck runs opts.Drift for t before its first call: ok false means t
// is not invoked and res is its result.
func (ru *run) driftCheck(t Target) (res Result, ok bool) {
	d := ru.opts.Drift
	if d == nil {
		return Result{}, true
	}
	o, why := d.Check(ru.dispatch, t)
	if o == "" {
		return Result{}, true
	}
	res = skipped(t, ru.opts.Request.MethodName, ru.now())
	if o != OutcomeSkipped || ru.dispatch.Err() == nil {
		res.Outcome = o
	}
	res.Error = NewResultError(0, "", why)
	return res, false
}

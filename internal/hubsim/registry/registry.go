package registry

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

const numShards = 64

// Registry holds device and module identities, their twins, the simulated
// fleet and attached (real) devices. It is safe for concurrent use: lookups
// go through 64 read-locked shards, each identity has its own mutex, and
// counters are atomic, so the invoke path holds no registry-wide lock.
type Registry struct {
	opts Options
	now  func() time.Time

	shards [numShards]shard

	structMu sync.Mutex               // serialises Apply/Register/module changes
	ids      atomic.Pointer[[]string] // sorted device ids, immutable snapshot
	groups   map[string]*group        // by name (under structMu)
	nDevices atomic.Int64
	nModules atomic.Int64
	nSim     atomic.Int64
	nReg     atomic.Int64
	nOff     atomic.Int64 // disabled devices

	faults sim.ResolvedFaults // global fault shares

	deliveredMu sync.Mutex
	delivered   atomic.Pointer[[]func(Delivery)]

	stats   counters
	idle    idleWaiters
	revoked revocations
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*identity
}

// NewRegistry returns an empty registry.
func NewRegistry(opts Options) *Registry {
	r := &Registry{opts: opts, now: opts.Now, groups: map[string]*group{}}
	if r.now == nil {
		r.now = time.Now
	}
	for i := range r.shards {
		r.shards[i].m = map[string]*identity{}
	}
	empty := []string{}
	r.ids.Store(&empty)
	r.faults = sim.ResolveFaults(opts.Faults, nil, nil)
	return r
}

func (r *Registry) nowNano() int64 { return r.now().UnixNano() }

// device returns the device identity, or nil.
func (r *Registry) device(deviceID string) *identity {
	s := &r.shards[shardOf(deviceID)]
	s.mu.RLock()
	d := s.m[deviceID]
	s.mu.RUnlock()
	return d
}

// lookup returns the device or module identity.
func (r *Registry) lookup(deviceID, moduleID string) (*identity, error) {
	d := r.device(deviceID)
	if d == nil {
		return nil, fmt.Errorf("%w: %q", ErrDeviceNotFound, deviceID)
	}
	if moduleID == "" {
		return d, nil
	}
	if m := d.module(moduleID); m != nil {
		return m, nil
	}
	return nil, fmt.Errorf("%w: %q on device %q", ErrModuleNotFound, moduleID, deviceID)
}

// Apply creates the simulated devices (and modules) of spec. It fails
// without changing the registry if spec is invalid or an id already exists.
// Keys are 32 bytes from crypto/rand; the server may replace them with
// SetKey.
func (r *Registry) Apply(spec *sim.FleetSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	seed := r.opts.Seed
	if spec.Seed != nil {
		seed = *spec.Seed
	}
	r.structMu.Lock()
	defer r.structMu.Unlock()

	created := r.nowNano()
	realNow := time.Now().UnixNano()
	type planned struct {
		g   *group
		ids []string
	}
	var plan []planned
	seen := map[string]string{}
	total, totalMods := 0, 0
	for i := range spec.Groups {
		sg := &spec.Groups[i]
		name := sg.Name
		if name == "" {
			name = fmt.Sprintf("group%d", i+1)
		}
		if _, dup := r.groups[name]; dup {
			return fmt.Errorf("groups[%d].name: a group named %q already exists", i, name)
		}
		g, err := newGroup(name, sg, seed, created, r.opts.Faults)
		if err != nil {
			return fmt.Errorf("groups[%d].%w", i, err)
		}
		ids := sg.DeviceIDs()
		for _, id := range ids {
			if other, dup := seen[id]; dup {
				return fmt.Errorf("groups[%d].idPattern: device id %q is also produced by %s", i, id, other)
			}
			if r.device(id) != nil {
				return fmt.Errorf("groups[%d].idPattern: %w: %q", i, ErrAlreadyExists, id)
			}
			seen[id] = fmt.Sprintf("groups[%d]", i)
		}
		plan = append(plan, planned{g, ids})
		total += len(ids)
		totalMods += len(ids) * len(sg.Modules)
	}
	if n := int(r.nDevices.Load()+r.nModules.Load()) + total + totalMods; n > sim.MaxFleetDevices {
		return fmt.Errorf("groups: %d devices and modules in total; a hub holds at most %d", n, sim.MaxFleetDevices)
	}

	keys, err := randomKeys(total + totalMods)
	if err != nil {
		return err
	}
	for _, p := range plan {
		g := p.g
		offline := g.offlineSet(len(p.ids))
		for i, id := range p.ids {
			d := &identity{
				deviceID: id,
				grp:      g,
				hkey:     sim.IdentityHash(g.seed, id, ""),
				created:  created,
				key:      keys[:32:32],
			}
			keys = keys[32:]
			d.initVersions()
			d.permOffline = offline[i]
			if g.flapUp > 0 && !d.permOffline {
				d.flap = &flapState{up: true}
				d.flap.next = realNow + d.flapPeriod(true)
			}
			if len(g.modules) > 0 {
				mods := make([]*identity, len(g.modules))
				for j, mid := range g.modules {
					m := &identity{
						deviceID: id, moduleID: mid, parent: d, grp: g,
						hkey:    sim.IdentityHash(g.seed, id, mid),
						created: created,
						key:     keys[:32:32],
					}
					keys = keys[32:]
					m.initVersions()
					mods[j] = m
				}
				d.modules.Store(&mods)
			}
			r.insert(d)
		}
		r.groups[g.name] = g
		r.nSim.Add(int64(len(p.ids)))
		r.nModules.Add(int64(len(p.ids) * len(g.modules)))
	}
	r.addIDs(seenKeys(seen))
	return nil
}

func seenKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func randomKeys(n int) ([]byte, error) {
	b := make([]byte, 32*n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate device keys: %w", err)
	}
	return b, nil
}

func (r *Registry) insert(d *identity) {
	s := &r.shards[shardOf(d.deviceID)]
	s.mu.Lock()
	s.m[d.deviceID] = d
	s.mu.Unlock()
	r.nDevices.Add(1)
}

// addIDs merges new device ids into the sorted snapshot (under structMu).
func (r *Registry) addIDs(newIDs []string) {
	if len(newIDs) == 0 {
		return
	}
	sort.Strings(newIDs)
	old := *r.ids.Load()
	merged := make([]string, 0, len(old)+len(newIDs))
	i, j := 0, 0
	for i < len(old) || j < len(newIDs) {
		if j >= len(newIDs) || i < len(old) && old[i] < newIDs[j] {
			merged = append(merged, old[i])
			i++
		} else {
			merged = append(merged, newIDs[j])
			j++
		}
	}
	r.ids.Store(&merged)
}

// Register adds identities with keys and no simulation (--register): they
// are offline until a real client Attaches. An id "device/module" adds a
// module (and its device when new). Registering an existing identity fails
// with ErrAlreadyExists; nothing is added when any id is invalid.
func (r *Registry) Register(ids ...string) error {
	r.structMu.Lock()
	defer r.structMu.Unlock()
	type item struct{ dev, mod string }
	var items []item
	seen := map[string]bool{}
	for _, raw := range ids {
		dev, mod, _ := strings.Cut(raw, "/")
		if err := sim.CheckID(dev); err != nil {
			return fmt.Errorf("device id %w", err)
		}
		if strings.Contains(raw, "/") {
			if err := sim.CheckID(mod); err != nil {
				return fmt.Errorf("module id in %q: %w", raw, err)
			}
		}
		if seen[raw] {
			return fmt.Errorf("%q is listed twice", raw)
		}
		seen[raw] = true
		if d := r.device(dev); d != nil && (mod == "" || d.module(mod) != nil) {
			return fmt.Errorf("%w: %q", ErrAlreadyExists, raw)
		}
		items = append(items, item{dev, mod})
	}
	if int(r.nDevices.Load()+r.nModules.Load())+len(items) > sim.MaxFleetDevices {
		return fmt.Errorf("a hub holds at most %d devices and modules", sim.MaxFleetDevices)
	}
	keys, err := randomKeys(2 * len(items))
	if err != nil {
		return err
	}
	created := r.nowNano()
	var newIDs []string
	for _, it := range items {
		d := r.device(it.dev)
		if d == nil {
			d = &identity{deviceID: it.dev, registered: true, created: created, key: keys[:32:32],
				hkey: sim.IdentityHash(r.opts.Seed, it.dev, "")}
			keys = keys[32:]
			d.initVersions()
			r.insert(d)
			r.nReg.Add(1)
			newIDs = append(newIDs, it.dev)
		}
		if it.mod == "" {
			continue
		}
		m := &identity{deviceID: it.dev, moduleID: it.mod, parent: d, registered: true, created: created,
			key: keys[:32:32], hkey: sim.IdentityHash(r.opts.Seed, it.dev, it.mod)}
		keys = keys[32:]
		m.initVersions()
		r.addModuleLocked(d, m)
	}
	r.addIDs(newIDs)
	return nil
}

// Key returns the primary key of a device (moduleID "") or module.
func (r *Registry) Key(deviceID, moduleID string) ([]byte, bool) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return nil, false
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	return append([]byte(nil), id.key...), true
}

// SetKey replaces the primary key of a device or module (the server restores
// keys persisted in --dir). The key must not be empty.
func (r *Registry) SetKey(deviceID, moduleID string, key []byte) error {
	if len(key) == 0 {
		return errors.New("empty key")
	}
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return err
	}
	id.mu.Lock()
	id.key = append([]byte(nil), key...)
	id.mu.Unlock()
	return nil
}

// DeviceIDs returns the device ids, sorted; registeredOnly keeps only those
// added by Register.
func (r *Registry) DeviceIDs(registeredOnly bool) []string {
	ids := *r.ids.Load()
	if !registeredOnly {
		return append([]string(nil), ids...)
	}
	var out []string
	for _, id := range ids {
		if d := r.device(id); d != nil && d.registered {
			out = append(out, id)
		}
	}
	return out
}

// Disabled returns the number of disabled devices.
func (r *Registry) Disabled() int { return int(r.nOff.Load()) }

// Count returns the number of devices and modules.
func (r *Registry) Count() (devices, modules int) {
	return int(r.nDevices.Load()), int(r.nModules.Load())
}

// group is the runtime form of a fleet group, shared by its devices.
type group struct {
	name    string
	seed    int64
	created int64

	tags        map[string]any // templates, read-only
	desired     map[string]any
	reported    map[string]any
	desiredMeta *metaNode
	reportMeta  *metaNode

	modules  []string
	auth     *Auth // the devices' authentication (nil: SAS)
	onlineSh float64
	flapUp   time.Duration
	flapDown time.Duration

	methods map[string]*behavior // listed methods and the DM built-ins
	star    *behavior            // "*": any other method; nil = 404

	faults       sim.ResolvedFaults
	methodFaults map[string]sim.ResolvedFaults
}

// behavior is a method's resolved simulation.
type behavior struct {
	lat         latency
	status      int
	payload     []byte // nil: the default answer
	downtime    time.Duration
	step        time.Duration
	failureRate float64
}

type latency struct {
	dist     byte // 0 none, 'f' fixed, 'u' uniform, 'n' normal
	value    float64
	min, max float64
	mean, sd float64
	clipMin  bool
	clipMax  bool
}

func newGroup(name string, sg *sim.Group, seed, created int64, global sim.FaultRates) (*group, error) {
	g := &group{
		name: name, seed: seed, created: created,
		tags:     deepCopyMap(sg.Tags),
		desired:  deepCopyMap(sg.Desired),
		reported: deepCopyMap(sg.Reported),
		modules:  append([]string(nil), sg.Modules...),
		onlineSh: 1,
	}
	sort.Strings(g.modules) // module slices are kept sorted for lookup and Each
	if a := sg.Authentication; a != nil && a.X509() {
		g.auth = &Auth{Type: a.Type, PrimaryThumbprint: a.PrimaryThumbprint, SecondaryThumbprint: a.SecondaryThumbprint}
	}
	g.desiredMeta = metaFor(g.desired, created, 1)
	g.reportMeta = metaFor(g.reported, created, 0)
	if sg.Connection.OnlineShare != nil {
		g.onlineSh = *sg.Connection.OnlineShare
	}
	if f := sg.Connection.Flapping; f != nil {
		g.flapUp, g.flapDown = time.Duration(f.MeanUp), time.Duration(f.MeanDown)
	}
	var star *sim.MethodSpec
	if s, ok := sg.Methods["*"]; ok {
		star = &s
	}
	g.methods = map[string]*behavior{}
	for name, ms := range sg.Methods {
		if name == "*" {
			continue
		}
		ms := ms
		g.methods[name] = resolveBehavior(&ms, star)
	}
	for _, name := range []string{sim.MethodReboot, sim.MethodFirmwareUpdate, sim.MethodFactoryReset} {
		if _, ok := g.methods[name]; !ok {
			g.methods[name] = resolveBehavior(nil, star)
		}
	}
	if star != nil {
		g.star = resolveBehavior(nil, star)
	}
	g.faults = sim.ResolveFaults(global, sg.Faults, nil)
	if sg.Faults != nil && len(sg.Faults.Methods) > 0 {
		g.methodFaults = map[string]sim.ResolvedFaults{}
		for m, mf := range sg.Faults.Methods {
			g.methodFaults[m] = sim.ResolveFaults(global, sg.Faults, mf)
		}
	}
	if err := g.faults.Check(); err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	for m, rf := range g.methodFaults {
		if err := rf.Check(); err != nil {
			return nil, fmt.Errorf("faults.methods.%s: %w", m, err)
		}
	}
	return g, nil
}

func resolveBehavior(ms, star *sim.MethodSpec) *behavior {
	b := &behavior{status: 200, downtime: sim.DefaultDowntime, step: sim.DefaultStepDuration}
	for _, s := range []*sim.MethodSpec{star, ms} { // later wins
		if s == nil {
			continue
		}
		if s.Latency != nil {
			b.lat = resolveLatency(s.Latency)
		}
		if s.Status != nil {
			b.status = *s.Status
		}
		if len(s.Payload) > 0 {
			b.payload = append([]byte(nil), s.Payload...)
		}
		if s.Downtime != nil {
			b.downtime = time.Duration(*s.Downtime)
		}
		if s.StepDuration != nil {
			b.step = time.Duration(*s.StepDuration)
		}
		if s.FailureRate != nil {
			b.failureRate = *s.FailureRate
		}
	}
	return b
}

func resolveLatency(l *sim.Latency) latency {
	f := func(d *sim.Duration) float64 { return float64(*d) }
	var out latency
	switch l.Dist {
	case "fixed":
		out = latency{dist: 'f', value: float64(l.Value)}
	case "uniform":
		out = latency{dist: 'u', min: f(l.Min), max: f(l.Max)}
	case "normal":
		out = latency{dist: 'n'}
		if l.Min != nil {
			out.min, out.clipMin = f(l.Min), true
		}
		if l.Max != nil {
			out.max, out.clipMax = f(l.Max), true
		}
		switch {
		case l.Mean != nil:
			out.mean = f(l.Mean)
		default:
			out.mean = (out.min + out.max) / 2
		}
		switch {
		case l.StdDev != nil:
			out.sd = f(l.StdDev)
		case out.clipMin && out.clipMax:
			out.sd = (out.max - out.min) / 6
		default:
			out.sd = out.mean / 4
		}
	}
	return out
}

// sample draws the n-th latency of an identity.
func (l *latency) sample(key, n uint64) time.Duration {
	var v float64
	switch l.dist {
	case 'f':
		v = l.value
	case 'u':
		v = l.min + sim.Uniform(key, streamLatency, n)*(l.max-l.min)
	case 'n':
		v = l.mean + l.sd*sim.Normal(key, streamLatency, n)
		if l.clipMin && v < l.min {
			v = l.min
		}
		if l.clipMax && v > l.max {
			v = l.max
		}
	default:
		return 0
	}
	if v < 0 || math.IsNaN(v) {
		v = 0
	}
	return time.Duration(v)
}

func (g *group) behavior(method string) (*behavior, bool) {
	if b, ok := g.methods[method]; ok {
		return b, true
	}
	if g.star != nil {
		return g.star, true
	}
	return nil, false
}

// offlineSet picks exactly round((1-onlineShare)*n) permanently offline
// devices with the group's seed (a partial Fisher-Yates shuffle).
func (g *group) offlineSet(n int) []bool {
	out := make([]bool, n)
	k := int(math.Round((1 - g.onlineSh) * float64(n)))
	if k <= 0 {
		return out
	}
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	key := sim.SplitMix64(uint64(g.seed) ^ sim.HashString(0, g.name))
	for i := 0; i < k; i++ {
		j := i + int(sim.Draw(key, 99, uint64(i))%uint64(n-i))
		idx[i], idx[j] = idx[j], idx[i]
		out[idx[i]] = true
	}
	return out
}

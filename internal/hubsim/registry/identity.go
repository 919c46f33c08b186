package registry

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// identity is a device or a module: its key, twin and connection. Everything
// mutable is guarded by mu except the atomics. A simulated identity costs a
// few hundred bytes while idle: its twin sections point at the group's
// templates until first written, and it owns no goroutine or timer.
type identity struct {
	mu       sync.Mutex
	deviceID string
	moduleID string
	parent   *identity                   // a module's device
	modules  atomic.Pointer[[]*identity] // a device's modules, sorted, copy-on-write
	grp      *group                      // nil: registered, not simulated
	hkey     uint64                      // per-identity random key (seed, ids)
	key      []byte
	auth     *Auth // nil: the group's, else SAS (auth.go)
	created  int64 // unix ns (Options.Now)

	registered bool
	meta       *identityMeta // nil until the registry API writes the identity

	version         int64
	desiredVersion  int64
	reportedVersion int64
	desiredUpdated  int64 // unix ns, 0 = created
	reportedUpdated int64
	lastActivity    int64          // unix ns, 0 = never
	tags            map[string]any // nil: the group's template
	tagsOwned       bool
	desired         *section // nil: the group's template
	reported        *section // nil: the group's template
	dm              *dmState // simulated iothubDM life cycles (compact)

	// simulation
	permOffline bool
	flap        *flapState
	downUntil   atomic.Int64 // != 0: offline for a reboot/reset, expected back at this real unix ns
	simN        uint64       // draws so far (latency, failures)
	faultN      atomic.Uint64
	lcGen       [3]uint32 // life-cycle generations (reboot, firmwareUpdate, factoryReset)

	// attached device
	att        *attachment
	subscribed bool
	wake       chan struct{} // closed when the connection state may have changed
	subs       []*desiredSub
}

type attachment struct {
	h MethodHandler
}

type desiredSub struct {
	fn func(map[string]any)
}

type flapState struct {
	up   bool
	next int64 // real unix ns of the next toggle
	n    uint64
}

func (id *identity) initVersions() {
	id.version, id.desiredVersion, id.reportedVersion = 1, 1, 1
}

func (id *identity) module(moduleID string) *identity {
	p := id.modules.Load()
	if p == nil {
		return nil
	}
	mods := *p
	i := sort.Search(len(mods), func(i int) bool { return mods[i].moduleID >= moduleID })
	if i < len(mods) && mods[i].moduleID == moduleID {
		return mods[i]
	}
	return nil
}

// flapPeriod draws the next up (or down) period in ns.
func (id *identity) flapPeriod(up bool) int64 {
	g := id.grp
	mean := g.flapDown
	if up {
		mean = g.flapUp
	}
	var n uint64
	if id.flap != nil {
		n = id.flap.n
		id.flap.n++
	}
	d := float64(mean) * sim.Exponential(id.hkey, streamFlap, n)
	if d < 1 {
		d = 1
	}
	if d > float64(math.MaxInt64/4) {
		d = float64(math.MaxInt64 / 4)
	}
	return int64(d)
}

// flapOnlineLocked advances the flapping state to now and reports whether
// the device is up and when that changes (0 = never). Caller holds id.mu.
func (id *identity) flapOnlineLocked(now int64) (bool, int64) {
	f := id.flap
	if f == nil {
		return true, 0
	}
	if now >= f.next {
		cycle := int64(id.grp.flapUp + id.grp.flapDown)
		if now-f.next > 1000*cycle {
			// Long idle: restart from the stationary distribution instead
			// of replaying thousands of periods.
			f.up = sim.Uniform(id.hkey, streamFlap, f.n) < float64(id.grp.flapUp)/float64(cycle)
			f.n++
			f.next = now + id.flapPeriod(f.up)
		}
		for now >= f.next {
			f.up = !f.up
			f.next += id.flapPeriod(f.up)
		}
	}
	return f.up, f.next
}

// simOnline reports whether a simulated identity is online at real time now
// and when that may change (0 = not by itself). Caller holds id.mu; for a
// module it briefly locks the parent (lock order: module, then device is
// never taken the other way round).
func (id *identity) simOnlineLocked(now int64) (bool, int64) {
	if id.grp == nil {
		return false, 0
	}
	dev := id
	if id.parent != nil {
		dev = id.parent
	}
	if dev.permOffline || dev.meta != nil && dev.meta.disabled {
		return false, 0
	}
	var up bool
	var next int64
	if dev == id {
		up, next = id.flapOnlineLocked(now)
	} else {
		dev.mu.Lock()
		up, next = dev.flapOnlineLocked(now)
		dev.mu.Unlock()
	}
	// A reboot or reset keeps the identity offline until its timer clears
	// downUntil; the stored time is when that is expected.
	down := dev.downUntil.Load()
	if own := id.downUntil.Load(); own > down {
		down = own
	}
	if down != 0 {
		if down <= now {
			down = now + int64(time.Millisecond) // the timer is due: look again shortly
		}
		if !up && next > down {
			return false, next
		}
		return false, down
	}
	return up, next
}

// connectedLocked is the twin's connectionState.
func (id *identity) connectedLocked(now int64) bool {
	if id.att != nil {
		return true
	}
	on, _ := id.simOnlineLocked(now)
	return on
}

// wakeLocked wakes goroutines waiting for the identity to come online.
func (id *identity) wakeLocked() {
	if id.wake != nil {
		close(id.wake)
		id.wake = nil
	}
}

func (id *identity) waitChanLocked() chan struct{} {
	if id.wake == nil {
		id.wake = make(chan struct{})
	}
	return id.wake
}

// Attach installs the method handler of a real device (or a test) on an
// identity. While attached the identity is Connected and subscribed to
// methods (AttachUnsubscribed is for a client that has not subscribed yet),
// and its simulation is suspended. A second Attach replaces the first: the
// old handler gets no further calls and its detach func becomes a no-op.
// After detach a registered identity is offline again and a simulated one
// resumes its simulation.
func (r *Registry) Attach(deviceID, moduleID string, h MethodHandler) (detach func(), err error) {
	return r.attach(deviceID, moduleID, h, true)
}

// AttachUnsubscribed is Attach for a client that has not subscribed to
// direct methods yet (an MQTT device at CONNECT): the identity is Connected
// at once but gets methods only after SetMethodsSubscribed(true). A call
// waiting for the device keeps waiting; it never sees the identity
// subscribed in between, as it could with Attach followed by
// SetMethodsSubscribed(false).
func (r *Registry) AttachUnsubscribed(deviceID, moduleID string, h MethodHandler) (detach func(), err error) {
	return r.attach(deviceID, moduleID, h, false)
}

func (r *Registry) attach(deviceID, moduleID string, h MethodHandler, subscribed bool) (detach func(), err error) {
	if h == nil {
		return nil, errNilHandler
	}
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	a := &attachment{h: h}
	id.mu.Lock()
	id.att = a
	id.subscribed = subscribed
	id.lastActivity = r.nowNano()
	id.wakeLocked()
	id.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			id.mu.Lock()
			if id.att == a {
				id.att = nil
				id.subscribed = false
				id.lastActivity = r.nowNano()
				id.wakeLocked()
			}
			id.mu.Unlock()
		})
	}, nil
}

// SetMethodsSubscribed records whether an attached device subscribed to
// direct methods: a connected device that is not subscribed gets 404103. It
// does nothing for an identity that is not attached.
func (r *Registry) SetMethodsSubscribed(deviceID, moduleID string, subscribed bool) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return
	}
	id.mu.Lock()
	if id.att != nil && id.subscribed != subscribed {
		id.subscribed = subscribed
		id.wakeLocked()
	}
	id.mu.Unlock()
}

// OnDesired subscribes fn to desired-property changes of an identity (made
// by PatchTwin or ReplaceTwin). fn receives the patch with "$version" set to
// the new desired version (a member set to null was deleted); it is called
// after the change, outside the registry's locks, on the caller's goroutine.
// It does nothing for an unknown identity.
func (r *Registry) OnDesired(deviceID, moduleID string, fn func(patch map[string]any)) (cancel func()) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil || fn == nil {
		return func() {}
	}
	s := &desiredSub{fn: fn}
	id.mu.Lock()
	id.subs = append(id.subs, s)
	id.mu.Unlock()
	return func() {
		id.mu.Lock()
		for i, x := range id.subs {
			if x == s {
				id.subs = append(id.subs[:i:i], id.subs[i+1:]...)
				break
			}
		}
		id.mu.Unlock()
	}
}

type handlerResult struct {
	status int
	resp   json.RawMessage
	err    error
}

// callHandler runs h with a deadline, giving up when ctx ends even if h
// does not return.
func callHandler(ctx context.Context, h MethodHandler, method string, payload json.RawMessage) handlerResult {
	ch := make(chan handlerResult, 1)
	go func() {
		s, p, err := h(ctx, method, payload)
		ch <- handlerResult{s, p, err}
	}()
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
		return handlerResult{err: ctx.Err()}
	}
}

package registry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// maxStatKeys bounds the distinct (method, status) pairs counted; calls
// beyond it are counted under method "(other)".
const maxStatKeys = 1024

type counters struct {
	invoked, delivered, notFound, notOnline, timeouts atomic.Int64
	inFlight                                          atomic.Int64 // InvokeMethod calls not returned yet
	peakInFlight                                      atomic.Int64 // the most InvokeMethod calls at once
	twinReads, twinUpdates, reportedUpdates           atomic.Int64
	faults                                            [FaultDrop + 1]atomic.Int64

	byKey sync.Map // statKey -> *atomic.Int64
	nKeys atomic.Int64
}

type statKey struct {
	method string
	status int
}

func (c *counters) countDelivery(method string, status int) {
	c.delivered.Add(1)
	k := statKey{method, status}
	if v, ok := c.byKey.Load(k); ok {
		v.(*atomic.Int64).Add(1)
		return
	}
	if c.nKeys.Load() >= maxStatKeys {
		k.method = "(other)"
	}
	v, loaded := c.byKey.LoadOrStore(k, new(atomic.Int64))
	if !loaded {
		c.nKeys.Add(1)
	}
	v.(*atomic.Int64).Add(1)
}

// idleWaiters wakes WaitIdle callers when no method call is in flight.
type idleWaiters struct {
	waiting atomic.Int64 // WaitIdle callers; callEnded takes mu only when some wait
	mu      sync.Mutex
	ch      chan struct{} // closed when in-flight reaches 0; made only when someone waits
}

// callStarted and callEnded bracket every InvokeMethod call.
func (r *Registry) callStarted() {
	n := r.stats.inFlight.Add(1)
	for {
		p := r.stats.peakInFlight.Load()
		if n <= p || r.stats.peakInFlight.CompareAndSwap(p, n) {
			return
		}
	}
}

func (r *Registry) callEnded() {
	// The waiter count is read after the decrement and WaitIdle re-reads
	// in-flight after raising it (both sequentially consistent), so either
	// the waiter sees 0 or this call sees the waiter: no wake-up is lost.
	if r.stats.inFlight.Add(-1) != 0 || r.idle.waiting.Load() == 0 {
		return
	}
	r.idle.mu.Lock()
	if r.idle.ch != nil {
		close(r.idle.ch)
		r.idle.ch = nil
	}
	r.idle.mu.Unlock()
}

// WaitIdle returns nil once no InvokeMethod call is in flight (at once when
// none is), or ctx.Err() when ctx ends first. It is woken by the last call
// to return, never polled: how a test or `GET /hubsim/stats?idle` knows that
// every call it started has been answered and counted.
func (r *Registry) WaitIdle(ctx context.Context) error {
	r.idle.waiting.Add(1)
	defer r.idle.waiting.Add(-1)
	for {
		r.idle.mu.Lock()
		if r.stats.inFlight.Load() == 0 {
			r.idle.mu.Unlock()
			return nil
		}
		if r.idle.ch == nil {
			r.idle.ch = make(chan struct{})
		}
		ch := r.idle.ch
		r.idle.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns a snapshot of the counters. Connected and Attached are
// counted by visiting every identity (cheap enough for an admin endpoint,
// not meant for a hot loop).
func (r *Registry) Stats() Stats {
	c := &r.stats
	s := Stats{
		Devices:           int(r.nDevices.Load()),
		Modules:           int(r.nModules.Load()),
		Simulated:         int(r.nSim.Load()),
		Registered:        int(r.nReg.Load()),
		MethodsInvoked:    c.invoked.Load(),
		MethodsInFlight:   c.inFlight.Load(),
		PeakInFlight:      c.peakInFlight.Load(),
		MethodsDelivered:  c.delivered.Load(),
		DeliveredByMethod: map[string]int64{},
		DeliveredByStatus: map[int]int64{},
		NotFound:          c.notFound.Load(),
		NotOnline:         c.notOnline.Load(),
		Timeouts:          c.timeouts.Load(),
		Faults:            map[string]int64{},
		TwinReads:         c.twinReads.Load(),
		TwinUpdates:       c.twinUpdates.Load(),
		ReportedUpdates:   c.reportedUpdates.Load(),
	}
	c.byKey.Range(func(k, v any) bool {
		sk, n := k.(statKey), v.(*atomic.Int64).Load()
		s.DeliveredByMethod[sk.method] += n
		s.DeliveredByStatus[sk.status] += n
		return true
	})
	for f := FaultThrottle; f <= FaultDrop; f++ {
		if n := c.faults[f].Load(); n > 0 {
			s.Faults[f.String()] = n
		}
	}
	now := time.Now().UnixNano()
	visit := func(id *identity) {
		id.mu.Lock()
		if id.att != nil {
			s.Attached++
		}
		if id.connectedLocked(now) {
			s.Connected++
		}
		id.mu.Unlock()
	}
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		devs := make([]*identity, 0, len(sh.m))
		for _, d := range sh.m {
			devs = append(devs, d)
		}
		sh.mu.RUnlock()
		for _, d := range devs {
			visit(d)
			if p := d.modules.Load(); p != nil {
				for _, m := range *p {
					visit(m)
				}
			}
		}
	}
	return s
}

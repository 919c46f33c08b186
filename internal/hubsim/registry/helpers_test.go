package registry

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) *sim.Duration { v := sim.Duration(d); return &v }

// newFleet applies a one-group fleet with the given methods.
func newFleet(t *testing.T, opts Options, g sim.Group) *Registry {
	t.Helper()
	if g.IDPattern == "" {
		g.IDPattern = "dev-%03d"
	}
	if g.Count == 0 {
		g.Count = 3
	}
	r := NewRegistry(opts)
	require.NoError(t, r.Apply(&sim.FleetSpec{Groups: []sim.Group{g}}))
	return r
}

// deliveryLog collects OnDelivered callbacks.
type deliveryLog struct {
	mu sync.Mutex
	ds []Delivery
}

func (l *deliveryLog) add(d Delivery) {
	l.mu.Lock()
	l.ds = append(l.ds, d)
	l.mu.Unlock()
}

func (l *deliveryLog) all() []Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Delivery(nil), l.ds...)
}

func watch(r *Registry) *deliveryLog {
	l := &deliveryLog{}
	r.OnDelivered(l.add)
	return l
}

// path reads a nested member of a twin document.
func path(doc map[string]any, keys ...string) any {
	var cur any = doc
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func reported(t *testing.T, r *Registry, dev string, keys ...string) any {
	t.Helper()
	tw, err := r.Twin(dev, "")
	require.NoError(t, err)
	return path(tw, append([]string{"properties", "reported"}, keys...)...)
}

// eventually polls cond (life cycles run on real timers).
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, 2*time.Millisecond, msg)
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// waitForWaitingCall waits until a call to the identity is blocked waiting
// for it to come online (InvokeMethod has registered its wake channel). No
// event announces that, so it is polled, with a deadline.
func waitForWaitingCall(t *testing.T, r *Registry, deviceID string) {
	t.Helper()
	id, err := r.lookup(deviceID, "")
	require.NoError(t, err)
	eventually(t, func() bool {
		id.mu.Lock()
		defer id.mu.Unlock()
		return id.wake != nil
	}, "a call should be waiting for "+deviceID+" to come online")
}

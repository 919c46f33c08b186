package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// DefaultResponseTimeout applies when InvokeMethod gets responseTimeout <= 0.
const DefaultResponseTimeout = 30 * time.Second

// InvokeMethod invokes a direct method on a device (moduleID "") or module
// and blocks until the device answers or a timeout. It never holds a
// goroutine per idle device: the calling goroutine waits on timers.
//
//   - Unknown device or module: ErrDeviceNotFound / ErrModuleNotFound.
//   - Offline (simulated device offline, flapping down or rebooting;
//     registered device not attached; attached but not subscribed): it
//     waits up to connectTimeout for the device to come online, then
//     returns ErrDeviceNotOnline. connectTimeout 0 means it must be online
//     now.
//   - Attached device: the handler is called with a context that ends after
//     responseTimeout; no answer by then gives ErrTimeout. A handler error
//     that wraps ErrDeviceNotOnline means it was not delivered; other errors
//     are returned wrapped (the method counts as delivered, status 0).
//   - Simulated device: the group's behaviour for the method (or for "*")
//     decides latency, status and payload; an unknown method gets device
//     status 404 with {"message": ...}. reboot, firmwareUpdate and
//     factoryReset start their life cycles when the device answers. A
//     latency beyond responseTimeout gives ErrTimeout after responseTimeout,
//     but the device still ran the method: the delivery is counted (status
//     0) and its life cycle starts when its latency has passed.
//
// If ctx ends first, ctx.Err() is returned. OnDelivered callbacks run once
// per delivered call, when the call resolves, with the device status or 0
// when the hub got no answer in time. The returned payload must not be
// modified.
func (r *Registry) InvokeMethod(ctx context.Context, deviceID, moduleID, method string, payload json.RawMessage,
	connectTimeout, responseTimeout time.Duration) (status int, response json.RawMessage, err error) {
	r.stats.invoked.Add(1)
	r.callStarted()
	defer r.callEnded()
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		r.stats.notFound.Add(1)
		return 0, nil, err
	}
	if responseTimeout <= 0 {
		responseTimeout = DefaultResponseTimeout
	}
	if connectTimeout < 0 {
		connectTimeout = 0
	}
	wall := time.Now()
	deadline := wall.Add(connectTimeout).UnixNano()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for first := true; ; first = false {
		if !first {
			wall = time.Now()
		}
		now := wall.UnixNano()
		at := wall
		if r.opts.Now != nil {
			at = r.now()
		}
		var next int64
		id.mu.Lock()
		if a := id.att; a != nil {
			if id.subscribed {
				id.lastActivity = at.UnixNano()
				id.mu.Unlock()
				return r.invokeAttached(ctx, id, a, method, payload, responseTimeout, at)
			}
		} else if id.grp != nil {
			var on bool
			on, next = id.simOnlineLocked(now)
			if on {
				return r.invokeSimulatedLocked(ctx, id, method, payload, responseTimeout, at)
			}
		}
		if now >= deadline {
			id.mu.Unlock()
			r.stats.notOnline.Add(1)
			return 0, nil, ErrDeviceNotOnline
		}
		wake := id.waitChanLocked()
		id.mu.Unlock()
		wait := deadline - now
		if next > 0 && next-now < wait {
			wait = max(next-now, int64(time.Millisecond))
		}
		if timer == nil {
			timer = time.NewTimer(time.Duration(wait))
		} else {
			timer.Reset(time.Duration(wait))
		}
		select {
		case <-wake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

// invokeSimulatedLocked answers for an online simulated identity. Called
// with id.mu held; unlocks it.
func (r *Registry) invokeSimulatedLocked(ctx context.Context, id *identity, method string, payload json.RawMessage,
	responseTimeout time.Duration, at time.Time) (int, json.RawMessage, error) {
	n := id.simN
	id.simN++
	var ans simAnswer
	var lat time.Duration
	if b, known := id.grp.behavior(method); known {
		lat = b.lat.sample(id.hkey, n)
		ans = r.answerLocked(id, method, b, payload, n)
	} else {
		ans = simAnswer{status: 404, resp: notImplemented(method)}
	}
	id.lastActivity = at.UnixNano()
	id.mu.Unlock()

	if lat > 0 {
		start := time.Now()
		t := time.NewTimer(min(lat, responseTimeout))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if elapsed := time.Since(start); lat > responseTimeout || ctx.Err() != nil && elapsed < lat {
			// The device runs the method anyway; the hub gives up.
			if ans.start != nil {
				time.AfterFunc(max(lat-elapsed, 0), ans.start)
			}
			r.deliver(ctx, id, method, at, 0)
			if err := ctx.Err(); err != nil {
				return 0, nil, err
			}
			r.stats.timeouts.Add(1)
			return 0, nil, ErrTimeout
		}
	}
	if ans.start != nil {
		ans.start()
	}
	r.deliver(ctx, id, method, at, ans.status)
	return ans.status, ans.resp, nil
}

func (r *Registry) invokeAttached(ctx context.Context, id *identity, a *attachment, method string, payload json.RawMessage,
	responseTimeout time.Duration, at time.Time) (int, json.RawMessage, error) {
	hctx, cancel := context.WithTimeout(ctx, responseTimeout)
	defer cancel()
	res := callHandler(hctx, a.h, method, payload)
	if res.err == nil && hctx.Err() == nil {
		r.deliver(ctx, id, method, at, res.status)
		return res.status, res.resp, nil
	}
	if res.err != nil && errors.Is(res.err, ErrDeviceNotOnline) {
		r.stats.notOnline.Add(1)
		return 0, nil, ErrDeviceNotOnline
	}
	r.deliver(ctx, id, method, at, 0)
	switch {
	case ctx.Err() != nil:
		return 0, nil, ctx.Err()
	case hctx.Err() != nil || errors.Is(res.err, ErrTimeout) || errors.Is(res.err, context.DeadlineExceeded):
		r.stats.timeouts.Add(1)
		return 0, nil, ErrTimeout
	}
	return 0, nil, fmt.Errorf("device %q: method handler: %w", id.deviceID, res.err)
}

// OnDelivered registers fn, called once per method actually delivered to a
// device (simulated or attached) when the call resolves. fn runs on the
// invoking goroutine (or a timer's) and must be quick and safe for
// concurrent use.
func (r *Registry) OnDelivered(fn func(Delivery)) {
	if fn == nil {
		return
	}
	r.deliveredMu.Lock()
	defer r.deliveredMu.Unlock()
	var fns []func(Delivery)
	if p := r.delivered.Load(); p != nil {
		fns = append(fns, *p...)
	}
	fns = append(fns, fn)
	r.delivered.Store(&fns)
}

func (r *Registry) deliver(ctx context.Context, id *identity, method string, at time.Time, status int) {
	r.stats.countDelivery(method, status)
	p := r.delivered.Load()
	if p == nil {
		return
	}
	d := Delivery{Time: at, DeviceID: id.deviceID, ModuleID: id.moduleID, Method: method, RequestID: requestIDFrom(ctx), Status: status}
	for _, fn := range *p {
		fn(d)
	}
}

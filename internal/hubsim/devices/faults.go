package devices

import (
	"fmt"
	"math"
)

// resolvedFaults are cumulative thresholds over FaultThrottle..FaultDrop.
type resolvedFaults struct {
	cum [5]float64
	any bool
	sum float64
}

// resolveFaults merges the shares field by field: method over group over
// global.
func resolveFaults(global FaultRates, g, m *FaultSpec) resolvedFaults {
	vals := [5]float64{global.Throttle, global.ServerError, global.Unavailable, global.GatewayTimeout, global.Drop}
	for _, s := range []*FaultSpec{g, m} {
		if s == nil {
			continue
		}
		for i, p := range []*float64{s.Throttle, s.ServerError, s.Unavailable, s.GatewayTimeout, s.Drop} {
			if p != nil {
				vals[i] = *p
			}
		}
	}
	var rf resolvedFaults
	c := 0.0
	for i, v := range vals {
		if math.IsNaN(v) || v < 0 {
			v = 0
		}
		c += v
		rf.cum[i] = c
		if v > 0 {
			rf.any = true
		}
	}
	rf.sum = c
	return rf
}

func (rf resolvedFaults) check() error {
	if rf.sum > 1+1e-9 {
		return fmt.Errorf("fault shares (with the global ones) add up to %v; at most 1", rf.sum)
	}
	return nil
}

// Fault decides, before delivery, whether a method call is hit by an
// injected fault. Shares come from the identity's group (per method, then
// group, then the global Options.Faults; registered devices use the global
// ones). Unknown identities get FaultNone.
//
// Reproducible means: for the same seed and fleet, the n-th Fault call for a
// given device (or module) always gives the same answer, however calls to
// different devices interleave. Each identity has its own draw counter; the
// draw is a hash of (seed, deviceId, moduleId, n), so no lock is taken.
func (r *Registry) Fault(deviceID, moduleID, method string) Fault {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return FaultNone
	}
	rf := &r.faults
	if g := id.grp; g != nil {
		rf = &g.faults
		if g.methodFaults != nil {
			if mf, ok := g.methodFaults[method]; ok {
				rf = &mf
			} else if mf, ok := g.methodFaults["*"]; ok {
				rf = &mf
			}
		}
	}
	if !rf.any {
		return FaultNone
	}
	n := id.faultN.Add(1) - 1
	u := uniform(id.hkey, streamFault, n)
	for i, c := range rf.cum {
		if u < c {
			f := Fault(i + 1)
			r.stats.faults[f].Add(1)
			return f
		}
	}
	return FaultNone
}

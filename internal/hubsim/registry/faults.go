package registry

import "github.com/dmctl/dmctl/internal/hubsim/sim"

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
	if !rf.Any() {
		return FaultNone
	}
	n := id.faultN.Add(1) - 1
	f := Fault(rf.Pick(sim.Uniform(id.hkey, streamFault, n)))
	if f != FaultNone {
		r.stats.faults[f].Add(1)
	}
	return f
}

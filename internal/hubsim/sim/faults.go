package sim

import (
	"fmt"
	"math"
)

// FaultRates are the shares (0..1) of method calls hit by each injected
// fault. Their sum must not exceed 1.
type FaultRates struct {
	Throttle       float64 `json:"throttle"`
	ServerError    float64 `json:"serverError"`
	Unavailable    float64 `json:"unavailable"`
	GatewayTimeout float64 `json:"gatewayTimeout"`
	Drop           float64 `json:"drop"`
}

// ResolvedFaults are the fault shares that apply to one group or method,
// as cumulative thresholds over throttle, serverError, unavailable,
// gatewayTimeout and drop (the order of FaultRates).
type ResolvedFaults struct {
	cum [5]float64
	any bool
	sum float64
}

// ResolveFaults merges the shares field by field: method over group over
// global. g and m may be nil; NaN and negative shares count as 0.
func ResolveFaults(global FaultRates, g, m *FaultSpec) ResolvedFaults {
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
	var rf ResolvedFaults
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

// Any reports whether any share is positive.
func (rf ResolvedFaults) Any() bool { return rf.any }

// Pick returns which fault a uniform draw u in [0,1) falls on: 1 to 5 in
// the order of FaultRates (throttle ... drop), 0 for none.
func (rf ResolvedFaults) Pick(u float64) int {
	for i, c := range rf.cum {
		if u < c {
			return i + 1
		}
	}
	return 0
}

// Check reports shares that add up to more than 1.
func (rf ResolvedFaults) Check() error {
	if rf.sum > 1+1e-9 {
		return fmt.Errorf("fault shares (with the global ones) add up to %v; at most 1", rf.sum)
	}
	return nil
}

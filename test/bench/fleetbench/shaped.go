package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// A latency shape is a fleet of groups whose devices take real time to
// answer (issue 12): hubsim's fleet file draws each call's latency.

// share of a fleet of n devices in a group, at least 1.
func share(n int, s float64) int { return max(1, int(float64(n)*s+0.5)) }

func dur(d time.Duration) *sim.Duration { v := sim.Duration(d); return &v }

// latencyGroup is a group of n devices whose every method answers after a
// latency of dist between lo and hi.
func latencyGroup(name string, n int, dist string, lo, hi time.Duration) sim.Group {
	return sim.Group{Name: name, IDPattern: name + "-%06d", Count: n,
		Methods: map[string]sim.MethodSpec{"*": {Latency: &sim.Latency{Dist: dist, Min: dur(lo), Max: dur(hi)}}}}
}

// shapeGroups: "normal" is the one group of the table (200 ms to
// 2 s, p50 1.1 s); "second" answers in 0.8-1.2 s; "mixed" adds to normal a
// slow group (5-10 s), a heavy tail near the response timeout (--timeout
// 10s: 8-9.5 s), permanently offline devices and flapping ones.
func shapeGroups(shape string, n int) []sim.Group {
	ms := time.Millisecond
	switch shape {
	case "normal":
		return []sim.Group{latencyGroup("norm", n, "normal", 200*ms, 2*time.Second)}
	case "second":
		return []sim.Group{latencyGroup("sec", n, "normal", 800*ms, 1200*ms)}
	case "mixed":
		slow, tail, off, flap := share(n, 0.05), share(n, 0.03), share(n, 0.05), share(n, 0.02)
		offline := 0.0
		flapping := latencyGroup("flap", flap, "normal", 200*ms, 2*time.Second)
		flapping.Connection.Flapping = &sim.Flapping{MeanUp: sim.Duration(20 * time.Second), MeanDown: sim.Duration(5 * time.Second)}
		return []sim.Group{
			latencyGroup("norm", n-slow-tail-off-flap, "normal", 200*ms, 2*time.Second),
			latencyGroup("slow", slow, "uniform", 5*time.Second, 10*time.Second),
			latencyGroup("tail", tail, "uniform", 8*time.Second, 9500*ms),
			{Name: "off", IDPattern: "off-%06d", Count: off, Connection: sim.Connection{OnlineShare: &offline}},
			flapping,
		}
	}
	panic("unknown shape " + shape)
}

func writeShapedFleet(dir, name, shape string, n int) (fleetFile, idsFile string, err error) {
	groups := shapeGroups(shape, n)
	seed := int64(12)
	spec := sim.FleetSpec{Seed: &seed, Groups: groups}
	if err := spec.Validate(); err != nil {
		return "", "", err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return "", "", err
	}
	fleetFile = filepath.Join(dir, name+".fleet.json")
	if err := os.WriteFile(fleetFile, b, 0o600); err != nil {
		return "", "", err
	}
	// The targets in a fixed shuffled order: a real fleet is not sorted by
	// answer time, and a slow group sent last would only measure its own
	// latency.
	var all []string
	for _, g := range groups {
		for i := 1; i <= g.Count; i++ {
			all = append(all, fmt.Sprintf(g.IDPattern, i))
		}
	}
	rand.New(rand.NewPCG(12, 34)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	idsFile = filepath.Join(dir, name+".ids")
	return fleetFile, idsFile, os.WriteFile(idsFile, []byte(strings.Join(all, "\n")+"\n"), 0o600)
}

// shapedCase is one latency-shaped fleet run on one tier.
type shapedCase struct {
	tier    string
	units   int
	rate    float64 // the tier's direct-method throttle, calls/s
	shape   string
	devices int
	slowest time.Duration // the shape's slowest answer (the last calls' longest wait)
	goal    float64
	extra   []string
}

// benchF: latency-shaped fleets at the throttle, default flags apart from
// --rate auto --tier --units (issue 12's table, then the shapes of its
// scope 5). The ideal is the time to send every call at the tier's
// throttle plus the median answer time of the last one.
func benchF(c config, work string) error {
	cases := []shapedCase{
		{tier: "S1", units: 1, rate: 40, shape: "normal", devices: 600, slowest: 2 * time.Second, goal: 1.05},
		{tier: "S2", units: 2, rate: 240, shape: "normal", devices: 3000, slowest: 2 * time.Second, goal: 1.05},
		{tier: "S3", units: 1, rate: 6144, shape: "second", devices: 30000, slowest: 1200 * time.Millisecond, goal: 1.3},
		{tier: "S1", units: 1, rate: 40, shape: "mixed", devices: 1200, slowest: 10 * time.Second, goal: 1.05, extra: []string{"--timeout", "10s"}},
		{tier: "S2", units: 2, rate: 240, shape: "mixed", devices: 6000, slowest: 10 * time.Second, goal: 1.05, extra: []string{"--timeout", "10s"}},
		{tier: "S3", units: 1, rate: 6144, shape: "mixed", devices: 92160, slowest: 10 * time.Second, goal: 1.3, extra: []string{"--timeout", "10s"}},
	}
	if c.fCases != "" {
		var pick []shapedCase
		for _, s := range strings.Split(c.fCases, ",") {
			i, err := strconv.Atoi(s)
			if err != nil || i < 1 || i > len(cases) {
				return fmt.Errorf("-f-cases: %q is not a case 1..%d", s, len(cases))
			}
			pick = append(pick, cases[i-1])
		}
		cases = pick
	}
	fmt.Printf("\n(f) latency-shaped fleets at the throttle: dmctl invoke ping --devices-file --rate auto --tier T --units U %s, other flags default\n", strings.Join(c.dmctlExtra, " "))
	fmt.Printf("    throttle-ideal = devices / throttle (as in issue 12's table); ideal+ adds the shape's slowest answer (10 s: --timeout 10s), before which the last calls cannot end\n")
	fmt.Printf("    the goal applies to throttle-ideal for one-group shapes, to ideal+ for mixed ones; the pace line is dmctl's own summary\n")
	for i, tc := range cases {
		name := fmt.Sprintf("f%d", i)
		fleet, ids, err := writeShapedFleet(work, name, tc.shape, tc.devices)
		if err != nil {
			return err
		}
		h, err := startHub(c, filepath.Join(work, "hub-"+name), "--fleet", fleet, "--tier", tc.tier, "--units", strconv.Itoa(tc.units))
		if err != nil {
			return err
		}
		args := append([]string{"ping", "--devices-file", ids, "--rate", "auto", "--tier", tc.tier, "--units", strconv.Itoa(tc.units), "-o", "jsonl"}, tc.extra...)
		args = append(args, c.dmctlExtra...)
		hub0 := h.cpu()
		r, err := runDmctl(c, h, args...)
		hubCPU := h.cpu() - hub0
		h.stop()
		if err != nil {
			return err
		}
		ideal := float64(tc.devices) / tc.rate
		idealPlus := ideal + tc.slowest.Seconds()
		shareOf := 0.0
		if r.calls > 0 {
			shareOf = float64(r.throttles) / float64(r.calls) * 100
		}
		fmt.Printf("    %s x%d %-6s %6d devices: wall %6.1f s / throttle-ideal %5.1f s = %.2f, / ideal+ %5.1f s = %.2f (goal <= %.2f); %.0f calls/s; 429s %.2f%%; CPU per call dmctl %.0f us, hubsim %.0f us; peak RSS %.0f MB; exit %d%s\n",
			tc.tier, tc.units, tc.shape, tc.devices, r.wall.Seconds(), ideal, r.wall.Seconds()/ideal, idealPlus, r.wall.Seconds()/idealPlus, tc.goal,
			float64(r.calls)/r.wall.Seconds(), shareOf, perCall(r.cpu, r.calls), perCall(hubCPU, r.calls), float64(r.maxRSSKB)/1024, r.exitCode, heldBy(r.stderr))
	}
	return nil
}

// perCall is d per call in microseconds; 0 without calls.
func perCall(d time.Duration, calls int) float64 {
	if calls == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(calls)
}

// heldBy is the summary's line on what limited the pace, if it has one.
func heldBy(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if i := strings.Index(l, "pace:"); i >= 0 {
			return "\n        " + strings.TrimSpace(l[i:])
		}
	}
	return ""
}

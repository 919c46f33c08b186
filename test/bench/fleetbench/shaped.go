package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A latency shape is a fleet of groups whose devices take real time to
// answer (issue 12): hubsim's fleet file draws each call's latency.
type shapeGroup struct {
	Name       string         `json:"name"`
	IDPattern  string         `json:"idPattern"`
	Count      int            `json:"count"`
	Connection map[string]any `json:"connection,omitempty"`
	Methods    map[string]any `json:"methods"`
}

// share of a fleet of n devices in a group, at least 1.
func share(n int, s float64) int { return max(1, int(float64(n)*s+0.5)) }

func normalGroup(name string, n int, lo, hi string) shapeGroup {
	return shapeGroup{Name: name, IDPattern: name + "-%06d", Count: n,
		Methods: map[string]any{"*": map[string]any{"status": 200, "latency": map[string]any{"dist": "normal", "min": lo, "max": hi}}}}
}

// shapes: "normal" is the one group of the table (200 ms to 2 s,
// p50 1.1 s); "mixed" adds a slow group (5-10 s), a heavy tail near the
// response timeout (--timeout 10s: 8-9.5 s), permanently offline devices
// and flapping ones.
func shapeGroups(shape string, n int) []shapeGroup {
	switch shape {
	case "normal":
		return []shapeGroup{normalGroup("norm", n, "200ms", "2s")}
	case "second":
		return []shapeGroup{normalGroup("sec", n, "800ms", "1200ms")}
	case "mixed":
		slow, tail, off, flap := share(n, 0.05), share(n, 0.03), share(n, 0.05), share(n, 0.02)
		g := []shapeGroup{
			normalGroup("norm", n-slow-tail-off-flap, "200ms", "2s"),
			{Name: "slow", IDPattern: "slow-%06d", Count: slow,
				Methods: map[string]any{"*": map[string]any{"latency": map[string]any{"dist": "uniform", "min": "5s", "max": "10s"}}}},
			{Name: "tail", IDPattern: "tail-%06d", Count: tail,
				Methods: map[string]any{"*": map[string]any{"latency": map[string]any{"dist": "uniform", "min": "8s", "max": "9500ms"}}}},
			{Name: "off", IDPattern: "off-%06d", Count: off, Connection: map[string]any{"onlineShare": 0},
				Methods: map[string]any{"*": map[string]any{"status": 200}}},
			{Name: "flap", IDPattern: "flap-%06d", Count: flap,
				Connection: map[string]any{"flapping": map[string]any{"meanUp": "20s", "meanDown": "5s"}},
				Methods:    map[string]any{"*": map[string]any{"latency": map[string]any{"dist": "normal", "min": "200ms", "max": "2s"}}}},
		}
		return g
	}
	panic("unknown shape " + shape)
}

func writeShapedFleet(dir, name, shape string, n int) (fleetFile, idsFile string, err error) {
	groups := shapeGroups(shape, n)
	b, err := json.Marshal(map[string]any{"seed": 12, "groups": groups})
	if err != nil {
		return "", "", err
	}
	fleetFile = filepath.Join(dir, name+".fleet.json")
	if err := os.WriteFile(fleetFile, b, 0o600); err != nil {
		return "", "", err
	}
	var ids strings.Builder
	for _, g := range groups {
		for i := 1; i <= g.Count; i++ {
			fmt.Fprintf(&ids, g.IDPattern+"\n", i)
		}
	}
	idsFile = filepath.Join(dir, name+".ids")
	return fleetFile, idsFile, os.WriteFile(idsFile, []byte(ids.String()), 0o600)
}

// shapedCase is one latency-shaped fleet run on one tier.
type shapedCase struct {
	tier    string
	units   int
	rate    float64 // the tier's direct-method throttle, calls/s
	shape   string
	devices int
	p50     time.Duration // the shape's median answer time (the last call's expected wait)
	goal    float64
	extra   []string
}

// benchF: latency-shaped fleets at the throttle, default flags apart from
// --rate auto --tier --units (issue 12's table, then the shapes of its
// scope 5). The ideal is the time to send every call at the tier's
// throttle plus the median answer time of the last one.
func benchF(c config, work string) error {
	cases := []shapedCase{
		{tier: "S1", units: 1, rate: 40, shape: "normal", devices: 600, p50: 1100 * time.Millisecond, goal: 1.05},
		{tier: "S2", units: 2, rate: 240, shape: "normal", devices: 3000, p50: 1100 * time.Millisecond, goal: 1.05},
		{tier: "S3", units: 1, rate: 6144, shape: "second", devices: 30000, p50: time.Second, goal: 1.3},
		{tier: "S1", units: 1, rate: 40, shape: "mixed", devices: 1200, p50: 1100 * time.Millisecond, goal: 1.05, extra: []string{"--timeout", "10s"}},
		{tier: "S2", units: 2, rate: 240, shape: "mixed", devices: 6000, p50: 1100 * time.Millisecond, goal: 1.05, extra: []string{"--timeout", "10s"}},
		{tier: "S3", units: 1, rate: 6144, shape: "mixed", devices: 92160, p50: 1100 * time.Millisecond, goal: 1.3, extra: []string{"--timeout", "10s"}},
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
	fmt.Printf("    ideal = devices / throttle + the shape's median answer time; 'held by' is what dmctl's summary says limited the pace\n")
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
		ideal := float64(tc.devices)/tc.rate + tc.p50.Seconds()
		shareOf := 0.0
		if r.calls > 0 {
			shareOf = float64(r.throttles) / float64(r.calls) * 100
		}
		fmt.Printf("    %s x%d %-6s %6d devices: wall %6.1f s / ideal %5.1f s = %.2f (goal <= %.2f); %.0f calls/s; 429s %.2f%%; CPU per call dmctl %.0f us, hubsim %.0f us; peak RSS %.0f MB; exit %d%s\n",
			tc.tier, tc.units, tc.shape, tc.devices, r.wall.Seconds(), ideal, r.wall.Seconds()/ideal, tc.goal,
			float64(r.calls)/r.wall.Seconds(), shareOf, perCall(r.cpu, r.calls), perCall(hubCPU, r.calls), float64(r.maxRSSKB)/1024, r.exitCode, heldBy(r.stderr))
	}
	return nil
}

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

// Command fleetbench measures dmctl's fleet runs against hubsim and prints
// the figures side by side from one run (issue 5, scope 7):
//
//	(a) 20,000 simulated devices answering at 0 ms, hubsim --no-throttle:
//	    dmctl's calls/s divided by hubsim's own load generator's (`hubsim bench`)
//	(b) the same fleet through Microsoft's Node service SDK (azure-iothub)
//	    with a promise pool at the same concurrency
//	(c) hubsim --tier S1 --units 1 with 2,000 devices and --rate auto: wall
//	    time against the ideal 50 s (40 calls/s) and the share of 429s
//	(d) dmctl's peak RSS for 100,000 targets from a file against 10,000
//	(e) hubsim --tier S1 --units 1 with 2,000 devices: wall time of
//	    dmctl invoke --via job (the hub's jobs pace, 10 devices/s) against
//	    a direct fan-out with --rate auto --tier S1 --units 1 (issue 6)
//	(f) latency-shaped fleets (issue 12): devices answering in 200 ms-2 s,
//	    around 1 s, or a mix with a slow group, a heavy tail, offline and
//	    flapping devices, on S1 x1, S2 x2 and S3 x1, with --rate auto and
//	    default flags: wall time against the throttle-ideal, 429s, CPU per
//	    call, what dmctl says held the pace
//	(g) dmctl's CPU per call and peak RSS at 64, 1,024 and 6,000 calls in
//	    flight
//	(h) --wait reboot on 2,000 S1 devices (ideal 70 s)
//
// (a) also runs wrk (Debian's package) against the same hub when it is on
// PATH, for dmctl / wrk.
//
// `make bench-fleet` builds the binaries and runs it; it needs Node.js and
// the conformance suite's node_modules (`make conformance-deps`) for (b).
// Every process runs on loopback only. Nothing here is a test: it prints
// figures and the goals they are held against.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(1)
	}
}

type config struct {
	bin         string
	nodeModules string
	conformance string
	concurrency int
	rounds      int
	only        string
	benchTime   time.Duration
	fCases      string
	dmctlExtra  []string
}

func run() error {
	var c config
	flag.StringVar(&c.bin, "bin", "bin", "directory holding the dmctl and hubsim binaries")
	flag.StringVar(&c.conformance, "conformance", "test/conformance", "directory of the Node conformance suite (node_modules, redirect443.js)")
	flag.StringVar(&c.nodeModules, "node-script", "test/bench/node/invoke-pool.js", "the Node promise-pool script for (b)")
	flag.IntVar(&c.concurrency, "concurrency", 64, "calls in flight for (a) and (b), for every client")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds of (a) and (b), each running hubsim bench, dmctl and the Node SDK in turn; medians are reported")
	flag.StringVar(&c.only, "only", "abcdefgh", "which benchmarks to run (letters a-h)")
	flag.DurationVar(&c.benchTime, "bench-duration", 5*time.Second, "how long each `hubsim bench` measures")
	flag.StringVar(&c.fCases, "f-cases", "", "which cases of (f) to run, comma-separated 1-based (default all)")
	extra := flag.String("dmctl-args", "", "extra flags for dmctl in (f), space-separated (e.g. \"-c 32\" to compare with a fixed in-flight)")
	flag.Parse()
	c.dmctlExtra = strings.Fields(*extra)

	for _, name := range []string{"dmctl", "hubsim"} {
		if _, err := os.Stat(filepath.Join(c.bin, name)); err != nil {
			return fmt.Errorf("%s: %w (run `make build` first)", filepath.Join(c.bin, name), err)
		}
	}
	work, err := os.MkdirTemp("", "fleetbench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()

	fmt.Printf("fleet benchmarks: %d CPUs, GOMAXPROCS %d, %s/%s, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format(time.RFC3339))
	if strings.Contains(c.only, "a") || strings.Contains(c.only, "b") {
		if _, err = benchAB(c, work); err != nil {
			return err
		}
	}
	if strings.Contains(c.only, "c") {
		if err := benchC(c, work); err != nil {
			return err
		}
	}
	if strings.Contains(c.only, "d") {
		if err := benchD(c, work); err != nil {
			return err
		}
	}
	if strings.Contains(c.only, "e") {
		if err := benchE(c, work); err != nil {
			return err
		}
	}
	if strings.Contains(c.only, "f") {
		if err := benchF(c, work); err != nil {
			return err
		}
	}
	if strings.Contains(c.only, "g") {
		if err := benchG(c, work); err != nil {
			return err
		}
	}
	if strings.Contains(c.only, "h") {
		if err := benchH(c, work); err != nil {
			return err
		}
	}
	return nil
}

// hub is a running hubsim.
type hub struct {
	cmd   *exec.Cmd
	ready struct {
		HTTPSAddr               string `json:"httpsAddr"`
		CAFile                  string `json:"caFile"`
		HostName                string `json:"hostName"`
		ServiceConnectionString string `json:"serviceConnectionString"`
	}
	stderr bytes.Buffer
}

func startHub(c config, dir string, args ...string) (*hub, error) {
	h := &hub{}
	h.cmd = exec.Command(filepath.Join(c.bin, "hubsim"), append([]string{"--dir", dir}, args...)...)
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h.cmd.Stderr = &h.stderr
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		if !ok {
			_ = h.cmd.Wait()
			return nil, fmt.Errorf("hubsim exited without its ready line: %s", h.stderr.String())
		}
		if err := json.Unmarshal([]byte(l), &h.ready); err != nil {
			h.stop()
			return nil, fmt.Errorf("hubsim ready line: %w", err)
		}
	case <-time.After(2 * time.Minute):
		h.stop()
		return nil, errors.New("hubsim printed no ready line within 2 minutes")
	}
	return h, nil
}

func (h *hub) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

// dmctlRun is one dmctl process and what its summary said.
type dmctlRun struct {
	wall        time.Duration
	cpu         time.Duration
	maxRSSKB    int64
	calls       int
	retries     int
	throttles   int
	callsPerSec float64
	exitCode    int
	stderr      string
}

var summaryLine = regexp.MustCompile(`(\d+) calls? \((\d+) retr(?:y|ies)(?:, (\d+) throttled with 429)?\) in [^,;\s]+(?:, (\d+(?:\.\d+)?) calls/s)?`)

func runDmctl(c config, h *hub, args ...string) (dmctlRun, error) {
	cmd := exec.Command(filepath.Join(c.bin, "dmctl"), append([]string{"invoke", "--ca-file", h.ready.CAFile}, args...)...)
	cmd.Env = append(os.Environ(), "IOTHUB_CONNECTION_STRING="+h.ready.ServiceConnectionString)
	cmd.Stdout = io.Discard
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	r := dmctlRun{wall: time.Since(start), stderr: stderr.String()}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return r, err
	}
	r.exitCode = cmd.ProcessState.ExitCode()
	r.cpu = cpuOf(cmd.ProcessState)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSSKB = ru.Maxrss // kilobytes on Linux
	}
	m := summaryLine.FindStringSubmatch(r.stderr)
	if m == nil {
		return r, fmt.Errorf("dmctl %s: no summary on stderr (exit %d): %s", strings.Join(args, " "), r.exitCode, lastLines(r.stderr, 5))
	}
	r.calls, _ = strconv.Atoi(m[1])
	r.retries, _ = strconv.Atoi(m[2])
	r.throttles, _ = strconv.Atoi(m[3])
	r.callsPerSec, _ = strconv.ParseFloat(m[4], 64)
	return r, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func writeFleet(dir, name, pattern string, count int) (fleetFile, idsFile string, err error) {
	fleetFile = filepath.Join(dir, name+".fleet.json")
	fleet := fmt.Sprintf(`{"groups":[{"name":"bench","idPattern":%q,"count":%d,"methods":{"*":{"status":200}}}]}`, pattern, count)
	if err := os.WriteFile(fleetFile, []byte(fleet), 0o600); err != nil {
		return "", "", err
	}
	idsFile = filepath.Join(dir, name+".ids")
	var b strings.Builder
	for i := 1; i <= count; i++ {
		fmt.Fprintf(&b, pattern+"\n", i)
	}
	return fleetFile, idsFile, os.WriteFile(idsFile, []byte(b.String()), 0o600)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func join(xs []float64) string { return joinPrec(xs, 0) }

// joinPrec lists xs with prec decimals, comma-separated.
func joinPrec(xs []float64, prec int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', prec, 64)
	}
	return strings.Join(parts, ", ")
}

// hubCPU is the CPU time hubsim has used so far (from /proc; 0 elsewhere).
func (h *hub) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime, clock ticks (USER_HZ = 100 on Linux)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func cpuOf(ps *os.ProcessState) time.Duration { return ps.UserTime() + ps.SystemTime() }

// benchAB runs (a) and (b) on one hub, round by round so that each round's
// figures are taken close together in time, and reports medians and the
// median of the per-round ratios. Besides calls/s (which follow whatever
// else the machine is doing), it reports calls per CPU-second of client and
// hub together: the cost of a call, which noise affects much less.
func benchAB(c config, work string) (float64, error) {
	const devices = 20000
	fleet, ids, err := writeFleet(work, "a", "bench-%06d", devices)
	if err != nil {
		return 0, err
	}
	h, err := startHub(c, filepath.Join(work, "hub-a"), "--fleet", fleet, "--no-throttle")
	if err != nil {
		return 0, err
	}
	defer h.stop()
	conc := strconv.Itoa(c.concurrency)
	args := []string{"ping", "--devices-file", ids, "-c", conc, "-o", "jsonl"}
	// Warm up the page cache and the hub.
	if _, err := runDmctl(c, h, args...); err != nil {
		return 0, err
	}
	withNode := strings.Contains(c.only, "b")
	var nodeErr error
	var gen, genEff, dm, dmEff, dmWall, nd, ndEff, ratioA, ratioB, effA, effB, wr, ratioW []float64
	var wrkErr error
	var nodeRes nodeResult
	for i := 0; i < c.rounds; i++ {
		out, err := exec.Command(filepath.Join(c.bin, "hubsim"), "bench", "--devices", strconv.Itoa(devices), "--duration", c.benchTime.String(),
			"--concurrency", conc, "--json").Output()
		if err != nil {
			return 0, fmt.Errorf("hubsim bench: %w", err)
		}
		var b struct {
			CallsPerSecond    float64 `json:"callsPerSecond"`
			CallsPerCPUSecond float64 `json:"callsPerCpuSecond"`
		}
		if err := json.Unmarshal(lastJSONLine(out), &b); err != nil {
			return 0, fmt.Errorf("hubsim bench output: %w", err)
		}
		gen, genEff = append(gen, b.CallsPerSecond), append(genEff, b.CallsPerCPUSecond)

		hub0 := h.cpu()
		r, err := runDmctl(c, h, args...)
		if err != nil {
			return 0, err
		}
		if r.exitCode != 0 || r.calls != devices {
			return 0, fmt.Errorf("dmctl run did not succeed on every device (exit %d, %d calls): %s", r.exitCode, r.calls, lastLines(r.stderr, 3))
		}
		eff := float64(devices) / (r.cpu + h.cpu() - hub0).Seconds()
		dm, dmEff, dmWall = append(dm, r.callsPerSec), append(dmEff, eff), append(dmWall, float64(devices)/r.wall.Seconds())
		ratioA, effA = append(ratioA, r.callsPerSec/b.CallsPerSecond), append(effA, eff/b.CallsPerCPUSecond)

		if wrkErr == nil {
			var rate float64
			rate, _, wrkErr = runWrk(h, work, "bench-%06d", devices, c.concurrency, c.benchTime)
			if wrkErr == nil {
				wr, ratioW = append(wr, rate), append(ratioW, r.callsPerSec/rate)
			}
		}
		if withNode && nodeErr == nil {
			hub0 := h.cpu()
			var ncpu time.Duration
			nodeRes, ncpu, nodeErr = runNode(c, h, ids)
			if nodeErr == nil {
				neff := float64(nodeRes.Calls) / (ncpu + h.cpu() - hub0).Seconds()
				nd, ndEff = append(nd, nodeRes.CallsPerSecond), append(ndEff, neff)
				ratioB, effB = append(ratioB, r.callsPerSec/nodeRes.CallsPerSecond), append(effB, eff/neff)
			}
		}
	}
	md := median(dm)
	fmt.Printf("\n(a) %d devices answering at 0 ms, hubsim --no-throttle, %d calls in flight, %d rounds (median; each round in brackets)\n", devices, c.concurrency, c.rounds)
	fmt.Printf("    hubsim bench (in-process load generator): %6.0f calls/s  [%s]; %5.0f calls per CPU-second (client and hub)\n", median(gen), join(gen), median(genEff))
	fmt.Printf("    dmctl invoke --devices-file, -o jsonl:     %6.0f calls/s  [%s]; %5.0f calls per CPU-second (dmctl and hubsim)\n", md, join(dm), median(dmEff))
	fmt.Printf("      (whole dmctl process, start to exit: %.0f calls/s)\n", median(dmWall))
	fmt.Printf("    ratio dmctl / hubsim bench, calls/s:        %6.2f  [%s]  (goal >= 0.9)\n", median(ratioA), join2(ratioA))
	fmt.Printf("    ratio dmctl / hubsim bench, calls per CPU-s: %5.2f  [%s]\n", median(effA), join2(effA))
	if wrkErr != nil {
		fmt.Printf("    wrk: not measured: %v\n", wrkErr)
	} else {
		fmt.Printf("    wrk (C load generator, separate process, %d connections): %6.0f calls/s  [%s]\n", c.concurrency, median(wr), join(wr))
		fmt.Printf("    ratio dmctl / wrk, calls/s:                 %6.2f  [%s]  (goal >= 0.9)\n", median(ratioW), join2(ratioW))
	}
	if !withNode {
		return md, nil
	}
	if nodeErr != nil {
		fmt.Printf("\n(b) Node azure-iothub: not measured: %v\n", nodeErr)
		return md, nil
	}
	fmt.Printf("\n(b) the same fleet through Microsoft's Node service SDK, %d calls in flight (promise pool), same rounds\n", c.concurrency)
	fmt.Printf("    %s (node %s):       %6.0f calls/s  [%s]; %5.0f calls per CPU-second (node and hubsim)%s\n", nodeRes.SDK, nodeVersion(), median(nd), join(nd), median(ndEff), firstErr(nodeRes.FirstError))
	fmt.Printf("    dmctl:                                     %6.0f calls/s; %5.0f calls per CPU-second\n", md, median(dmEff))
	fmt.Printf("    ratio dmctl / azure-iothub, calls/s:        %6.2f  [%s]  (goal >= 3)\n", median(ratioB), join2(ratioB))
	fmt.Printf("    ratio dmctl / azure-iothub, calls per CPU-s: %5.2f  [%s]\n", median(effB), join2(effB))
	return md, nil
}

func join2(xs []float64) string { return joinPrec(xs, 2) }

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return "; first error: " + s
}

func lastJSONLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if bytes.HasPrefix(bytes.TrimSpace(lines[i]), []byte("{")) {
			return lines[i]
		}
	}
	return out
}

type nodeResult struct {
	Calls          int     `json:"calls"`
	OK             int     `json:"ok"`
	Failed         int     `json:"failed"`
	Seconds        float64 `json:"seconds"`
	CallsPerSecond float64 `json:"callsPerSecond"`
	SDK            string  `json:"sdk"`
	FirstError     string  `json:"firstError"`
}

func nodeVersion() string {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// hostPort strips :port from HostName= in a connection string (the Node SDK
// cannot take a port; redirect443.js sends port 443 to hubsim's).
var hostPort = regexp.MustCompile(`(?i)(^|;)(\s*HostName\s*=[^;:]+):\d+`)

func runNode(c config, h *hub, ids string) (nodeResult, time.Duration, error) {
	var res nodeResult
	if _, err := exec.LookPath("node"); err != nil {
		return res, 0, errors.New("node is not on PATH")
	}
	modules, err := filepath.Abs(filepath.Join(c.conformance, "node_modules"))
	if err != nil {
		return res, 0, err
	}
	if _, err := os.Stat(filepath.Join(modules, "azure-iothub")); err != nil {
		return res, 0, fmt.Errorf("%s has no azure-iothub (run `make conformance-deps`)", modules)
	}
	redirect, _ := filepath.Abs(filepath.Join(c.conformance, "redirect443.js"))
	script, _ := filepath.Abs(c.nodeModules)
	host, port, _ := strings.Cut(h.ready.HTTPSAddr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-r", redirect, script)
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+modules,
		"NODE_EXTRA_CA_CERTS="+h.ready.CAFile,
		"HUBSIM_PORT="+port,
		"HUBSIM_HOST="+host,
		"IOTHUB_CONNECTION_STRING="+hostPort.ReplaceAllString(h.ready.ServiceConnectionString, "$1$2"),
		"IDS_FILE="+ids,
		"METHOD_NAME=ping",
		"CONCURRENCY="+strconv.Itoa(c.concurrency),
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return res, 0, fmt.Errorf("node: %v: %s", err, lastLines(stderr.String(), 5))
	}
	if err := json.Unmarshal(lastJSONLine(out), &res); err != nil {
		return res, 0, fmt.Errorf("node output: %w", err)
	}
	if res.OK != res.Calls {
		return res, 0, fmt.Errorf("node: %d of %d calls failed%s", res.Failed, res.Calls, firstErr(res.FirstError))
	}
	return res, cpuOf(cmd.ProcessState), nil
}

// benchC: S1 x1, 2,000 devices, --rate auto.
func benchC(c config, work string) error {
	const devices = 2000
	fleet, _, err := writeFleet(work, "c", "s1-%05d", devices)
	if err != nil {
		return err
	}
	fmt.Printf("\n(c) hubsim --tier S1 --units 1 (40 calls/s), %d devices, dmctl --rate auto --tier S1 --units 1 (ideal: %d s)\n", devices, devices/40)
	for _, conc := range []string{"auto", "32", "128"} {
		h, err := startHub(c, filepath.Join(work, "hub-c"+conc), "--fleet", fleet, "--tier", "S1", "--units", "1")
		if err != nil {
			return err
		}
		r, err := runDmctl(c, h, "ping", "--query", "SELECT deviceId FROM devices", "--rate", "auto", "--tier", "S1", "--units", "1",
			"-c", conc, "-o", "jsonl")
		h.stop()
		if err != nil {
			return err
		}
		ideal := float64(devices) / 40
		share := 0.0
		if r.calls > 0 {
			share = float64(r.throttles) / float64(r.calls) * 100
		}
		fmt.Printf("    -c %-4s  wall %5.1f s = %.3fx ideal (goal <= 1.05x); 429s: %d of %d calls = %.2f%% (goal <= 2%%); exit %d\n",
			conc, r.wall.Seconds(), r.wall.Seconds()/ideal, r.throttles, r.calls, share, r.exitCode)
	}
	return nil
}

// benchD: peak RSS for 10,000 and 100,000 targets from a file.
func benchD(c config, work string) error {
	const devices = 100000
	fleet, ids, err := writeFleet(work, "d", "rss-%06d", devices)
	if err != nil {
		return err
	}
	small := filepath.Join(work, "d-10k.ids")
	b, err := os.ReadFile(ids)
	if err != nil {
		return err
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if err := os.WriteFile(small, bytes.Join(lines[:10000], nil), 0o600); err != nil {
		return err
	}
	h, err := startHub(c, filepath.Join(work, "hub-d"), "--fleet", fleet, "--no-throttle")
	if err != nil {
		return err
	}
	defer h.stop()
	fmt.Printf("\n(d) dmctl peak RSS (wait4 ru_maxrss), targets from a file, %d calls in flight\n", c.concurrency)
	conc := strconv.Itoa(c.concurrency)
	for _, tc := range []struct {
		file, format string
		n            int
	}{{small, "jsonl", 10000}, {ids, "jsonl", devices}, {ids, "json", devices}} {
		r, err := runDmctl(c, h, "ping", "--devices-file", tc.file, "-c", conc, "-o", tc.format)
		if err != nil {
			return err
		}
		note := "(goal <= 64 MB, flat in fleet size)"
		if tc.format == "json" {
			note = "(for contrast: -o json holds every result to print them sorted)"
		}
		fmt.Printf("    %7d targets, -o %-5s  peak RSS %6.1f MB  %s; %.0f calls/s, exit %d\n", tc.n, tc.format, float64(r.maxRSSKB)/1024, note, r.callsPerSec, r.exitCode)
	}
	return nil
}

// benchE: the same 2,000-device fan-out on one S1 hub, run directly at the
// hub's direct-method throttle and as an IoT Hub job at its jobs throttle.
func benchE(c config, work string) error {
	const devices = 2000
	fleet, _, err := writeFleet(work, "e", "job-%05d", devices)
	if err != nil {
		return err
	}
	h, err := startHub(c, filepath.Join(work, "hub-e"), "--fleet", fleet, "--tier", "S1", "--units", "1")
	if err != nil {
		return err
	}
	defer h.stop()
	fmt.Printf("\n(e) hubsim --tier S1 --units 1, %d devices: direct fan-out vs --via job (one run, side by side)\n", devices)
	query := "SELECT deviceId FROM devices"
	direct, err := runDmctl(c, h, "ping", "--query", query, "--rate", "auto", "--tier", "S1", "--units", "1", "-o", "jsonl", "--yes")
	if err != nil {
		return err
	}
	job, err := runDmctl(c, h, "ping", "--query", query, "--via", "job", "--tier", "S1", "-o", "jsonl", "--yes")
	if err != nil {
		return err
	}
	fmt.Printf("    direct --rate auto  wall %6.1f s (ideal %d s at 40 calls/s); exit %d\n", direct.wall.Seconds(), devices/40, direct.exitCode)
	fmt.Printf("    --via job           wall %6.1f s (ideal %d s at 10 devices/s); exit %d\n", job.wall.Seconds(), devices/10, job.exitCode)
	if direct.wall > 0 {
		fmt.Printf("    --via job / direct = %.2fx the wall time; dmctl CPU %.2f s direct vs %.2f s while the hub ran the job\n",
			job.wall.Seconds()/direct.wall.Seconds(), direct.cpu.Seconds(), job.cpu.Seconds())
	}
	return nil
}

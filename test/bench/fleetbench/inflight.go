package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/sas"
)

// benchG: dmctl's CPU per call and peak RSS at 64, 1,024 and 6,000 calls
// in flight (a fixed --concurrency), 0 ms devices, hubsim --no-throttle;
// rounds alternate the three so that each round's figures are taken close
// together, and the median ratios to 64 in flight are reported (goal for
// 1,024: <= 1.5). Every connection costs a TLS handshake, so the figure
// depends on calls per connection: 100,000 calls is 98 per connection at
// 1,024 in flight and 17 at 6,000.
func benchG(c config, work string) error {
	const devices = 100000
	fleet, ids, err := writeFleet(work, "g", "cpu-%06d", devices)
	if err != nil {
		return err
	}
	h, err := startHub(c, filepath.Join(work, "hub-g"), "--fleet", fleet, "--no-throttle")
	if err != nil {
		return err
	}
	defer h.stop()
	levels := []int{64, 1024, 6000}
	perCallUs := map[int][]float64{}
	rss := map[int][]float64{}
	var ratios [2][]float64
	rounds := max(1, min(c.rounds, 3))
	for range rounds {
		for _, n := range levels {
			r, err := runDmctl(c, h, "ping", "--devices-file", ids, "-c", strconv.Itoa(n), "-o", "jsonl")
			if err != nil {
				return err
			}
			if r.exitCode != 0 || r.calls != devices {
				return fmt.Errorf("-c %d: exit %d, %d calls: %s", n, r.exitCode, r.calls, lastLines(r.stderr, 3))
			}
			perCallUs[n] = append(perCallUs[n], perCall(r.cpu, r.calls))
			rss[n] = append(rss[n], float64(r.maxRSSKB)/1024)
		}
		last := len(perCallUs[64]) - 1
		ratios[0] = append(ratios[0], perCallUs[1024][last]/perCallUs[64][last])
		ratios[1] = append(ratios[1], perCallUs[6000][last]/perCallUs[64][last])
	}
	fmt.Printf("\n(g) dmctl CPU per call by calls in flight: %d devices at 0 ms, hubsim --no-throttle, fixed --concurrency, %d rounds (median; each round in brackets)\n", devices, rounds)
	for _, n := range levels {
		fmt.Printf("    -c %-5d  %5.1f us per call  [%s]; peak RSS %6.1f MB  [%s]\n", n, median(perCallUs[n]), joinPrec(perCallUs[n], 1), median(rss[n]), joinPrec(rss[n], 1))
	}
	fmt.Printf("    ratio 1,024 / 64 in flight, CPU per call: %.2f  [%s]  (goal <= 1.5)\n", median(ratios[0]), join2(ratios[0]))
	fmt.Printf("    ratio 6,000 / 64 in flight, CPU per call: %.2f  [%s]  (goal <= 1.5)\n", median(ratios[1]), join2(ratios[1]))
	return nil
}

// benchH: --wait reboot at scale (issue 12, scope 7): 2,000 devices on
// hubsim --tier S1 --units 1, answering in 100-900 ms and down 20 s after
// a reboot. The ideal is the calls at 40/s plus the downtime: 70 s.
func benchH(c config, work string) error {
	const devices = 2000
	fleetFile := filepath.Join(work, "h.fleet.json")
	fleet := fmt.Sprintf(`{"seed":3,"groups":[{"name":"rb","idPattern":"rb-%%05d","count":%d,"methods":{"reboot":{"latency":{"dist":"uniform","min":"100ms","max":"900ms"},"downtime":"20s"}}}]}`, devices)
	if err := os.WriteFile(fleetFile, []byte(fleet), 0o600); err != nil {
		return err
	}
	var ids strings.Builder
	for i := 1; i <= devices; i++ {
		fmt.Fprintf(&ids, "rb-%05d\n", i)
	}
	idsFile := filepath.Join(work, "h.ids")
	if err := os.WriteFile(idsFile, []byte(ids.String()), 0o600); err != nil {
		return err
	}
	h, err := startHub(c, filepath.Join(work, "hub-h"), "--fleet", fleetFile, "--tier", "S1", "--units", "1")
	if err != nil {
		return err
	}
	defer h.stop()
	r, err := runDmctl(c, h, "reboot", "--devices-file", idsFile, "--rate", "auto", "--tier", "S1", "--units", "1", "--wait", "reboot", "-o", "jsonl", "--yes")
	if err != nil {
		return err
	}
	ideal := float64(devices)/40 + 20
	fmt.Printf("\n(h) --wait reboot at scale: %d devices on S1 x1 answering in 100-900 ms, down 20 s after the reboot, --rate auto --tier S1 --units 1\n", devices)
	fmt.Printf("    wall %.1f s / ideal %.0f s (calls at 40/s plus the downtime) = %.3f (goal <= 1.05); dmctl CPU %.2f s; exit %d%s\n",
		r.wall.Seconds(), ideal, r.wall.Seconds()/ideal, r.cpu.Seconds(), r.exitCode, heldBy(r.stderr))
	return nil
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)

// runWrk drives the hub with wrk (a C load generator from Debian, separate
// process, same TLS) at conc connections for d, rotating over the devices
// of pattern, and returns its requests/s and CPU time.
func runWrk(h *hub, work, pattern string, devices, conc int, d time.Duration) (float64, time.Duration, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return 0, 0, fmt.Errorf("wrk is not on PATH (apt-get install wrk)")
	}
	cs, err := connstr.ParseService(h.ready.ServiceConnectionString)
	if err != nil {
		return 0, 0, err
	}
	key, err := base64.StdEncoding.DecodeString(cs.SharedAccessKey)
	if err != nil {
		return 0, 0, err
	}
	host := strings.Split(cs.HostName, ":")[0]
	token := sas.NewToken(host, cs.SharedAccessKeyName, key, time.Now().Add(time.Hour))
	script := filepath.Join(work, "wrk.lua")
	lua := fmt.Sprintf(`local i = 0
local headers = {["Authorization"] = %q, ["Content-Type"] = "application/json"}
local body = '{"methodName":"ping","responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0,"payload":null}'
request = function()
  i = i + 1
  return wrk.format("POST", string.format("/twins/%s/methods?api-version=%s", (i %% %d) + 1), headers, body)
end
`, token, pattern, iothub.DefaultAPIVersion, devices)
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		return 0, 0, err
	}
	defer func() { _ = os.Remove(script) }()
	cmd := exec.Command("wrk", "-t", "2", "-c", strconv.Itoa(conc), "-d", d.String(), "-s", script, "https://"+h.ready.HTTPSAddr)
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %w", err)
	}
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("wrk printed no Requests/sec: %s", lastLines(string(out), 5))
	}
	if strings.Contains(string(out), "Non-2xx") {
		return 0, 0, fmt.Errorf("wrk got answers other than 2xx: %s", lastLines(string(out), 5))
	}
	rate, _ := strconv.ParseFloat(string(m[1]), 64)
	return rate, cpuOf(cmd.ProcessState), nil
}

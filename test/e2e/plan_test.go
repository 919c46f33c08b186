package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// planFleet is 30 devices that take 20-150 ms to answer any method.
const planFleet = `{"groups":[{"name":"field","idPattern":"dev-%03d","count":30,
	"methods":{"*":{"status":200,"latency":{"dist":"uniform","min":"20ms","max":"150ms"}}}}]}`

// patchDesired changes a device's desired properties through the hub's
// REST API, as an operator (or another tool) would between plan and apply.
func patchDesired(t *testing.T, h *fleetHub, device, body string) {
	t.Helper()
	pem, err := os.ReadFile(h.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}}
	req, err := http.NewRequest(http.MethodPatch, "https://"+h.HTTPSAddr+"/twins/"+device+apiVersion, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", serviceToken(t, h.ServiceConnectionString, time.Hour))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
}

// TestPlanThenApply: --plan resolves a query and the twins' versions into
// a file and sends nothing; apply runs it; targets whose twin changed after
// the plan are drifted and never delivered; the journal resumes with apply
// (drifted targets are final); --allow-drift invokes them.
func TestPlanThenApply(t *testing.T) {
	h := startFleetHub(t, planFleet, "--no-throttle")
	dir := t.TempDir()
	planPath := filepath.Join(dir, "ping.plan")
	r := h.run(t, "", "ping", "--query", "SELECT deviceId FROM devices", "--payload", `{"level":2}`,
		"--waves", "1,50%,100%", "--abort-if", "offline>20%", "-c", "8", "--plan", planPath)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, `plan written to `+planPath+` (format 1, mode 0600): "ping" on 30 targets of hub `+h.HostName)
	assert.Contains(t, r.stderr, "run: waves 1,50%,100%; stop criteria: --abort-if offline>20%")
	assert.Empty(t, h.deliveries(t, "ping"), "--plan sends no method")
	fi, err := os.Stat(planPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	raw, err := os.ReadFile(planPath)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "SharedAccessKey")
	var plan struct {
		Format  int             `json:"dmctlPlan"`
		Hub     string          `json:"hub"`
		Method  string          `json:"method"`
		Payload json.RawMessage `json:"payload"`
		Run     map[string]any  `json:"run"`
		Targets []struct {
			DeviceID string `json:"deviceId"`
			Version  int64  `json:"version"`
			ETag     string `json:"etag"`
		} `json:"targets"`
	}
	require.NoError(t, json.Unmarshal(raw, &plan))
	assert.Equal(t, 1, plan.Format)
	assert.Equal(t, h.HostName, plan.Hub)
	assert.Equal(t, "ping", plan.Method)
	assert.JSONEq(t, `{"level":2}`, string(plan.Payload))
	assert.Equal(t, "1,50%,100%", plan.Run["waves"])
	assert.Equal(t, "8", plan.Run["concurrency"])
	require.Len(t, plan.Targets, 30)
	for _, tg := range plan.Targets {
		assert.Positive(t, tg.Version, tg.DeviceID)
		assert.NotEmpty(t, tg.ETag, tg.DeviceID)
	}

	// Two twins change after the plan.
	patchDesired(t, h, "dev-003", `{"properties":{"desired":{"level":3}}}`)
	patchDesired(t, h, "dev-017", `{"tags":{"hold":true}}`)

	journal := filepath.Join(dir, "ping.journal")
	a := h.runCommand(t, "", "apply", planPath, "--journal", journal, "-o", "jsonl")
	require.Equal(t, 4, a.code, "drifted targets did not succeed: %s", a.stderr)
	rs := jsonlResults(t, a.stdout)
	require.Len(t, rs, 30)
	assert.Equal(t, map[string]int{"succeeded": 28, "drifted": 2}, outcomes(rs))
	for _, id := range []string{"dev-003", "dev-017"} {
		assert.Equal(t, "drifted", rs[id].Outcome)
		assert.Zero(t, rs[id].Attempts)
	}
	assert.Contains(t, a.stderr, "wave 3 of 3")
	assert.Regexp(t, `dev-003: drifted: not invoked: the twin changed since the plan \(version 1, etag \S+ then, version 2, etag \S+ now\)`, a.stderr)
	delivered := h.deliveries(t, "ping")
	assert.Len(t, delivered, 28)
	assert.NotContains(t, delivered, "dev-003")
	assert.NotContains(t, delivered, "dev-017")

	// The journal resumes with apply: nothing is left (drifted is final).
	again := h.runCommand(t, "", "apply", planPath, "--resume", journal, "-o", "jsonl")
	assert.Equal(t, 4, again.code, "the whole rollout's exit code: %s", again.stderr)
	assert.Empty(t, again.stdout)
	assert.Contains(t, again.stderr, "30 targets already had a final result")
	inv := h.run(t, "", "--resume", journal)
	assert.Equal(t, 2, inv.code)
	assert.Contains(t, inv.stderr, "the journal is of dmctl apply "+planPath)
	assert.Len(t, h.deliveries(t, "ping"), 28, "resuming sent nothing")

	// --allow-drift invokes the drifted ones too.
	all := h.runCommand(t, "", "apply", planPath, "--allow-drift", "-o", "jsonl")
	require.Equal(t, 0, all.code, all.stderr)
	assert.Equal(t, map[string]int{"succeeded": 30}, outcomes(jsonlResults(t, all.stdout)))
	final := h.deliveries(t, "ping")
	assert.Len(t, final["dev-003"], 1)
	assert.Len(t, final["dev-017"], 1)
	assert.Len(t, final["dev-001"], 2)
}

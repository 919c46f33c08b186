package hubsim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/rest"
	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// answeringFleet is n devices answering every method with status and payload at 0 ms.
func answeringFleet(n int, status int, payload string, modules ...string) *sim.FleetSpec {
	spec := sim.GenerateFleet(n)
	for i := range spec.Groups {
		spec.Groups[i].Methods = map[string]sim.MethodSpec{"*": {Status: &status, Payload: json.RawMessage(payload)}}
		spec.Groups[i].Modules = modules
	}
	return spec
}

func invokeBody(method string, extra string) string {
	return `{"methodName":"` + method + `","payload":{"n":1}` + extra + `}`
}

func TestInvokeSimulatedDevice(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Fleet: answeringFleet(3, 200, `{"echo":true}`)})
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
	rec := call(s, http.MethodPost, "/twins/sim-000002/methods"+apiV, invokeBody("ping", ""), tok)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.NotEmpty(t, rec.Header().Get("x-ms-request-id"))
	assert.JSONEq(t, `{"status":200,"payload":{"echo":true}}`, rec.Body.String())
	assert.Equal(t, int64(1), countersOf(t, s).Delivered)

	t.Run("module", func(t *testing.T) {
		s := newTestServer(t, Config{NoThrottle: true, Fleet: answeringFleet(2, 200, `1`, "agent")})
		tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
		rec := call(s, http.MethodPost, "/twins/sim-000001/modules/agent/methods"+apiV, invokeBody("ping", ""), tok)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.JSONEq(t, `{"status":200,"payload":1}`, rec.Body.String())
		e := requireCode(t, call(s, http.MethodPost, "/twins/sim-000001/modules/nope/methods"+apiV, invokeBody("ping", ""), tok), rest.CodeModuleNotFound)
		assert.Equal(t, "ModuleNotFound", e.Name)
		requireCode(t, call(s, http.MethodPost, "/twins/nobody/modules/agent/methods"+apiV, invokeBody("ping", ""), tok), rest.CodeDeviceNotFound)
	})
	t.Run("device status is data", func(t *testing.T) {
		s := newTestServer(t, Config{NoThrottle: true, Fleet: answeringFleet(1, 500, `{"err":"boom"}`)})
		rec := call(s, http.MethodPost, "/twins/sim-000001/methods"+apiV, invokeBody("ping", ""), authz(token(t, s, identity.PolicyService, "", time.Hour)))
		require.Equal(t, http.StatusOK, rec.Code)
		assert.JSONEq(t, `{"status":500,"payload":{"err":"boom"}}`, rec.Body.String())
	})
}

func TestOfflineRegisteredDevice(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Register: []string{"reg-1"}})
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
	e := requireCode(t, call(s, http.MethodPost, "/twins/reg-1/methods"+apiV, invokeBody("reboot", ""), tok), rest.CodeDeviceNotOnline)
	assert.Equal(t, "DeviceNotOnline", e.Name)
	assert.Equal(t, map[string]any{"timeout": "00:00:00"}, e.Info)
	assert.Contains(t, e.Message, "https://aka.ms/iothub404103")

	start := time.Now()
	e = requireCode(t, call(s, http.MethodPost, "/twins/reg-1/methods"+apiV, invokeBody("reboot", `,"connectTimeoutInSeconds":1`), tok), rest.CodeDeviceNotOnline)
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "the hub waited for the device to connect")
	assert.Equal(t, map[string]any{"timeout": "00:00:01"}, e.Info)
	assert.Equal(t, int64(0), countersOf(t, s).Delivered)

	assert.Contains(t, s.Ready().DeviceConnectionStrings, "reg-1")
}

func TestAttachedDeviceAndMethodLog(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "methods.jsonl")
	s := newTestServer(t, Config{NoThrottle: true, Register: []string{"real-1"}, MethodLog: logPath})
	detach, err := s.Registry().Attach("real-1", "", func(ctx context.Context, method string, payload json.RawMessage) (int, json.RawMessage, error) {
		if method == "slow" {
			<-ctx.Done()
			return 0, nil, ctx.Err()
		}
		return 201, json.RawMessage(`{"got":` + string(payload) + `}`), nil
	})
	require.NoError(t, err)
	defer detach()
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))

	rec := call(s, http.MethodPost, "/twins/real-1/methods"+apiV, invokeBody("setTemp", ""), tok)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"status":201,"payload":{"got":{"n":1}}}`, rec.Body.String())
	rid := rec.Header().Get("x-ms-request-id")

	start := time.Now()
	e := requireCode(t, call(s, http.MethodPost, "/twins/real-1/methods"+apiV, invokeBody("slow", `,"responseTimeoutInSeconds":5`), tok), rest.CodeGatewayTimeout)
	assert.GreaterOrEqual(t, time.Since(start), 4900*time.Millisecond)
	assert.Equal(t, "GatewayTimeout", e.Name)
	assert.Equal(t, "Timed out waiting for the response from device.", e.Message)

	// The log reaches the file within the flush interval, before shutdown.
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "\n") >= 2
	}, 2*time.Second, 20*time.Millisecond)
	require.NoError(t, s.Shutdown(context.Background()))
	f, err := os.Open(logPath)
	require.NoError(t, err)
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		lines = append(lines, m)
	}
	require.Len(t, lines, 2)
	assert.Equal(t, "real-1", lines[0]["deviceId"])
	assert.Equal(t, "", lines[0]["moduleId"])
	assert.Equal(t, "setTemp", lines[0]["method"])
	assert.Equal(t, rid, lines[0]["requestId"])
	assert.EqualValues(t, 201, lines[0]["status"])
	_, err = time.Parse(time.RFC3339Nano, lines[0]["time"].(string))
	assert.NoError(t, err)
	assert.Equal(t, "slow", lines[1]["method"])
	assert.EqualValues(t, 0, lines[1]["status"], "no answer in time")
}

type queryPage struct {
	items    []map[string]any
	next     string
	hasNext  bool
	itemType string
}

func queryOnce(t *testing.T, s *Server, sql string, pageSize int, cont string) queryPage {
	t.Helper()
	hdr := authz(token(t, s, identity.PolicyRegistryRead, "", time.Hour))
	if pageSize > 0 {
		hdr["x-ms-max-item-count"] = fmt.Sprint(pageSize)
	}
	if cont != "" {
		hdr["x-ms-continuation"] = cont
	}
	body, _ := json.Marshal(map[string]string{"query": sql})
	rec := call(s, http.MethodPost, "/devices/query"+apiV, string(body), hdr)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var p queryPage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p.items), "a bare JSON array")
	_, p.hasNext = rec.Header()["X-Ms-Continuation"]
	p.next = rec.Header().Get("x-ms-continuation")
	p.itemType = rec.Header().Get("x-ms-item-type")
	return p
}

func TestQueryPagingOver1000Devices(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Devices: 1000})

	var ids []string
	pages := 0
	cont := ""
	for {
		p := queryOnce(t, s, "SELECT * FROM devices", 100, cont)
		pages++
		assert.Equal(t, "twin", p.itemType)
		for _, it := range p.items {
			ids = append(ids, it["deviceId"].(string))
		}
		if !p.hasNext {
			break
		}
		require.NotEmpty(t, p.next, "a continuation header is never empty")
		require.Len(t, p.items, 100)
		cont = p.next
		require.Less(t, pages, 20, "paging must end")
	}
	assert.Equal(t, 10, pages)
	require.Len(t, ids, 1000)
	assert.True(t, sort.StringsAreSorted(ids))
	assert.Equal(t, "sim-000001", ids[0])
	assert.Equal(t, "sim-001000", ids[999])

	t.Run("default page size 100", func(t *testing.T) {
		p := queryOnce(t, s, "SELECT * FROM devices", 0, "")
		assert.Len(t, p.items, 100)
		assert.True(t, p.hasNext)
	})
	t.Run("page size capped at 1000", func(t *testing.T) {
		p := queryOnce(t, s, "SELECT deviceId FROM devices", 5000, "")
		assert.Len(t, p.items, 1000)
		assert.False(t, p.hasNext, "the only page is the last")
		assert.Equal(t, "raw", p.itemType)
		assert.Equal(t, map[string]any{"deviceId": "sim-000001"}, p.items[0])
	})
	t.Run("exactly one full page", func(t *testing.T) {
		p := queryOnce(t, s, "SELECT * FROM devices WHERE deviceId IN ['sim-000001','sim-000002']", 2, "")
		assert.Len(t, p.items, 2)
		assert.False(t, p.hasNext, "no empty trailing page")
	})
	t.Run("TOP across pages", func(t *testing.T) {
		p1 := queryOnce(t, s, "SELECT TOP 150 * FROM devices", 100, "")
		require.True(t, p1.hasNext)
		p2 := queryOnce(t, s, "SELECT TOP 150 * FROM devices", 100, p1.next)
		assert.Len(t, p2.items, 50)
		assert.False(t, p2.hasNext)
	})
	t.Run("aggregate", func(t *testing.T) {
		p := queryOnce(t, s, "SELECT COUNT() AS n FROM devices", 10, "")
		require.Len(t, p.items, 1)
		assert.EqualValues(t, 1000, p.items[0]["n"])
		assert.False(t, p.hasNext)
	})
	t.Run("errors", func(t *testing.T) {
		tok := token(t, s, identity.PolicyRegistryRead, "", time.Hour)
		e := requireCode(t, call(s, http.MethodPost, "/devices/query"+apiV, `{"query":"SELEKT * FROM devices"}`, authz(tok)), rest.CodeArgumentInvalid)
		assert.Contains(t, strings.ToLower(e.Message), "position")
		requireCode(t, call(s, http.MethodPost, "/devices/query"+apiV, `{"query":`, authz(tok)), rest.CodeIotHubFormatError)
		requireCode(t, call(s, http.MethodPost, "/devices/query"+apiV, `{}`, authz(tok)), rest.CodeArgumentInvalid)
		hdr := authz(tok)
		hdr["x-ms-continuation"] = "garbage!"
		requireCode(t, call(s, http.MethodPost, "/devices/query"+apiV, `{"query":"SELECT * FROM devices"}`, hdr), rest.CodeArgumentInvalid)
		p := queryOnce(t, s, "SELECT * FROM devices", 10, "")
		hdr["x-ms-continuation"] = p.next
		e = requireCode(t, call(s, http.MethodPost, "/devices/query"+apiV, `{"query":"SELECT deviceId FROM devices"}`, hdr), rest.CodeArgumentInvalid)
		assert.Contains(t, e.Message, "continuation")
		hdr = authz(tok)
		hdr["x-ms-max-item-count"] = "zero"
		requireCode(t, call(s, http.MethodPost, "/devices/query"+apiV, `{"query":"SELECT * FROM devices"}`, hdr), rest.CodeArgumentInvalid)
	})
}

func TestTwins(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true, Fleet: answeringFleet(2, 200, `null`, "agent")})
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
	get := func(path string) (map[string]any, string) {
		rec := call(s, http.MethodGet, path+apiV, "", tok)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
		var twin map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &twin))
		return twin, rec.Header().Get("ETag")
	}
	twin, etag := get("/twins/sim-000001")
	assert.Equal(t, "sim-000001", twin["deviceId"])
	require.NotEmpty(t, twin["etag"])
	assert.Equal(t, `"`+twin["etag"].(string)+`"`, etag)

	mt, _ := get("/twins/sim-000001/modules/agent")
	assert.Equal(t, "agent", mt["moduleId"])

	hdr := map[string]string{"Authorization": tok["Authorization"], "If-Match": `"not-the-etag"`}
	e := requireCode(t, call(s, http.MethodPatch, "/twins/sim-000001"+apiV, `{"tags":{"site":"a"}}`, hdr), rest.CodePreconditionFailed)
	assert.Equal(t, "PreconditionFailed", e.Name)

	hdr["If-Match"] = etag
	rec := call(s, http.MethodPatch, "/twins/sim-000001"+apiV, `{"tags":{"site":"a"},"properties":{"desired":{"interval":5}}}`, hdr)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var patched map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &patched))
	assert.Equal(t, map[string]any{"site": "a"}, patched["tags"])
	assert.NotEqual(t, twin["etag"], patched["etag"])

	rec = call(s, http.MethodPatch, "/twins/sim-000001"+apiV, `{"tags":{"site":"b"}}`, map[string]string{"Authorization": tok["Authorization"], "If-Match": "*"})
	assert.Equal(t, http.StatusOK, rec.Code)

	requireCode(t, call(s, http.MethodPatch, "/twins/sim-000001"+apiV, `{"properties":{"reported":{"x":1}}}`, tok), rest.CodeArgumentInvalid)
	requireCode(t, call(s, http.MethodPatch, "/twins/sim-000001"+apiV, `{"tags":`, tok), rest.CodeIotHubFormatError)
	requireCode(t, call(s, http.MethodPatch, "/twins/sim-000001"+apiV, `null`, tok), rest.CodeArgumentInvalid)
	requireCode(t, call(s, http.MethodGet, "/twins/nobody"+apiV, "", tok), rest.CodeDeviceNotFound)
	requireCode(t, call(s, http.MethodGet, "/twins/sim-000001/modules/nope"+apiV, "", tok), rest.CodeModuleNotFound)

	rec = call(s, http.MethodPut, "/twins/sim-000002"+apiV, `{"tags":{"only":"this"}}`, tok)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var replaced map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &replaced))
	assert.Equal(t, map[string]any{"only": "this"}, replaced["tags"])
}

// recordSleeps replaces the traffic-shaping delay with a recorder.
func recordSleeps(s *Server) *[]time.Duration {
	var mu sync.Mutex
	waits := &[]time.Duration{}
	s.sleep = func(_ context.Context, d time.Duration) bool {
		mu.Lock()
		defer mu.Unlock()
		*waits = append(*waits, d)
		return true
	}
	return waits
}

func TestThrottlingF1Methods(t *testing.T) {
	frozen := time.Now()
	s := newTestServer(t, Config{Tier: "F1", Units: 1, Now: func() time.Time { return frozen }, Fleet: answeringFleet(1, 200, `null`)})
	waits := recordSleeps(s)
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
	// 160 KB/s metered in 4 KB: a burst of 40 calls, then 2 s of shaping
	// (80 more calls, delayed), then 429001.
	ok, throttled := 0, 0
	var last wireError
	for range 130 {
		rec := call(s, http.MethodPost, "/twins/sim-000001/methods"+apiV, invokeBody("ping", ""), tok)
		if rec.Code == http.StatusOK {
			ok++
			continue
		}
		last = requireCode(t, rec, rest.CodeThrottling)
		throttled++
	}
	assert.Equal(t, 120, ok)
	assert.Equal(t, 10, throttled)
	assert.Len(t, *waits, 80, "calls 41..120 were shaped")
	assert.Equal(t, "ThrottlingException", last.Name)
	assert.Equal(t, http.StatusTooManyRequests, last.Status)
	assert.Equal(t, int64(10), countersOf(t, s).Throttled)
	assert.Equal(t, int64(120), countersOf(t, s).Delivered, "refused calls are not delivered")
}

func TestThrottlingS1Queries(t *testing.T) {
	frozen := time.Now()
	s := newTestServer(t, Config{Now: func() time.Time { return frozen }, Devices: 3})
	waits := recordSleeps(s)
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
	codes := map[int]int{}
	for range 25 {
		rec := call(s, http.MethodPost, "/devices/query"+apiV, `{"query":"SELECT * FROM devices"}`, tok)
		codes[rec.Code]++
	}
	assert.Equal(t, map[int]int{200: 21, 429: 4}, codes, "20 queries per minute per unit, one more shaped")
	assert.Len(t, *waits, 1)
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name   string
		faults sim.FaultRates
		code   int
		fault  string
	}{
		{"throttle", sim.FaultRates{Throttle: 1}, rest.CodeThrottling, "throttle"},
		{"server error", sim.FaultRates{ServerError: 1}, rest.CodeServerError, "serverError"},
		{"unavailable", sim.FaultRates{Unavailable: 1}, rest.CodeServiceUnavailable, "unavailable"},
		{"gateway timeout", sim.FaultRates{GatewayTimeout: 1}, rest.CodeGatewayTimeout, "gatewayTimeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, Config{NoThrottle: true, Faults: c.faults, Fleet: answeringFleet(2, 200, `null`)})
			rec := call(s, http.MethodPost, "/twins/sim-000001/methods"+apiV, invokeBody("ping", ""), authz(token(t, s, identity.PolicyService, "", time.Hour)))
			requireCode(t, rec, c.code)
			assert.Equal(t, c.fault, rec.Header().Get("x-hubsim-fault"))
			assert.Equal(t, int64(0), countersOf(t, s).Delivered, "answered without delivering")
		})
	}
}

func TestFleetGroupFaults(t *testing.T) {
	one := 1.0
	spec := answeringFleet(2, 200, `null`)
	spec.Groups[0].Faults = &sim.FaultSpec{Unavailable: &one}
	s := newTestServer(t, Config{NoThrottle: true, Fleet: spec})
	rec := call(s, http.MethodPost, "/twins/sim-000002/methods"+apiV, invokeBody("ping", ""), authz(token(t, s, identity.PolicyService, "", time.Hour)))
	requireCode(t, rec, rest.CodeServiceUnavailable)
	assert.Equal(t, "unavailable", rec.Header().Get("x-hubsim-fault"))
}

// TestStatsFlushesTheMethodLog: GET /hubsim/stats flushes the method log
// before it answers, so a client that has its answers and then the stats
// finds every delivery in the file (without waiting for the periodic flush).
func TestStatsFlushesTheMethodLog(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "methods.jsonl")
	s := newTestServer(t, Config{NoThrottle: true, Fleet: answeringFleet(1, 200, `null`), MethodLog: logPath})
	tok := authz(token(t, s, identity.PolicyService, "", time.Hour))
	for range 3 {
		rec := call(s, http.MethodPost, "/twins/sim-000001/methods"+apiV, invokeBody("ping", ""), tok)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}
	rec := call(s, http.MethodGet, "/hubsim/stats", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Equal(t, 3, strings.Count(string(b), `"method":"ping"`), "every delivery is in the file once the stats answer")
}

func TestFaultDropDeliversThenClosesTheConnection(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "m.jsonl")
	s := startTestServer(t, Config{NoThrottle: true, Faults: sim.FaultRates{Drop: 1}, Fleet: answeringFleet(1, 200, `null`), MethodLog: logPath})
	req, err := http.NewRequest(http.MethodPost, "https://"+s.HostName()+"/twins/sim-000001/methods"+apiV, strings.NewReader(invokeBody("ping", "")))
	require.NoError(t, err)
	req.Header.Set("Authorization", token(t, s, identity.PolicyService, "", time.Hour))
	resp, err := clientFor(s).Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Fatalf("expected the connection to be dropped, got HTTP %d", resp.StatusCode)
	}
	assert.True(t, errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset"), "err: %v", err)
	assert.Equal(t, int64(1), countersOf(t, s).Delivered, "the device got the method")
	require.NoError(t, s.Shutdown(context.Background()))
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(b), "\n"))
}

func TestDeviceKeysSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	s1 := newTestServer(t, Config{Dir: dir, Devices: 2, Register: []string{"keep-me"}})
	k1, ok := s1.Registry().Key("keep-me", "")
	require.True(t, ok)
	ks1, ok := s1.Registry().Key("sim-000002", "")
	require.True(t, ok)
	cs1 := s1.Ready().DeviceConnectionStrings["keep-me"]
	require.NoError(t, s1.Shutdown(context.Background()))

	s2 := newTestServer(t, Config{Dir: dir, Devices: 2, Register: []string{"keep-me"}})
	k2, _ := s2.Registry().Key("keep-me", "")
	ks2, _ := s2.Registry().Key("sim-000002", "")
	assert.Equal(t, k1, k2)
	assert.Equal(t, ks1, ks2)
	assert.NotEqual(t, k1, ks1)
	keyOf := func(cs string) string { _, k, _ := strings.Cut(cs, ";SharedAccessKey="); return k }
	assert.Equal(t, keyOf(cs1), keyOf(s2.Ready().DeviceConnectionStrings["keep-me"]), "same key in the connection string")

	s3 := newTestServer(t, Config{Devices: 2, Register: []string{"keep-me"}}) // another dir
	k3, _ := s3.Registry().Key("keep-me", "")
	assert.NotEqual(t, k1, k3, "keys are per hub")
}

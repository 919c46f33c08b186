package hubsim

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/entra"
)

// apiVersions are the data-plane api-version values hubsim accepts
// (contract §1.2, plus versions older SDKs send).
var apiVersions = map[string]bool{
	"2021-04-12":         true,
	"2020-09-30":         true,
	"2020-06-30-preview": true,
	"2020-03-13":         true,
	"2019-10-01":         true,
	"2019-07-01-preview": true,
	"2019-03-30":         true,
	"2018-06-30":         true,
	"2018-01-26":         true,
	"2017-11-08-preview": true,
	"2017-06-30":         true,
	"2016-11-14":         true,
}

// statusClientClosed counts requests whose client went away before the answer.
const statusClientClosed = 499

// ServeHTTP routes hub requests. Paths are matched on the escaped path and
// each id segment is percent-decoded on its own, so ids holding '/', '#',
// '?' or '%' work when clients encode them.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var start time.Time
	if s.cfg.Verbose {
		start = time.Now()
	}
	rt := routeUnknown
	status := 0
	reqID := s.requestID(r)
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler { //nolint:errorlint // sentinel compared by identity, as net/http does
				s.counters.count(rt, statusClientClosed)
				panic(rec)
			}
			s.log.Printf("panic serving %s %s: %v\n%s", r.Method, r.URL.Path, rec, debug.Stack())
			status = codeServerError / 1000
			writeError(w, reqID, s.now(), newError(codeServerError, "An internal server error occurred."))
		}
		s.counters.count(rt, status)
		if s.cfg.Verbose {
			s.log.Printf("%s %s %d %s rid=%s", r.Method, r.URL.Path, status, time.Since(start).Round(time.Microsecond), reqID)
		}
	}()
	rt, status = s.route(w, r, reqID)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, reqID string) (route, int) {
	path := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(path, "/twins/"):
		return s.routeTwins(w, r, reqID, path[len("/twins/"):])
	case path == "/devices/query":
		if r.Method != http.MethodPost {
			return routeQuery, s.methodNotAllowed(w, reqID, "POST")
		}
		return routeQuery, s.handleQuery(w, r, reqID)
	case strings.HasPrefix(path, jobsPathPrefix):
		return s.routeJobs(w, r, reqID, path)
	case path == devicesPath || strings.HasPrefix(path, devicesPath+"/"):
		return s.routeRegistry(w, r, reqID, path)
	case path == deviceStatisticsURL:
		return routeRegistry, s.handleDeviceStatistics(w, r, reqID)
	case path == "/jobs" || path == "/jobs/":
		return routeImportExportJobs, s.handleImportExportJobs(w, r, reqID)
	case path == "/hubsim/stats":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return routeStats, s.methodNotAllowed(w, reqID, "GET")
		}
		return routeStats, s.handleStats(w, r)
	case entra.Match(path):
		s.authority.Handler().ServeHTTP(w, r)
		return routeEntra, http.StatusOK
	}
	return routeUnknown, s.fail(w, reqID, newError(codeGenericNotFound, "The requested resource "+displayID(r.URL.Path)+" was not found."))
}

func (s *Server) routeTwins(w http.ResponseWriter, r *http.Request, reqID, rest string) (route, int) {
	var segs [5]string
	n := 0
	for n < len(segs) {
		seg, after, more := strings.Cut(rest, "/")
		segs[n] = seg
		n++
		if !more {
			rest = ""
			break
		}
		rest = after
	}
	if rest != "" {
		n = len(segs) // too many segments
	}
	var rt route
	var deviceEsc, moduleEsc string
	invoke := false
	switch {
	case n == 1:
		deviceEsc = segs[0]
		rt = twinRoute(r.Method, false)
	case n == 2 && segs[1] == "methods":
		deviceEsc, invoke, rt = segs[0], true, routeInvokeDevice
	case n == 3 && segs[1] == "modules":
		deviceEsc, moduleEsc = segs[0], segs[2]
		rt = twinRoute(r.Method, true)
	case n == 4 && segs[1] == "modules" && segs[3] == "methods":
		deviceEsc, moduleEsc, invoke, rt = segs[0], segs[2], true, routeInvokeModule
	default:
		return routeUnknown, s.fail(w, reqID, newError(codeGenericNotFound, "The requested resource "+displayID(r.URL.Path)+" was not found."))
	}
	if invoke && r.Method != http.MethodPost {
		return rt, s.methodNotAllowed(w, reqID, "POST")
	}
	if rt == routeUnknown {
		return rt, s.methodNotAllowed(w, reqID, "GET, PATCH, PUT")
	}
	deviceID, err := url.PathUnescape(deviceEsc)
	if err != nil || deviceID == "" {
		return rt, s.fail(w, reqID, newError(codeArgumentInvalid, "The device id in the path is empty or not percent-encoded correctly."))
	}
	moduleID := ""
	if moduleEsc != "" || n >= 3 {
		if moduleID, err = url.PathUnescape(moduleEsc); err != nil || moduleID == "" {
			return rt, s.fail(w, reqID, newError(codeArgumentInvalid, "The module id in the path is empty or not percent-encoded correctly."))
		}
	}
	if herr := checkAPIVersion(r); herr != nil {
		return rt, s.fail(w, reqID, herr)
	}
	if invoke {
		return rt, s.handleInvoke(w, r, reqID, deviceID, moduleID)
	}
	switch r.Method {
	case http.MethodGet:
		return rt, s.handleTwinGet(w, r, reqID, deviceID, moduleID)
	default:
		return rt, s.handleTwinWrite(w, r, reqID, deviceID, moduleID, r.Method == http.MethodPut)
	}
}

func twinRoute(method string, module bool) route {
	switch method {
	case http.MethodGet:
		if module {
			return routeModuleTwinGet
		}
		return routeTwinGet
	case http.MethodPatch:
		if module {
			return routeModuleTwinPatch
		}
		return routeTwinPatch
	case http.MethodPut:
		if module {
			return routeModuleTwinPut
		}
		return routeTwinPut
	}
	return routeUnknown
}

// checkAPIVersion requires a supported api-version query parameter.
func checkAPIVersion(r *http.Request) *hubError {
	v, found := queryParam(r.URL.RawQuery, "api-version")
	if !found || v == "" {
		return newError(codeInvalidProtocolVersion, "The api-version query parameter is required (for example api-version=2021-04-12).")
	}
	if !apiVersions[v] {
		return newError(codeInvalidProtocolVersion, "Invalid api-version '"+displayID(v)+"': this hub supports 2021-04-12, 2020-09-30, 2020-03-13, 2019-10-01, 2018-06-30 and older versions.")
	}
	return nil
}

// queryParam finds key in a raw query string without building a map.
func queryParam(raw, key string) (string, bool) {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k == key {
			if d, err := url.QueryUnescape(v); err == nil {
				return d, true
			}
			return v, true
		}
	}
	return "", false
}

// fail writes a hub error and returns its status.
func (s *Server) fail(w http.ResponseWriter, reqID string, e *hubError) int {
	writeError(w, reqID, s.now(), e)
	return e.status()
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, reqID, allow string) int {
	w.Header().Set("Allow", allow)
	return s.fail(w, reqID, newError(codeGenericMethodNotAllowed, "The HTTP method is not allowed on this resource; allowed: "+allow+"."))
}

// maxBodyBytes bounds any request body hubsim reads.
const maxBodyBytes = 1 << 20

var errBodyTooLarge = errors.New("body too large")

// readBody reads the whole request body, at most maxBodyBytes.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > maxBodyBytes {
		return nil, errBodyTooLarge
	}
	if r.ContentLength > 0 {
		b := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBodyBytes {
		return nil, errBodyTooLarge
	}
	return b, nil
}

func bodyError(err error) *hubError {
	if errors.Is(err, errBodyTooLarge) {
		return newError(codeArgumentInvalid, fmt.Sprintf("The request body exceeds %d bytes.", maxBodyBytes))
	}
	return newError(codeIotHubFormatError, "The request body could not be read.")
}

// handleStats serves GET /hubsim/stats (no auth): hubsim's own counters and
// the registry's. It flushes the method log first, so every method delivered
// before the request is in the --method-log file when the answer arrives: a
// client that has its answers reads the stats, then the log. With ?idle it
// first waits (woken by the events, up to the request's end) until no method
// call is in flight and every ended job's run has returned, so a client whose
// own side has stopped (a killed dmctl, a cancelled job) learns that nothing
// more will be delivered; 503 when the request ends first.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) int {
	if r.URL.Query().Has("idle") {
		if err := s.waitIdle(r.Context()); err != nil {
			http.Error(w, "stats: not idle: "+err.Error(), http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable
		}
	}
	if s.mlog != nil {
		s.mlog.flush()
	}
	rs := s.reg.Stats()
	devs, mods := s.reg.Count()
	body := map[string]any{
		"uptimeSeconds":    s.now().Sub(s.counters.started).Seconds(),
		"requests":         s.counters.requests(),
		"methodsDelivered": s.counters.delivered.Load(),
		"devices":          devs,
		"modules":          mods,
		"connected":        rs.Connected,
		"throttled":        s.counters.throttled.Load(),
		"shaped":           s.counters.shaped.Load(),
		"dropped":          s.counters.dropped.Load(),
		"throttle":         s.tierDesc,
		"registry":         rs,
	}
	b, err := json.Marshal(body)
	if err != nil {
		http.Error(w, "stats: "+err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
	return http.StatusOK
}

// waitIdle waits until no method call is in flight and every ended job has
// stopped (see handleStats).
func (s *Server) waitIdle(ctx context.Context) error {
	if s.jobs != nil {
		if err := s.jobs.WaitSettled(ctx); err != nil {
			return err
		}
	}
	return s.reg.WaitIdle(ctx)
}

// requestID is the x-ms-request-id of a request: the client's Request-Id
// when it sent a sane one (so clients can correlate the method log), else a
// fresh UUID-shaped id.
func (s *Server) requestID(r *http.Request) string {
	if v := r.Header.Get("Request-Id"); v != "" && len(v) <= 64 && saneID(v) {
		return v
	}
	return s.ids.next()
}

func saneID(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.' || c == ':' || c == '|'
		if !ok {
			return false
		}
	}
	return true
}

// idGen makes UUID-shaped request ids: a random 8-byte prefix per process
// and a counter, so ids are unique without a random read per request.
type idGen struct {
	prefix [8]byte
	salt   uint64
	n      atomic.Uint64
}

func (g *idGen) init() {
	var b [16]byte
	_, _ = rand.Read(b[:])
	copy(g.prefix[:], b[:8])
	g.prefix[6] = g.prefix[6]&0x0f | 0x40 // version 4
	for _, c := range b[8:] {
		g.salt = g.salt<<8 | uint64(c)
	}
}

func (g *idGen) next() string {
	n := g.n.Add(1) ^ g.salt
	var raw [16]byte
	copy(raw[:8], g.prefix[:])
	for i := 15; i >= 8; i-- {
		raw[i] = byte(n)
		n >>= 8
	}
	raw[8] = raw[8]&0x3f | 0x80 // RFC 4122 variant
	var out [36]byte
	j := 0
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		j += 2
	}
	return string(out[:])
}

// parseIfMatch strips the weak prefix and quotes of an If-Match value.
func parseIfMatch(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}

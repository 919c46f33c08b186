package rest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
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

// checkAPIVersion requires a supported api-version query parameter.
func checkAPIVersion(r *http.Request) *hubError {
	v, found := queryParam(r.URL.RawQuery, "api-version")
	if !found || v == "" {
		return newError(CodeInvalidProtocolVersion, "The api-version query parameter is required (for example api-version=2021-04-12).")
	}
	if !apiVersions[v] {
		return newError(CodeInvalidProtocolVersion, "Invalid api-version '"+displayID(v)+"': this hub supports 2021-04-12, 2020-09-30, 2020-03-13, 2019-10-01, 2018-06-30 and older versions.")
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
func (h *Handler) fail(c *call, e *hubError) int {
	writeError(c.w, c.id, h.now(), e)
	return e.status()
}

// writeJSON answers 200 with v in JSON and the extra headers.
func (h *Handler) writeJSON(c *call, v any, extra http.Header) int {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Printf("encode answer: %v", err)
		return h.fail(c, newError(CodeServerError, "An internal server error occurred."))
	}
	return writeBody(c, b, extra)
}

// writeBody answers 200 with a JSON body and the extra headers.
func writeBody(c *call, body []byte, extra http.Header) int {
	hd := c.w.Header()
	for k, vs := range extra {
		hd[k] = vs
	}
	hd["Content-Type"] = contentTypeJSONValue
	hd["X-Ms-Request-Id"] = []string{c.id}
	hd["Content-Length"] = []string{strconv.Itoa(len(body))}
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(body)
	return http.StatusOK
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
		return newError(CodeArgumentInvalid, fmt.Sprintf("The request body exceeds %d bytes.", maxBodyBytes))
	}
	return newError(CodeIotHubFormatError, "The request body could not be read.")
}

// serveStats serves GET /hubsim/stats (no auth): hubsim's own counters and
// the registry's. It flushes the method log first, so every method delivered
// before the request is in the --method-log file when the answer arrives: a
// client that has its answers reads the stats, then the log. With ?idle it
// first waits (woken by the events, up to the request's end) until no method
// call is in flight and every ended job's run has returned, so a client whose
// own side has stopped (a killed dmctl, a cancelled job) learns that nothing
// more will be delivered; 503 when the request ends first.
func (h *Handler) serveStats(c *call) int {
	w := c.w
	if c.r.URL.Query().Has("idle") {
		if err := h.waitIdle(c.r.Context()); err != nil {
			http.Error(w, "stats: not idle: "+err.Error(), http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable
		}
	}
	if h.cfg.FlushMethodLog != nil {
		h.cfg.FlushMethodLog()
	}
	rs := h.reg.Stats()
	devs, mods := h.reg.Count()
	body := map[string]any{
		"uptimeSeconds":    h.now().Sub(h.counters.started).Seconds(),
		"requests":         h.counters.requests(),
		"methodsDelivered": h.counters.delivered.Load(),
		"devices":          devs,
		"modules":          mods,
		"connected":        rs.Connected,
		"throttled":        h.counters.throttled.Load(),
		"shaped":           h.counters.shaped.Load(),
		"dropped":          h.counters.dropped.Load(),
		"throttle":         h.cfg.Tier,
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
// stopped (see serveStats).
func (h *Handler) waitIdle(ctx context.Context) error {
	if h.jobs != nil {
		if err := h.jobs.WaitSettled(ctx); err != nil {
			return err
		}
	}
	return h.reg.WaitIdle(ctx)
}

// requestID is the x-ms-request-id of a request: the client's Request-Id
// when it sent a sane one (so clients can correlate the method log), else a
// fresh UUID-shaped id.
func (h *Handler) requestID(r *http.Request) string {
	if v := r.Header.Get("Request-Id"); v != "" && len(v) <= 64 && saneID(v) {
		return v
	}
	return h.ids.next()
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

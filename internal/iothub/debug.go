package iothub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/dmctl/dmctl/internal/connstr"
)

// maxDebugBody bounds how much of a body one Debug line shows.
const maxDebugBody = 8 << 10

// secretHeaders are shown as REDACTED whatever they hold.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"}

// debugPolicy writes one line per request and one per response (or failure)
// to w. It sits after the authorization policy so the lines show the request
// as sent; every line goes through connstr.Redact and credentials in headers
// are replaced by REDACTED.
type debugPolicy struct {
	mu *sync.Mutex
	w  io.Writer
}

func (d debugPolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	var body []byte
	if st := callStateFrom(raw.Context()); st != nil {
		body = st.body
	}
	target := raw.Method + " " + raw.URL.String()
	d.line(fmt.Sprintf("> %s %s body=%s", target, formatHeaders(raw.Header), formatBody(body)))
	start := time.Now()
	resp, err := req.Next()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		d.line(fmt.Sprintf("< %s failed after %s: %v", target, took, err))
		return resp, err
	}
	payload, perr := runtime.Payload(resp)
	b := formatBody(payload)
	if perr != nil {
		b = "(unreadable: " + perr.Error() + ")"
	}
	d.line(fmt.Sprintf("< %d %s in %s %s body=%s", resp.StatusCode, target, took, formatHeaders(resp.Header), b))
	return resp, err
}

func (d debugPolicy) line(s string) {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(connstr.Redact(s))
	d.mu.Lock()
	defer d.mu.Unlock()
	_, _ = io.WriteString(d.w, s+"\n")
}

func formatHeaders(h http.Header) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		v := strings.Join(h[k], ",")
		if slices.ContainsFunc(secretHeaders, func(s string) bool { return strings.EqualFold(s, k) }) {
			v = "REDACTED"
		}
		b.WriteString(k + ": " + v)
	}
	b.WriteByte('}')
	return b.String()
}

func formatBody(body []byte) string {
	if len(body) == 0 {
		return "(none)"
	}
	more := 0
	if len(body) > maxDebugBody {
		more = len(body) - maxDebugBody
	}
	var s string
	var buf bytes.Buffer
	if more == 0 && json.Compact(&buf, body) == nil {
		s = buf.String()
	} else {
		s = strconv.Quote(string(body[:len(body)-more]))
	}
	if more > 0 {
		s += fmt.Sprintf("…(%d more bytes)", more)
	}
	return s
}

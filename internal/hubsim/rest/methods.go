package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dmctl/dmctl/internal/hubsim/registry"
)

// Direct-method limits (contract §1.3).
const (
	MaxMethodPayloadBytes  = 128 * 1024 // a method request's payload (exported: hubsim bench sizes its payloads by it)
	defaultResponseTimeout = 30
	minResponseTimeout     = 5
	maxResponseTimeout     = 300
	maxConnectTimeout      = 300
)

// methodRequest is the CloudToDeviceMethod body.
type methodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds json.RawMessage `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  json.RawMessage `json:"connectTimeoutInSeconds"`
}

var jsonNull = json.RawMessage("null")

// parseFast decodes the common shape of a CloudToDeviceMethod body without
// reflection: a valid JSON object whose keys are spelled exactly as the
// fields and whose methodName is a string without escapes. It reports false
// when the body is anything else; json.Unmarshal then decides (and words the
// error), so both paths accept exactly the same bodies.
func (m *methodRequest) parseFast(b []byte) bool {
	if !json.Valid(b) {
		return false
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			return true // json.Valid guarantees only white space follows
		}
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end := i + 1
		for end < len(b) && b[end] != '"' {
			if b[end] == '\\' {
				return false
			}
			end++
		}
		key := b[i+1 : end]
		i = skipSpace(b, end+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		vEnd := skipValue(b, i)
		if vEnd < 0 {
			return false
		}
		val := b[i:vEnd]
		switch string(key) {
		case "methodName":
			if len(val) < 2 || val[0] != '"' || bytes.IndexByte(val, '\\') >= 0 || !utf8.Valid(val) {
				if string(val) == "null" {
					m.MethodName = ""
					break
				}
				return false
			}
			m.MethodName = string(val[1 : len(val)-1])
		case "payload":
			m.Payload = val
		case "responseTimeoutInSeconds":
			m.ResponseTimeoutInSeconds = val
		case "connectTimeoutInSeconds":
			m.ConnectTimeoutInSeconds = val
		default:
			if isFieldFold(key) {
				return false // encoding/json matches keys case-insensitively
			}
		}
		i = vEnd
	}
}

func isFieldFold(key []byte) bool {
	for _, f := range []string{"methodName", "payload", "responseTimeoutInSeconds", "connectTimeoutInSeconds"} {
		if bytes.EqualFold(key, []byte(f)) {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at b[i] in a body
// json.Valid accepted, or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default:
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

// skipString returns the index after the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// parseMethodRequest validates a CloudToDeviceMethod body and returns the
// method, payload (never empty: JSON null when absent) and timeouts.
func parseMethodRequest(body []byte) (name string, payload json.RawMessage, connect, response time.Duration, herr *hubError) {
	if len(body) == 0 {
		return "", nil, 0, 0, newError(CodeIotHubFormatError, "The request body is empty; expected a CloudToDeviceMethod JSON object.")
	}
	var req methodRequest
	if !req.parseFast(body) {
		req = methodRequest{}
		if err := json.Unmarshal(body, &req); err != nil {
			return "", nil, 0, 0, newError(CodeIotHubFormatError, "The request body is not a valid CloudToDeviceMethod JSON object: "+jsonErrorText(err))
		}
	}
	if req.MethodName == "" {
		return "", nil, 0, 0, newError(CodeArgumentInvalid, "methodName is required.")
	}
	if bad := badMethodNameChar(req.MethodName); bad >= 0 {
		return "", nil, 0, 0, newError(CodeArgumentInvalid, fmt.Sprintf(
			"methodName '%s' contains %q: method names may use printable US-ASCII characters except $ ( ) < > @ , ; : \\ \" / [ ] ? = { } and space.",
			displayID(req.MethodName), rune(bad)))
	}
	payload = req.Payload
	if len(payload) == 0 {
		payload = jsonNull
	}
	if len(payload) > MaxMethodPayloadBytes {
		return "", nil, 0, 0, newError(CodeArgumentInvalid, fmt.Sprintf("'payload' size should be less than %d bytes.", MaxMethodPayloadBytes))
	}
	rt, ok := parseSeconds(req.ResponseTimeoutInSeconds, defaultResponseTimeout)
	if !ok || rt < minResponseTimeout || rt > maxResponseTimeout {
		return "", nil, 0, 0, newError(CodeArgumentInvalid, "responseTimeoutInSeconds must be within [5; 300].")
	}
	ct, ok := parseSeconds(req.ConnectTimeoutInSeconds, 0)
	if !ok || ct < 0 || ct > maxConnectTimeout {
		return "", nil, 0, 0, newError(CodeArgumentInvalid, "connectTimeoutInSeconds must be within [0; 300].")
	}
	return req.MethodName, payload, time.Duration(ct) * time.Second, time.Duration(rt) * time.Second, nil
}

// parseSeconds reads a whole number of seconds; absent or null gives def.
// Like the hub's JSON reader it also takes an integer written as a string.
func parseSeconds(raw json.RawMessage, def int64) (int64, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return def, true
	}
	s := string(raw)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1e9 {
		return 0, false
	}
	return int64(f), true
}

// badMethodNameChar returns the first character not allowed in a method
// name (contract §1.4), or -1.
func badMethodNameChar(name string) int {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`$()<>@,;:\"/[]?={}`, c) >= 0 {
			return int(c)
		}
	}
	return -1
}

func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d).", se.Error(), se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %s cannot hold a JSON %s.", te.Field, te.Value)
		}
		return fmt.Sprintf("expected a JSON object, got a JSON %s.", te.Value)
	}
	return err.Error() + "."
}

// invokeRequest is a decoded direct method call.
type invokeRequest struct {
	payload           json.RawMessage
	connect, response time.Duration
}

// decodeInvoke reads the CloudToDeviceMethod body of POST
// /twins/{id}[/modules/{mid}]/methods.
func decodeInvoke(_ *Handler, c *call) *hubError {
	body, err := readBody(c.r)
	if err != nil {
		return bodyError(err)
	}
	method, payload, connect, response, herr := parseMethodRequest(body)
	if herr != nil {
		return herr
	}
	c.method, c.cost = method, len(payload)
	c.invoke = invokeRequest{payload: payload, connect: connect, response: response}
	return nil
}

// serveInvoke delivers the method. Unknown devices and modules are answered
// by InvokeMethod (404001, 404010): like a hub's front door the throttle
// has counted the call anyway.
func (h *Handler) serveInvoke(c *call) int {
	in := c.invoke
	ctx := c.r.Context()
	deviceID, moduleID := c.res.device, c.res.module
	status, resp, err := h.reg.InvokeMethod(registry.WithRequestID(ctx, c.id), deviceID, moduleID, c.method, in.payload, in.connect, in.response)
	if c.fault == registry.FaultDrop {
		h.counters.dropped.Add(1)
		dropConnection(c.w)
		return statusClientClosed
	}
	if err != nil {
		if ctx.Err() != nil {
			return statusClientClosed
		}
		return h.fail(c, h.invokeError(err, deviceID, moduleID, in.connect))
	}
	if len(resp) == 0 {
		resp = jsonNull
	}
	out := make([]byte, 0, len(resp)+32)
	out = append(out, `{"status":`...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, `,"payload":`...)
	out = append(out, resp...)
	out = append(out, '}')
	return writeBody(c, out, nil)
}

var contentTypeJSONValue = []string{contentTypeJSON}

func deviceNotFound(deviceID string) *hubError {
	return newError(CodeDeviceNotFound, "Device "+displayID(deviceID)+" not registered. To learn more, see https://aka.ms/iothub404001")
}

func moduleNotFound(deviceID, moduleID string) *hubError {
	return newError(CodeModuleNotFound, "Module "+displayID(moduleID)+" on device "+displayID(deviceID)+" not registered.")
}

func throttleError(what, tier string) *hubError {
	return newError(CodeThrottling, "IoT hub throttling limit for "+what+" exceeded ("+tier+"). Back off and retry. To learn more, see https://aka.ms/iothub429001")
}

func (h *Handler) invokeError(err error, deviceID, moduleID string, connect time.Duration) *hubError {
	switch {
	case errors.Is(err, registry.ErrDeviceNotFound):
		return deviceNotFound(deviceID)
	case errors.Is(err, registry.ErrModuleNotFound):
		return moduleNotFound(deviceID, moduleID)
	case errors.Is(err, registry.ErrDeviceNotOnline):
		return &hubError{
			code:    CodeDeviceNotOnline,
			message: "The operation failed because the requested device isn't online or hasn't registered the direct method callback. To learn more, see https://aka.ms/iothub404103",
			info:    [][2]string{{"timeout", durationHMS(connect)}},
		}
	case errors.Is(err, registry.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return newError(CodeGatewayTimeout, "Timed out waiting for the response from device.")
	}
	h.log.Printf("invoke on %q/%q failed: %v", deviceID, moduleID, err)
	return newError(CodeServerError, "An internal server error occurred.")
}

// dropConnection closes the client's connection without an answer (the
// FaultDrop fault): hijack on HTTP/1.x, reset the stream on HTTP/2.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

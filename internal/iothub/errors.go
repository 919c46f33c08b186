package iothub

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrUnreadableAnswer is wrapped by the error returned when the hub answered
// with a success status but a body that is not what the API defines.
var ErrUnreadableAnswer = errors.New("could not read the hub's answer")

// Response headers IoT Hub sets on errors (iothub-contract.md §1.7).
const (
	headerErrorCode  = "iothub-errorcode"
	headerRequestID  = "X-Ms-Request-Id" // canonical: Header.Get has nothing to rewrite
	headerRetryAfter = "Retry-After"
)

// maxMessageLen bounds a message taken from a JSON error body; non-JSON bodies
// are cut at maxRawMessageLen characters.
const (
	maxMessageLen    = 1024
	maxRawMessageLen = 200
)

// errorCodeNames maps the IoT Hub error code names dmctl may meet to their
// six-digit codes (iothub-contract.md §1.6). Names whose number the sources
// disagree on (JobQuotaExceeded, IotHubSuspended) are left out.
var errorCodeNames = map[string]int{
	"InvalidProtocolVersion":                    400001,
	"InvalidOperation":                          400003,
	"ArgumentInvalid":                           CodeArgumentInvalid,
	"ArgumentNull":                              400005,
	"IotHubFormatError":                         400006,
	"ConnectionForcefullyClosedOnNewConnection": 400027,
	"IotHubNotFound":                            401001,
	"IotHubUnauthorizedAccess":                  CodeIotHubUnauthorizedAccess,
	"IotHubUnauthorized":                        CodeIotHubUnauthorized,
	"IotHubQuotaExceeded":                       403002,
	"DeviceMaximumInflightMethodExceeded":       403800,
	"DeviceNotFound":                            CodeDeviceNotFound,
	"JobNotFound":                               CodeJobNotFound,
	"ModuleNotFound":                            CodeModuleNotFound,
	"DeviceNotOnline":                           CodeDeviceNotOnline,
	"DeviceAlreadyExists":                       409001,
	"JobAlreadyExists":                          409104,
	"PreconditionFailed":                        CodePreconditionFailed,
	"MessageTooLarge":                           413001,
	"GenericTooManyRequests":                    429000,
	"ThrottlingException":                       CodeThrottlingException,
	"ThrottleBacklogLimitExceeded":              429002,
	"ThrottlingBacklogTimeout":                  429003,
	"ThrottlingMaxActiveJobCountExceeded":       429004,
	"DeviceThrottlingLimitExceeded":             429005,
	"ServerError":                               CodeServerError,
	"GenericTimeout":                            500008,
	"ServiceUnavailable":                        CodeServiceUnavailable,
	"ServerBusy":                                503005,
	"GenericGatewayTimeout":                     504000,
	"GatewayTimeout":                            CodeGatewayTimeout,
}

var errorCodeByNumber = func() map[int]string {
	m := make(map[int]string, len(errorCodeNames))
	for name, code := range errorCodeNames {
		m[code] = name
	}
	return m
}()

// ErrorCodeName returns the IoT Hub name of a six-digit error code
// ("DeviceNotOnline" for 404103), or "" when dmctl does not know it.
func ErrorCodeName(code int) string { return errorCodeByNumber[code] }

// flexCode is an errorCode that arrives as a JSON number or a string.
type flexCode struct {
	code int
	name string // a non-numeric string, e.g. "DeviceNotOnline"
}

func (f *flexCode) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return nil
		}
		s = strings.TrimSpace(s)
		if n, err := strconv.Atoi(s); err == nil {
			f.code = n
		} else {
			f.name = s
		}
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return nil // tolerate anything else: the code is simply unknown
	}
	if i, err := n.Int64(); err == nil && i > 0 && i < 1e9 {
		f.code = int(i)
	}
	return nil
}

// errorBody holds every field of every error shape. encoding/json matches
// names case-insensitively, so "Message" and "message" both land in Message,
// which also lets an unwrapped inner object parse directly.
type errorBody struct {
	Message          json.RawMessage `json:"Message"`
	ExceptionMessage json.RawMessage `json:"ExceptionMessage"`
	ErrorCode        flexCode        `json:"errorCode"`
	TrackingID       json.RawMessage `json:"trackingId"`
}

// innerError is the object inside Message in the current format.
type innerError struct {
	ErrorCode  flexCode        `json:"errorCode"`
	TrackingID json.RawMessage `json:"trackingId"`
	Message    json.RawMessage `json:"message"`
}

// parseError turns a non-success answer into a *ResponseError. It never fails:
// whatever the body holds, the result carries at least the HTTP status and a
// message. The order follows iothub-contract.md §1.7.
func parseError(status int, header http.Header, body []byte, now time.Time) *ResponseError {
	e := &ResponseError{StatusCode: status}
	parseErrorBody(e, body)
	if header != nil {
		if name := strings.TrimSpace(header.Get(headerErrorCode)); name != "" && e.ErrorCodeName == "" {
			e.ErrorCodeName = name
		}
		e.RequestID = strings.TrimSpace(header.Get(headerRequestID))
		e.RetryAfter = parseRetryAfter(header.Get(headerRetryAfter), now)
	}
	if e.ErrorCode == 0 && e.ErrorCodeName != "" {
		// Fill the number in from a known name, but only when it belongs to
		// the HTTP status the hub sent, so a mismatched header cannot turn a
		// 500 into something the retry classifier treats differently.
		if code, ok := errorCodeNames[e.ErrorCodeName]; ok && code/1000 == status {
			e.ErrorCode = code
		}
	}
	if e.ErrorCodeName == "" && e.ErrorCode != 0 {
		e.ErrorCodeName = ErrorCodeName(e.ErrorCode)
	}
	if e.Message == "" && len(bytes.TrimSpace(body)) == 0 {
		e.Message = http.StatusText(status)
	}
	e.Message = cleanText(e.Message, maxMessageLen)
	e.TrackingID = cleanText(e.TrackingID, 200)
	e.ErrorCodeName = cleanText(e.ErrorCodeName, 100)
	e.RequestID = cleanText(e.RequestID, 100)
	return e
}

func parseErrorBody(e *ResponseError, body []byte) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return
	}
	var outer errorBody
	if trimmed[0] != '{' || json.Unmarshal(trimmed, &outer) != nil {
		e.Message = firstChars(string(trimmed), maxRawMessageLen)
		return
	}
	// An inner-shaped object without the wrapper: take its fields directly.
	e.ErrorCode, e.ErrorCodeName = outer.ErrorCode.code, outer.ErrorCode.name
	e.TrackingID = jsonString(outer.TrackingID)
	exception := jsonString(outer.ExceptionMessage)

	msg := bytes.TrimSpace(outer.Message)
	switch {
	case len(msg) == 0 || bytes.Equal(msg, []byte("null")):
		if exception != "" {
			e.Message = exception
		} else {
			// JSON, but none of the known shapes.
			e.Message = firstChars(string(trimmed), maxRawMessageLen)
		}
		return
	case msg[0] == '{':
		// 1. Message as an already-parsed object.
		var in innerError
		if json.Unmarshal(msg, &in) == nil {
			applyInner(e, in)
			return
		}
		e.Message = firstChars(string(msg), maxRawMessageLen)
		return
	case msg[0] != '"':
		e.Message = firstChars(string(msg), maxRawMessageLen)
		return
	}
	text := jsonString(msg)
	if t := strings.TrimSpace(text); strings.HasPrefix(t, "{") {
		// 2. Message as a JSON-encoded string.
		var in innerError
		if json.Unmarshal([]byte(t), &in) == nil {
			applyInner(e, in)
			return
		}
	}
	if rest, ok := cutPrefixFold(strings.TrimSpace(text), "ErrorCode:"); ok {
		// 3. Legacy "ErrorCode:Name;text", tracking id in ExceptionMessage.
		name, detail, _ := strings.Cut(rest, ";")
		name = strings.TrimSpace(name)
		if n, err := strconv.Atoi(name); err == nil {
			e.ErrorCode = n
		} else {
			e.ErrorCodeName = name
		}
		e.Message = strings.TrimSpace(detail)
		if e.TrackingID == "" {
			e.TrackingID = trackingIDFrom(exception)
		}
		return
	}
	// 4. A bare message.
	e.Message = text
	if e.TrackingID == "" {
		e.TrackingID = trackingIDFrom(exception)
	}
}

func applyInner(e *ResponseError, in innerError) {
	if in.ErrorCode.code != 0 {
		e.ErrorCode = in.ErrorCode.code
	}
	if in.ErrorCode.name != "" {
		e.ErrorCodeName = in.ErrorCode.name
	}
	if id := jsonString(in.TrackingID); id != "" {
		e.TrackingID = id
	}
	e.Message = jsonString(in.Message)
}

// trackingIDFrom finds the text after "Tracking ID:" in an ExceptionMessage.
func trackingIDFrom(s string) string {
	i := strings.Index(strings.ToLower(s), "tracking id:")
	if i < 0 {
		return ""
	}
	// The id runs to the end of the line: IoT Hub ids end in
	// "-TimeStamp:MM/DD/YYYY hh:mm:ss", which holds a space.
	rest := s[i+len("tracking id:"):]
	if j := strings.IndexAny(rest, "\r\n"); j >= 0 {
		rest = rest[:j]
	}
	return strings.TrimSpace(rest)
}

// jsonString returns a JSON string's value, or the raw text of any other
// JSON value ("" for null or nothing).
func jsonString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP-date; 0 when
// absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > 24*3600 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// cleanText redacts secrets, makes the text one line and bounds its length.
func cleanText(s string, max int) string {
	if s == "" {
		return ""
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	return firstChars(s, max)
}

// firstChars returns at most n characters of s, marking a cut with "…".
func firstChars(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

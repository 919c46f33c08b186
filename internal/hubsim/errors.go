package hubsim

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// IoT Hub error codes hubsim answers with (iothub-contract.md §1.6).
const (
	codeInvalidProtocolVersion  = 400001
	codeArgumentInvalid         = 400004
	codeIotHubFormatError       = 400006
	codeUnauthorizedAccess      = 401002
	codeUnauthorized            = 401003
	codeGenericNotFound         = 404000
	codeDeviceNotFound          = 404001
	codeModuleNotFound          = 404010
	codeDeviceNotOnline         = 404103
	codeGenericMethodNotAllowed = 405000
	codePreconditionFailed      = 412001
	codeThrottling              = 429001
	codeServerError             = 500001
	codeServiceUnavailable      = 503001
	codeGatewayTimeout          = 504101
)

// errorNames are the iothub-errorcode header values.
var errorNames = map[int]string{
	codeInvalidProtocolVersion:  "InvalidProtocolVersion",
	codeArgumentInvalid:         "ArgumentInvalid",
	codeIotHubFormatError:       "IotHubFormatError",
	codeUnauthorizedAccess:      "IotHubUnauthorizedAccess",
	codeUnauthorized:            "IotHubUnauthorized",
	codeGenericNotFound:         "GenericNotFound",
	codeDeviceNotFound:          "DeviceNotFound",
	codeModuleNotFound:          "ModuleNotFound",
	codeDeviceNotOnline:         "DeviceNotOnline",
	codeGenericMethodNotAllowed: "GenericMethodNotAllowed",
	codePreconditionFailed:      "PreconditionFailed",
	codeThrottling:              "ThrottlingException",
	codeServerError:             "ServerError",
	codeServiceUnavailable:      "ServiceUnavailable",
	codeGatewayTimeout:          "GatewayTimeout",
}

// hubError is an answer in IoT Hub's error shape. The HTTP status is the
// code's first three digits.
type hubError struct {
	code    int
	message string
	info    [][2]string // ordered key/value pairs of the info object (string values)
	fault   string      // set for injected faults: x-hubsim-fault header
}

func (e *hubError) status() int { return e.code / 1000 }

func newError(code int, message string) *hubError { return &hubError{code: code, message: message} }

// writeError writes e in the current IoT Hub format (contract §1.7 format 1):
//
//	{"Message":"{\"errorCode\":404103,\"trackingId\":\"...\",\"message\":\"...\",\"info\":{...},\"timestampUtc\":\"...\"}","ExceptionMessage":""}
//
// with the iothub-errorcode and x-ms-request-id headers.
func writeError(w http.ResponseWriter, requestID string, now time.Time, e *hubError) {
	now = now.UTC()
	inner := make([]byte, 0, 256+len(e.message))
	inner = append(inner, `{"errorCode":`...)
	inner = strconv.AppendInt(inner, int64(e.code), 10)
	inner = append(inner, `,"trackingId":`...)
	inner = appendJSONString(inner, trackingID(requestID, now))
	inner = append(inner, `,"message":`...)
	inner = appendJSONString(inner, e.message)
	inner = append(inner, `,"info":{`...)
	for i, kv := range e.info {
		if i > 0 {
			inner = append(inner, ',')
		}
		inner = appendJSONString(inner, kv[0])
		inner = append(inner, ':')
		inner = appendJSONString(inner, kv[1])
	}
	inner = append(inner, `},"timestampUtc":`...)
	inner = appendJSONString(inner, now.Format("2006-01-02T15:04:05.0000000Z"))
	inner = append(inner, '}')

	body := make([]byte, 0, len(inner)*5/4+40)
	body = append(body, `{"Message":`...)
	body = appendJSONString(body, string(inner))
	body = append(body, `,"ExceptionMessage":""}`...)

	h := w.Header()
	h.Set("Content-Type", contentTypeJSON)
	h.Set("iothub-errorcode", errorNames[e.code])
	h.Set("x-ms-request-id", requestID)
	if e.fault != "" {
		h.Set("x-hubsim-fault", e.fault)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status())
	_, _ = w.Write(body)
}

// trackingID looks like a hub's: "<id>-G:0-TimeStamp:MM/dd/yyyy HH:mm:ss".
func trackingID(requestID string, now time.Time) string {
	return strings.ReplaceAll(requestID, "-", "") + "-G:0-TimeStamp:" + now.Format("01/02/2006 15:04:05")
}

const contentTypeJSON = "application/json; charset=utf-8"

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// <, > and & are left alone (no HTML escaping), as .NET writes them.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// durationHMS formats d as .NET TimeSpan "hh:mm:ss" (info.timeout of 404103).
func durationHMS(d time.Duration) string {
	s := int64(d / time.Second)
	h, m := s/3600, (s/60)%60
	s %= 60
	out := make([]byte, 0, 8)
	pad := func(n int64) {
		if n < 10 {
			out = append(out, '0')
		}
		out = strconv.AppendInt(out, n, 10)
	}
	pad(h)
	out = append(out, ':')
	pad(m)
	out = append(out, ':')
	pad(s)
	return string(out)
}

// displayID quotes an id for a message: control characters removed, long ids cut.
func displayID(id string) string {
	if len(id) > 140 {
		id = id[:140] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, id)
}

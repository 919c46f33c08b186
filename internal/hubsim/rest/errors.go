package rest

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/jsontext"
)

// IoT Hub error codes hubsim answers with (iothub-contract.md §1.6).
const (
	CodeInvalidProtocolVersion  = 400001
	CodeArgumentInvalid         = 400004
	CodeIotHubFormatError       = 400006
	CodeUnauthorizedAccess      = 401002
	CodeUnauthorized            = 401003
	CodeGenericNotFound         = 404000
	CodeDeviceNotFound          = 404001
	CodeModuleNotFound          = 404010
	CodeDeviceNotOnline         = 404103
	CodeGenericMethodNotAllowed = 405000
	CodeDeviceAlreadyExists     = 409001
	CodeModuleAlreadyExists     = 409301
	CodePreconditionFailed      = 412001
	CodeThrottling              = 429001
	CodeServerError             = 500001
	CodeServiceUnavailable      = 503001
	CodeGatewayTimeout          = 504101
)

// errorNames are the iothub-errorcode header values.
var errorNames = map[int]string{
	CodeInvalidProtocolVersion:  "InvalidProtocolVersion",
	CodeArgumentInvalid:         "ArgumentInvalid",
	CodeIotHubFormatError:       "IotHubFormatError",
	CodeUnauthorizedAccess:      "IotHubUnauthorizedAccess",
	CodeUnauthorized:            "IotHubUnauthorized",
	CodeGenericNotFound:         "GenericNotFound",
	CodeDeviceNotFound:          "DeviceNotFound",
	CodeModuleNotFound:          "ModuleNotFound",
	CodeDeviceNotOnline:         "DeviceNotOnline",
	CodeGenericMethodNotAllowed: "GenericMethodNotAllowed",
	CodeDeviceAlreadyExists:     "DeviceAlreadyExists",
	CodeModuleAlreadyExists:     "ModuleAlreadyExistsOnDevice",
	CodePreconditionFailed:      "PreconditionFailed",
	CodeThrottling:              "ThrottlingException",
	CodeServerError:             "ServerError",
	CodeServiceUnavailable:      "ServiceUnavailable",
	CodeGatewayTimeout:          "GatewayTimeout",
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
	inner = jsontext.AppendString(inner, trackingID(requestID, now))
	inner = append(inner, `,"message":`...)
	inner = jsontext.AppendString(inner, e.message)
	inner = append(inner, `,"info":{`...)
	for i, kv := range e.info {
		if i > 0 {
			inner = append(inner, ',')
		}
		inner = jsontext.AppendString(inner, kv[0])
		inner = append(inner, ':')
		inner = jsontext.AppendString(inner, kv[1])
	}
	inner = append(inner, `},"timestampUtc":`...)
	inner = jsontext.AppendString(inner, now.Format("2006-01-02T15:04:05.0000000Z"))
	inner = append(inner, '}')

	body := make([]byte, 0, len(inner)*5/4+40)
	body = append(body, `{"Message":`...)
	body = jsontext.AppendString(body, string(inner))
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

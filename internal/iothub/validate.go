package iothub

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxIDLength is the longest device or module id IoT Hub accepts
// (iothub-contract.md §1.1).
const MaxIDLength = 128

// MaxMethodNameLength is the longest method name dmctl sends. IoT Hub
// documents no limit (iothub-contract.md §1.4 says UNCONFIRMED); 100 is our
// own choice, long enough for any real method name and short enough to keep
// the MQTT topic the hub builds from it small.
const MaxMethodNameLength = 100

// InputError is a value that cannot be sent to the hub: a bad device id,
// module id, method name, payload, timeout or query. Nothing was sent.
type InputError struct {
	Input  string // what the value is, e.g. "device id"
	Value  string // the offending value, shortened for display; never a secret
	Reason string // what is wrong with it
}

func (e *InputError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("invalid %s: %s", e.Input, e.Reason)
	}
	return fmt.Sprintf("invalid %s %q: %s", e.Input, e.Value, e.Reason)
}

func inputErr(input, value, format string, args ...any) error {
	if utf8.RuneCountInString(value) > 40 {
		r := []rune(value)
		value = string(r[:40]) + "…"
	}
	return &InputError{Input: input, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// idPunctuation is the punctuation IoT Hub allows in device and module ids
// besides ASCII letters and digits (SWAGGER-2021 definitions.Twin.deviceId).
const idPunctuation = "-:.+%_#*?!(),=@;$'"

// ValidateDeviceID checks a device id against IoT Hub's rules: 1 to 128
// characters, ASCII letters and digits plus - : . + % _ # * ? ! ( ) , = @ ; $ '.
// The ids "." and ".." are refused as well: they are dot segments that URL
// handling on either side would collapse, so they cannot be addressed in a
// REST path.
func ValidateDeviceID(id string) error { return validateID("device id", id) }

// ValidateModuleID checks a module id; the rules are those of ValidateDeviceID.
func ValidateModuleID(id string) error { return validateID("module id", id) }

func validateID(what, id string) error {
	if id == "" {
		return &InputError{Input: what, Reason: "it is empty"}
	}
	if n := len(id); n > MaxIDLength {
		return inputErr(what, id, "it is %d characters long; IoT Hub allows at most %d", n, MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if isASCIIAlnum(c) || strings.IndexByte(idPunctuation, c) >= 0 {
			continue
		}
		return inputErr(what, id, "character %s at position %d is not allowed; IoT Hub ids may contain only ASCII letters, digits and %s",
			describeByte(id, i), i+1, spaced(idPunctuation))
	}
	if id == "." || id == ".." {
		return inputErr(what, id, "it cannot be used in a URL path")
	}
	return nil
}

// methodNameForbidden are the printable characters IoT Hub's docs exclude
// from method names (iothub-contract.md §1.4); space and tab are excluded too.
const methodNameForbidden = `$()<>@,;:\"/[]?={}`

// ValidateMethodName checks a direct method name: not empty, at most
// MaxMethodNameLength characters, printable US-ASCII without space, tab or
// any of $ ( ) < > @ , ; : \ " / [ ] ? = { } (iothub-contract.md §1.4).
func ValidateMethodName(name string) error {
	const what = "method name"
	if name == "" {
		return &InputError{Input: what, Reason: "it is empty"}
	}
	if n := len(name); n > MaxMethodNameLength {
		return inputErr(what, name, "it is %d characters long; dmctl allows at most %d", n, MaxMethodNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == ' ':
			return inputErr(what, name, "it contains a space at position %d", i+1)
		case c < 0x21 || c > 0x7e:
			return inputErr(what, name, "character %s at position %d is not printable US-ASCII", describeByte(name, i), i+1)
		case strings.IndexByte(methodNameForbidden, c) >= 0:
			return inputErr(what, name, "character %q at position %d is not allowed; method names may not contain %s", string(c), i+1, spaced(methodNameForbidden))
		}
	}
	return nil
}

// validateRequest checks everything in a MethodRequest and returns the whole
// seconds to send.
func validateRequest(req MethodRequest) (respSec, connSec int, err error) {
	if err := ValidateMethodName(req.MethodName); err != nil {
		return 0, 0, err
	}
	if len(req.Payload) > 0 {
		if len(req.Payload) > MaxPayloadBytes {
			return 0, 0, &InputError{Input: "payload", Reason: fmt.Sprintf("it is %d bytes; IoT Hub accepts at most %d", len(req.Payload), MaxPayloadBytes)}
		}
		if !json.Valid(req.Payload) {
			return 0, 0, &InputError{Input: "payload", Reason: "it is not valid JSON"}
		}
	}
	resp := req.ResponseTimeout
	if resp == 0 {
		resp = DefaultResponseTimeout
	}
	respSec = int(resp / time.Second)
	if resp < 0 || respSec < int(MinResponseTimeout/time.Second) || respSec > int(MaxResponseTimeout/time.Second) {
		return 0, 0, &InputError{Input: "response timeout", Value: resp.String(),
			Reason: fmt.Sprintf("it must be between %s and %s (whole seconds are sent)", MinResponseTimeout, MaxResponseTimeout)}
	}
	connSec = int(req.ConnectTimeout / time.Second)
	if req.ConnectTimeout < 0 || connSec > int(MaxConnectTimeout/time.Second) {
		return 0, 0, &InputError{Input: "connect timeout", Value: req.ConnectTimeout.String(),
			Reason: fmt.Sprintf("it must be between 0 and %s", MaxConnectTimeout)}
	}
	return respSec, connSec, nil
}

func isASCIIAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// describeByte names the character starting at s[i] for an error message.
func describeByte(s string, i int) string {
	if s[i] < utf8.RuneSelf {
		return fmt.Sprintf("%q", string(s[i]))
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return fmt.Sprintf("%q", string(r))
}

func spaced(chars string) string {
	parts := make([]string, 0, len(chars))
	for i := 0; i < len(chars); i++ {
		parts = append(parts, string(chars[i]))
	}
	return strings.Join(parts, " ")
}

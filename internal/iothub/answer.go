package iothub

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// errNoStatus is why an answer without a "status" is unreadable.
var errNoStatus = errors.New(`it has no "status"`)

// parseMethodAnswer reads the hub's answer to a direct method,
// {"status":N,"payload":...}, exactly as json.Unmarshal into
// struct{Status *int `json:"status"`; Payload json.RawMessage `json:"payload"`}
// would, and fails when there is no status. The common shape (keys written
// exactly so, each once, an integer status) is read without reflection;
// anything else goes through encoding/json, so every answer gets the same
// result and the same error either way.
func parseMethodAnswer(body []byte) (int, json.RawMessage, error) {
	if status, payload, ok := scanMethodAnswer(body); ok {
		return status, payload, nil
	}
	var r struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, nil, err
	}
	if r.Status == nil {
		return 0, nil, errNoStatus
	}
	return *r.Status, r.Payload, nil
}

// scanMethodAnswer is the fast path of parseMethodAnswer. ok is false
// whenever the answer is not valid JSON or not plainly shaped (a key with
// escapes or in other letter case, a key twice, a status that is not a
// plain integer): the caller then lets encoding/json decide.
func scanMethodAnswer(body []byte) (status int, payload json.RawMessage, ok bool) {
	if !json.Valid(body) {
		return 0, nil, false
	}
	// From here on the text is valid JSON, so the walk below only has to
	// find where things start and end.
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return 0, nil, false
	}
	i = skipSpace(body, i+1)
	var haveStatus, havePayload bool
	for body[i] != '}' {
		// a key: valid JSON guarantees a string here
		end := bytes.IndexByte(body[i+1:], '"') + i + 1
		key := body[i+1 : end]
		if bytes.IndexByte(key, '\\') >= 0 {
			return 0, nil, false
		}
		i = skipSpace(body, end+1) // at ':'
		i = skipSpace(body, i+1)   // at the value
		vEnd := skipValue(body, i)
		value := body[i:vEnd]
		switch {
		case string(key) == "status":
			if haveStatus {
				return 0, nil, false
			}
			n, err := strconv.Atoi(string(value))
			if err != nil {
				return 0, nil, false // null, a fraction, an exponent, too big
			}
			status, haveStatus = n, true
		case string(key) == "payload":
			if havePayload {
				return 0, nil, false
			}
			payload, havePayload = bytes.Clone(value), true
		case bytes.EqualFold(key, []byte("status")), bytes.EqualFold(key, []byte("payload")):
			return 0, nil, false // encoding/json matches names case-insensitively
		}
		i = skipSpace(body, vEnd)
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return status, payload, haveStatus
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the valid JSON value starting at i.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default: // number, true, false, null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the index just past the JSON string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

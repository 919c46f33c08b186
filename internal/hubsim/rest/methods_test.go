package rest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var methodBodies = []string{
	`{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
	` { "methodName" : "m" , "payload" : { "a" : [1, "}", {"b":"\""}] } } `,
	`{"payload":"x","methodName":"m"}`,
	`{"methodName":"m","methodName":"n"}`,
	`{"MethodName":"m"}`,
	`{"methodname":"m"}`,
	`{"methodName":"a\u0062c"}`,
	`{"methodName":null}`,
	`{"methodName":5}`,
	`{"methodName":"m","payload":tru}`,
	`{"methodName":"m",}`,
	`{"methodName":"m"} x`,
	`{"methodName":"m","other":{"nested":[1,2,{"x":"y"}]},"payload":[]}`,
	`{"me\"thod":"m"}`,
	"{\"methodName\":\"bad\xffutf8\"}",
	`[]`,
	`{}`,
	``,
}

// The fast path never accepts a body json.Unmarshal would read differently.
func TestParseFastAgreesWithUnmarshal(t *testing.T) {
	for _, b := range methodBodies {
		checkFastAgrees(t, []byte(b))
	}
}

func checkFastAgrees(t *testing.T, b []byte) {
	t.Helper()
	var fast methodRequest
	if !fast.parseFast(b) {
		return
	}
	var slow methodRequest
	require.NoError(t, json.Unmarshal(b, &slow), "fast path accepted %q", b)
	assert.Equal(t, slow.MethodName, fast.MethodName, "%q", b)
	for _, pair := range [][2]json.RawMessage{
		{slow.Payload, fast.Payload},
		{slow.ResponseTimeoutInSeconds, fast.ResponseTimeoutInSeconds},
		{slow.ConnectTimeoutInSeconds, fast.ConnectTimeoutInSeconds},
	} {
		assert.Equal(t, compact(pair[0]), compact(pair[1]), "%q", b)
	}
}

func compact(r json.RawMessage) string {
	if len(r) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, r); err != nil {
		return "invalid:" + string(r)
	}
	return buf.String()
}

func TestParseFastTakesTheCommonShape(t *testing.T) {
	var m methodRequest
	require.True(t, m.parseFast([]byte(methodBodies[0])))
	assert.Equal(t, "reboot", m.MethodName)
	assert.Equal(t, "null", string(m.Payload))
	assert.Equal(t, "30", string(m.ResponseTimeoutInSeconds))
	assert.False(t, new(methodRequest).parseFast([]byte(`{"MethodName":"m"}`)), "case-folded keys go the slow way")
}

func FuzzParseMethodRequest(f *testing.F) {
	for _, b := range methodBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastAgrees(t, b)
		_, _, _, _, _ = parseMethodRequest(b) // never panics
	})
}

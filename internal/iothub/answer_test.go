package iothub

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// referenceAnswer is how the client read answers before the fast path:
// encoding/json into the documented shape.
func referenceAnswer(body []byte) (int, json.RawMessage, error) {
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

var answerSamples = []string{
	`{"status":200,"payload":{"ok":true}}`,
	`{"status":200}`,
	`{"payload":{"a":[1,2,{"b":"}]"}]},"status":-3}`,
	` { "status" : 404 , "payload" : "not \"here\"" } `,
	`{"status":200,"payload":null}`,
	`{"status":200,"payload":"\u2028<&>"}`,
	`{"status":200,"payload":[]}`,
	`{"status":200,"payload":1.5e3,"extra":{"status":1}}`,
	`{"status":-0,"payload":true}`,
	`{"status":null,"payload":1}`,
	`{"payload":1}`,
	`{"Status":201,"payload":1}`,
	`{"STATUS":201}`,
	`{"status":1,"status":2}`,
	`{"status":1,"payload":1,"payload":2}`,
	`{"st\u0061tus":7}`,
	`{"status":1.0}`,
	`{"status":1e2}`,
	`{"status":"200"}`,
	`{"status":99999999999999999999}`,
	`{"status":200,"payload":{"ok":true}`,
	`{"status":200,}`,
	`[{"status":200}]`,
	`null`,
	`"status"`,
	``,
	`   `,
	`<html>502</html>`,
	`{"status":200,"payload":"a\\"}`,
	`{"status":200,"payload":{"k":"\\\""}}`,
	"{\"status\":200,\"payload\":\"\xff\"}",
	"{\"\u017ftatus\":5}",
}

func TestParseMethodAnswerMatchesEncodingJSON(t *testing.T) {
	for _, s := range answerSamples {
		t.Run(s, func(t *testing.T) {
			assertSameAnswer(t, []byte(s))
		})
	}
}

func TestScanMethodAnswerTakesTheFastPath(t *testing.T) {
	// The shapes a hub sends are read without encoding/json.
	for _, s := range []string{
		`{"status":200,"payload":{"ok":true}}`,
		`{"status":500,"payload":"disk full"}`,
		`{"status":200,"payload":null}`,
		`{"payload":[1,"]"],"status":-1}`,
	} {
		_, _, ok := scanMethodAnswer([]byte(s))
		assert.True(t, ok, s)
	}
	// Anything encoding/json would read differently is left to it.
	for _, s := range []string{`{"Status":200}`, `{"status":1,"status":2}`, `{"st\u0061tus":7}`, `{"status":1.0}`, `{"status":null}`, `{"status":200`} {
		_, _, ok := scanMethodAnswer([]byte(s))
		assert.False(t, ok, s)
	}
}

func TestParseMethodAnswerPayloadIsACopy(t *testing.T) {
	body := []byte(`{"status":200,"payload":{"a":1}}`)
	_, p, err := parseMethodAnswer(body)
	require.NoError(t, err)
	copy(body, `XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX`)
	assert.Equal(t, `{"a":1}`, string(p))
}

func assertSameAnswer(t *testing.T, body []byte) {
	t.Helper()
	wantStatus, wantPayload, wantErr := referenceAnswer(body)
	status, payload, err := parseMethodAnswer(body)
	if wantErr != nil {
		require.Error(t, err)
		assert.Equal(t, wantErr.Error(), err.Error())
		return
	}
	require.NoError(t, err)
	assert.Equal(t, wantStatus, status)
	assert.Equal(t, wantPayload == nil, payload == nil, "payload nil-ness")
	assert.Equal(t, string(wantPayload), string(payload))
}

func FuzzParseMethodAnswer(f *testing.F) {
	for _, s := range answerSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		assertSameAnswer(t, body)
	})
}

func TestAppendMethodBodyMatchesEncodingJSON(t *testing.T) {
	payloads := []json.RawMessage{
		nil,
		json.RawMessage(`{}`),
		json.RawMessage(` { "delay" : 5, "note": "<a&b>" } `),
		json.RawMessage(`"\u2028 é \u00e9"`),
		json.RawMessage("[1,\n2,\t3]"),
		json.RawMessage(`null`),
		json.RawMessage(`12.5e-3`),
		{}, // encoding/json refuses it; so must we
	}
	for _, name := range []string{"reboot", "a\"b\\c", "x<y>&z", "métho\u2028d"} {
		for _, p := range payloads {
			want, wantErr := marshalNoEscape(methodBody{MethodName: name, Payload: p, ResponseTimeoutInSeconds: 45, ConnectTimeoutInSeconds: 0})
			got, err := appendMethodBody(nil, name, p, 45, 0)
			if wantErr != nil {
				require.Error(t, err, "%q %q", name, p)
				assert.Equal(t, wantErr.Error(), err.Error())
				continue
			}
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got), "%q %q", name, p)
		}
	}
}

func TestEncodeMethodReusesOnlyAnEqualRequest(t *testing.T) {
	c := &Client{host: "h", apiVersion: DefaultAPIVersion}
	payload := json.RawMessage(`{"n":1}`)
	req := MethodRequest{MethodName: "m", Payload: payload, ResponseTimeout: 10 * time.Second}
	a, err := c.encodeMethod(req)
	require.NoError(t, err)
	b, err := c.encodeMethod(MethodRequest{MethodName: "m", Payload: json.RawMessage(`{"n":1}`), ResponseTimeout: 10 * time.Second})
	require.NoError(t, err)
	assert.Same(t, a, b, "an equal request reuses the body")

	// The caller changing its payload afterwards changes nothing cached.
	payload[5] = '2'
	d, err := c.encodeMethod(req)
	require.NoError(t, err)
	assert.NotSame(t, a, d)
	assert.JSONEq(t, `{"methodName":"m","payload":{"n":2},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":0}`, string(d.body))
	assert.JSONEq(t, `{"methodName":"m","payload":{"n":1},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":0}`, string(a.body))

	for _, other := range []MethodRequest{
		{MethodName: "m2", Payload: payload, ResponseTimeout: 10 * time.Second},
		{MethodName: "m", Payload: payload, ResponseTimeout: 11 * time.Second},
		{MethodName: "m", Payload: payload, ResponseTimeout: 10 * time.Second, ConnectTimeout: time.Second},
		{MethodName: "m", ResponseTimeout: 10 * time.Second},
	} {
		e, err := c.encodeMethod(other)
		require.NoError(t, err)
		assert.NotSame(t, d, e, "%+v", other)
	}
	// nil and empty payloads are told apart: the empty one is refused.
	_, err = c.encodeMethod(MethodRequest{MethodName: "m", ResponseTimeout: 10 * time.Second})
	require.NoError(t, err)
	_, err = c.encodeMethod(MethodRequest{MethodName: "m", Payload: json.RawMessage{}, ResponseTimeout: 10 * time.Second})
	var ie *InputError
	assert.ErrorAs(t, err, &ie)

	// An invalid request is refused every time: it is never cached.
	_, err = c.encodeMethod(MethodRequest{MethodName: "bad name"})
	assert.ErrorAs(t, err, &ie)
	_, err = c.encodeMethod(MethodRequest{MethodName: "bad name"})
	assert.ErrorAs(t, err, &ie)
}

func TestNewRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		u, err := uuid.Parse(id)
		require.NoError(t, err, id)
		assert.Equal(t, uuid.Version(4), u.Version(), id)
		assert.Equal(t, uuid.RFC4122, u.Variant(), id)
		assert.False(t, seen[id], "repeated %s", id)
		seen[id] = true
	}
}

package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/iothub"
)

// reflectJSON is the encoding/json form AppendJSON must reproduce.
func reflectJSON(t testing.TB, r Result) ([]byte, error) {
	type plain Result
	p := plain(r)
	p.StartTime = p.StartTime.UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	s200, s0, neg := 200, 0, -7
	zone := time.FixedZone("Z+5", 5*3600)
	cases := []Result{
		{DeviceID: "d", Method: "m", Outcome: OutcomeSucceeded, Status: &s200, Payload: json.RawMessage(`{"a": [1, 2 ,3], "h":"<b>&</b>"}`), Attempts: 1,
			StartTime: time.Date(2026, 1, 2, 3, 4, 5, 123456789, zone), DurationMs: 12.345},
		{DeviceID: `we"ird\id`, ModuleID: "m\x01\x1f\u2028\u2029é", Method: "\t\n\r\b\f", Outcome: OutcomeFailed, Status: &s0, Payload: json.RawMessage("\n null \n")},
		{DeviceID: "bad\xffutf8", Method: "m", Outcome: OutcomeUnknown, Status: &neg, DurationMs: 1e-7},
		{DeviceID: "d", Method: "m", Outcome: OutcomeOffline, Error: &ResultError{HTTPStatus: 404, Code: 404103, CodeName: "DeviceNotOnline", Message: "not <online> & \"gone\"", TrackingID: "t", RequestID: "r"},
			Attempts: 3, DurationMs: 1e21},
		{DeviceID: "d", Method: "m", Outcome: OutcomeError, Error: &ResultError{Message: ""}, DurationMs: 123456789.125},
		{DeviceID: "d", Method: "m", Outcome: OutcomeSkipped, DurationMs: 5e-324},
		{DeviceID: "d", Method: "m", Outcome: OutcomeWaitFailed, Status: &s200, Payload: json.RawMessage(`null`), Error: &ResultError{Message: "w"},
			WaitValue: json.RawMessage(` {"a.b": "<x>", "n": 1} `), WaitMs: 2500.5, Resolved: ResolvedStarted},
		{},
	}
	for i, r := range cases {
		want, err := reflectJSON(t, r)
		require.NoError(t, err, i)
		got, err := r.AppendJSON(nil)
		require.NoError(t, err, i)
		assert.Equal(t, string(want), string(got), "case %d", i)
		var enc bytes.Buffer
		e := json.NewEncoder(&enc)
		e.SetEscapeHTML(false)
		require.NoError(t, e.Encode(r))
		assert.Equal(t, string(want)+"\n", enc.String(), "MarshalJSON is AppendJSON")
	}
	_, err := Result{Payload: json.RawMessage(`{nope`)}.AppendJSON(nil)
	assert.Error(t, err, "an invalid payload is an error, as with encoding/json")
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("d", "m", "reboot", `{"a":1}`, "msg", 12.5, int64(0))
	f.Add("a\"b", "", "x\u2028", " [1, 2] ", "\x00\xff", 1e-9, int64(1700000000123456789))
	f.Fuzz(func(t *testing.T, dev, mod, method, payload, msg string, ms float64, ns int64) {
		if math.IsNaN(ms) || math.IsInf(ms, 0) {
			return
		}
		r := Result{DeviceID: dev, ModuleID: mod, Method: method, Outcome: Outcome(method), Attempts: len(dev),
			StartTime: time.Unix(0, ns), DurationMs: ms, Error: &ResultError{Message: msg, CodeName: mod}}
		if json.Valid([]byte(payload)) {
			r.Payload = json.RawMessage(payload)
		}
		want, werr := reflectJSON(t, r)
		got, gerr := r.AppendJSON(nil)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("errors differ: %v vs %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(want, got) {
			t.Fatalf("\nwant %s\ngot  %s", want, got)
		}
	})
}

// TestErrorFromRedacts: a result's error message is redacted where results
// are made, whatever produced the error (the hub's message, a credential's
// failure, a transport error), since results reach stdout and journals.
func TestErrorFromRedacts(t *testing.T) {
	for _, err := range []error{
		&iothub.ResponseError{StatusCode: 401, Message: "SharedAccessSignature sr=h&sig=c2VjcmV0c2lnbmF0dXJlMTIz&se=1 refused"},
		&iothub.ResponseError{StatusCode: 500, Message: "boom HostName=h;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0a2V5Cg== oops"},
		errors.New("token request failed: Authorization: Bearer eyJhbGciOi.secretpart.sig"),
		&iothub.TransportError{Err: errors.New("proxy said SharedAccessKey=c2VjcmV0a2V5Cg==")},
	} {
		msg := ErrorFrom(err).Message
		for _, secret := range []string{"c2VjcmV0c2lnbmF0dXJlMTIz", "c2VjcmV0a2V5Cg", "eyJhbGciOi.secretpart"} {
			assert.NotContains(t, msg, secret)
		}
		assert.Contains(t, msg, "REDACTED", msg)
		assert.NotContains(t, msg, "\n")
	}
}

// TestNewResultErrorRedacts: a message from outside the package (a job's
// failure reason as the hub wrote it) reaches results on one line and with
// its secret redacted, as ErrorFrom's do.
func TestNewResultErrorRedacts(t *testing.T) {
	const key = "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk="
	e := NewResultError(0, "", "job failed:\n  HostName=h;SharedAccessKeyName=p;SharedAccessKey="+key)
	assert.NotContains(t, e.Message, key)
	assert.NotContains(t, e.Message, "\n")
	assert.Contains(t, e.Message, "job failed: HostName=h")
}

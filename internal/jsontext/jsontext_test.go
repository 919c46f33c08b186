package jsontext

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"plain", `q"uote\`, "ctl\x00\x1f\n\t\r\b\f", "uni ✓ \u2028\u2029", "bad \xff utf8", "<&>", ""} {
		b := AppendString(nil, s)
		var got string
		require.NoError(t, json.Unmarshal(b, &got), "%q -> %s", s, b)
		assert.Equal(t, viaEncodingJSON(t, s), got)
	}
	assert.Equal(t, `"<&>"`, string(AppendString(nil, "<&>")), "no HTML escaping")
	assert.Equal(t, `x"a\u2028"`, string(AppendString([]byte("x"), "a\u2028")))
}

// viaEncodingJSON is what encoding/json makes of s: each byte of an
// invalid UTF-8 sequence becomes one U+FFFD (strings.ToValidUTF8 would
// collapse a run of them into one).
func viaEncodingJSON(t testing.TB, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var want string
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestAppendStringInvalidRuns(t *testing.T) {
	var got string
	require.NoError(t, json.Unmarshal(AppendString(nil, "\xff\xe2"), &got))
	assert.Equal(t, "\ufffd\ufffd", got, "one replacement per invalid byte, as encoding/json")
}

func FuzzAppendString(f *testing.F) {
	f.Add("plain")
	f.Add("\xff\u2028\x00")
	f.Add("\xff\xe2")
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(AppendString(nil, s), &got); err != nil {
			t.Fatalf("%q: invalid JSON: %v", s, err)
		}
		if want := viaEncodingJSON(t, s); got != want {
			t.Fatalf("%q round-tripped to %q", s, got)
		}
	})
}

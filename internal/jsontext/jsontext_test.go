package jsontext

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"plain", `q"uote\`, "ctl\x00\x1f\n\t\r\b\f", "uni ✓ \u2028\u2029", "bad \xff utf8", "<&>", ""} {
		b := AppendString(nil, s)
		var got string
		require.NoError(t, json.Unmarshal(b, &got), "%q -> %s", s, b)
		assert.Equal(t, strings.ToValidUTF8(s, "\ufffd"), got)
	}
	assert.Equal(t, `"<&>"`, string(AppendString(nil, "<&>")), "no HTML escaping")
	assert.Equal(t, `x"a\u2028"`, string(AppendString([]byte("x"), "a\u2028")))
}

func FuzzAppendString(f *testing.F) {
	f.Add("plain")
	f.Add("\xff\u2028\x00")
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(AppendString(nil, s), &got); err != nil {
			t.Fatalf("%q: invalid JSON: %v", s, err)
		}
		if got != strings.ToValidUTF8(s, "\ufffd") {
			t.Fatalf("%q round-tripped to %q", s, got)
		}
	})
}

package iothub

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateID(t *testing.T) {
	valid := []string{
		"a", "thermostat-17", "A1", "a#b?c%d", "-:.+%_#*?!(),=@;$'", strings.Repeat("x", 128), "...", ".a",
	}
	for _, id := range valid {
		assert.NoError(t, ValidateDeviceID(id), "device %q", id)
		assert.NoError(t, ValidateModuleID(id), "module %q", id)
	}
	invalid := []struct {
		id, want string
	}{
		{"", "invalid device id: it is empty"},
		{strings.Repeat("x", 129), "it is 129 characters long; IoT Hub allows at most 128"},
		{"a b", `character " " at position 2 is not allowed`},
		{"a/b", `character "/" at position 2`},
		{"tab\there", `character "\t" at position 4`},
		{"ümlaut", `character "ü" at position 1`},
		{"x\xffy", "byte 0xff at position 2"},
		{"a&b", `character "&"`},
		{"a~b", `character "~"`},
		{`a"b`, `character "\""`},
		{".", "it cannot be used in a URL path"},
		{"..", "it cannot be used in a URL path"},
	}
	for _, tc := range invalid {
		err := ValidateDeviceID(tc.id)
		require.Error(t, err, "%q", tc.id)
		var ie *InputError
		require.ErrorAs(t, err, &ie)
		assert.Equal(t, "device id", ie.Input)
		assert.Contains(t, err.Error(), tc.want)
		merr := ValidateModuleID(tc.id)
		require.Error(t, merr)
		assert.Contains(t, merr.Error(), "module id")
	}
	// A long id is shortened in the message.
	err := ValidateDeviceID(strings.Repeat("y", 300))
	assert.Less(t, len(err.Error()), 200)
}

func TestValidateMethodName(t *testing.T) {
	for _, name := range []string{"reboot", "firmwareUpdate", "a.b-c_d", "x!#%&'*+^`|~", strings.Repeat("m", 100)} {
		assert.NoError(t, ValidateMethodName(name), name)
	}
	cases := []struct{ name, want string }{
		{"", "invalid method name: it is empty"},
		{strings.Repeat("m", 101), "it is 101 characters long; dmctl allows at most 100"},
		{"re boot", "contains a space at position 3"},
		{"re\tboot", "not printable US-ASCII"},
		{"réboot", `character "é" at position 2 is not printable US-ASCII`},
		{"a\x7f", "not printable"},
	}
	for _, c := range strings.Split(`$ ( ) < > @ , ; : \ " / [ ] ? = { }`, " ") {
		cases = append(cases, struct{ name, want string }{"x" + c, "at position 2 is not allowed"})
	}
	for _, tc := range cases {
		err := ValidateMethodName(tc.name)
		require.Error(t, err, "%q", tc.name)
		var ie *InputError
		require.ErrorAs(t, err, &ie)
		assert.Equal(t, "method name", ie.Input)
		assert.Contains(t, err.Error(), tc.want, "%q", tc.name)
	}
}

func TestValidateRequest(t *testing.T) {
	cases := []struct {
		name           string
		req            MethodRequest
		resp, conn     int
		wantErrContain string
	}{
		{"defaults", MethodRequest{MethodName: "m"}, 30, 0, ""},
		{"bounds", MethodRequest{MethodName: "m", ResponseTimeout: 5 * time.Second, ConnectTimeout: 300 * time.Second}, 5, 300, ""},
		{"max response", MethodRequest{MethodName: "m", ResponseTimeout: 300*time.Second + 999*time.Millisecond}, 300, 0, ""},
		{"truncates", MethodRequest{MethodName: "m", ResponseTimeout: 5999 * time.Millisecond, ConnectTimeout: 1500 * time.Millisecond}, 5, 1, ""},
		{"too short after truncation", MethodRequest{MethodName: "m", ResponseTimeout: 4999 * time.Millisecond}, 0, 0, "response timeout"},
		{"negative response", MethodRequest{MethodName: "m", ResponseTimeout: -time.Second}, 0, 0, "response timeout"},
		{"connect too long", MethodRequest{MethodName: "m", ConnectTimeout: 301 * time.Second}, 0, 0, "connect timeout"},
		{"payload json values", MethodRequest{MethodName: "m", Payload: json.RawMessage(`[1,"a",null]`)}, 30, 0, ""},
		{"payload bad", MethodRequest{MethodName: "m", Payload: json.RawMessage(`{a:1}`)}, 0, 0, "payload: it is not valid JSON"},
		{"payload exactly max", MethodRequest{MethodName: "m", Payload: json.RawMessage(`"` + strings.Repeat("x", MaxPayloadBytes-2) + `"`)}, 30, 0, ""},
		{"method", MethodRequest{MethodName: "a:b"}, 0, 0, "method name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, c, err := validateRequest(tc.req)
			if tc.wantErrContain != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErrContain)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.resp, r)
			assert.Equal(t, tc.conn, c)
		})
	}
}

func TestErrorCodeName(t *testing.T) {
	assert.Equal(t, "DeviceNotOnline", ErrorCodeName(CodeDeviceNotOnline))
	assert.Equal(t, "GatewayTimeout", ErrorCodeName(CodeGatewayTimeout))
	assert.Equal(t, "", ErrorCodeName(123456))
	for name, code := range errorCodeNames {
		assert.Equal(t, name, ErrorCodeName(code), "codes are unique")
		assert.True(t, code >= 400000 && code < 600000, "%s %d", name, code)
	}
}

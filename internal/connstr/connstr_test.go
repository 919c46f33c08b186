package connstr

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	key = "ZG1jdGwtdGVzdC1rZXktMDEyMzQ1Njc4OQ==" // base64("dmctl-test-key-0123456789")
	sig = "SharedAccessSignature sr=h.azure-devices.net&sig=c2VjcmV0c2ln%3D&se=1700000000"
)

func TestParseService(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"canonical", "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + key},
		{"any order", "SharedAccessKey=" + key + ";HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner"},
		{"key case and blanks", " hostname=h.azure-devices.net ; sharedaccesskeyname=iothubowner;SHAREDACCESSKEY=" + key + ";"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseService(tt.in)
			require.NoError(t, err)
			assert.Equal(t, KindService, c.Kind)
			assert.Equal(t, "h.azure-devices.net", c.HostName)
			assert.Equal(t, "iothubowner", c.SharedAccessKeyName)
			assert.Equal(t, key, c.SharedAccessKey, "the key keeps its trailing '=' (split on the first '=')")
		})
	}
}

func TestParseDeviceAndModule(t *testing.T) {
	c, err := ParseDevice("HostName=h.azure-devices.net;DeviceId=dev-1;SharedAccessKey=" + key + ";GatewayHostName=edge:8883")
	require.NoError(t, err)
	assert.Equal(t, KindDevice, c.Kind)
	assert.Equal(t, "dev-1", c.DeviceID)
	assert.Equal(t, "edge:8883", c.GatewayHostName)

	c, err = ParseDevice("HostName=h.azure-devices.net;DeviceId=dev-1;ModuleId=mod;SharedAccessSignature=" + sig)
	require.NoError(t, err)
	assert.Equal(t, KindModule, c.Kind)
	assert.Equal(t, "mod", c.ModuleID)
	assert.Equal(t, sig, c.SharedAccessSignature, "a signature value keeps its own '=' signs")

	c, err = ParseDevice("HostName=h;DeviceId=d;x509=true")
	require.NoError(t, err)
	assert.True(t, c.X509)
}

// Every error names the key (or part) that is wrong, and never carries the secret.
func TestParseErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		parse func(string) (*ConnectionString, error)
		want  string
	}{
		{"empty", "  ", Parse, "it is empty"},
		{"no equals", "HostName=h;garbage;SharedAccessKey=" + key, Parse, "part 2 has no '='"},
		{"unknown key", "HostName=h;Color=blue;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, "part 2 has an unknown key (known keys: HostName, SharedAccessKeyName"},
		{"duplicate key", "HostName=h;hostname=g;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `key "HostName" appears more than once (parts 1 and 2)`},
		{"empty value", "HostName=;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `key "HostName" (part 1) has an empty value`},
		{"missing host", "SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `missing key "HostName"`},
		{"host is a URL", "HostName=https://h;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `key "HostName" (part 1) must be a host name with an optional :port: it looks like a URL`},
		{"gateway is a path", "HostName=h;DeviceId=d;SharedAccessKey=" + key + ";GatewayHostName=g/x", Parse, `key "GatewayHostName" (part 4) must be a host name with an optional :port: it contains a character other than`},
		{"key not base64", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=abc*def", Parse, `key "SharedAccessKey" (part 3) is not valid base64`},
		{"x509 not true", "HostName=h;DeviceId=d;x509=yes", Parse, `key "x509" (part 3) must be "true"`},
		{"module without device", "HostName=h;ModuleId=m;SharedAccessKey=" + key, Parse, `key "ModuleId" needs "DeviceId"`},
		{"service without policy", "HostName=h;SharedAccessKey=" + key, Parse, `missing key "SharedAccessKeyName"`},
		{"service without key", "HostName=h;SharedAccessKeyName=p", Parse, `missing key "SharedAccessKey"`},
		{"service key and signature", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key + ";SharedAccessSignature=" + sig, Parse, `keys "SharedAccessKey" and "SharedAccessSignature" cannot both be given`},
		{"service with gateway", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key + ";GatewayHostName=g", Parse, `key "GatewayHostName" belongs in a device connection string`},
		{"service with x509", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key + ";x509=true", Parse, `key "x509" belongs in a device connection string`},
		{"device with policy", "HostName=h;DeviceId=d;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `key "SharedAccessKeyName" belongs in a service connection string, not a device one`},
		{"device without credential", "HostName=h;DeviceId=d", Parse, `missing a credential: give one of "SharedAccessKey", "SharedAccessSignature" or "x509"`},
		{"device two credentials", "HostName=h;DeviceId=d;SharedAccessKey=" + key + ";x509=true", Parse, `give only one of "SharedAccessKey", "SharedAccessSignature" and "x509"`},
		{"service wanted", "HostName=h;DeviceId=d;SharedAccessKey=" + key, ParseService, "this is a device connection string; a service connection string"},
		{"module not service", "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=" + key, ParseService, "this is a module connection string"},
		{"device wanted", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key, ParseDevice, "this is a service connection string; a device connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.parse(tt.in)
			require.Error(t, err)
			assert.Nil(t, c)
			var ce *Error
			require.True(t, errors.As(err, &ce), "want *Error, got %T", err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "invalid connection string: "), err.Error())
			assert.NotContains(t, err.Error(), key)
			assert.NotContains(t, err.Error(), "c2VjcmV0c2ln")
		})
	}
}

// realKey is a 44-character key like the ones IoT Hub generates.
const realKey = "8H02KG1w5GAu7YMgj0qgUaNsQP0RxSUkHDaDxLg14f4="

// windows returns every 8-character substring of s.
func windows(s string) []string {
	var w []string
	for i := 0; i+8 <= len(s); i++ {
		w = append(w, s[i:i+8])
	}
	return w
}

func assertNoWindow(t *testing.T, msg, secret string) {
	t.Helper()
	for _, w := range windows(secret) {
		if strings.Contains(msg, w) {
			t.Fatalf("message contains %q, a piece of the secret: %s", w, msg)
		}
	}
}

// A key pasted anywhere in a malformed string never shows in the message,
// and the message says which part or key is wrong.
func TestParseErrorsNeverEchoAKey(t *testing.T) {
	const h = "HostName=h.azure-devices.net"
	const p = "SharedAccessKeyName=service"
	k := realKey
	tests := []struct{ name, in, want string }{
		{"colon separator", h + ";" + p + ";SharedAccessKey:" + k, "part 3 is not a known Key=Value pair (it starts like SharedAccessKey, but '=' must follow the key name)"},
		{"colon separator, any case", h + ";" + p + ";sharedaccesskey:" + k, "part 3 is not a known Key=Value pair (it starts like SharedAccessKey"},
		{"space separator", h + ";" + p + ";SharedAccessKey " + k, "part 3 is not a known Key=Value pair (it starts like SharedAccessKey"},
		{"space before =", h + ";" + p + ";SharedAccessKey x=" + k, "part 3 is not a known Key=Value pair (it starts like SharedAccessKey"},
		{"name colon separator", h + ";SharedAccessKeyName:" + k + ";SharedAccessKey=" + k, "part 2 is not a known Key=Value pair (it starts like SharedAccessKeyName"},
		{"bare key", h + ";" + p + ";" + k, "part 3 has an unknown key (known keys: "},
		{"bare key without padding", h + ";" + p + ";" + strings.TrimRight(k, "="), "part 3 has no '='"},
		{"key as a key name", h + ";" + p + ";" + k + "=x", "part 3 has an unknown key"},
		{"key in HostName", "HostName=" + k + ";" + p + ";SharedAccessKey=" + k, `key "HostName" (part 1) must be a host name`},
		{"truncated key in HostName", "HostName=" + k[:43] + ";" + p + ";SharedAccessKey=" + k, `key "HostName" (part 1) must be a host name with an optional :port: it looks like a key`},
		{"key in GatewayHostName", h + ";DeviceId=d;SharedAccessKey=" + k + ";GatewayHostName=" + k, `key "GatewayHostName" (part 4) must be a host name`},
		{"key as policy name", h + ";SharedAccessKeyName=" + k + ";SharedAccessKey=" + k, `key "SharedAccessKeyName" (part 2) must be a shared access policy name`},
		{"truncated key as policy name", h + ";SharedAccessKeyName=" + k[:42] + ";SharedAccessKey=" + k, `key "SharedAccessKeyName" (part 2) must be a shared access policy name: it looks like a key`},
		{"key as signature with key", h + ";" + p + ";SharedAccessKey=" + k + ";SharedAccessSignature=" + k, `keys "SharedAccessKey" and "SharedAccessSignature" cannot both be given`},
		{"key as x509", h + ";DeviceId=d;x509=" + k, `key "x509" (part 3) must be "true"`},
		{"key as module id", h + ";ModuleId=" + k + ";SharedAccessKey=" + k, `key "ModuleId" needs "DeviceId"`},
		{"duplicated key", h + ";" + p + ";SharedAccessKey=" + k + ";SharedAccessKey=" + k, `key "SharedAccessKey" appears more than once (parts 3 and 4)`},
		{"truncated base64", h + ";" + p + ";SharedAccessKey=" + k[:30], `key "SharedAccessKey" (part 3) is not valid base64`},
		{"key with a quote", h + ";" + p + ";SharedAccessKey=\"" + k + "\"", `key "SharedAccessKey" (part 3) is not valid base64`},
		{"unknown key holding the key", h + ";" + p + ";Key=" + k, "part 3 has an unknown key"},
		{"key after a known name and more letters", h + ";" + p + ";SharedAccessKeys=" + k, "part 3 has an unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseService(tt.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assertNoWindow(t, err.Error(), k)
			assert.Equal(t, err.Error(), Redact(err.Error()), "Redact leaves the message alone: it holds nothing secret")
		})
	}
}

func TestCheckHost(t *testing.T) {
	for _, ok := range []string{"h", "h.azure-devices.net", "my-hub.azure-devices.net", "edge:8883", "127.0.0.1", "127.0.0.1:40711",
		"localhost:1", "[::1]", "[::1]:8443", "[2001:db8::1]:443", "h:65535", "EDGE-1.example"} {
		assert.NoError(t, CheckHost(ok), ok)
	}
	tests := []struct{ in, want string }{
		{"", "it is empty"},
		{"https://h", "it looks like a URL"},
		{"h/x", "a character other than letters, digits, '-' and '.'"},
		{"h x", "a character other than"},
		{"h_x", "a character other than"},
		{"h=", "a character other than"},
		{"h:", "the port after ':' is empty"},
		{":443", "the host before ':' is empty"},
		{"h:0", "the port is not a number from 1 to 65535"},
		{"h:65536", "the port is not a number from 1 to 65535"},
		{"h:+80", "the port is not a number from 1 to 65535"},
		{"h:0000080", "the port is not a number from 1 to 65535"},
		{"::1", "more than one ':'"},
		{"[::1", "lacks its closing ']'"},
		{"[1.2.3.4]", "not an IPv6 address"},
		{"[zz]", "not an IPv6 address"},
		{"[::1]x", "only ':' and a port may follow"},
		{"[::1]:", "the port after ':' is empty"},
		{"256.1.1.1", "not a valid IPv4 address"},
		{"1.2.3", "not a valid IPv4 address"},
		{".h", "an empty label"},
		{"a..b", "an empty label"},
		{"h.", "an empty label"},
		{"-h.example", "starts or ends with '-'"},
		{"h-.example", "starts or ends with '-'"},
		{strings.Repeat("a", 64) + ".example", "longer than 63"},
		{strings.Repeat("a.", 127) + "aa", "longer than 253"},
		{strings.TrimRight(realKey, "=") + ".example", "it looks like a key"},
	}
	for _, tt := range tests {
		err := CheckHost(tt.in)
		if assert.Error(t, err, tt.in) {
			assert.Contains(t, err.Error(), tt.want, tt.in)
			if len(tt.in) >= 8 {
				assert.NotContains(t, err.Error(), tt.in, "the message never quotes the value")
			}
		}
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	svc, err := ParseService("SharedAccessKey=" + key + ";HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner")
	require.NoError(t, err)
	want := "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=REDACTED"
	assert.Equal(t, want, svc.Redacted())
	assert.Equal(t, want, svc.String())
	assert.Equal(t, want, fmtV(svc), "%v uses String, so accidental printing is safe")
	assert.Equal(t, "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey="+key, svc.Secret())

	mod, err := ParseDevice("HostName=h;DeviceId=d;ModuleId=m;SharedAccessSignature=" + sig)
	require.NoError(t, err)
	assert.Equal(t, "HostName=h;SharedAccessSignature=REDACTED;DeviceId=d;ModuleId=m", mod.Redacted())
	assert.NotContains(t, mod.Redacted(), "c2VjcmV0c2ln")

	round, err := Parse(svc.Secret())
	require.NoError(t, err)
	assert.Equal(t, svc, round, "Secret round-trips through Parse")
}

func fmtV(c *ConnectionString) string { return fmt.Sprintf("%v", c) }

func TestRedactFreeText(t *testing.T) {
	k := realKey
	tests := []struct{ in, want string }{
		{"HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key, "HostName=h;SharedAccessKeyName=p;SharedAccessKey=REDACTED"},
		{"sharedaccesskey=" + key + " trailing", "sharedaccesskey=REDACTED trailing"},
		{"Authorization: SharedAccessSignature sr=h&sig=abc%2B%3D&se=1&skn=p", "Authorization: SharedAccessSignature sr=h&sig=REDACTED&se=1&skn=p"},
		{"Authorization: Bearer eyJ0eXAi.payload.sig\nnext", "Authorization: Bearer REDACTED\nnext"},
		{`{"token":"Bearer abc"}`, `{"token":"Bearer REDACTED"}`},
		{"nothing secret here", "nothing secret here"},
		{"already SharedAccessKey=REDACTED", "already SharedAccessKey=REDACTED"},
		{"two: sig=aaa&x sig=bbb", "two: sig=REDACTED&x sig=REDACTED"},

		// Other separators and spellings of the key's name.
		{"HostName=h;SharedAccessKey:" + k, "HostName=h;SharedAccessKey:REDACTED"},
		{"SharedAccessKey: " + key + ";x", "SharedAccessKey: REDACTED;x"},
		{"HostName=h;SharedAccessKey " + k, "HostName=h;SharedAccessKey REDACTED"},
		{"SHAREDACCESSKEY = " + key, "SHAREDACCESSKEY = REDACTED"},
		{`{"SharedAccessKey": "` + key + `"}`, `{"SharedAccessKey": "REDACTED"}`},
		{"sharedAccessKey: '" + key + "'", "sharedAccessKey: 'REDACTED'"},
		{"SharedAccessSignature=SharedAccessSignature sr=h&sig=abc&se=1", "SharedAccessSignature=REDACTED sr=h&sig=REDACTED&se=1"},
		{"AccountKey=" + key + ";EndpointSuffix=core", "AccountKey=REDACTED;EndpointSuffix=core"},
		{"SharedAccessKeyName=iothubowner", "SharedAccessKeyName=iothubowner"},

		// Entra: token request bodies and responses.
		{"client_id=abc&client_secret=s3cr~et.x_y-z&grant_type=client_credentials", "client_id=abc&client_secret=REDACTED&grant_type=client_credentials"},
		{`{"token_type":"Bearer","access_token":"eyJhbGciOi.eyJhdWQi.c2ln","expires_in":3600}`, `{"token_type":"Bearer","access_token":"REDACTED","expires_in":3600}`},
		{`{"refresh_token": "0.AAAA-bbb", "id_token":"x.y.z"}`, `{"refresh_token": "REDACTED", "id_token":"REDACTED"}`},
		{"AZURE_CLIENT_SECRET=hunter2-hunter2", "AZURE_CLIENT_SECRET=REDACTED"},
		{"Authorization: Basic Y2xpZW50OnNlY3JldA==", "Authorization: Basic REDACTED"},
		{"password=p@ss&user=u", "password=REDACTED&user=u"},

		// A bare key, anywhere.
		{"part: " + k + " end", "part: REDACTED end"},
		{"x" + strings.TrimRight(k, "=") + "y", "REDACTED"},
		{"cannot read " + k[:43], "cannot read REDACTED"},

		// Prose and identifiers stay as they are.
		{"it starts like SharedAccessKey, but '=' must follow the key name", "it starts like SharedAccessKey, but '=' must follow the key name"},
		{"carries a SharedAccessSignature instead of a SharedAccessKey; dmctl needs the key", "carries a SharedAccessSignature instead of a SharedAccessKey; dmctl needs the key"},
		{`missing key "SharedAccessKey" (a service string)`, `missing key "SharedAccessKey" (a service string)`},
		{"the bearer token is not valid; sig is missing", "the bearer token is not valid; sig is missing"},
		{"Basic auth is off", "Basic auth is off"},
		{"trackingId b4f4c6b0e1a94f7fb9d0a3b4c5d6e7f8-G:0-TimeStamp:12/07/2026 03:30:35", "trackingId b4f4c6b0e1a94f7fb9d0a3b4c5d6e7f8-G:0-TimeStamp:12/07/2026 03:30:35"},
		{"device sim-000001 and 0b1b2ccf-2a64-4d58-b21c-6afbaecb9fac", "device sim-000001 and 0b1b2ccf-2a64-4d58-b21c-6afbaecb9fac"},
		{"sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		{"SHA256 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", "SHA256 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"},
		{"POST /twins/Thermostat0001Building7/modules/Telemetry42X/methods", "POST /twins/Thermostat0001Building7/modules/Telemetry42X/methods"},
		{"short Ab1+/Cd2=", "short Ab1+/Cd2="},
		{"--resume /tmp/TestInvokeResumeChecks3837797916/001/j: bad", "--resume /tmp/TestInvokeResumeChecks3837797916/001/j: bad"},
		{"journal runs/Rollout2024Batch7Firmware1x2y3z/abcDEF12345/j", "journal runs/Rollout2024Batch7Firmware1x2y3z/abcDEF12345/j"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Redact(tt.in), tt.in)
	}
}

func TestLooksLikeSecret(t *testing.T) {
	assert.True(t, LooksLikeSecret(realKey))
	assert.True(t, LooksLikeSecret(strings.TrimRight(realKey, "=")))
	assert.True(t, LooksLikeSecret("bKtnRwyd5nsvt/KqWpuCZipntXHQjneso4YHuRMIn4o="))
	assert.False(t, LooksLikeSecret(realKey[:39]), "too short")
	assert.False(t, LooksLikeSecret(strings.ToLower(realKey)), "no upper case")
	assert.False(t, LooksLikeSecret(realKey+"==="), "too much padding")
	assert.False(t, LooksLikeSecret("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"))
	assert.False(t, LooksLikeSecret("ThisIsALongCamelCaseIdentifierWithoutAnyDigits"))
	assert.True(t, LooksLikeSecret("BVoTLWaSFObKBd28153/jF1sW1q6MAje//YywtIDq/s="), "a key with '/' in it")
}

func TestKindString(t *testing.T) {
	assert.Equal(t, "service", KindService.String())
	assert.Equal(t, "device", KindDevice.String())
	assert.Equal(t, "module", KindModule.String())
	assert.Equal(t, "unknown", Kind(0).String())
}

// mixedBase64 reports whether w is base64 text mixing upper case, lower
// case and digits.
func mixedBase64(w string) bool {
	up, low, dig, _, ok := charClasses(w, "+/=")
	return ok && up && low && dig
}

func FuzzParse(f *testing.F) {
	f.Add("HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key)
	f.Add("HostName=h;SharedAccessKeyName=p;SharedAccessKey:" + realKey)
	f.Add("HostName=" + realKey + ";SharedAccessKeyName=p;SharedAccessKey=" + realKey)
	f.Add("HostName=[::1]:8443;DeviceId=d;SharedAccessKey=" + key + ";GatewayHostName=127.0.0.1:8883")
	f.Add("HostName=h;DeviceId=d;ModuleId=m;SharedAccessSignature=" + sig)
	f.Add(";;=;==")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			assert.Nil(t, c)
			// No key-like piece of the input (8 base64 characters mixing
			// upper case, lower case and digits) shows in the message.
			for _, w := range windows(s) {
				if mixedBase64(w) && strings.Contains(err.Error(), w) {
					t.Fatalf("message quotes %q from the input: %s", w, err)
				}
			}
			return
		}
		if c.SharedAccessKey != "" && c.SharedAccessKey != "REDACTED" {
			assert.NotContains(t, c.Redacted(), "SharedAccessKey="+c.SharedAccessKey+";")
		}
		again, err := Parse(c.Secret())
		require.NoError(t, err, "Secret of a parsed string must parse")
		assert.Equal(t, c, again)
	})
}

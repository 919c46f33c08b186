package iothub

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestParseErrorTestdata(t *testing.T) {
	cases := []struct {
		file     string
		status   int
		header   map[string]string
		code     int
		name     string
		message  string
		tracking string
	}{
		{
			file: "current_404103.json", status: 404,
			header:   map[string]string{"iothub-errorcode": "DeviceNotOnline", "x-ms-request-id": "8d3c1f6a-0000-4000-8000-000000000001"},
			code:     404103,
			name:     "DeviceNotOnline",
			message:  "The operation failed because the requested device isn't online or hasn't registered the direct method callback. To learn more, see https://aka.ms/iothub404103",
			tracking: "aa761f96c1a24e7e9b3a3bd6d5cb4bcd-G:3-TimeStamp:03/14/2024 09:54:49",
		},
		{
			file: "current_504101.json", status: 504,
			code: 504101, name: "GatewayTimeout",
			message:  "Timed out waiting for the response from device.",
			tracking: "5d3b7f0e2c8a4f0f9a3b1e6c2d7f8a90-G:8-TimeStamp:06/01/2019 10:12:33",
		},
		{
			file: "legacy_404103.json", status: 404,
			header: map[string]string{"iothub-errorcode": "DeviceNotOnline"},
			// no number in the body: it comes from the name
			code: 404103, name: "DeviceNotOnline",
			message:  "Timed out waiting for device to connect.",
			tracking: "66b8c2f1a0d94c7e8e2f4b1a9c3d5e7f-G:5-TimeStamp:01/18/2017 08:11:45",
		},
		{
			file: "legacy_401002.json", status: 401,
			code: 401002, name: "IotHubUnauthorizedAccess",
			message:  "Unauthorized",
			tracking: "2b11a2b6fb7a4d8a86e5a3db7f8cc8db-G:10-TimeStamp:03/31/2020 15:53:20",
		},
		{
			file: "bare_401.json", status: 401,
			message: "The specified SAS token has an invalid signature.",
		},
		{
			file: "bare_401.json", status: 401,
			header:  map[string]string{"iothub-errorcode": "IotHubUnauthorizedAccess"},
			code:    401002,
			name:    "IotHubUnauthorizedAccess",
			message: "The specified SAS token has an invalid signature.",
		},
		{
			file: "object_429001.json", status: 429,
			code: 429001, name: "ThrottlingException",
			message:  "Throttling: too many requests.",
			tracking: "0f1e2d3c4b5a69788796a5b4c3d2e1f0-G:2-TimeStamp:05/05/2025 12:00:00",
		},
		{
			file: "string_code_404001.json", status: 404,
			code: 404001, name: "DeviceNotFound",
			message:  "Device thermostat-17 not registered.",
			tracking: "c0ffee00c0ffee00c0ffee00c0ffee00-G:1-TimeStamp:02/02/2025 02:02:02",
		},
		{
			file: "proxy_502.html", status: 502,
			message: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
		},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			e := parseError(tc.status, h, readTestdata(t, tc.file), time.Now())
			require.NotNil(t, e)
			assert.Equal(t, tc.status, e.StatusCode)
			assert.Equal(t, tc.code, e.ErrorCode)
			assert.Equal(t, tc.name, e.ErrorCodeName)
			assert.Equal(t, tc.message, e.Message)
			assert.Equal(t, tc.tracking, e.TrackingID)
			assert.Equal(t, tc.header["x-ms-request-id"], e.RequestID)
		})
	}
}

// TestParseErrorKeepsTheMessage: the hub's message is kept as the hub sent
// it (one line); what looks like a secret is redacted where messages are
// shown (fleet's result errors, the CLI's stderr), not here.
func TestParseErrorKeepsTheMessage(t *testing.T) {
	e := parseError(401, nil, readTestdata(t, "secret_in_message.json"), time.Now())
	assert.Equal(t, 401002, e.ErrorCode)
	assert.Contains(t, e.Message, "sig=")
	assert.Equal(t, "deadbeefdeadbeefdeadbeefdeadbeef-G:0-TimeStamp:01/01/2024 00:00:00", e.TrackingID)
}

func TestParseErrorShapes(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    string
		code    int
		codeNm  string
		message string
	}{
		{"empty body uses status text", 503, "", 0, "", "Service Unavailable"},
		{"whitespace body", 500, "  \n", 0, "", "Internal Server Error"},
		{"inner object without wrapper", 404, `{"errorCode":404010,"trackingId":"t","message":"Module m not found"}`, 404010, "ModuleNotFound", "Module m not found"},
		{"lower-case message key", 400, `{"message":"ErrorCode:ArgumentInvalid;bad"}`, 400004, "ArgumentInvalid", "bad"},
		{"numeric legacy code", 429, `{"Message":"ErrorCode:429001;slow down"}`, 429001, "ThrottlingException", "slow down"},
		{"unknown json", 500, `{"error":{"code":"X"}}`, 0, "", `{"error":{"code":"X"}}`},
		{"json array", 500, `[1,2]`, 0, "", `[1,2]`},
		{"message is a number", 500, `{"Message":42}`, 0, "", "42"},
		{"escaped string not json", 400, `{"Message":"{not json"}`, 0, "", "{not json"},
		{"exception message only", 500, `{"ExceptionMessage":"it broke"}`, 0, "", "it broke"},
		{"errorCode garbage", 500, `{"Message":"{\"errorCode\":true,\"message\":\"m\"}"}`, 0, "", "m"},
		{"errorCode name as string", 404, `{"Message":"{\"errorCode\":\"DeviceNotFound\",\"message\":\"m\"}"}`, 404001, "DeviceNotFound", "m"},
		{"newlines flattened", 400, `{"Message":"line one\nline two"}`, 0, "", "line one line two"},
		{"code from name only when status matches", 500, `{"Message":"ErrorCode:ThrottlingException;odd"}`, 0, "ThrottlingException", "odd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := parseError(tc.status, nil, []byte(tc.body), time.Now())
			assert.Equal(t, tc.code, e.ErrorCode)
			assert.Equal(t, tc.codeNm, e.ErrorCodeName)
			assert.Equal(t, tc.message, e.Message)
		})
	}
}

func TestParseErrorNonJSONIsCut(t *testing.T) {
	body := strings.Repeat("é", 500)
	e := parseError(502, nil, []byte(body), time.Now())
	assert.Equal(t, strings.Repeat("é", 200)+"…", e.Message)
}

func TestParseErrorHeaders(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name  string
		value string
		want  time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"date in the past", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"zero", "0", 0},
		{"negative", "-3", 0},
		{"garbage", "soon", 0},
		{"absent", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.value != "" {
				h.Set("Retry-After", tc.value)
			}
			h.Set("iothub-errorcode", "ThrottlingException")
			h.Set("x-ms-request-id", "req-1")
			e := parseError(429, h, nil, now)
			assert.Equal(t, tc.want, e.RetryAfter)
			assert.Equal(t, 429001, e.ErrorCode, "code filled in from the header name")
			assert.Equal(t, "ThrottlingException", e.ErrorCodeName)
			assert.Equal(t, "req-1", e.RequestID)
			assert.Equal(t, "Too Many Requests", e.Message)
		})
	}
}

func TestResponseErrorMessage(t *testing.T) {
	e := parseError(404, nil, readTestdata(t, "current_404103.json"), time.Now())
	assert.Equal(t, "hub answered 404 404103 DeviceNotOnline: The operation failed because the requested device isn't online or hasn't registered the direct method callback. To learn more, see https://aka.ms/iothub404103 (tracking id aa761f96c1a24e7e9b3a3bd6d5cb4bcd-G:3-TimeStamp:03/14/2024 09:54:49)", e.Error())
}

// FuzzParseError feeds arbitrary bodies and headers to the error parser. It
// must never panic and must always produce a usable, one-line, redacted
// error.
func FuzzParseError(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	require.NoError(f, err)
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		f.Add(404, readTestdata(f, e.Name()), "DeviceNotOnline", "5")
	}
	f.Add(429, []byte(`{"Message":"{\"errorCode\":\"429001\"}"}`), "", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(500, []byte(`{"Message":null,"ExceptionMessage":"Tracking ID:`), "", "")
	f.Add(401, []byte(`{"Message":"Bearer eyJhbGciOi.secret.part sig=abc SharedAccessKey=xyz"}`), "IotHubUnauthorizedAccess", "")
	f.Fuzz(func(t *testing.T, status int, body []byte, codeName, retryAfter string) {
		h := http.Header{}
		h.Set("iothub-errorcode", codeName)
		h.Set("Retry-After", retryAfter)
		now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		e := parseError(status, h, body, now)
		require.NotNil(t, e)
		assert.Equal(t, status, e.StatusCode)
		assert.GreaterOrEqual(t, e.RetryAfter, time.Duration(0))
		for _, s := range []string{e.Message, e.TrackingID, e.ErrorCodeName, e.RequestID} {
			assert.True(t, utf8.ValidString(s), "valid UTF-8: %q", s)
			assert.NotContains(t, s, "\n")
		}
		assert.LessOrEqual(t, utf8.RuneCountInString(e.Message), maxMessageLen+1)
		_ = e.Error()
	})
}

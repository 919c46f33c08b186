package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/sas"
	"github.com/dmctl/dmctl/internal/testkit"
)

// testKeyB64 is vector C's key from the contract (§5.2).
const testKeyB64 = "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg="

// seen is one request as the test hub received it.
type seen struct {
	Method     string
	Path       string
	RawPath    string
	RequestURI string
	Query      map[string][]string
	Header     http.Header
	Body       []byte
}

// testHub is testkit's stub hub answering with the handler under test; it
// records every request.
type testHub struct{ *testkit.StubHub }

func newTestHub(t testing.TB, handler http.HandlerFunc) *testHub {
	t.Helper()
	return &testHub{testkit.NewStubHub(t, handler)}
}

func (h *testHub) host() string { return h.Addr() }

func (h *testHub) requests() []seen {
	var out []seen
	for _, r := range h.Requests() {
		out = append(out, seen{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RequestURI: r.RequestURI,
			Query: r.URL.Query(), Header: r.Header, Body: []byte(r.Body),
		})
	}
	return out
}

func (h *testHub) only(t *testing.T) seen {
	t.Helper()
	r := h.requests()
	require.Len(t, r, 1)
	return r[0]
}

func testKey(t testing.TB) []byte {
	t.Helper()
	k, err := sas.DecodeKey(testKeyB64)
	require.NoError(t, err)
	return k
}

func newSAS(t testing.TB, h *testHub, opts *ClientOptions) *Client {
	t.Helper()
	if opts == nil {
		opts = &ClientOptions{}
	}
	if opts.Transport == nil {
		opts.Transport = h.Client()
	}
	signer := sas.NewSigner(h.host(), "iothubowner", testKey(t), 0, nil)
	c, err := NewSASClient(h.host(), signer, opts)
	require.NoError(t, err)
	return c
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func okMethod(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("x-ms-request-id", "11111111-2222-3333-4444-555555555555")
	writeJSON(w, 200, `{"status":200,"payload":{"rebooting":true}}`)
}

func TestInvokeDeviceMethodRequest(t *testing.T) {
	h := newTestHub(t, okMethod)
	c := newSAS(t, h, nil)
	res, err := c.InvokeDeviceMethod(context.Background(), "thermostat-17", MethodRequest{
		MethodName:      "reboot",
		Payload:         json.RawMessage(`{"delay": 5, "note": "<a&b>"}`),
		ResponseTimeout: 45*time.Second + 900*time.Millisecond,
		ConnectTimeout:  10 * time.Second,
	})
	require.NoError(t, err)
	assert.Equal(t, 200, res.Status)
	assert.JSONEq(t, `{"rebooting":true}`, string(res.Payload))
	assert.Equal(t, "11111111-2222-3333-4444-555555555555", res.RequestID)

	r := h.only(t)
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, "/twins/thermostat-17/methods", r.Path)
	assert.Equal(t, []string{DefaultAPIVersion}, r.Query["api-version"])
	assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	assert.Equal(t, "application/json", r.Header.Get("Accept"))
	_, err = uuid.Parse(r.Header.Get("Request-Id"))
	assert.NoError(t, err, "Request-Id is a UUID")
	ua := r.Header.Get("User-Agent")
	assert.True(t, strings.HasPrefix(ua, "dmctl/"+Version+" "), "User-Agent %q", ua)
	assert.Contains(t, ua, "azsdk-go-iothub/v0.0.0-dev")

	// The SAS token verifies against the key and names the hub and policy.
	tok, err := sas.Parse(r.Header.Get("Authorization"))
	require.NoError(t, err)
	require.NoError(t, tok.Verify(testKey(t), time.Now()))
	assert.Equal(t, h.host(), tok.Resource)
	assert.Equal(t, "iothubowner", tok.KeyName)

	var body map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(r.Body, &body))
	assert.Len(t, body, 4)
	assert.JSONEq(t, `"reboot"`, string(body["methodName"]))
	assert.Equal(t, `{"delay":5,"note":"<a&b>"}`, string(body["payload"]), "payload compacted, not HTML-escaped")
	assert.Equal(t, "45", string(body["responseTimeoutInSeconds"]), "whole seconds, truncated")
	assert.Equal(t, "10", string(body["connectTimeoutInSeconds"]))
}

func TestInvokeDefaults(t *testing.T) {
	h := newTestHub(t, okMethod)
	c := newSAS(t, h, nil)
	_, err := c.InvokeDeviceMethod(context.Background(), "d1", MethodRequest{MethodName: "ping"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"methodName":"ping","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`, string(h.only(t).Body))
}

func TestInvokeModuleMethodAndEscaping(t *testing.T) {
	h := newTestHub(t, okMethod)
	c := newSAS(t, h, nil)
	// ids full of URL-significant characters that IoT Hub allows
	dev, mod := "a#b?c%d", "m;1=$+@,'!(*)"
	_, err := c.InvokeModuleMethod(context.Background(), dev, mod, MethodRequest{MethodName: "x"})
	require.NoError(t, err)
	r := h.only(t)
	assert.Equal(t, "/twins/"+dev+"/modules/"+mod+"/methods", r.Path, "ids arrive intact")
	assert.True(t, strings.HasPrefix(r.RequestURI, "/twins/a%23b%3Fc%25d/modules/"), "wire form %q", r.RequestURI)
	assert.NotEmpty(t, r.RawPath)
	assert.Equal(t, []string{DefaultAPIVersion}, r.Query["api-version"], "? in an id does not start the query")
}

func TestURLSetsPathAndRawPath(t *testing.T) {
	c := &Client{host: "h.example:1", apiVersion: "2021-04-12"}
	u := c.url([]string{"twins", "a#b?c%d", "methods"})
	assert.Equal(t, "/twins/a#b?c%d/methods", u.Path)
	assert.Equal(t, "/twins/a%23b%3Fc%25d/methods", u.RawPath)
	assert.Equal(t, "https://h.example:1/twins/a%23b%3Fc%25d/methods?api-version=2021-04-12", u.String())
}

func TestAPIVersionOverride(t *testing.T) {
	h := newTestHub(t, okMethod)
	c := newSAS(t, h, &ClientOptions{APIVersion: "2020-09-30"})
	_, err := c.InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
	require.NoError(t, err)

	// azcore's own APIVersion field works too when ours is empty.
	c2 := newSAS(t, h, &ClientOptions{ClientOptions: azcore.ClientOptions{APIVersion: "2019-10-01"}})
	_, err = c2.GetTwin(context.Background(), "d", "")
	require.NoError(t, err)

	r := h.requests()
	require.Len(t, r, 2)
	assert.Equal(t, []string{"2020-09-30"}, r[0].Query["api-version"])
	assert.Equal(t, []string{"2019-10-01"}, r[1].Query["api-version"])
}

type fakeCredential struct {
	mu     sync.Mutex
	calls  int
	scopes []string
}

func (f *fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.scopes = o.Scopes
	return azcore.AccessToken{Token: "fake-bearer-token-value", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestTokenClient(t *testing.T) {
	h := newTestHub(t, okMethod)
	cred := &fakeCredential{}
	c, err := NewTokenClient(h.host(), cred, &ClientOptions{ClientOptions: azcore.ClientOptions{Transport: h.Client()}})
	require.NoError(t, err)
	for range 2 {
		_, err = c.InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
		require.NoError(t, err)
	}
	for _, r := range h.requests() {
		assert.Equal(t, "Bearer fake-bearer-token-value", r.Header.Get("Authorization"))
	}
	assert.Equal(t, []string{TokenScope}, cred.scopes)
	assert.Equal(t, 1, cred.calls, "the token is cached between calls")
}

type failingCredential struct{}

func (failingCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("no credential configured")
}

func TestTokenFailureIsNotATransportError(t *testing.T) {
	h := newTestHub(t, okMethod)
	c, err := NewTokenClient(h.host(), failingCredential{}, &ClientOptions{ClientOptions: azcore.ClientOptions{Transport: h.Client()}})
	require.NoError(t, err)
	_, err = c.InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
	require.Error(t, err)
	var te *TransportError
	assert.False(t, errors.As(err, &te), "a credential failure is not a network failure: %v", err)
	assert.Contains(t, err.Error(), "no credential configured")
	assert.Empty(t, h.requests())
}

func TestDeviceStatusIsAResult(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, `{"status":500,"payload":"disk full"}`)
	})
	res, err := newSAS(t, h, nil).InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
	require.NoError(t, err)
	assert.Equal(t, 500, res.Status)
	assert.Equal(t, `"disk full"`, string(res.Payload))
}

func TestUnreadableSuccess(t *testing.T) {
	for name, body := range map[string]string{
		"html":           "<html>hello</html>",
		"truncated json": `{"status":200,"payl`,
		"no status":      `{"payload":{}}`,
		"status string":  `{"status":"200"}`,
		"empty":          ``,
	} {
		t.Run(name, func(t *testing.T) {
			h := newTestHub(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, body) })
			_, err := newSAS(t, h, nil).InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrUnreadableAnswer)
			assert.Contains(t, err.Error(), "could not read the hub's answer")
		})
	}
}

func TestErrorMappingThroughClient(t *testing.T) {
	cases := []struct {
		file   string
		status int
		header map[string]string
		code   int
		retry  time.Duration
	}{
		{"current_404103.json", 404, map[string]string{"iothub-errorcode": "DeviceNotOnline", "x-ms-request-id": "rid-1"}, 404103, 0},
		{"current_504101.json", 504, nil, 504101, 0},
		{"legacy_401002.json", 401, map[string]string{"iothub-errorcode": "IotHubUnauthorizedAccess"}, 401002, 0},
		{"object_429001.json", 429, map[string]string{"Retry-After": "3"}, 429001, 3 * time.Second},
		{"proxy_502.html", 502, nil, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			body := readTestdata(t, tc.file)
			h := newTestHub(t, func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write(body)
			})
			_, err := newSAS(t, h, nil).InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
			re, ok := AsResponseError(err)
			require.True(t, ok, "got %T %v", err, err)
			assert.Equal(t, tc.status, re.StatusCode)
			assert.Equal(t, tc.code, re.ErrorCode)
			assert.Equal(t, tc.retry, re.RetryAfter)
			assert.Equal(t, tc.header["x-ms-request-id"], re.RequestID)
			assert.NotEmpty(t, re.Message)
			assert.Len(t, h.requests(), 1, "one attempt, no azcore retry")
		})
	}
}

func TestNoAzcoreRetry(t *testing.T) {
	for _, status := range []int{408, 429, 500, 502, 503, 504} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			h := newTestHub(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "0")
				writeJSON(w, status, `{"Message":"nope"}`)
			})
			c := newSAS(t, h, &ClientOptions{ClientOptions: azcore.ClientOptions{
				// even a caller asking for retries gets exactly one attempt
				Retry: policy.RetryOptions{MaxRetries: 5, RetryDelay: time.Millisecond},
			}})
			_, err := c.InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
			re, ok := AsResponseError(err)
			require.True(t, ok)
			assert.Equal(t, status, re.StatusCode)
			_, err = c.GetTwin(context.Background(), "d", "")
			require.Error(t, err)
			assert.Len(t, h.requests(), 2, "one request per call")
		})
	}
}

type countingTransport struct {
	mu    sync.Mutex
	calls int
	do    func(*http.Request) (*http.Response, error)
}

func (c *countingTransport) Do(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.do(r)
}

func TestInvokeDeadline(t *testing.T) {
	var deadline time.Time
	tr := &countingTransport{do: func(r *http.Request) (*http.Response, error) {
		deadline, _ = r.Context().Deadline()
		return nil, errors.New("stop here")
	}}
	signer := sas.NewSigner("h", "p", []byte("k"), 0, nil)
	c, err := NewSASClient("127.0.0.1:1", signer, &ClientOptions{ClientOptions: azcore.ClientOptions{Transport: tr}})
	require.NoError(t, err)
	start := time.Now()
	_, err = c.InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m", ResponseTimeout: 20 * time.Second, ConnectTimeout: 7 * time.Second})
	var te *TransportError
	require.ErrorAs(t, err, &te)
	assert.False(t, te.RequestWritten)
	assert.Equal(t, 1, tr.calls, "a transport error is not retried by azcore")
	want := start.Add(20*time.Second + 7*time.Second + WireTime)
	assert.WithinDuration(t, want, deadline, time.Second)
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	h := newTestHub(t, okMethod) // only for its TLS client
	signer := sas.NewSigner(addr, "p", testKey(t), 0, nil)
	c, err := NewSASClient(addr, signer, &ClientOptions{ClientOptions: azcore.ClientOptions{Transport: h.Client()}})
	require.NoError(t, err)
	_, err = c.InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
	var te *TransportError
	require.ErrorAs(t, err, &te, "got %T %v", err, err)
	assert.False(t, te.RequestWritten)
	assert.Contains(t, err.Error(), "could not send the request")
	assert.NotContains(t, err.Error(), "sig=", "no token in the error")
}

func TestConnectionDroppedAfterWrite(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
		// The whole request has been read; drop the connection unanswered.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	_, err := newSAS(t, h, nil).InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m", Payload: json.RawMessage(`{"x":1}`)})
	var te *TransportError
	require.ErrorAs(t, err, &te, "got %T %v", err, err)
	assert.True(t, te.RequestWritten)
	assert.Contains(t, err.Error(), "connection lost after the request was sent")
	assert.Len(t, h.requests(), 1, "net/http does not resend a written POST")
}

func TestContextDeadlineAfterWrite(t *testing.T) {
	release := make(chan struct{})
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := newSAS(t, h, nil).InvokeDeviceMethod(ctx, "d", MethodRequest{MethodName: "m"})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var te *TransportError
	require.ErrorAs(t, err, &te)
	assert.True(t, te.RequestWritten)
}

func TestContextCancelledBeforeSend(t *testing.T) {
	h := newTestHub(t, okMethod)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newSAS(t, h, nil).InvokeDeviceMethod(ctx, "d", MethodRequest{MethodName: "m"})
	assert.ErrorIs(t, err, context.Canceled)
	var te *TransportError
	require.ErrorAs(t, err, &te)
	assert.False(t, te.RequestWritten)
	assert.Empty(t, h.requests())
}

func TestInputErrorsSendNothing(t *testing.T) {
	h := newTestHub(t, okMethod)
	c := newSAS(t, h, nil)
	ctx := context.Background()
	cases := []struct {
		name  string
		call  func() error
		input string
	}{
		{"bad device", func() error {
			_, err := c.InvokeDeviceMethod(ctx, "bad id", MethodRequest{MethodName: "m"})
			return err
		}, "device id"},
		{"bad module", func() error {
			_, err := c.InvokeModuleMethod(ctx, "d", "m/x", MethodRequest{MethodName: "m"})
			return err
		}, "module id"},
		{"bad method", func() error { _, err := c.InvokeDeviceMethod(ctx, "d", MethodRequest{MethodName: "a b"}); return err }, "method name"},
		{"bad payload", func() error {
			_, err := c.InvokeDeviceMethod(ctx, "d", MethodRequest{MethodName: "m", Payload: json.RawMessage(`{"a":`)})
			return err
		}, "payload"},
		{"payload too big", func() error {
			big := json.RawMessage(`"` + strings.Repeat("x", MaxPayloadBytes) + `"`)
			_, err := c.InvokeDeviceMethod(ctx, "d", MethodRequest{MethodName: "m", Payload: big})
			return err
		}, "payload"},
		{"response timeout too short", func() error {
			_, err := c.InvokeDeviceMethod(ctx, "d", MethodRequest{MethodName: "m", ResponseTimeout: 4 * time.Second})
			return err
		}, "response timeout"},
		{"response timeout too long", func() error {
			_, err := c.InvokeDeviceMethod(ctx, "d", MethodRequest{MethodName: "m", ResponseTimeout: 301 * time.Second})
			return err
		}, "response timeout"},
		{"negative connect timeout", func() error {
			_, err := c.InvokeDeviceMethod(ctx, "d", MethodRequest{MethodName: "m", ConnectTimeout: -time.Second})
			return err
		}, "connect timeout"},
		{"twin device", func() error { _, err := c.GetTwin(ctx, "", ""); return err }, "device id"},
		{"twin module", func() error { _, err := c.GetTwin(ctx, "d", "é"); return err }, "module id"},
		{"empty query", func() error { _, err := c.NewQueryPager("  ", nil).NextPage(ctx); return err }, "query"},
		{"negative page size", func() error {
			_, err := c.NewQueryPager("SELECT * FROM devices", &QueryOptions{PageSize: -1}).NextPage(ctx)
			return err
		}, "page size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ie *InputError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, tc.input, ie.Input)
			assert.Contains(t, err.Error(), tc.input)
		})
	}
	assert.Empty(t, h.requests())
}

func TestGetTwin(t *testing.T) {
	twin := `{"deviceId":"d#1","etag":"AAAA","properties":{"desired":{"$version":1},"reported":{"$version":2}}}`
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/twins/d#1":
			writeJSON(w, 200, twin)
		case "/twins/d#1/modules/m1":
			writeJSON(w, 200, `{"deviceId":"d#1","moduleId":"m1"}`)
		case "/twins/broken":
			writeJSON(w, 200, `not json`)
		default:
			w.Header().Set("iothub-errorcode", "DeviceNotFound")
			writeJSON(w, 404, `{"Message":"{\"errorCode\":404001,\"trackingId\":\"t1\",\"message\":\"Device not found\"}","ExceptionMessage":""}`)
		}
	})
	c := newSAS(t, h, nil)
	ctx := context.Background()

	got, err := c.GetTwin(ctx, "d#1", "")
	require.NoError(t, err)
	assert.JSONEq(t, twin, string(got))

	got, err = c.GetTwin(ctx, "d#1", "m1")
	require.NoError(t, err)
	assert.JSONEq(t, `{"deviceId":"d#1","moduleId":"m1"}`, string(got))

	_, err = c.GetTwin(ctx, "broken", "")
	assert.ErrorIs(t, err, ErrUnreadableAnswer)

	_, err = c.GetTwin(ctx, "missing", "")
	re, ok := AsResponseError(err)
	require.True(t, ok)
	assert.Equal(t, CodeDeviceNotFound, re.ErrorCode)
	assert.Equal(t, "t1", re.TrackingID)

	r := h.requests()
	require.Len(t, r, 4)
	for _, x := range r {
		assert.Equal(t, http.MethodGet, x.Method)
		assert.Empty(t, x.Body)
		assert.Empty(t, x.Header.Get("Content-Type"))
		assert.NotEmpty(t, x.Header.Get("Request-Id"))
	}
	assert.True(t, strings.HasPrefix(r[0].RequestURI, "/twins/d%231?api-version="), r[0].RequestURI)
	assert.True(t, strings.HasPrefix(r[1].RequestURI, "/twins/d%231/modules/m1?api-version="), r[1].RequestURI)
}

func TestQueryPager(t *testing.T) {
	pages := map[string]struct {
		body string
		next string
	}{
		"":         {`[{"deviceId":"a"},{"deviceId":"b"}]`, "tok-1"},
		"tok-1":    {`[{"deviceId":"c"},{"deviceId":"d"}]`, "tok 2/+="},
		"tok 2/+=": {`[{"deviceId":"e"}]`, ""},
	}
	failNext := true
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("x-ms-continuation")
		if tok == "tok-1" && failNext {
			failNext = false
			writeJSON(w, 503, `{"Message":"busy"}`)
			return
		}
		p, ok := pages[tok]
		if !ok {
			writeJSON(w, 400, `{"Message":"bad token"}`)
			return
		}
		w.Header().Set("x-ms-item-type", "twin")
		if p.next != "" {
			w.Header().Set("x-ms-continuation", p.next)
		}
		writeJSON(w, 200, p.body)
	})
	c := newSAS(t, h, nil)
	ctx := context.Background()
	// The retry hook sees each fetch: the injected 503 is fetched again.
	var errs int
	again := func(ctx context.Context, fetch func(context.Context) error) error {
		for {
			err := fetch(ctx)
			if err == nil {
				return nil
			}
			errs++
			if errs > 1 {
				return err
			}
		}
	}
	pager := c.NewQueryPager("SELECT * FROM devices WHERE tags.site = 'x'", &QueryOptions{PageSize: 2, Retry: again})

	var ids []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		require.NoError(t, err)
		assert.Equal(t, "twin", page.ItemType)
		for _, it := range page.Items {
			var v struct{ DeviceID string }
			require.NoError(t, json.Unmarshal(it, &v))
			ids = append(ids, v.DeviceID)
		}
	}
	assert.Equal(t, []string{"a", "b", "c", "d", "e"}, ids)
	assert.Equal(t, 1, errs)
	_, err := pager.NextPage(ctx)
	assert.Error(t, err, "no pages after the last")

	r := h.requests()
	require.Len(t, r, 4)
	wantTokens := []string{"", "tok-1", "tok-1", "tok 2/+="}
	for i, x := range r {
		assert.Equal(t, http.MethodPost, x.Method)
		assert.Equal(t, "/devices/query", x.Path)
		assert.Equal(t, []string{DefaultAPIVersion}, x.Query["api-version"])
		assert.Equal(t, "2", x.Header.Get("x-ms-max-item-count"))
		assert.Equal(t, wantTokens[i], x.Header.Get("x-ms-continuation"))
		assert.Equal(t, "application/json; charset=utf-8", x.Header.Get("Content-Type"))
		assert.JSONEq(t, `{"query":"SELECT * FROM devices WHERE tags.site = 'x'"}`, string(x.Body))
	}
}

func TestQueryPagerEdges(t *testing.T) {
	t.Run("empty continuation header ends", func(t *testing.T) {
		h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("x-ms-continuation", "")
			writeJSON(w, 200, `[]`)
		})
		p := newSAS(t, h, nil).NewQueryPager("SELECT * FROM devices", nil)
		page, err := p.NextPage(context.Background())
		require.NoError(t, err)
		assert.Empty(t, page.Items)
		assert.False(t, p.More())
		assert.Empty(t, h.only(t).Header.Values("x-ms-max-item-count"), "no page size sent when 0")
	})
	t.Run("object instead of array", func(t *testing.T) {
		h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{"items":[]}`) })
		p := newSAS(t, h, nil).NewQueryPager("SELECT * FROM devices", nil)
		_, err := p.NextPage(context.Background())
		assert.ErrorIs(t, err, ErrUnreadableAnswer)
		assert.False(t, p.More(), "azcore's pager stops after a failed page (resends happen inside the fetch)")
	})
	t.Run("hub error", func(t *testing.T) {
		h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 400, `{"Message":"ErrorCode:ArgumentInvalid;Query is malformed"}`)
		})
		_, err := newSAS(t, h, nil).NewQueryPager("SELEC", nil).NextPage(context.Background())
		re, ok := AsResponseError(err)
		require.True(t, ok)
		assert.Equal(t, CodeArgumentInvalid, re.ErrorCode)
	})
}

// logTo sends azcore's request and response events to buf for the test.
func logTo(t *testing.T, buf *bytes.Buffer) {
	var mu sync.Mutex
	azlog.SetEvents(azlog.EventRequest, azlog.EventResponse, azlog.EventResponseError)
	azlog.SetListener(func(e azlog.Event, msg string) {
		mu.Lock()
		defer mu.Unlock()
		buf.WriteString("[" + string(e) + "] " + msg + "\n")
	})
	t.Cleanup(func() { azlog.SetListener(nil) })
}

// TestDebugOutputHasNoCredential: with Debug, azcore's logging policy shows
// each request and answer with their bodies and IoT Hub's headers, and
// never the Authorization header (a SAS token or a bearer token). Secrets a
// body may hold are the --debug writer's to redact (internal/cli).
func TestDebugOutputHasNoCredential(t *testing.T) {
	h := newTestHub(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-request-id", "rid-9")
		writeJSON(w, 200, `{"status":200,"payload":{"echo":1}}`)
	})
	var buf bytes.Buffer
	logTo(t, &buf)
	c := newSAS(t, h, &ClientOptions{Debug: true})
	signer := sas.NewSigner(h.host(), "iothubowner", testKey(t), 0, nil)
	tok, err := sas.Parse(signer.Token())
	require.NoError(t, err)

	_, err = c.InvokeDeviceMethod(context.Background(), "a#b", MethodRequest{MethodName: "rotate", Payload: json.RawMessage(`{"a":1}`)})
	require.NoError(t, err)
	out := buf.String()
	assert.Contains(t, out, "POST https://"+h.host()+"/twins/a%23b/methods?api-version="+DefaultAPIVersion)
	assert.Regexp(t, `(?m)^\s*Authorization: REDACTED$`, out)
	assert.Contains(t, out, `"methodName":"rotate"`)
	assert.Contains(t, out, "rid-9", "IoT Hub's request id header is shown")
	assert.Contains(t, out, `"status":200`)
	assert.NotContains(t, out, tok.Signature)
	assert.NotContains(t, out, "SharedAccessSignature sr=")

	// Without Debug nothing is logged, listener or not.
	buf.Reset()
	quiet := newSAS(t, h, nil)
	_, err = quiet.InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
	require.NoError(t, err)
	assert.NotContains(t, buf.String(), `"methodName":"m"`)

	// Bearer tokens are hidden too.
	buf.Reset()
	tc, err := NewTokenClient(h.host(), &fakeCredential{}, &ClientOptions{Debug: true, ClientOptions: azcore.ClientOptions{Transport: h.Client()}})
	require.NoError(t, err)
	_, _ = tc.GetTwin(context.Background(), "d", "")
	out = buf.String()
	assert.Contains(t, out, "GET https://"+h.host()+"/twins/d?api-version=")
	assert.NotContains(t, out, "fake-bearer-token-value")
}

func TestVersionInUserAgent(t *testing.T) {
	cases := map[string]string{
		"0.0.0-dev":          "v0.0.0-dev",
		"v1.2.3":             "v1.2.3",
		"1.2.3+abc":          "v1.2.3",
		"1.2.3-4-gabcdef":    "v1.2.3-4-gabcdef",
		"dev":                "v0.0.0-dev",
		"":                   "v0.0.0-dev",
		"(devel)":            "v0.0.0-dev",
		"1.2":                "v0.0.0-dev",
		" v2.0.0-rc.1 ":      "v2.0.0-rc.1",
		"1.0.0-with space":   "v0.0.0-dev",
		"1.0.0-β":            "v0.0.0-dev",
		"10.20.30-alpha_1.x": "v10.20.30-alpha_1.x",
	}
	for in, want := range cases {
		assert.Equal(t, want, moduleVersion(in), "moduleVersion(%q)", in)
	}

	// Any Version string builds a client with telemetry on.
	old := Version
	t.Cleanup(func() { Version = old })
	h := newTestHub(t, okMethod)
	for _, v := range []string{"0.0.0-dev", "dev build", "1.4.0"} {
		Version = v
		c := newSAS(t, h, nil)
		_, err := c.InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
		require.NoError(t, err, "Version %q", v)
	}
	r := h.requests()
	require.Len(t, r, 3)
	assert.True(t, strings.HasPrefix(r[0].Header.Get("User-Agent"), "dmctl/0.0.0-dev azsdk-go-iothub/v0.0.0-dev "), r[0].Header.Get("User-Agent"))
	assert.True(t, strings.HasPrefix(r[1].Header.Get("User-Agent"), "dmctl/dev/build azsdk-go-iothub/v0.0.0-dev "), r[1].Header.Get("User-Agent"))
	assert.True(t, strings.HasPrefix(r[2].Header.Get("User-Agent"), "dmctl/1.4.0 azsdk-go-iothub/v1.4.0 "), r[2].Header.Get("User-Agent"))
}

func TestNewClientArguments(t *testing.T) {
	signer := sas.NewSigner("h", "p", []byte("k"), 0, nil)
	for _, host := range []string{"", "https://myhub.azure-devices.net", "hub/path", "a b", "user@hub", "hub:port:x", ":443"} {
		_, err := NewSASClient(host, signer, nil)
		var ie *InputError
		assert.ErrorAs(t, err, &ie, "host %q", host)
	}
	for _, host := range []string{"myhub.azure-devices.net", "127.0.0.1:8443", "localhost:1", "[::1]:8443"} {
		c, err := NewSASClient(host, signer, nil)
		require.NoError(t, err, host)
		assert.Equal(t, host, c.Host())
	}
	_, err := NewSASClient("h", nil, nil)
	assert.Error(t, err)
	_, err = NewTokenClient("h", nil, nil)
	assert.Error(t, err)
}

func TestTelemetryDisabled(t *testing.T) {
	h := newTestHub(t, okMethod)
	c := newSAS(t, h, &ClientOptions{ClientOptions: azcore.ClientOptions{Telemetry: policy.TelemetryOptions{Disabled: true}}})
	_, err := c.InvokeDeviceMethod(context.Background(), "d", MethodRequest{MethodName: "m"})
	require.NoError(t, err)
	assert.NotContains(t, h.only(t).Header.Get("User-Agent"), "azsdk-go")
}

// BenchmarkInvokeDeviceMethod measures one direct-method call through the
// whole client (pipeline, SAS header, JSON both ways) against a loopback TLS
// server over a kept-alive connection.
func BenchmarkInvokeDeviceMethod(b *testing.B) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writeJSON(w, 200, `{"status":200,"payload":{"ok":true}}`)
	}))
	defer srv.Close()
	host := srv.Listener.Addr().String()
	key, _ := sas.DecodeKey(testKeyB64)
	c, err := NewSASClient(host, sas.NewSigner(host, "iothubowner", key, 0, nil),
		&ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.Client()}})
	if err != nil {
		b.Fatal(err)
	}
	req := MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"delay":5}`)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.InvokeDeviceMethod(ctx, "thermostat-17", req)
		if err != nil || res.Status != 200 {
			b.Fatalf("status %d err %v", res.Status, err)
		}
	}
}

// stubTransport answers every request at once with a canned method result,
// without a network, so BenchmarkInvokeDeviceMethodPipeline measures the
// client's own work: request building, the azcore policies and parsing.
type stubTransport struct{ body []byte }

func (s stubTransport) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return &http.Response{
		StatusCode:    200,
		Header:        http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Ms-Request-Id": {"rid"}},
		Body:          io.NopCloser(bytes.NewReader(s.body)),
		ContentLength: int64(len(s.body)),
		Request:       r,
	}, nil
}

// BenchmarkInvokeDeviceMethodPipeline is BenchmarkInvokeDeviceMethod
// without the network: the CPU the client adds to every call.
func BenchmarkInvokeDeviceMethodPipeline(b *testing.B) {
	key, _ := sas.DecodeKey(testKeyB64)
	c, err := NewSASClient("127.0.0.1:1", sas.NewSigner("127.0.0.1:1", "iothubowner", key, 0, nil),
		&ClientOptions{ClientOptions: azcore.ClientOptions{Transport: stubTransport{body: []byte(`{"status":200,"payload":{"ok":true}}`)}}})
	if err != nil {
		b.Fatal(err)
	}
	req := MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"delay":5}`)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.InvokeDeviceMethod(ctx, "thermostat-17", req)
		if err != nil || res.Status != 200 {
			b.Fatalf("status %d err %v", res.Status, err)
		}
	}
}

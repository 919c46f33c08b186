package iothub

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/google/uuid"

	"github.com/dmctl/dmctl/internal/jsontext"
	"github.com/dmctl/dmctl/internal/sas"
)

// Version is dmctl's version as sent in the User-Agent ("dmctl/<Version>").
// Release builds set it with
// -ldflags "-X github.com/dmctl/dmctl/internal/iothub.Version=1.2.3".
// Any text works: azcore wants a semver-shaped module version, so a value
// that is not one is sent as v0.0.0-dev in the azcore part of the header.
var Version = "0.0.0-dev"

// ReadTimeout bounds one twin read or query page when the caller's context
// has no earlier deadline, so a hub that never answers cannot hang a read.
const ReadTimeout = 60 * time.Second

// moduleName is what azcore's telemetry and tracing call this client.
const moduleName = "dmctl/iothub"

// ClientOptions configures a Client. A nil *ClientOptions means defaults.
type ClientOptions struct {
	// ClientOptions holds azcore's settings (Transport, Logging, Telemetry,
	// PerCallPolicies, ...). Its Retry field is ignored: the client always
	// makes exactly one attempt, and internal/retry decides about resending.
	// Its APIVersion is used when the APIVersion below is empty.
	azcore.ClientOptions

	// APIVersion is the api-version query parameter; "" means DefaultAPIVersion.
	APIVersion string

	// Debug logs every request and response, bodies included, through
	// azcore's logging policy to the process's azcore log listener
	// (log.EventRequest, log.EventResponse): a header is shown only when it
	// is on DebugHeaders (Authorization never is: azcore shows REDACTED),
	// and of the query only api-version.
	Debug bool
}

// Client calls the IoT Hub service REST API of one hub. It is safe for
// concurrent use.
type Client struct {
	host       string
	apiVersion string
	query      string // "api-version=" + the escaped apiVersion
	pl         runtime.Pipeline
	lastBody   atomic.Pointer[encodedMethod]
}

// NewSASClient returns a client that sends Authorization: <signer.Token()>
// on every attempt (the signer re-signs before the token expires). host is
// the hub's host name, optionally with :port, e.g. "myhub.azure-devices.net"
// or "127.0.0.1:8443".
func NewSASClient(host string, signer *sas.Signer, opts *ClientOptions) (*Client, error) {
	if signer == nil {
		return nil, errors.New("iothub: NewSASClient needs a SAS signer")
	}
	return newClient(host, sasPolicy{signer: signer}, opts)
}

// NewTokenClient returns a client that sends an Entra ID bearer token for
// TokenScope, from runtime.NewBearerTokenPolicy (a per-retry policy, so every
// attempt carries a fresh token).
func NewTokenClient(host string, cred azcore.TokenCredential, opts *ClientOptions) (*Client, error) {
	if cred == nil {
		return nil, errors.New("iothub: NewTokenClient needs a token credential")
	}
	return newClient(host, runtime.NewBearerTokenPolicy(cred, []string{TokenScope}, nil), opts)
}

func newClient(host string, auth policy.Policy, opts *ClientOptions) (*Client, error) {
	if err := checkHost(host); err != nil {
		return nil, err
	}
	var o ClientOptions
	if opts != nil {
		o = *opts
	}
	cp := o.ClientOptions // a copy: the caller's options stay untouched
	apiVersion := o.APIVersion
	if apiVersion == "" {
		apiVersion = cp.APIVersion
	}
	if apiVersion == "" {
		apiVersion = DefaultAPIVersion
	}
	cp.APIVersion = "" // we set api-version ourselves
	cp.Retry = policy.RetryOptions{MaxRetries: -1}
	next := cp.Transport
	if next == nil {
		next = defaultTransport()
	}
	cp.Transport = &tracingTransport{next: next}
	if cp.Telemetry.ApplicationID == "" {
		cp.Telemetry.ApplicationID = "dmctl/" + strings.TrimSpace(Version)
	}
	perRetry := []policy.Policy{attemptPolicy{auth: auth}}
	if o.Debug {
		cp.Logging.IncludeBody = true
		cp.Logging.AllowedHeaders = append(append([]string(nil), cp.Logging.AllowedHeaders...), DebugHeaders...)
		cp.Logging.AllowedQueryParams = append(append([]string(nil), cp.Logging.AllowedQueryParams...), "api-version")
	}
	ac, err := azcore.NewClient(moduleName, moduleVersion(Version), runtime.PipelineOptions{PerRetry: perRetry}, &cp)
	if err != nil {
		return nil, fmt.Errorf("iothub: %w", err)
	}
	return &Client{
		host:       host,
		apiVersion: apiVersion,
		query:      "api-version=" + url.QueryEscape(apiVersion),
		pl:         ac.Pipeline(),
	}, nil
}

var semverShape = regexp.MustCompile(`^v\d+\.\d+\.\d+(?:-[a-zA-Z0-9_.-]+)?$`)

// moduleVersion turns Version into the "vX.Y.Z[-pre]" shape azcore
// validates when telemetry is on. Build metadata (+...) is dropped; anything
// else unusable becomes v0.0.0-dev.
func moduleVersion(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if i := strings.IndexByte(v, '+'); i >= 0 {
		v = v[:i]
	}
	if semverShape.MatchString("v" + v) {
		return "v" + v
	}
	return "v0.0.0-dev"
}

// checkHost accepts "name" or "name:port", nothing more.
func checkHost(host string) error {
	bad := func(reason string) error {
		return &InputError{Input: "hub host", Value: host, Reason: reason}
	}
	if host == "" {
		return &InputError{Input: "hub host", Reason: "it is empty"}
	}
	if strings.Contains(host, "://") {
		return bad("give the host name only (and an optional :port), not a URL")
	}
	if strings.ContainsAny(host, "/?#@ \t\r\n\\") {
		return bad("a host name cannot contain / ? # @ \\ or spaces")
	}
	u, err := url.Parse("https://" + host)
	if err != nil || u.Host != host || u.Hostname() == "" {
		return bad("it is not a host name with an optional :port")
	}
	return nil
}

// Host returns the hub host the client talks to (with :port if one was given).
func (c *Client) Host() string { return c.host }

// newRequestID returns a random (version 4) UUID for the Request-Id header.
// It only correlates a call with the hub's logs, so its bits come from
// math/rand/v2's generator (ChaCha8, seeded by the runtime) instead of a
// getrandom system call per call as uuid.NewString makes.
func newRequestID() string {
	var u uuid.UUID
	binary.LittleEndian.PutUint64(u[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant RFC 4122
	return u.String()
}

// acceptJSON is every request's Accept header. Header values are only ever
// replaced, never written into, and one element has no room to append.
var acceptJSON = []string{"application/json"}

// attemptPolicy puts the call's query back on the URL of each attempt (see
// sendURL) and then runs the authorization policy.
type attemptPolicy struct{ auth policy.Policy }

func (p attemptPolicy) Do(req *policy.Request) (*http.Response, error) {
	if st := callStateFrom(req.Raw().Context()); st != nil && st.query != "" {
		req.Raw().URL.RawQuery = st.query
	}
	return p.auth.Do(req)
}

// sasPolicy sets the Authorization header from a SAS signer on every attempt.
type sasPolicy struct{ signer *sas.Signer }

func (p sasPolicy) Do(req *policy.Request) (*http.Response, error) {
	req.Raw().Header.Set("Authorization", p.signer.Token())
	return req.Next()
}

// send makes one attempt through the pipeline and returns the response with
// its body already read. Errors that happen on or after the network come
// back as *TransportError; errors before it (a credential that cannot get a
// token) come back as they are.
func (c *Client) send(ctx context.Context, method string, segments []string, header http.Header, body []byte) (*http.Response, []byte, error) {
	return c.sendURL(ctx, method, c.url(segments), header, body)
}

// sendURL is send for a URL built by the caller (c.url plus more query
// parameters). It takes u over: the request uses it as it is, and its
// RawQuery moves into the call's state.
func (c *Client) sendURL(ctx context.Context, method string, u *url.URL, header http.Header, body []byte) (*http.Response, []byte, error) {
	// The query travels in the call's state and joins the URL in
	// attemptPolicy, after azcore's retry policy: that policy formats a
	// sanitized copy of the URL for its log on every attempt (whether or not
	// anything logs), and a URL without a query makes that cheap.
	st := &callState{body: body, query: u.RawQuery}
	u.RawQuery = ""
	ctx = withCallState(ctx, st)
	h := make(http.Header, 8) // room for every header a call carries
	raw := (&http.Request{
		Method:     method,
		URL:        u, // Path and RawPath both set: ids holding # ? % / arrive as they are
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       u.Host,
	}).WithContext(ctx)
	req, err := runtime.NewRequestFromRequest(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("iothub: build request: %w", err)
	}
	h["Accept"] = acceptJSON
	h["Request-Id"] = []string{newRequestID()}
	for k, v := range header {
		h[k] = v
	}
	if body != nil {
		st.pipelineBody.Reset(body)
		if err := req.SetBody(streaming.NopCloser(&st.pipelineBody), "application/json; charset=utf-8"); err != nil {
			return nil, nil, fmt.Errorf("iothub: set request body: %w", err)
		}
	}
	resp, err := c.pl.Do(req)
	if err != nil {
		return nil, nil, transportError(ctx, st, err)
	}
	payload, err := runtime.Payload(resp)
	if err != nil {
		return nil, nil, transportError(ctx, st, err)
	}
	return resp, payload, nil
}

// transportError shapes a pipeline failure. azcore's retry policy replaces a
// transport error with the bare context error when the context ends, so the
// written state comes from the call's own record, not from the error.
func transportError(ctx context.Context, st *callState, err error) error {
	ctxErr := ctx.Err()
	var te *TransportError
	if errors.As(err, &te) {
		te = &TransportError{Err: te.Err, RequestWritten: te.RequestWritten || st.written.Load()}
	} else if st.reached.Load() || ctxErr != nil {
		te = &TransportError{Err: err, RequestWritten: st.written.Load()}
	} else {
		return err
	}
	if ctxErr != nil && !errors.Is(te.Err, ctxErr) {
		te.Err = fmt.Errorf("%w (%v)", ctxErr, te.Err)
	}
	return te
}

// url builds https://host/seg1/seg2...?api-version=v with every segment
// percent-encoded; Path holds the decoded segments and RawPath the encoded
// ones.
func (c *Client) url(segments []string) *url.URL {
	n := 0
	escaped := false
	for _, s := range segments {
		n += 1 + len(s)
		if !escaped && url.PathEscape(s) != s {
			escaped = true
		}
	}
	var path strings.Builder
	path.Grow(n)
	for _, s := range segments {
		path.WriteByte('/')
		path.WriteString(s)
	}
	q := c.query
	if q == "" {
		q = "api-version=" + url.QueryEscape(c.apiVersion)
	}
	u := &url.URL{Scheme: "https", Host: c.host, Path: path.String(), RawQuery: q}
	u.RawPath = u.Path
	if escaped {
		var raw strings.Builder
		for _, s := range segments {
			raw.WriteByte('/')
			raw.WriteString(url.PathEscape(s))
		}
		u.RawPath = raw.String()
	}
	return u
}

func isSuccess(status int) bool { return status >= 200 && status < 300 }

// methodBody is the CloudToDeviceMethod the hub expects.
type methodBody struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds"`
}

// InvokeDeviceMethod invokes a direct method on a device and returns the
// device's answer. A device status of 500 is a result, not an error; hub
// refusals are *ResponseError, network failures *TransportError and bad
// arguments *InputError (nothing sent). The call makes exactly one attempt
// and is bounded by ResponseTimeout + ConnectTimeout + WireTime.
func (c *Client) InvokeDeviceMethod(ctx context.Context, deviceID string, req MethodRequest) (MethodResult, error) {
	if err := ValidateDeviceID(deviceID); err != nil {
		return MethodResult{}, err
	}
	return c.invoke(ctx, []string{"twins", deviceID, "methods"}, req)
}

// InvokeModuleMethod invokes a direct method on a module; see InvokeDeviceMethod.
func (c *Client) InvokeModuleMethod(ctx context.Context, deviceID, moduleID string, req MethodRequest) (MethodResult, error) {
	if err := ValidateDeviceID(deviceID); err != nil {
		return MethodResult{}, err
	}
	if err := ValidateModuleID(moduleID); err != nil {
		return MethodResult{}, err
	}
	return c.invoke(ctx, []string{"twins", deviceID, "modules", moduleID, "methods"}, req)
}

func (c *Client) invoke(ctx context.Context, segments []string, req MethodRequest) (MethodResult, error) {
	m, err := c.encodeMethod(req)
	if err != nil {
		return MethodResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(m.respSec+m.connSec)*time.Second+WireTime)
	defer cancel()
	resp, payload, err := c.send(ctx, http.MethodPost, segments, nil, m.body)
	if err != nil {
		return MethodResult{}, err
	}
	if !isSuccess(resp.StatusCode) {
		return MethodResult{}, parseError(resp.StatusCode, resp.Header, payload, time.Now())
	}
	status, devicePayload, err := parseMethodAnswer(payload)
	if err != nil {
		return MethodResult{}, unreadable(resp, payload, err.Error())
	}
	return MethodResult{Status: status, Payload: devicePayload, RequestID: resp.Header.Get(headerRequestID)}, nil
}

// encodedMethod is a validated MethodRequest and the body it becomes.
type encodedMethod struct {
	name             string
	payload          []byte // a copy of MethodRequest.Payload (nil stays nil)
	respTO, connTO   time.Duration
	respSec, connSec int
	body             []byte // shared by every call that sends it: never modified
}

func (m *encodedMethod) matches(req MethodRequest) bool {
	return m.name == req.MethodName && m.respTO == req.ResponseTimeout && m.connTO == req.ConnectTimeout &&
		(m.payload == nil) == (req.Payload == nil) && bytes.Equal(m.payload, req.Payload)
}

// encodeMethod validates req and builds its CloudToDeviceMethod body. A
// fleet sends the same request to every device, so the last one is kept
// and reused when the next request is equal to it.
func (c *Client) encodeMethod(req MethodRequest) (*encodedMethod, error) {
	if m := c.lastBody.Load(); m != nil && m.matches(req) {
		return m, nil
	}
	respSec, connSec, err := validateRequest(req)
	if err != nil {
		return nil, err
	}
	body, err := appendMethodBody(nil, req.MethodName, req.Payload, respSec, connSec)
	if err != nil {
		return nil, &InputError{Input: "payload", Reason: err.Error()}
	}
	m := &encodedMethod{
		name: req.MethodName, payload: bytes.Clone(req.Payload),
		respTO: req.ResponseTimeout, connTO: req.ConnectTimeout,
		respSec: respSec, connSec: connSec, body: body,
	}
	c.lastBody.Store(m)
	return m, nil
}

// appendMethodBody appends the JSON of methodBody{name, payload, respSec,
// connSec} to b, byte for byte what marshalNoEscape writes: the payload
// compacted, nothing HTML-escaped, a nil payload as null.
func appendMethodBody(b []byte, name string, payload json.RawMessage, respSec, connSec int) ([]byte, error) {
	if payload != nil && len(payload) == 0 {
		// encoding/json refuses an empty RawMessage; keep its error.
		return marshalNoEscape(methodBody{MethodName: name, Payload: payload, ResponseTimeoutInSeconds: respSec, ConnectTimeoutInSeconds: connSec})
	}
	if b == nil {
		b = make([]byte, 0, len(`{"methodName":"","payload":,"responseTimeoutInSeconds":,"connectTimeoutInSeconds":}`)+len(name)+len(payload)+16)
	}
	b = append(b, `{"methodName":`...)
	b = jsontext.AppendString(b, name)
	b = append(b, `,"payload":`...)
	if payload == nil {
		b = append(b, "null"...)
	} else {
		buf := bytes.NewBuffer(b)
		if err := json.Compact(buf, payload); err != nil {
			// The same words encoding/json uses for a RawMessage it cannot compact.
			return nil, fmt.Errorf("json: error calling MarshalJSON for type json.RawMessage: %w", err)
		}
		b = buf.Bytes()
	}
	b = append(b, `,"responseTimeoutInSeconds":`...)
	b = strconv.AppendInt(b, int64(respSec), 10)
	b = append(b, `,"connectTimeoutInSeconds":`...)
	b = strconv.AppendInt(b, int64(connSec), 10)
	return append(b, '}'), nil
}

// marshalNoEscape is json.Marshal without HTML escaping, so a payload's
// < > & reach the device as the user wrote them.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func unreadable(resp *http.Response, body []byte, why string) error {
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "no content type"
	}
	return fmt.Errorf("%w: HTTP %d (%s, %d bytes): %s", ErrUnreadableAnswer, resp.StatusCode, ct, len(body), cleanText(why, 200))
}

// GetTwin reads a device twin, or a module twin when moduleID is not empty
// (GET /twins/{id}[/modules/{mid}]), and returns the twin JSON as sent.
func (c *Client) GetTwin(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error) {
	if err := ValidateDeviceID(deviceID); err != nil {
		return nil, err
	}
	segments := []string{"twins", deviceID}
	if moduleID != "" {
		if err := ValidateModuleID(moduleID); err != nil {
			return nil, err
		}
		segments = append(segments, "modules", moduleID)
	}
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	resp, payload, err := c.send(ctx, http.MethodGet, segments, nil, nil)
	if err != nil {
		return nil, err
	}
	if !isSuccess(resp.StatusCode) {
		return nil, parseError(resp.StatusCode, resp.Header, payload, time.Now())
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, unreadable(resp, payload, "a twin must be a JSON object")
	}
	return json.RawMessage(bytes.Clone(trimmed)), nil
}

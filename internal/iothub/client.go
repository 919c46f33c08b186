package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/google/uuid"

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

	// Debug, if non-nil, receives one line per request and one per response
	// (method, URL, status, headers and body) with every secret redacted via
	// connstr.Redact and the Authorization header shown as REDACTED.
	Debug io.Writer
}

// Client calls the IoT Hub service REST API of one hub. It is safe for
// concurrent use.
type Client struct {
	host       string
	apiVersion string
	pl         runtime.Pipeline
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
	perRetry := []policy.Policy{auth}
	if o.Debug != nil {
		perRetry = append(perRetry, debugPolicy{mu: &sync.Mutex{}, w: o.Debug})
	}
	ac, err := azcore.NewClient(moduleName, moduleVersion(Version), runtime.PipelineOptions{PerRetry: perRetry}, &cp)
	if err != nil {
		return nil, fmt.Errorf("iothub: %w", err)
	}
	return &Client{host: host, apiVersion: apiVersion, pl: ac.Pipeline()}, nil
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
// parameters).
func (c *Client) sendURL(ctx context.Context, method string, u *url.URL, header http.Header, body []byte) (*http.Response, []byte, error) {
	st := &callState{body: body}
	ctx = withCallState(ctx, st)
	req, err := runtime.NewRequest(ctx, method, u.String())
	if err != nil {
		return nil, nil, fmt.Errorf("iothub: build request: %w", err)
	}
	// Set both forms explicitly, so ids holding # ? % / arrive as they are.
	req.Raw().URL.Path, req.Raw().URL.RawPath = u.Path, u.RawPath
	h := req.Raw().Header
	h.Set("Accept", "application/json")
	h.Set("Request-Id", uuid.NewString())
	for k, v := range header {
		h[k] = v
	}
	if body != nil {
		if err := req.SetBody(streaming.NopCloser(bytes.NewReader(body)), "application/json; charset=utf-8"); err != nil {
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
	var path, raw strings.Builder
	for _, s := range segments {
		path.WriteString("/" + s)
		raw.WriteString("/" + url.PathEscape(s))
	}
	return &url.URL{
		Scheme:   "https",
		Host:     c.host,
		Path:     path.String(),
		RawPath:  raw.String(),
		RawQuery: "api-version=" + url.QueryEscape(c.apiVersion),
	}
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
	respSec, connSec, err := validateRequest(req)
	if err != nil {
		return MethodResult{}, err
	}
	body, err := marshalNoEscape(methodBody{
		MethodName:               req.MethodName,
		Payload:                  req.Payload,
		ResponseTimeoutInSeconds: respSec,
		ConnectTimeoutInSeconds:  connSec,
	})
	if err != nil {
		return MethodResult{}, &InputError{Input: "payload", Reason: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(respSec+connSec)*time.Second+WireTime)
	defer cancel()
	resp, payload, err := c.send(ctx, http.MethodPost, segments, nil, body)
	if err != nil {
		return MethodResult{}, err
	}
	if !isSuccess(resp.StatusCode) {
		return MethodResult{}, parseError(resp.StatusCode, resp.Header, payload, time.Now())
	}
	var r struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return MethodResult{}, unreadable(resp, payload, err.Error())
	}
	if r.Status == nil {
		return MethodResult{}, unreadable(resp, payload, `it has no "status"`)
	}
	return MethodResult{Status: *r.Status, Payload: r.Payload, RequestID: resp.Header.Get(headerRequestID)}, nil
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

// Package auth turns dmctl's auth options (flags and environment) into the
// credential an IoT Hub client needs: a SAS signer from a service connection
// string, or a Microsoft Entra ID token credential from azidentity. It is the
// only importer of azidentity.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/sas"
)

// Method is an --auth value.
type Method string

// The auth methods.
const (
	MethodSAS              Method = "sas"               // a service connection string (shared access policy)
	MethodDefault          Method = "default"           // azidentity's DefaultAzureCredential chain
	MethodAzureCLI         Method = "azure-cli"         // the identity logged in to the Azure CLI
	MethodEnvironment      Method = "environment"       // a service principal from AZURE_* variables
	MethodManagedIdentity  Method = "managed-identity"  // the managed identity of the Azure host
	MethodWorkloadIdentity Method = "workload-identity" // Kubernetes workload identity federation
)

// Methods lists the --auth values, in the order help shows them.
func Methods() []string {
	return []string{string(MethodSAS), string(MethodDefault), string(MethodAzureCLI), string(MethodEnvironment),
		string(MethodManagedIdentity), string(MethodWorkloadIdentity)}
}

// ParseMethod checks an --auth value.
func ParseMethod(s string) (Method, error) {
	for _, m := range Methods() {
		if s == m {
			return Method(m), nil
		}
	}
	return "", &InputError{Input: "--auth", Reason: fmt.Sprintf("%s is not an auth method (use one of %s)", quoteIfPlausible(s, 64), strings.Join(Methods(), ", "))}
}

// IsEntra reports whether m obtains Microsoft Entra ID tokens.
func (m Method) IsEntra() bool { return m != MethodSAS && m != "" }

// Environment variables read here.
const (
	EnvConnectionString = "IOTHUB_CONNECTION_STRING"
	EnvAuthorityHost    = "AZURE_AUTHORITY_HOST"
	EnvClientID         = "AZURE_CLIENT_ID"
)

// DefaultHubSuffix completes a bare hub name given to --hub.
const DefaultHubSuffix = ".azure-devices.net"

// Options are the inputs to Resolve. Nothing else is read.
type Options struct {
	// Method is --auth; empty means: SAS when a connection string is
	// available, else default when Hub is set, else an InputError.
	Method Method
	// Hub is --hub: the hub's host name (a bare name gets DefaultHubSuffix).
	Hub string
	// ConnectionString is --connection-string (a secret).
	ConnectionString string
	// ConnectionStringFile is --connection-string-file.
	ConnectionStringFile string
	// ProfileConnectionString is a connection string saved in a dmctl
	// profile (a secret), used when no flag, file or environment variable
	// gives one; Profile names that profile for messages.
	ProfileConnectionString string
	Profile                 string
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads --connection-string-file; nil means os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// Transport sends the credential's own HTTP requests (token endpoints), so
	// they trust the same CAs and proxies as hub calls; nil means azcore's default.
	Transport policy.Transporter
	// Now is the clock SAS tokens are signed with; nil means time.Now.
	Now func() time.Time
}

// Credential is what an IoT Hub client needs: exactly one of Signer and
// Token is set.
type Credential struct {
	Method Method
	// Host is the hub's host name (may carry :port).
	Host string
	// Signer makes SAS tokens (MethodSAS).
	Signer *sas.Signer
	// Token obtains Entra ID tokens (every other method). Its failures are
	// *CredentialError.
	Token azcore.TokenCredential
	// Source says where the credential came from, for messages: a flag, a
	// file, or an environment variable. Never a secret.
	Source string
	// ConnectionString is the parsed service connection string (MethodSAS);
	// show it only with Redacted().
	ConnectionString *connstr.ConnectionString

	lookupEnv func(string) (string, bool)
	last      *lastFailure // the Token credential's last failure
}

// lastFailure keeps a credential's last *CredentialError for
// TokenFailureHint. It is safe for concurrent use.
type lastFailure struct {
	mu  sync.Mutex
	err *CredentialError
}

func (l *lastFailure) set(e *CredentialError) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.err = e
	l.mu.Unlock()
}

func (l *lastFailure) get() *CredentialError {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// TokenFailureHint says how to fix this credential's last failure to get a
// token: which input the token endpoint refused, or which variables are
// missing. Before any failure it is TokenFailureHint(c.Method) for the
// environment the credential was built from.
func (c *Credential) TokenFailureHint() string {
	if e := c.last.get(); e != nil {
		return e.Hint()
	}
	env := c.lookupEnv
	if env == nil {
		env = os.LookupEnv
	}
	return hintFor(c.Method, diagnosis{}, env)
}

// Describe says which credential is in use, safe to print.
func (c *Credential) Describe() string {
	if c.Method == MethodSAS {
		return fmt.Sprintf("SAS policy %q from %s (%s)", c.ConnectionString.SharedAccessKeyName, c.Source, c.ConnectionString.Redacted())
	}
	return fmt.Sprintf("Microsoft Entra ID token from %s", c.Source)
}

// RefusedHint explains what to check when the hub answers 401 or 403.
func (c *Credential) RefusedHint() string {
	if c.Method == MethodSAS {
		return fmt.Sprintf("the hub refused %s. Check that the key is current (regenerating a key invalidates old "+
			"connection strings), that the policy has the ServiceConnect permission, and that this machine's clock is right "+
			"(within 5 minutes).", c.Describe())
	}
	return fmt.Sprintf("the hub refused the %s for %s. The identity needs the \"IoT Hub Data Contributor\" role on this hub "+
		"(az role assignment create --role \"IoT Hub Data Contributor\" --assignee <principal> --scope <hub resource id>); "+
		"role assignments can take a few minutes to apply.", c.Describe(), c.Host)
}

// InputError is a missing, conflicting or malformed auth input; nothing was
// sent. It names the input.
type InputError struct {
	Input  string // e.g. "--connection-string-file", "IOTHUB_CONNECTION_STRING"
	Reason string
}

// Error names the input and what is wrong with it.
func (e *InputError) Error() string {
	if e.Input == "" {
		return e.Reason
	}
	return e.Input + ": " + e.Reason
}

// CredentialError is a credential that could not be built or could not get
// a token: the hub was never asked. Its message says, when the token
// endpoint told, which input was refused (the client secret, the client id,
// the tenant, the authority host) and what the endpoint answered (its error
// and AADSTS code); it never holds a secret.
type CredentialError struct {
	Method Method
	Err    error
	// LookupEnv reads the environment the credential was built from, to say
	// which AZURE_* variables are set; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Error is one line, secrets redacted.
func (e *CredentialError) Error() string {
	d := e.diagnose()
	if d.summary != "" {
		return fmt.Sprintf("%s credential could not get a token: %s", e.Method, d.summary)
	}
	return fmt.Sprintf("%s credential could not get a token: %s", e.Method, firstLine(scrub(e.Err.Error(), e.lookupEnv())))
}

// Unwrap returns the credential's own error.
func (e *CredentialError) Unwrap() error { return e.Err }

// CredentialFailure marks the error as the credential's (fleet counts such
// targets as unauthorized without importing this package).
func (e *CredentialError) CredentialFailure() bool { return true }

// Refused names the input the token endpoint refused, as the environment
// variable that holds it (AZURE_CLIENT_SECRET, AZURE_CLIENT_ID,
// AZURE_TENANT_ID, AZURE_AUTHORITY_HOST, ...), or "" when the error does not
// say.
func (e *CredentialError) Refused() string { return e.diagnose().refused }

// Hint says how to fix a credential that could not get a token: for a
// refused input, to check that variable's value; for missing ones, to set
// them (and only them).
func (e *CredentialError) Hint() string { return hintFor(e.Method, e.diagnose(), e.lookupEnv()) }

func (e *CredentialError) lookupEnv() func(string) (string, bool) {
	if e.LookupEnv != nil {
		return e.LookupEnv
	}
	return os.LookupEnv
}

// TokenFailureHint says how to fix a credential of method m that could not
// get a token, from what the process environment sets. With the error at
// hand, (*CredentialError).Hint or (*Credential).TokenFailureHint say more:
// which input was refused.
func TokenFailureHint(m Method) string { return hintFor(m, diagnosis{}, os.LookupEnv) }

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return strings.TrimSpace(s)
}

// Resolve turns options into a credential. It reads files and the
// environment but sends nothing: Entra credentials get tokens on first use.
func Resolve(o Options) (*Credential, error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ConnectionString != "" && o.ConnectionStringFile != "" {
		return nil, &InputError{Input: "--connection-string", Reason: "give either --connection-string or --connection-string-file, not both"}
	}
	hub := ""
	if o.Hub != "" {
		h, err := NormalizeHub(o.Hub)
		if err != nil {
			return nil, err
		}
		hub = h
	}
	method := o.Method
	if method != "" {
		if _, err := ParseMethod(string(method)); err != nil {
			return nil, err
		}
	}
	if method.IsEntra() {
		if o.ConnectionString != "" || o.ConnectionStringFile != "" {
			return nil, &InputError{Input: "--auth", Reason: fmt.Sprintf("a connection string is for --auth sas, not --auth %s", method)}
		}
		if hub == "" {
			return nil, &InputError{Input: "--hub", Reason: fmt.Sprintf("--auth %s needs --hub HOST (e.g. --hub myhub.azure-devices.net)", method)}
		}
		return entraCredential(method, hub, o)
	}
	raw, source, err := connectionString(o)
	if err != nil {
		return nil, err
	}
	if raw == "" {
		if method == MethodSAS {
			return nil, &InputError{Input: "--auth sas", Reason: "no connection string: set " + EnvConnectionString +
				", or give --connection-string-file PATH or --connection-string"}
		}
		if hub != "" {
			return entraCredential(MethodDefault, hub, o)
		}
		return nil, &InputError{Reason: "no credentials: either give a service connection string (" + EnvConnectionString +
			", --connection-string-file PATH or --connection-string), or name the hub with --hub HOST to sign in with " +
			"Microsoft Entra ID (--auth default, azure-cli, environment, managed-identity or workload-identity)"}
	}
	cs, err := connstr.ParseService(raw)
	if err != nil {
		return nil, &InputError{Input: source, Reason: err.Error()}
	}
	if hub != "" && !strings.EqualFold(hub, cs.HostName) {
		return nil, &InputError{Input: "--hub", Reason: fmt.Sprintf("%q does not match the connection string's HostName %q (from %s)", hub, cs.HostName, source)}
	}
	key, err := sas.DecodeKey(cs.SharedAccessKey)
	if err != nil {
		if cs.SharedAccessKey == "" {
			return nil, &InputError{Input: source, Reason: "the connection string carries a SharedAccessSignature instead of a SharedAccessKey; dmctl needs the key to sign short-lived tokens"}
		}
		return nil, &InputError{Input: source, Reason: err.Error()}
	}
	return &Credential{
		Method:           MethodSAS,
		Host:             cs.HostName,
		Signer:           sas.NewSigner(cs.HostName, cs.SharedAccessKeyName, key, 0, o.Now),
		Source:           source,
		ConnectionString: cs,
	}, nil
}

// connectionString finds the connection string by precedence: the flag,
// the file, the environment. It returns "" when there is none.
func connectionString(o Options) (value, source string, err error) {
	if o.ConnectionString != "" {
		return o.ConnectionString, "--connection-string", nil
	}
	if o.ConnectionStringFile != "" {
		src := fileSource(o.ConnectionStringFile)
		b, err := o.ReadFile(o.ConnectionStringFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", "", &InputError{Input: src, Reason: "cannot read the file: " + err.Error()}
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", "", &InputError{Input: src, Reason: "the file is empty"}
		}
		return v, src, nil
	}
	if v, ok := o.LookupEnv(EnvConnectionString); ok {
		if strings.TrimSpace(v) == "" {
			// Set but empty is bad input, never "not given": it must not
			// fall back to a profile's connection string (another hub).
			return "", "", &InputError{Input: EnvConnectionString, Reason: "it is set but empty: give it a value or unset it"}
		}
		return strings.TrimSpace(v), EnvConnectionString, nil
	}
	if v := strings.TrimSpace(o.ProfileConnectionString); v != "" {
		return v, fmt.Sprintf("profile %q", o.Profile), nil
	}
	return "", "", nil
}

// fileSource names --connection-string-file and its path for messages,
// unless the path looks like a connection string itself (the value of a
// variable meant for --connection-string): then the path is left out.
func fileSource(path string) string {
	if strings.ContainsAny(path, "=;") || connstr.HasSecret(path) ||
		strings.IndexFunc(path, unicode.IsControl) >= 0 {
		return "--connection-string-file (its path holds '=' or ';' like a connection string: give the path of a file that holds one)"
	}
	return "--connection-string-file " + path
}

// ConnectionStringInUse returns the service connection string Resolve would
// use (the same precedence: --connection-string, --connection-string-file,
// IOTHUB_CONNECTION_STRING, then a profile's), parsed, and where it came
// from. It returns nil and "" when there is none. Unlike Resolve it accepts
// a connection string that carries a SharedAccessSignature instead of a
// key, so `dmctl doctor` can say what is wrong with it.
func ConnectionStringInUse(o Options) (*connstr.ConnectionString, string, error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	raw, source, err := connectionString(o)
	if err != nil || raw == "" {
		return nil, "", err
	}
	cs, err := connstr.ParseService(raw)
	if err != nil {
		return nil, source, &InputError{Input: source, Reason: err.Error()}
	}
	return cs, source, nil
}

// NormalizeHub checks a --hub value: a host name, an IPv4 address or a
// bracketed IPv6 address, with an optional :port (connstr.CheckHost). A bare
// name without dots or a port gets DefaultHubSuffix. Its error quotes the
// value only when it is a plausible host (no '=', ';' or blanks, under 256
// characters): a connection string pasted into --hub or DMCTL_HUB is never
// echoed.
func NormalizeHub(h string) (string, error) {
	h = strings.TrimSpace(h)
	shown := quoteIfPlausible(h, 256)
	bad := func(why string) error {
		return &InputError{Input: "--hub", Reason: fmt.Sprintf("%s %s; give the hub's host name, e.g. myhub.azure-devices.net", shown, why)}
	}
	switch {
	case h == "":
		return "", bad("is empty")
	case strings.ContainsAny(h, "=;"):
		return "", &InputError{Input: "--hub", Reason: "the value is not a host name: it holds '=' or ';' like a connection string " +
			"(give a connection string with " + EnvConnectionString + " or --connection-string-file, and only the hub's host name, " +
			"e.g. myhub.azure-devices.net, to --hub)"}
	case strings.Contains(h, "://"):
		return "", bad("has a URL scheme")
	}
	if err := connstr.CheckHost(h); err != nil {
		return "", bad("is not a host name (" + err.Error() + ")")
	}
	if !strings.ContainsAny(h, ".:") {
		h += DefaultHubSuffix
	}
	return h, nil
}

// quoteIfPlausible quotes v for a message when it cannot be a secret pasted
// in the wrong place: shorter than max, without '=', ';', blanks or control
// characters, and not a long mix of upper case, lower case and digits. Any
// other value is described as "the value".
func quoteIfPlausible(v string, max int) string {
	if v == "" {
		return `""`
	}
	if len(v) >= max || strings.ContainsAny(v, "=;") || connstr.LooksLikeSecret(v) ||
		strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "the value"
	}
	return strconv.Quote(v)
}

// publicAuthorities are the Entra authority hosts of the public clouds, where
// instance discovery works and should stay on.
var publicAuthorities = []string{"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn"}

// disableInstanceDiscovery reports whether AZURE_AUTHORITY_HOST names a
// private authority (Azure Stack, a disconnected cloud, a local test
// endpoint), where MSAL's instance discovery against login.microsoft.com
// must be skipped.
func disableInstanceDiscovery(lookupEnv func(string) (string, bool)) bool {
	v, ok := lookupEnv(EnvAuthorityHost)
	if !ok || strings.TrimSpace(v) == "" {
		return false
	}
	host := strings.TrimSpace(v)
	if u, err := url.Parse(host); err == nil && u.Host != "" {
		host = u.Host
	}
	host = strings.ToLower(strings.TrimSuffix(host, "/"))
	for _, p := range publicAuthorities {
		if host == p {
			return false
		}
	}
	return true
}

func entraCredential(m Method, hub string, o Options) (*Credential, error) {
	co := azcore.ClientOptions{Transport: o.Transport}
	noDiscovery := disableInstanceDiscovery(o.LookupEnv)
	var (
		cred   azcore.TokenCredential
		err    error
		source string
	)
	switch m {
	case MethodDefault:
		source = "DefaultAzureCredential (--auth default)"
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery})
	case MethodAzureCLI:
		source = "the Azure CLI (--auth azure-cli)"
		cred, err = azidentity.NewAzureCLICredential(nil)
	case MethodEnvironment:
		source = "AZURE_* environment variables (--auth environment)"
		cred, err = azidentity.NewEnvironmentCredential(&azidentity.EnvironmentCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery})
	case MethodManagedIdentity:
		source = "the managed identity (--auth managed-identity)"
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
		if id, ok := o.LookupEnv(EnvClientID); ok && id != "" {
			mo.ID = azidentity.ClientID(id)
			source = fmt.Sprintf("the managed identity with client id %s (--auth managed-identity)", id)
		}
		cred, err = azidentity.NewManagedIdentityCredential(mo)
	case MethodWorkloadIdentity:
		source = "workload identity (--auth workload-identity)"
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery})
	default:
		return nil, &InputError{Input: "--auth", Reason: fmt.Sprintf("%q is not an Entra ID method", m)}
	}
	if err != nil {
		return nil, &CredentialError{Method: m, Err: err, LookupEnv: o.LookupEnv}
	}
	last := &lastFailure{}
	return &Credential{Method: m, Host: hub, Token: guarded{method: m, cred: cred, lookupEnv: o.LookupEnv, last: last},
		Source: source, lookupEnv: o.LookupEnv, last: last}, nil
}

// guarded wraps a credential so its failures are *CredentialError, which
// callers can tell apart from the hub refusing a token.
type guarded struct {
	method    Method
	cred      azcore.TokenCredential
	lookupEnv func(string) (string, bool)
	last      *lastFailure
}

func (g guarded) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := g.cred.GetToken(ctx, opts)
	if err != nil && ctx.Err() == nil {
		ce := &CredentialError{Method: g.method, Err: err, LookupEnv: g.lookupEnv}
		g.last.set(ce)
		return tok, ce
	}
	return tok, err
}

package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/dmctl/dmctl/internal/connstr"
)

// The environment variables azidentity's credentials read, named in
// messages and hints.
const (
	EnvTenantID          = "AZURE_TENANT_ID"
	EnvClientSecret      = "AZURE_CLIENT_SECRET"
	EnvClientCertificate = "AZURE_CLIENT_CERTIFICATE_PATH"
	EnvFederatedToken    = "AZURE_FEDERATED_TOKEN_FILE"
)

// defaultAuthority is where azidentity signs in when AZURE_AUTHORITY_HOST is
// not set (the public cloud).
const defaultAuthority = "https://login.microsoftonline.com/"

// secretEnv are variables whose values are secrets: they are scrubbed from
// any text shown, whatever its source.
var secretEnv = []string{EnvClientSecret, "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD"}

// diagnosis is what a credential's failure says about its inputs.
type diagnosis struct {
	refused string // the environment variable holding the refused input; "" when unknown
	summary string // one line for the message, no secrets; "" to fall back to the error's first line
	hint    string // what to check about the refused input; "" for the method's hint
}

// tokenErrorBody is the token endpoint's JSON error (OAuth 2.0 plus
// Microsoft Entra's error_codes).
type tokenErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
}

// Entra's AADSTS codes that say which input was refused.
const (
	codeInvalidSecret      = 7000215 // the client secret does not match a secret of the app
	codeExpiredSecret      = 7000222 // the client secret has expired
	codeAppNotFound        = 700016  // no app with this client id in the tenant
	codeTenantNotFound     = 90002   // no such tenant (at this authority)
	codeTenantInvalid      = 900023  // the tenant is neither a GUID nor a domain name
	codeInvalidCertificate = 700027  // the client assertion's signature does not match a certificate of the app
)

func (e *CredentialError) diagnose() diagnosis {
	if e == nil || e.Err == nil {
		return diagnosis{}
	}
	env := e.lookupEnv()
	var af *azidentity.AuthenticationFailedError
	if errors.As(e.Err, &af) && af.RawResponse != nil {
		if d, ok := fromResponse(af.RawResponse, env); ok {
			return d
		}
	}
	switch e.Method {
	case MethodEnvironment, MethodDefault, MethodWorkloadIdentity:
		if d, ok := fromUnreachable(e.Err.Error(), env); ok {
			return d
		}
	}
	return diagnosis{}
}

// fromResponse reads the token endpoint's (or the discovery document's)
// answer.
func fromResponse(resp *http.Response, env func(string) (string, bool)) (diagnosis, bool) {
	authority, authoritySet := authorityOf(env)
	body, err := runtime.Payload(resp)
	if err != nil {
		return diagnosis{}, false
	}
	var te tokenErrorBody
	if json.Unmarshal(body, &te) != nil || te.Error == "" {
		// Not an OAuth error: whatever answered is not an Entra authority.
		return diagnosis{
			refused: EnvAuthorityHost,
			summary: fmt.Sprintf("the authority host (%s) answered HTTP %d without an OAuth error: is it a Microsoft Entra sign-in host?",
				describeAuthority(authority, authoritySet), resp.StatusCode),
			hint: fmt.Sprintf("check %s: it must be the sign-in host of the tenant's Microsoft Entra cloud, e.g. %s (unset means that one).",
				EnvAuthorityHost, defaultAuthority),
		}, true
	}
	code := 0
	if len(te.Codes) > 0 {
		code = te.Codes[0]
	} else if m := aadstsCode.FindStringSubmatch(te.Description); m != nil {
		code, _ = strconv.Atoi(m[1])
	}
	answered := fmt.Sprintf("the token endpoint answered HTTP %d %s", resp.StatusCode, safeWord(te.Error))
	if code != 0 {
		answered += fmt.Sprintf(", AADSTS%d", code)
	}
	if desc := describe(te.Description, env); desc != "" {
		answered += ": " + desc
	}
	tenant := shownEnv(env, EnvTenantID)
	clientID := shownEnv(env, EnvClientID)
	_, withCert := setEnv(env, EnvClientCertificate)
	_, withSecret := setEnv(env, EnvClientSecret)
	switch {
	case code == codeExpiredSecret:
		return diagnosis{refused: EnvClientSecret,
			summary: fmt.Sprintf("the client secret (%s) has expired: %s", EnvClientSecret, answered),
			hint:    fmt.Sprintf("create a new client secret for the app %s names and set %s to its value.", EnvClientID, EnvClientSecret),
		}, true
	case code == codeInvalidSecret, te.Error == "invalid_client" && code != codeInvalidCertificate && withSecret && !withCert:
		return diagnosis{refused: EnvClientSecret,
			summary: fmt.Sprintf("the client secret (%s) was refused: %s", EnvClientSecret, answered),
			hint: fmt.Sprintf("check %s: it must be the value (not the secret ID) of a current client secret of the app %s names, "+
				"without quotes or blanks around it.", EnvClientSecret, EnvClientID),
		}, true
	case code == codeInvalidCertificate, te.Error == "invalid_client" && withCert:
		return diagnosis{refused: EnvClientCertificate,
			summary: fmt.Sprintf("the client certificate (%s) was refused: %s", EnvClientCertificate, answered),
			hint:    fmt.Sprintf("check %s: the certificate must be one uploaded to the app %s names.", EnvClientCertificate, EnvClientID),
		}, true
	case code == codeAppNotFound, te.Error == "unauthorized_client":
		return diagnosis{refused: EnvClientID,
			summary: fmt.Sprintf("the client id (%s) is not known in tenant %s: %s", withValue(EnvClientID, clientID), orUnset(tenant, EnvTenantID), answered),
			hint: fmt.Sprintf("check %s: it must be the Application (client) ID of an app registered in the tenant %s names "+
				"(or %s names another tenant than the app's).", EnvClientID, EnvTenantID, EnvTenantID),
		}, true
	case code == codeTenantNotFound, code == codeTenantInvalid, te.Error == "invalid_tenant":
		hint := fmt.Sprintf("check %s (the Directory (tenant) ID or a verified domain of the tenant)", EnvTenantID)
		if authoritySet {
			hint += fmt.Sprintf(" and %s (the sign-in host of the tenant's cloud).", EnvAuthorityHost)
		} else {
			hint += fmt.Sprintf("; %s is not set, so the public cloud's %s was asked: set it for another cloud.", EnvAuthorityHost, defaultAuthority)
		}
		return diagnosis{refused: EnvTenantID,
			summary: fmt.Sprintf("the tenant (%s) was not found at authority %s: %s", withValue(EnvTenantID, tenant), describeAuthority(authority, authoritySet), answered),
			hint:    hint,
		}, true
	}
	return diagnosis{summary: "the token endpoint refused the request: " + answered}, true
}

var (
	aadstsCode = regexp.MustCompile(`AADSTS(\d+)`)
	// requestFailed finds `Get "URL": reason` in an azidentity or net/http message.
	requestFailed = regexp.MustCompile(`(?i)(?:get|post) "([^"]+)": ([^\n]+)`)
	// quotedInDesc finds the identifiers Entra quotes in a description.
	quotedInDesc = regexp.MustCompile(`'[^'\n]*'`)
)

// unreachableSigns are pieces of net/http and crypto/tls errors that mean
// the host was not reached or not trusted: no answer came back.
var unreachableSigns = []string{"dial tcp", "connect:", "no such host", "connection refused", "connection reset",
	"i/o timeout", "network is unreachable", "tls:", "x509:", "EOF", "server misbehaving", "timeout awaiting"}

// fromUnreachable recognises an authority that could not be reached (DNS,
// connection, TLS), which azidentity reports as text.
func fromUnreachable(msg string, env func(string) (string, bool)) (diagnosis, bool) {
	m := requestFailed.FindStringSubmatch(msg)
	if m == nil {
		return diagnosis{}, false
	}
	reason := m[2]
	if i := strings.Index(reason, " To troubleshoot"); i >= 0 {
		reason = reason[:i]
	}
	reason = strings.TrimSuffix(strings.TrimSpace(reason), ".")
	found := false
	for _, s := range unreachableSigns {
		if strings.Contains(reason, s) {
			found = true
			break
		}
	}
	if !found {
		return diagnosis{}, false
	}
	reason = scrub(reason, env)
	authority, authoritySet := authorityOf(env)
	what := fmt.Sprintf("the authority host (%s)", describeAuthority(authority, authoritySet))
	if u, err := url.Parse(m[1]); err == nil && u.Host != "" && !sameHost(u.Host, authority) {
		what = fmt.Sprintf("the token endpoint %s (named by the authority %s)", u.Scheme+"://"+u.Host, describeAuthority(authority, authoritySet))
	}
	hint := fmt.Sprintf("check %s and that this machine reaches it (HTTPS_PROXY, NO_PROXY); a private CA needs --ca-file or SSL_CERT_FILE.", EnvAuthorityHost)
	if !authoritySet {
		hint = fmt.Sprintf("check that this machine reaches %s (HTTPS_PROXY, NO_PROXY), or set %s for another cloud.", defaultAuthority, EnvAuthorityHost)
	}
	return diagnosis{refused: EnvAuthorityHost, summary: what + " could not be reached: " + reason, hint: hint}, true
}

// hintFor says how to fix a failure of method m: d's hint for a refused
// input, else what to set (only what is missing), else what to check.
func hintFor(m Method, d diagnosis, env func(string) (string, bool)) string {
	if d.hint != "" {
		return d.hint
	}
	isSet := func(k string) bool { _, ok := setEnv(env, k); return ok }
	missing := func(keys ...string) []string {
		var out []string
		for _, k := range keys {
			if !isSet(k) {
				out = append(out, k)
			}
		}
		return out
	}
	credMissing := !isSet(EnvClientSecret) && !isSet(EnvClientCertificate)
	spMissing := missing(EnvTenantID, EnvClientID)
	if credMissing {
		spMissing = append(spMissing, EnvClientSecret+" (or "+EnvClientCertificate+")")
	}
	spCred := EnvClientSecret
	if !isSet(EnvClientSecret) {
		spCred = EnvClientCertificate
	}
	switch m {
	case MethodAzureCLI:
		return "run `az login` (and `az account set` for the right subscription), or choose another --auth method."
	case MethodEnvironment:
		if len(spMissing) > 0 {
			return "set " + joinAnd(spMissing) + " for a service principal."
		}
		return fmt.Sprintf("%s, %s and %s are set: check their values (and %s, if set) against the app registration; the error says what the token endpoint answered.",
			EnvTenantID, EnvClientID, spCred, EnvAuthorityHost)
	case MethodManagedIdentity:
		if isSet(EnvClientID) {
			return fmt.Sprintf("managed identity only works on an Azure host with an identity assigned; %s is set, so the user-assigned identity with that client id must be assigned to this host.", EnvClientID)
		}
		return "managed identity only works on an Azure host with an identity assigned; set " + EnvClientID + " for a user-assigned one."
	case MethodWorkloadIdentity:
		if miss := missing(EnvClientID, EnvTenantID, EnvFederatedToken); len(miss) > 0 {
			return "workload identity needs " + joinAnd(miss) + " (set by the AKS webhook)."
		}
		return fmt.Sprintf("%s, %s and %s are set: check that the app's federated credential trusts this service account and that the token file is current.",
			EnvClientID, EnvTenantID, EnvFederatedToken)
	}
	if len(spMissing) == 0 {
		return fmt.Sprintf("%s, %s and %s are set, so DefaultAzureCredential used that service principal: check their values (and %s, if set).",
			EnvTenantID, EnvClientID, spCred, EnvAuthorityHost)
	}
	if len(spMissing) == 3 {
		return "sign in with `az login`, set AZURE_* service principal variables, or use a connection string with --auth sas (see `dmctl help environment`)."
	}
	return "sign in with `az login`, set " + joinAnd(spMissing) + " to complete the service principal, or use a connection string with --auth sas (see `dmctl help environment`)."
}

func joinAnd(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

// setEnv returns k's value when it is set and not blank.
func setEnv(env func(string) (string, bool), k string) (string, bool) {
	v, ok := env(k)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// shownEnv returns k's value when it is safe to show (plausibleID), else "".
func shownEnv(env func(string) (string, bool), k string) string {
	v, ok := setEnv(env, k)
	if !ok || !plausibleID(v) || isSecretValue(v, env) {
		return ""
	}
	return v
}

func withValue(k, v string) string {
	if v == "" {
		return k
	}
	return k + "=" + v
}

func orUnset(v, k string) string {
	if v != "" {
		return v
	}
	return "(" + k + ")"
}

// plausibleID reports whether v looks like a tenant or client id (a GUID, a
// domain name, a short name) rather than a secret: at most 64 characters of
// letters, digits, '-', '_' and '.', and not a long mix of upper case, lower
// case and digits (client secrets are).
func plausibleID(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	var up, low, dig bool
	for _, r := range v {
		switch {
		case r >= 'A' && r <= 'Z':
			up = true
		case r >= 'a' && r <= 'z':
			low = true
		case r >= '0' && r <= '9':
			dig = true
		case r == '-' || r == '_' || r == '.':
		default:
			return false
		}
	}
	return !up || !low || !dig || len(v) < 16
}

func isSecretValue(v string, env func(string) (string, bool)) bool {
	for _, k := range secretEnv {
		if s, ok := setEnv(env, k); ok && s == v {
			return true
		}
	}
	return false
}

// scrub masks the values of the secret variables wherever they appear
// (what looks like a secret is redacted where messages are shown: the
// CLI's stderr writer and fleet's result errors).
func scrub(s string, env func(string) (string, bool)) string {
	for _, k := range secretEnv {
		if v, ok := setEnv(env, k); ok && len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "REDACTED")
		}
	}
	return s
}

// describe shortens an Entra error_description to its first sentence,
// without the AADSTS prefix (the code is shown already), trace ids or
// quoted text that is not a plausible id.
func describe(desc string, env func(string) (string, bool)) string {
	desc = firstLine(strings.ReplaceAll(desc, "\r", "\n"))
	if m := aadstsCode.FindStringIndex(desc); m != nil && m[0] == 0 {
		desc = strings.TrimSpace(strings.TrimPrefix(desc[m[1]:], ":"))
	}
	if i := strings.Index(desc, ". "); i >= 0 {
		desc = desc[:i+1]
	}
	desc = scrub(desc, env)
	desc = quotedInDesc.ReplaceAllStringFunc(desc, func(q string) string {
		if inner := q[1 : len(q)-1]; inner == "" || plausibleID(inner) {
			return q
		}
		return "'REDACTED'"
	})
	if len(desc) > 240 {
		desc = desc[:240] + "…"
	}
	return desc
}

// safeWord keeps an OAuth error code as it is when it is one (letters,
// digits and '_'), else says so.
func safeWord(s string) string {
	if s == "" || len(s) > 64 || strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_'
	}) >= 0 {
		return "(an error)"
	}
	return s
}

// authorityOf returns AZURE_AUTHORITY_HOST, or the public cloud's authority
// when it is not set.
func authorityOf(env func(string) (string, bool)) (string, bool) {
	if v, ok := setEnv(env, EnvAuthorityHost); ok {
		return v, true
	}
	return defaultAuthority, false
}

func describeAuthority(authority string, set bool) string {
	if !set {
		return defaultAuthority + ", the default: " + EnvAuthorityHost + " is not set"
	}
	if !strings.HasPrefix(authority, "https://") || connstr.HasSecret(authority) || strings.ContainsAny(authority, " \t;") {
		return EnvAuthorityHost
	}
	return EnvAuthorityHost + "=" + authority
}

func sameHost(host, authority string) bool {
	u, err := url.Parse(authority)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

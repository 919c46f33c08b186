// Package entra is hubsim's local stand-in for Microsoft Entra ID: an OpenID
// discovery document and an OAuth2 client-credentials token endpoint per
// tenant (what MSAL, and so azidentity's ClientSecretCredential, asks for when
// instance discovery is disabled), and the hub-side check of the bearer
// tokens it issues.
//
// Tokens are ES256 JWTs with aud https://iothubs.azure.net, iss
// {authority}/{tenant}/v2.0, tid, oid, appid and exp one hour after issue.
// Roles are not in the token: as with Azure RBAC, the hub looks the principal
// (oid) up in its role assignments when a request arrives.
package entra

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Audience is the IoT Hub data-plane resource; tokens for any other audience are refused.
const Audience = "https://iothubs.azure.net"

// TokenLifetime is how long issued tokens live.
const TokenLifetime = time.Hour

// Built-in IoT Hub data-plane roles (Azure RBAC role names).
const (
	RoleDataContributor     = "IoT Hub Data Contributor"
	RoleDataReader          = "IoT Hub Data Reader"
	RoleTwinContributor     = "IoT Hub Twin Contributor"
	RoleRegistryContributor = "IoT Hub Registry Contributor"
	roleNone                = ""
	signingAlgorithm        = "ES256"
	clientSecretByteSize    = 30
)

// Principal is an app registration with a client secret and (maybe) a role
// assignment on the hub.
type Principal struct {
	Name         string `json:"name"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	ObjectID     string `json:"objectId"`
	Role         string `json:"role"`
}

// State is what must survive a restart: tenant, signing key and principals.
type State struct {
	TenantID   string      `json:"tenantId"`
	SigningKey string      `json:"signingKey"` // PEM, PKCS#8 EC private key
	Principals []Principal `json:"principals"`
}

// NewState creates a tenant with a fresh signing key and the three standard
// principals: contributor (IoT Hub Data Contributor), reader (IoT Hub Data
// Reader) and norole (no assignment).
func NewState() (*State, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate token signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode token signing key: %w", err)
	}
	s := &State{
		TenantID:   uuid.NewString(),
		SigningKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
	for _, p := range []struct{ name, role string }{
		{"contributor", RoleDataContributor},
		{"reader", RoleDataReader},
		{"norole", roleNone},
	} {
		secret, err := NewClientSecret()
		if err != nil {
			return nil, err
		}
		s.Principals = append(s.Principals, Principal{
			Name: p.name, ClientID: uuid.NewString(), ClientSecret: secret, ObjectID: uuid.NewString(), Role: p.role,
		})
	}
	return s, nil
}

// NewClientSecret returns a random client secret.
func NewClientSecret() (string, error) {
	b := make([]byte, clientSecretByteSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Authority issues and checks tokens for one tenant. It is safe for concurrent use.
type Authority struct {
	tenant     string
	key        *ecdsa.PrivateKey
	kid        string
	byClientID map[string]Principal
	byObjectID map[string]Principal
	now        func() time.Time

	cacheMu sync.RWMutex
	cache   map[string]*Identity // verified tokens by exact string
}

// Identity is a verified bearer token's principal.
type Identity struct {
	Principal Principal
	Expiry    time.Time
}

// New builds an Authority from persisted state. now nil means time.Now.
func New(s *State, now func() time.Time) (*Authority, error) {
	if now == nil {
		now = time.Now
	}
	if s == nil || s.TenantID == "" {
		return nil, errors.New("entra state has no tenant id")
	}
	block, _ := pem.Decode([]byte(s.SigningKey))
	if block == nil {
		return nil, errors.New("entra state: signing key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("entra state: signing key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("entra state: signing key is not an ECDSA P-256 key")
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("entra state: signing key: %w", err)
	}
	sum := sha256.Sum256(pub)
	a := &Authority{
		tenant:     s.TenantID,
		key:        key,
		kid:        base64.RawURLEncoding.EncodeToString(sum[:12]),
		byClientID: map[string]Principal{},
		byObjectID: map[string]Principal{},
		now:        now,
		cache:      map[string]*Identity{},
	}
	for _, p := range s.Principals {
		if p.ClientID == "" || p.ObjectID == "" || p.ClientSecret == "" {
			return nil, fmt.Errorf("entra state: principal %q lacks a client id, object id or secret", p.Name)
		}
		a.byClientID[p.ClientID] = p
		a.byObjectID[p.ObjectID] = p
	}
	return a, nil
}

// TenantID is the tenant this authority serves.
func (a *Authority) TenantID() string { return a.tenant }

// Issue signs a token for p, issued by authority (e.g. "https://127.0.0.1:8443").
func (a *Authority) Issue(p Principal, authority string, lifetime time.Duration) (string, time.Time, error) {
	now := a.now()
	exp := now.Add(lifetime)
	claims := jwt.MapClaims{
		"aud":   Audience,
		"iss":   strings.TrimSuffix(authority, "/") + "/" + a.tenant + "/v2.0",
		"iat":   now.Unix(),
		"nbf":   now.Add(-5 * time.Minute).Unix(),
		"exp":   exp.Unix(),
		"tid":   a.tenant,
		"oid":   p.ObjectID,
		"sub":   p.ObjectID,
		"appid": p.ClientID,
		"azp":   p.ClientID,
		"idtyp": "app",
		"ver":   "2.0",
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = a.kid
	s, err := t.SignedString(a.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp, nil
}

// Errors from Verify. Their text never quotes the token.
var (
	ErrTokenInvalid  = errors.New("the bearer token is not a valid token issued by this tenant")
	ErrTokenExpired  = errors.New("the bearer token has expired")
	ErrTokenAudience = errors.New("the bearer token is not for audience " + Audience)
	ErrTokenUnknown  = errors.New("the bearer token's principal is unknown")
)

// maxCachedTokens bounds the verified-token cache; it is cleared when full.
const maxCachedTokens = 4096

// Verify checks a bearer token's signature, algorithm, audience, tenant and
// expiry and returns its principal. Verified tokens are cached by their exact
// text until they expire.
func (a *Authority) Verify(token string) (*Identity, error) {
	now := a.now()
	a.cacheMu.RLock()
	id := a.cache[token]
	a.cacheMu.RUnlock()
	if id != nil {
		if now.Before(id.Expiry) {
			return id, nil
		}
		return nil, ErrTokenExpired
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		return &a.key.PublicKey, nil
	},
		jwt.WithValidMethods([]string{signingAlgorithm}),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, ErrTokenAudience
	case err != nil:
		return nil, ErrTokenInvalid
	}
	if tid, _ := claims["tid"].(string); !strings.EqualFold(tid, a.tenant) {
		return nil, ErrTokenInvalid
	}
	oid, _ := claims["oid"].(string)
	p, ok := a.byObjectID[oid]
	if !ok {
		return nil, ErrTokenUnknown
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, ErrTokenInvalid
	}
	id = &Identity{Principal: p, Expiry: exp.Time}
	a.cacheMu.Lock()
	if len(a.cache) >= maxCachedTokens {
		clear(a.cache)
	}
	a.cache[token] = id
	a.cacheMu.Unlock()
	return id, nil
}

// Handler serves the tenant's discovery document, token endpoint and signing
// keys:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	POST /{tenant}/oauth2/v2.0/token
//	GET  /{tenant}/discovery/v2.0/keys
//
// The tenant segment matches case-insensitively. The authority (scheme and
// host:port) in the documents is taken from the request's Host, so a client
// that reached hubsim as localhost and one that used 127.0.0.1 each see
// their own authority, as MSAL requires. Match reports whether a path
// belongs to this handler.
func (a *Authority) Handler() http.Handler {
	return http.HandlerFunc(a.serveHTTP)
}

// Match reports whether path (escaped) is one of the Handler's paths (for any tenant).
func Match(path string) bool {
	_, rest, ok := splitTenant(path)
	if !ok {
		return false
	}
	switch rest {
	case "/v2.0/.well-known/openid-configuration", "/oauth2/v2.0/token", "/discovery/v2.0/keys":
		return true
	}
	return false
}

func splitTenant(path string) (tenant, rest string, ok bool) {
	p, found := strings.CutPrefix(path, "/")
	if !found {
		return "", "", false
	}
	tenant, after, found := strings.Cut(p, "/")
	if !found || tenant == "" {
		return "", "", false
	}
	return tenant, "/" + after, true
}

func (a *Authority) serveHTTP(w http.ResponseWriter, r *http.Request) {
	tenant, rest, ok := splitTenant(r.URL.EscapedPath())
	if !ok {
		oauthError(w, r, http.StatusNotFound, "invalid_request", "AADSTS90002: unknown endpoint.")
		return
	}
	if !strings.EqualFold(tenant, a.tenant) {
		oauthError(w, r, http.StatusBadRequest, "invalid_tenant",
			fmt.Sprintf("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", sanitize(tenant)))
		return
	}
	authority := "https://" + r.Host
	switch rest {
	case "/v2.0/.well-known/openid-configuration":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, r, "GET")
			return
		}
		a.discovery(w, authority, tenant)
	case "/oauth2/v2.0/token":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r, "POST")
			return
		}
		a.token(w, r, authority)
	case "/discovery/v2.0/keys":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, r, "GET")
			return
		}
		a.keys(w)
	default:
		oauthError(w, r, http.StatusNotFound, "invalid_request", "AADSTS90002: unknown endpoint.")
	}
}

func (a *Authority) discovery(w http.ResponseWriter, authority, tenant string) {
	base := authority + "/" + tenant
	doc := map[string]any{
		"issuer":                                authority + "/" + a.tenant + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"grant_types_supported":                 []string{"client_credentials"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{signingAlgorithm},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"tenant_region_scope":                   nil,
		"cloud_instance_name":                   "hubsim",
	}
	writeJSON(w, http.StatusOK, doc)
}

func (a *Authority) keys(w http.ResponseWriter) {
	pub := a.key.PublicKey
	size := (pub.Curve.Params().BitSize + 7) / 8
	// The uncompressed point: 0x04, then X and Y, each padded to size bytes.
	raw, err := pub.Bytes()
	if err != nil || len(raw) != 1+2*size {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "EC", "crv": "P-256", "use": "sig", "alg": signingAlgorithm, "kid": a.kid,
		"x": base64.RawURLEncoding.EncodeToString(raw[1 : 1+size]),
		"y": base64.RawURLEncoding.EncodeToString(raw[1+size:]),
	}}})
}

// token implements the client-credentials grant with a client secret
// (client_secret_post or client_secret_basic).
func (a *Authority) token(w http.ResponseWriter, r *http.Request, authority string) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, r, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must be application/x-www-form-urlencoded.")
		return
	}
	form := r.PostForm
	grant := form.Get("grant_type")
	switch grant {
	case "client_credentials":
	case "":
		oauthError(w, r, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	default:
		oauthError(w, r, http.StatusBadRequest, "unsupported_grant_type",
			fmt.Sprintf("AADSTS70003: The app requested an unsupported grant type '%s'. hubsim supports client_credentials only.", sanitize(grant)))
		return
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		clientID, secret = u, p
	}
	if clientID == "" {
		oauthError(w, r, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'client_id'.")
		return
	}
	p, known := a.byClientID[clientID]
	if !known {
		oauthError(w, r, http.StatusBadRequest, "unauthorized_client",
			fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'. "+
				"The app may be registered in another tenant, or not consented to in this one: check that the request went to the right tenant.",
				sanitize(clientID), a.tenant))
		return
	}
	if secret == "" {
		oauthError(w, r, http.StatusUnauthorized, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(p.ClientSecret)) != 1 {
		oauthError(w, r, http.StatusUnauthorized, "invalid_client",
			fmt.Sprintf("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", p.ClientID))
		return
	}
	if !scopeIsHub(form.Get("scope")) {
		oauthError(w, r, http.StatusBadRequest, "invalid_scope",
			fmt.Sprintf("AADSTS1002012: The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI); hubsim serves %s/.default only.", sanitize(form.Get("scope")), Audience))
		return
	}
	tok, _, err := a.Issue(p, authority, TokenLifetime)
	if err != nil {
		oauthError(w, r, http.StatusInternalServerError, "server_error", "AADSTS50000: There was an error issuing a token.")
		return
	}
	secs := int(TokenLifetime / time.Second)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	})
}

// scopeIsHub accepts the IoT Hub resource's .default scope among the
// requested scopes (MSAL adds openid, offline_access and profile).
func scopeIsHub(scope string) bool {
	for _, s := range strings.Fields(scope) {
		switch strings.ToLower(s) {
		case Audience + "/.default", Audience + "//.default":
			return true
		}
	}
	return false
}

func sanitize(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	oauthError(w, r, http.StatusMethodNotAllowed, "invalid_request", "AADSTS90056: This endpoint only accepts "+allow+" requests.")
}

// oauthError writes an OAuth2 error in Entra's shape: error, an
// error_description that starts with the AADSTS code and ends with trace,
// correlation and timestamp lines, error_codes, timestamp, trace_id,
// correlation_id and error_uri (the authority's error page for the code, as
// Entra links https://login.microsoftonline.com/error?code=N). The status is
// Entra's for the case: 401 for a client that failed to authenticate
// (invalid_client), 400 for the other refusals.
func oauthError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	now := time.Now().UTC()
	trace := uuid.NewString()
	corr := uuid.NewString()
	n := aadstsCode(desc)
	body := map[string]any{
		"error":             code,
		"error_description": desc + "\r\nTrace ID: " + trace + "\r\nCorrelation ID: " + corr + "\r\nTimestamp: " + now.Format("2006-01-02 15:04:05Z"),
		"error_codes":       []int{n},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    corr,
	}
	if r != nil && r.Host != "" {
		body["error_uri"] = "https://" + r.Host + "/error?code=" + strconv.Itoa(n)
	}
	writeJSON(w, status, body)
}

func aadstsCode(desc string) int {
	rest, ok := strings.CutPrefix(desc, "AADSTS")
	if !ok {
		return 0
	}
	n := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

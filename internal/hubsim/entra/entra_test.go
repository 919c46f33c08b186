package entra

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newAuthority(t *testing.T, now func() time.Time) (*Authority, *State) {
	t.Helper()
	st, err := NewState()
	require.NoError(t, err)
	a, err := New(st, now)
	require.NoError(t, err)
	return a, st
}

func TestNewStateHasTheStandardPrincipals(t *testing.T) {
	_, st := newAuthority(t, nil)
	roles := map[string]string{}
	for _, p := range st.Principals {
		roles[p.Name] = p.Role
		assert.NotEmpty(t, p.ClientID)
		assert.NotEmpty(t, p.ObjectID)
		assert.GreaterOrEqual(t, len(p.ClientSecret), 32)
	}
	assert.Equal(t, map[string]string{"contributor": RoleDataContributor, "reader": RoleDataReader, "norole": ""}, roles)
}

func TestIssueAndVerify(t *testing.T) {
	now := time.Now()
	a, st := newAuthority(t, func() time.Time { return now })
	p := st.Principals[1]
	tok, exp, err := a.Issue(p, "https://127.0.0.1:8443", time.Hour)
	require.NoError(t, err)
	assert.Equal(t, now.Add(time.Hour).Unix(), exp.Unix())

	id, err := a.Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, p.ObjectID, id.Principal.ObjectID)
	assert.Equal(t, RoleDataReader, id.Principal.Role)

	claims := jwt.MapClaims{}
	_, _, err = jwt.NewParser().ParseUnverified(tok, claims)
	require.NoError(t, err)
	assert.Equal(t, Audience, claims["aud"])
	assert.Equal(t, st.TenantID, claims["tid"])
	assert.Equal(t, p.ClientID, claims["appid"])
	assert.Equal(t, "https://127.0.0.1:8443/"+st.TenantID+"/v2.0", claims["iss"])

	now = now.Add(2 * time.Hour)
	_, err = a.Verify(tok)
	assert.ErrorIs(t, err, ErrTokenExpired, "also when the token sits in the cache")

	// Another tenant's authority rejects the token.
	other, _ := newAuthority(t, nil)
	tok2, _, err := a.Issue(p, "https://x", time.Hour)
	require.NoError(t, err)
	_, err = other.Verify(tok2)
	assert.ErrorIs(t, err, ErrTokenInvalid)
}

func TestRestoredStateVerifiesOldTokens(t *testing.T) {
	a, st := newAuthority(t, nil)
	tok, _, err := a.Issue(st.Principals[0], "https://h", time.Hour)
	require.NoError(t, err)
	b, err := json.Marshal(st)
	require.NoError(t, err)
	var restored State
	require.NoError(t, json.Unmarshal(b, &restored))
	a2, err := New(&restored, nil)
	require.NoError(t, err)
	_, err = a2.Verify(tok)
	assert.NoError(t, err)
}

func TestMatch(t *testing.T) {
	assert.True(t, Match("/tenant/v2.0/.well-known/openid-configuration"))
	assert.True(t, Match("/tenant/oauth2/v2.0/token"))
	assert.True(t, Match("/tenant/discovery/v2.0/keys"))
	assert.False(t, Match("/twins/x"))
	assert.False(t, Match("//oauth2/v2.0/token"))
	assert.False(t, Match("/tenant/oauth2/token"))
}

func TestHandlerBasicAuthAndKeys(t *testing.T) {
	a, st := newAuthority(t, nil)
	p := st.Principals[0]
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {Audience + "/.default"}}
	req := httptest.NewRequest(http.MethodPost, "https://h:1/"+st.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(p.ClientID, p.ClientSecret)
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Greater(t, body.ExpiresIn, 300, "MSAL re-requests tokens that live 300 s or less")
	_, err := a.Verify(body.AccessToken)
	assert.NoError(t, err)

	rec = httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://h:1/"+st.TenantID+"/discovery/v2.0/keys", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `"kty":"EC"`)

	rec = httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://h:1/"+st.TenantID+"/oauth2/v2.0/token", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

// oauthErrorBody is the JSON of an error answer, as Entra shapes it.
type oauthErrorBody struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	ErrorURI      string `json:"error_uri"`
}

func postToken(t *testing.T, a *Authority, tenant string, form url.Values, basic []string) (*httptest.ResponseRecorder, oauthErrorBody) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "https://127.0.0.1:8443/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	var body oauthErrorBody
	if rec.Code != http.StatusOK {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	}
	return rec, body
}

// assertEntraShape checks what every Entra error answer carries.
func assertEntraShape(t *testing.T, rec *httptest.ResponseRecorder, body oauthErrorBody, status int, code string, aadsts int) {
	t.Helper()
	assert.Equal(t, status, rec.Code)
	assert.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Equal(t, code, body.Error)
	assert.Equal(t, []int{aadsts}, body.Codes)
	assert.True(t, strings.HasPrefix(body.Description, fmt.Sprintf("AADSTS%d: ", aadsts)), body.Description)
	assert.Contains(t, body.Description, "\r\nTrace ID: "+body.TraceID+"\r\nCorrelation ID: "+body.CorrelationID+"\r\nTimestamp: "+body.Timestamp)
	assert.Regexp(t, `^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z$`, body.Timestamp)
	assert.Regexp(t, `^[0-9a-f-]{36}$`, body.TraceID)
	assert.Equal(t, fmt.Sprintf("https://127.0.0.1:8443/error?code=%d", aadsts), body.ErrorURI)
}

// A wrong client secret is refused as Entra does: 401, invalid_client,
// AADSTS7000215 naming the app, and neither secret in the answer; the same
// for client_secret_post and client_secret_basic.
func TestTokenWrongSecret(t *testing.T) {
	a, st := newAuthority(t, nil)
	p := st.Principals[0]
	const wrong = "Wr0ng~secret.value_ABCdef123-xyz"
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {Audience + "/.default"}, "client_id": {p.ClientID}, "client_secret": {wrong}}
	for name, basic := range map[string][]string{"form": nil, "basic": {p.ClientID, wrong}} {
		t.Run(name, func(t *testing.T) {
			f := form
			if basic != nil {
				f = url.Values{"grant_type": {"client_credentials"}, "scope": {Audience + "/.default"}}
			}
			rec, body := postToken(t, a, st.TenantID, f, basic)
			assertEntraShape(t, rec, body, http.StatusUnauthorized, "invalid_client", 7000215)
			assert.Contains(t, body.Description, "Invalid client secret provided.")
			assert.Contains(t, body.Description, "'"+p.ClientID+"'")
			assert.NotContains(t, rec.Body.String(), wrong)
			assert.NotContains(t, rec.Body.String(), p.ClientSecret)
		})
	}

	// The right secret of another principal is still the wrong secret.
	other := st.Principals[1]
	f := url.Values{"grant_type": {"client_credentials"}, "scope": {Audience + "/.default"}, "client_id": {p.ClientID}, "client_secret": {other.ClientSecret}}
	rec, body := postToken(t, a, st.TenantID, f, nil)
	assertEntraShape(t, rec, body, http.StatusUnauthorized, "invalid_client", 7000215)

	// No secret at all: AADSTS7000218, also 401 invalid_client.
	f = url.Values{"grant_type": {"client_credentials"}, "scope": {Audience + "/.default"}, "client_id": {p.ClientID}}
	rec, body = postToken(t, a, st.TenantID, f, nil)
	assertEntraShape(t, rec, body, http.StatusUnauthorized, "invalid_client", 7000218)
}

// An unknown client id: 400, unauthorized_client, AADSTS700016 naming the
// client id and the tenant, whatever the secret.
func TestTokenUnknownClient(t *testing.T) {
	a, st := newAuthority(t, nil)
	const unknown = "11111111-2222-3333-4444-555555555555"
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {Audience + "/.default"}, "client_id": {unknown}, "client_secret": {st.Principals[0].ClientSecret}}
	rec, body := postToken(t, a, st.TenantID, form, nil)
	assertEntraShape(t, rec, body, http.StatusBadRequest, "unauthorized_client", 700016)
	assert.Contains(t, body.Description, "Application with identifier '"+unknown+"' was not found in the directory '"+st.TenantID+"'.")
	assert.NotContains(t, rec.Body.String(), st.Principals[0].ClientSecret)
}

// An unknown tenant: 400, invalid_tenant, AADSTS90002, on the discovery
// document (what MSAL asks first) and on the token endpoint.
func TestUnknownTenant(t *testing.T) {
	a, st := newAuthority(t, nil)
	const tenant = "00000000-1111-2222-3333-444444444444"
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://127.0.0.1:8443/"+tenant+"/v2.0/.well-known/openid-configuration", nil))
	var body oauthErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assertEntraShape(t, rec, body, http.StatusBadRequest, "invalid_tenant", 90002)
	assert.Contains(t, body.Description, "Tenant '"+tenant+"' not found.")

	form := url.Values{"grant_type": {"client_credentials"}, "scope": {Audience + "/.default"}, "client_id": {st.Principals[0].ClientID}, "client_secret": {st.Principals[0].ClientSecret}}
	rec, body = postToken(t, a, tenant, form, nil)
	assertEntraShape(t, rec, body, http.StatusBadRequest, "invalid_tenant", 90002)
	assert.NotContains(t, rec.Body.String(), st.Principals[0].ClientSecret)

	// The tenant matches case-insensitively.
	rec, _ = postToken(t, a, strings.ToUpper(st.TenantID), form, nil)
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

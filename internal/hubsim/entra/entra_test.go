package entra

import (
	"encoding/json"
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

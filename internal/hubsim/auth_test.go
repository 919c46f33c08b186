package hubsim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/entra"
	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/rest"
	"github.com/dmctl/dmctl/internal/sas"
)

// Past the auth check, a call on an unknown device answers 404001; so
// "allowed" below means the answer was 404001, not 401.
func TestSASPolicies(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	invoke := func(tok string) *wireErrorOrOK {
		return outcome(t, call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, authz(tok)))
	}
	read := func(tok string) *wireErrorOrOK {
		return outcome(t, call(s, http.MethodGet, "/twins/nope"+apiV, "", authz(tok)))
	}
	patch := func(tok string) *wireErrorOrOK {
		return outcome(t, call(s, http.MethodPatch, "/twins/nope"+apiV, `{"tags":{"a":1}}`, authz(tok)))
	}
	cases := []struct {
		policy                    string
		invokeOK, readOK, writeOK bool
	}{
		{identity.PolicyOwner, true, true, true},
		{identity.PolicyService, true, true, true},
		{identity.PolicyRegistryRead, false, true, false},
		{identity.PolicyRegistryReadWrite, false, true, true},
		{identity.PolicyDevice, false, false, false},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			tok := token(t, s, c.policy, "", time.Hour)
			check := func(what string, got *wireErrorOrOK, ok bool) {
				if ok {
					assert.Equal(t, rest.CodeDeviceNotFound, got.code, "%s with %s should pass auth: %s", what, c.policy, got.message)
				} else {
					assert.Equal(t, rest.CodeUnauthorized, got.code, "%s with %s should be refused: %s", what, c.policy, got.message)
					assert.Equal(t, http.StatusUnauthorized, got.status)
				}
			}
			check("invoke", invoke(tok), c.invokeOK)
			check("twin read", read(tok), c.readOK)
			check("twin patch", patch(tok), c.writeOK)
		})
	}
	t.Run("registryRead invoking names the rule", func(t *testing.T) {
		got := invoke(token(t, s, identity.PolicyRegistryRead, "", time.Hour))
		assert.Contains(t, got.message, "registryRead")
		assert.Equal(t, "IotHubUnauthorized", got.name)
	})
}

type wireErrorOrOK struct {
	status, code  int
	name, message string
}

func outcome(t testing.TB, rec *httptest.ResponseRecorder) *wireErrorOrOK {
	t.Helper()
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	out := &wireErrorOrOK{status: resp.StatusCode, name: resp.Header.Get("iothub-errorcode")}
	if resp.StatusCode == http.StatusOK {
		return out
	}
	var outer struct{ Message string }
	require.NoError(t, json.Unmarshal(body, &outer), "%s", body)
	var inner struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}
	require.NoError(t, json.Unmarshal([]byte(outer.Message), &inner), "%s", outer.Message)
	out.code, out.message = inner.ErrorCode, inner.Message
	return out
}

func TestSASTokenChecks(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	host := s.HostName()
	hostNoPort, _, err := net.SplitHostPort(host)
	require.NoError(t, err)
	key, _ := s.PolicyKey(identity.PolicyService)
	otherKey := make([]byte, 32)
	_, _ = rand.Read(otherKey)

	cases := []struct {
		name string
		hdr  string
		code int
	}{
		{"sr with port", sas.NewToken(host, identity.PolicyService, key, time.Now().Add(time.Hour)), rest.CodeDeviceNotFound},
		{"sr without port", sas.NewToken(hostNoPort, identity.PolicyService, key, time.Now().Add(time.Hour)), rest.CodeDeviceNotFound},
		{"sr upper case", sas.NewToken(strings.ToUpper(hostNoPort), identity.PolicyService, key, time.Now().Add(time.Hour)), rest.CodeDeviceNotFound},
		{"sr devices prefix", sas.NewToken(host+"/devices", identity.PolicyService, key, time.Now().Add(time.Hour)), rest.CodeDeviceNotFound},
		{"sr exact device", sas.NewToken(host+"/devices/nope", identity.PolicyService, key, time.Now().Add(time.Hour)), rest.CodeDeviceNotFound},
		{"sr partial segment", sas.NewToken(host+"/dev", identity.PolicyService, key, time.Now().Add(time.Hour)), rest.CodeUnauthorizedAccess},
		{"sr other device", sas.NewToken(host+"/devices/other", identity.PolicyService, key, time.Now().Add(time.Hour)), rest.CodeUnauthorizedAccess},
		{"sr other host", sas.NewToken("otherhub.azure-devices.net", identity.PolicyService, key, time.Now().Add(time.Hour)), rest.CodeUnauthorizedAccess},
		{"wrong key", sas.NewToken(host, identity.PolicyService, otherKey, time.Now().Add(time.Hour)), rest.CodeUnauthorizedAccess},
		{"other policy's key", sas.NewToken(host, identity.PolicyOwner, key, time.Now().Add(time.Hour)), rest.CodeUnauthorizedAccess},
		{"expired", sas.NewToken(host, identity.PolicyService, key, time.Now().Add(-time.Minute)), rest.CodeUnauthorizedAccess},
		{"unknown policy", sas.NewToken(host, "nobody", key, time.Now().Add(time.Hour)), rest.CodeUnauthorizedAccess},
		{"device token (no skn)", sas.NewToken(host+"/devices/nope", "", key, time.Now().Add(time.Hour)), rest.CodeUnauthorizedAccess},
		{"garbage", "SharedAccessSignature nonsense", rest.CodeUnauthorizedAccess},
		{"basic auth", "Basic dXNlcjpwYXNz", rest.CodeUnauthorizedAccess},
		{"missing", "", rest.CodeUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{}
			if c.hdr != "" {
				hdr["Authorization"] = c.hdr
			}
			rec := call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, hdr)
			e := requireCode(t, rec, c.code)
			if c.code != rest.CodeDeviceNotFound {
				assert.Equal(t, http.StatusUnauthorized, e.Status)
				assert.NotContains(t, e.Message, "sig=", "messages never quote the token")
			}
		})
	}
	t.Run("missing header message", func(t *testing.T) {
		e := requireCode(t, call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, nil), rest.CodeUnauthorized)
		assert.Equal(t, "Authorization header missing.", e.Message)
		assert.Equal(t, "IotHubUnauthorized", e.Name)
	})
	t.Run("expired message", func(t *testing.T) {
		e := requireCode(t, call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`,
			authz(sas.NewToken(host, identity.PolicyService, key, time.Now().Add(-time.Minute)))), rest.CodeUnauthorizedAccess)
		assert.Contains(t, e.Message, "expired")
		assert.Equal(t, "IotHubUnauthorizedAccess", e.Name)
	})
	t.Run("sr host as the client addressed the hub", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "https://localhost/twins/nope/methods"+apiV, strings.NewReader(`{"methodName":"m"}`))
		req.Host = "localhost"
		req.Header.Set("Authorization", sas.NewToken("localhost", identity.PolicyService, key, time.Now().Add(time.Hour)))
		assert.Equal(t, rest.CodeDeviceNotFound, outcome(t, serve1(s, req)).code)
	})
}

func serve1(s *Server, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func TestSASCacheHonoursExpiry(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := newTestServer(t, Config{NoThrottle: true, Now: clock})
	key, _ := s.PolicyKey(identity.PolicyService)
	tok := sas.NewToken(s.HostName(), identity.PolicyService, key, now.Add(time.Minute))
	for range 3 {
		assert.Equal(t, rest.CodeDeviceNotFound, outcome(t, call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, authz(tok))).code)
	}
	now = now.Add(2 * time.Minute) // the cached token has expired meanwhile
	e := outcome(t, call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, authz(tok)))
	assert.Equal(t, rest.CodeUnauthorizedAccess, e.code)
	assert.Contains(t, e.message, "expired")
}

// bearer returns a token issued by s's authority for the principal named name.
func bearer(t testing.TB, s *Server, name string, lifetime time.Duration) string {
	t.Helper()
	for _, p := range s.state.Entra.Principals {
		if p.Name == name {
			tok, _, err := s.authority.Issue(p, "https://"+s.HostName(), lifetime)
			require.NoError(t, err)
			return "Bearer " + tok
		}
	}
	t.Fatalf("no principal %q", name)
	return ""
}

func TestBearerTokens(t *testing.T) {
	s := newTestServer(t, Config{NoThrottle: true})
	invoke := func(h string) *wireErrorOrOK {
		return outcome(t, call(s, http.MethodPost, "/twins/nope/methods"+apiV, `{"methodName":"m"}`, authz(h)))
	}
	queryAll := func(h string) *wireErrorOrOK {
		return outcome(t, call(s, http.MethodPost, "/devices/query"+apiV, `{"query":"SELECT * FROM devices"}`, authz(h)))
	}
	patch := func(h string) *wireErrorOrOK {
		return outcome(t, call(s, http.MethodPatch, "/twins/nope"+apiV, `{"tags":{}}`, authz(h)))
	}

	contributor := bearer(t, s, "contributor", time.Hour)
	assert.Equal(t, rest.CodeDeviceNotFound, invoke(contributor).code)
	assert.Equal(t, http.StatusOK, queryAll(contributor).status)
	assert.Equal(t, rest.CodeDeviceNotFound, patch(contributor).code)

	reader := bearer(t, s, "reader", time.Hour)
	got := invoke(reader)
	assert.Equal(t, rest.CodeUnauthorized, got.code, "a reader may not invoke: %s", got.message)
	assert.Contains(t, got.message, "due to no assigned permissions")
	assert.Equal(t, http.StatusOK, queryAll(reader).status, "a reader may query")
	assert.Equal(t, rest.CodeUnauthorized, patch(reader).code, "a reader may not patch")

	norole := bearer(t, s, "norole", time.Hour)
	assert.Equal(t, rest.CodeUnauthorized, invoke(norole).code)
	assert.Equal(t, rest.CodeUnauthorized, queryAll(norole).code)

	t.Run("expired", func(t *testing.T) {
		e := invoke(bearer(t, s, "contributor", -time.Minute))
		assert.Equal(t, rest.CodeUnauthorizedAccess, e.code)
		assert.Contains(t, e.message, "expired")
	})
	t.Run("wrong audience", func(t *testing.T) {
		e := invoke("Bearer " + signWith(t, s.authorityKey(t), jwt.MapClaims{
			"aud": "https://management.azure.com", "tid": s.state.Entra.TenantID, "oid": s.state.Entra.Principals[0].ObjectID,
			"exp": time.Now().Add(time.Hour).Unix(),
		}))
		assert.Equal(t, rest.CodeUnauthorizedAccess, e.code)
		assert.Contains(t, e.message, "audience")
	})
	t.Run("foreign signing key", func(t *testing.T) {
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		e := invoke("Bearer " + signWith(t, other, jwt.MapClaims{
			"aud": entra.Audience, "tid": s.state.Entra.TenantID, "oid": s.state.Entra.Principals[0].ObjectID,
			"exp": time.Now().Add(time.Hour).Unix(),
		}))
		assert.Equal(t, rest.CodeUnauthorizedAccess, e.code)
	})
	t.Run("no expiry", func(t *testing.T) {
		e := invoke("Bearer " + signWith(t, s.authorityKey(t), jwt.MapClaims{
			"aud": entra.Audience, "tid": s.state.Entra.TenantID, "oid": s.state.Entra.Principals[0].ObjectID,
		}))
		assert.Equal(t, rest.CodeUnauthorizedAccess, e.code)
	})
	t.Run("alg none", func(t *testing.T) {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
			"aud": entra.Audience, "tid": s.state.Entra.TenantID, "oid": s.state.Entra.Principals[0].ObjectID,
			"exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		assert.Equal(t, rest.CodeUnauthorizedAccess, invoke("Bearer "+tok).code)
	})
	t.Run("garbage", func(t *testing.T) {
		assert.Equal(t, rest.CodeUnauthorizedAccess, invoke("Bearer not.a.jwt").code)
		assert.Equal(t, rest.CodeUnauthorizedAccess, invoke("Bearer ").code)
	})
}

// authorityKey returns the hub's token signing key (tests only).
func (s *Server) authorityKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := jwt.ParseECPrivateKeyFromPEM([]byte(s.state.Entra.SigningKey))
	require.NoError(t, err)
	return k
}

func signWith(t testing.TB, key *ecdsa.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(key)
	require.NoError(t, err)
	return tok
}

// clientFor trusts only the hub's CA.
func clientFor(s *Server) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: s.Certs().ClientTLSConfig()}, Timeout: 30 * time.Second}
}

func TestClientSecretCredentialGetsAWorkingToken(t *testing.T) {
	s := startTestServer(t, Config{NoThrottle: true})
	r := s.Ready()
	var contributor, reader ReadyPrincipal
	for _, p := range r.Entra.Principals {
		switch p.Name {
		case "contributor":
			contributor = p
		case "reader":
			reader = p
		}
	}
	require.NotEmpty(t, contributor.ClientID)
	opts := &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: r.Entra.AuthorityHost},
			Transport: clientFor(s),
		},
		DisableInstanceDiscovery: true,
	}
	getToken := func(p ReadyPrincipal, secret string) (azcore.AccessToken, error) {
		cred, err := azidentity.NewClientSecretCredential(r.Entra.TenantID, p.ClientID, secret, opts)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{entra.Audience + "/.default"}})
	}

	tok, err := getToken(contributor, contributor.ClientSecret)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Hour), tok.ExpiresOn, 2*time.Minute)

	invoke := func(bearerTok string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, "https://"+r.HostName+"/twins/nope/methods"+apiV, strings.NewReader(`{"methodName":"m"}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+bearerTok)
		resp, err := clientFor(s).Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := invoke(tok.Token)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the contributor's token passes auth (unknown device)")
	assert.Equal(t, "DeviceNotFound", resp.Header.Get("iothub-errorcode"))

	rtok, err := getToken(reader, reader.ClientSecret)
	require.NoError(t, err)
	resp = invoke(rtok.Token)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a reader may not invoke")
	assert.Equal(t, "IotHubUnauthorized", resp.Header.Get("iothub-errorcode"))

	_, err = getToken(contributor, "wrong-secret")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid_client")
	assert.NotContains(t, err.Error(), contributor.ClientSecret)
}

func TestTokenEndpointErrors(t *testing.T) {
	s := startTestServer(t, Config{NoThrottle: true})
	r := s.Ready()
	p := r.Entra.Principals[0]
	post := func(tenant string, form url.Values) (int, map[string]any) {
		resp, err := clientFor(s).PostForm("https://"+r.HostName+"/"+tenant+"/oauth2/v2.0/token", form)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {p.ClientID}, "client_secret": {p.ClientSecret},
		"scope": {"https://iothubs.azure.net/.default openid offline_access profile"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vals := range good {
			f[key] = vals
		}
		f.Set(k, v)
		return f
	}
	status, body := post(r.Entra.TenantID, good)
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "Bearer", body["token_type"])
	assert.EqualValues(t, 3600, body["expires_in"])
	assert.NotEmpty(t, body["access_token"])

	status, _ = post(strings.ToUpper(r.Entra.TenantID), good)
	assert.Equal(t, http.StatusOK, status, "tenant matches case-insensitively")

	cases := []struct {
		name, tenant string
		form         url.Values
		status       int
		errCode      string
	}{
		{"wrong secret", r.Entra.TenantID, with("client_secret", "nope"), 401, "invalid_client"},
		{"unknown client", r.Entra.TenantID, with("client_id", "00000000-0000-0000-0000-000000000000"), 400, "unauthorized_client"},
		{"bad grant", r.Entra.TenantID, with("grant_type", "password"), 400, "unsupported_grant_type"},
		{"other scope", r.Entra.TenantID, with("scope", "https://management.azure.com/.default"), 400, "invalid_scope"},
		{"other tenant", "11111111-1111-1111-1111-111111111111", good, 400, "invalid_tenant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(c.tenant, c.form)
			assert.Equal(t, c.status, status)
			assert.Equal(t, c.errCode, body["error"])
			assert.NotEmpty(t, body["error_description"])
		})
	}

	t.Run("discovery", func(t *testing.T) {
		resp, err := clientFor(s).Get("https://" + r.HostName + "/" + r.Entra.TenantID + "/v2.0/.well-known/openid-configuration")
		require.NoError(t, err)
		defer resp.Body.Close()
		var doc map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
		assert.Equal(t, "https://"+r.HostName+"/"+r.Entra.TenantID+"/oauth2/v2.0/token", doc["token_endpoint"])
		assert.NotEmpty(t, doc["authorization_endpoint"])
		assert.True(t, strings.HasPrefix(doc["issuer"].(string), "https://"+r.HostName+"/"), "issuer %v", doc["issuer"])
	})
}

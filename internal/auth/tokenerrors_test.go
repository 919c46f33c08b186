package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	goodTenant = "5b1c7e4a-0d6f-4a43-9c53-2b8f1f0c9d11"
	goodClient = "0b1b2ccf-2a64-4d58-b21c-6afbaecb9fac"
	goodSecret = "Rq8~vX.2mN_kT4pL9wZ-sY6bH3cJ1fG5dQ0aE7uI"
)

// entraError writes an error the way Microsoft Entra's token endpoint
// shapes it: error, error_description (AADSTS code, sentence, trace lines)
// and error_codes.
func entraError(w http.ResponseWriter, status int, code string, aadsts int, sentence string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: 7e0c\r\nCorrelation ID: 1f2a\r\nTimestamp: 2026-01-01 00:00:00Z", aadsts, sentence),
		"error_codes":       []int{aadsts},
	})
}

// fakeEntra serves discovery and the client-credentials grant for one
// tenant, one client and one secret, answering wrong ones as Entra does.
func fakeEntra(t *testing.T) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		tenant := r.PathValue("tenant")
		if !strings.EqualFold(tenant, goodTenant) {
			entraError(w, http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check the tenant ID.", tenant))
			return
		}
		base := srv.URL + "/" + tenant
		_ = json.NewEncoder(w).Encode(map[string]string{
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"issuer":                 base + "/v2.0",
		})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		switch id := r.PostForm.Get("client_id"); {
		case id != goodClient:
			entraError(w, http.StatusBadRequest, "unauthorized_client", 700016,
				fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. More text.", id, r.PathValue("tenant")))
		case r.PostForm.Get("client_secret") != goodSecret:
			entraError(w, http.StatusUnauthorized, "invalid_client", 7000215,
				fmt.Sprintf("Invalid client secret provided. Ensure the secret is right, for app '%s'.", id))
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "tok-1", "expires_in": 3600, "token_type": "Bearer"})
		}
	})
	srv = httptest.NewUnstartedServer(mux)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// setHint matches a hint telling to set one of the service principal's variables.
var setHint = regexp.MustCompile(`\bset (` + EnvTenantID + `|` + EnvClientID + `|` + EnvClientSecret + `)\b`)

func TestEntraRefusalsNameTheRefusedInput(t *testing.T) {
	srv := fakeEntra(t)
	const wrongSecret = "Wr0ng~secret.value_ABCdef123-xyz"
	tests := []struct {
		name                   string
		tenant, client, secret string
		refused                string
		want                   []string
	}{
		{"wrong secret", goodTenant, goodClient, wrongSecret, EnvClientSecret,
			[]string{"the client secret (AZURE_CLIENT_SECRET) was refused", "HTTP 401 invalid_client, AADSTS7000215", "Invalid client secret provided."}},
		{"unknown client", goodTenant, "11111111-2222-3333-4444-555555555555", goodSecret, EnvClientID,
			[]string{"the client id (AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555) is not known in tenant " + goodTenant,
				"HTTP 400 unauthorized_client, AADSTS700016"}},
		{"unknown tenant", "00000000-1111-2222-3333-444444444444", goodClient, goodSecret, EnvTenantID,
			[]string{"the tenant (AZURE_TENANT_ID=00000000-1111-2222-3333-444444444444) was not found at authority AZURE_AUTHORITY_HOST=" + srv.URL + "/",
				"HTTP 400 invalid_tenant, AADSTS90002"}},
		{"secret pasted as client id", goodTenant, goodSecret, wrongSecret, EnvClientID,
			[]string{"the client id (AZURE_CLIENT_ID) is not known", "AADSTS700016", "Application with identifier 'REDACTED'"}},
	}
	for _, m := range []Method{MethodEnvironment, MethodDefault} {
		for _, tt := range tests {
			t.Run(string(m)+"/"+tt.name, func(t *testing.T) {
				t.Setenv(EnvTenantID, tt.tenant)
				t.Setenv(EnvClientID, tt.client)
				t.Setenv(EnvClientSecret, tt.secret)
				t.Setenv(EnvAuthorityHost, srv.URL+"/")
				t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
				c, err := Resolve(Options{Method: m, Hub: "127.0.0.1:1", Transport: loopbackOnly{srv.Client()}})
				require.NoError(t, err)
				_, err = c.Token.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://iothubs.azure.net/.default"}})
				var ce *CredentialError
				require.True(t, errors.As(err, &ce), "%T %v", err, err)
				msg := err.Error()
				assert.Equal(t, tt.refused, ce.Refused())
				for _, w := range tt.want {
					assert.Contains(t, msg, w)
				}
				assert.NotContains(t, msg, "\n")
				hint := ce.Hint()
				assert.Contains(t, hint, "check "+tt.refused)
				assert.NotRegexp(t, setHint, hint, "every variable is set: the hint must not ask to set one")
				assert.Equal(t, hint, c.TokenFailureHint(), "the credential remembers its last failure")
				for _, s := range []string{goodSecret, wrongSecret, "Trace ID"} {
					assert.NotContains(t, msg+hint, s)
				}
			})
		}
	}
}

func TestEntraNonOAuthAnswerBlamesTheAuthority(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	t.Setenv(EnvTenantID, goodTenant)
	t.Setenv(EnvClientID, goodClient)
	t.Setenv(EnvClientSecret, goodSecret)
	t.Setenv(EnvAuthorityHost, srv.URL+"/")
	c, err := Resolve(Options{Method: MethodEnvironment, Hub: "127.0.0.1:1", Transport: loopbackOnly{srv.Client()}})
	require.NoError(t, err)
	_, err = c.Token.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://iothubs.azure.net/.default"}})
	var ce *CredentialError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, EnvAuthorityHost, ce.Refused())
	assert.Contains(t, err.Error(), "answered HTTP 404 without an OAuth error")
	assert.Contains(t, ce.Hint(), "check "+EnvAuthorityHost)
	assert.NotContains(t, err.Error()+ce.Hint(), goodSecret)
}

// azidentity reports an authority it cannot reach as text; the message
// names AZURE_AUTHORITY_HOST and keeps the network error.
func TestEntraUnreachableAuthority(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	authority := "https://" + addr + "/"
	vars := map[string]string{EnvTenantID: goodTenant, EnvClientID: goodClient, EnvClientSecret: goodSecret, EnvAuthorityHost: authority}
	// The shape azidentity v1.15 gives a failed discovery request.
	azErr := errors.New("ClientSecretCredential: unable to resolve an endpoint: server response error:\n Get \"" + authority + goodTenant +
		"/v2.0/.well-known/openid-configuration?\": dial tcp " + addr + ": connect: connection refused. To troubleshoot, visit https://aka.ms/azsdk/go/identity/troubleshoot#client-secret")
	for _, m := range []Method{MethodEnvironment, MethodDefault, MethodWorkloadIdentity} {
		ce := &CredentialError{Method: m, Err: azErr, LookupEnv: env(vars)}
		assert.Equal(t, EnvAuthorityHost, ce.Refused(), m)
		assert.Equal(t, string(m)+" credential could not get a token: the authority host (AZURE_AUTHORITY_HOST="+authority+
			") could not be reached: dial tcp "+addr+": connect: connection refused", ce.Error())
		assert.Contains(t, ce.Hint(), "check "+EnvAuthorityHost)
	}
	delete(vars, EnvAuthorityHost)
	ce := &CredentialError{Method: MethodEnvironment, Err: azErr, LookupEnv: env(vars)}
	assert.Contains(t, ce.Error(), "the token endpoint https://"+addr+" (named by the authority https://login.microsoftonline.com/, the default: AZURE_AUTHORITY_HOST is not set) could not be reached")
	assert.Contains(t, ce.Hint(), "or set "+EnvAuthorityHost+" for another cloud")

	// Managed identity does not use the authority: its errors stay as they are.
	mi := &CredentialError{Method: MethodManagedIdentity, Err: azErr, LookupEnv: env(vars)}
	assert.Empty(t, mi.Refused())
}

func TestTokenFailureHintOnlyAsksForWhatIsMissing(t *testing.T) {
	all := map[string]string{EnvTenantID: "t", EnvClientID: "c", EnvClientSecret: "s"}
	without := func(keys ...string) map[string]string {
		m := map[string]string{}
		for k, v := range all {
			m[k] = v
		}
		for _, k := range keys {
			delete(m, k)
		}
		return m
	}
	tests := []struct {
		name    string
		m       Method
		vars    map[string]string
		want    string
		notWant []string
	}{
		{"environment, nothing set", MethodEnvironment, nil,
			"set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) for a service principal.", nil},
		{"environment, secret missing", MethodEnvironment, without(EnvClientSecret),
			"set AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) for a service principal.", []string{EnvTenantID, EnvClientID}},
		{"environment, tenant missing", MethodEnvironment, without(EnvTenantID), "set AZURE_TENANT_ID for a service principal.", nil},
		{"environment, all set", MethodEnvironment, all, "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are set: check their values", nil},
		{"environment, certificate", MethodEnvironment, map[string]string{EnvTenantID: "t", EnvClientID: "c", EnvClientCertificate: "/c.pem"},
			"AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_CERTIFICATE_PATH are set", nil},
		{"default, nothing set", MethodDefault, nil, "sign in with `az login`, set AZURE_* service principal variables", nil},
		{"default, client id missing", MethodDefault, without(EnvClientID), "set AZURE_CLIENT_ID to complete the service principal", nil},
		{"default, all set", MethodDefault, all, "are set, so DefaultAzureCredential used that service principal", nil},
		{"workload, token file missing", MethodWorkloadIdentity, all, "workload identity needs AZURE_FEDERATED_TOKEN_FILE (set by the AKS webhook).", nil},
		{"managed, client id set", MethodManagedIdentity, all, "AZURE_CLIENT_ID is set, so the user-assigned identity", nil},
		{"managed, nothing set", MethodManagedIdentity, nil, "set AZURE_CLIENT_ID for a user-assigned one", nil},
		{"azure-cli", MethodAzureCLI, all, "run `az login`", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hintFor(tt.m, diagnosis{}, env(tt.vars))
			assert.Contains(t, h, tt.want)
			for _, n := range tt.notWant {
				assert.NotContains(t, h, n)
			}
			if len(tt.vars) == len(all) && tt.m != MethodManagedIdentity && tt.m != MethodAzureCLI {
				assert.NotRegexp(t, setHint, h)
			}
		})
	}
}

func TestCredentialErrorScrubsSecrets(t *testing.T) {
	vars := map[string]string{EnvClientSecret: goodSecret}
	err := &CredentialError{Method: MethodEnvironment, Err: errors.New("failed: the server said " + goodSecret + " is wrong"), LookupEnv: env(vars)}
	assert.NotContains(t, err.Error(), goodSecret)
	assert.Contains(t, err.Error(), "REDACTED")

	d := describe("AADSTS700016: Application with identifier '"+goodSecret+"' was not found in the directory 'contoso.onmicrosoft.com'. This can happen.\r\nTrace ID: x", env(nil))
	assert.Equal(t, "Application with identifier 'REDACTED' was not found in the directory 'contoso.onmicrosoft.com'.", d)
}

func TestPlausibleID(t *testing.T) {
	for _, ok := range []string{goodTenant, strings.ToUpper(goodClient), "contoso.onmicrosoft.com", "common", "tenant-1"} {
		assert.True(t, plausibleID(ok), ok)
	}
	for _, bad := range []string{"", goodSecret, "yblg7Zmy-bVR04knPAexOCBt9tQo9Aupkhw9kncT", "a b", strings.Repeat("a", 65), "x=y"} {
		assert.False(t, plausibleID(bad), bad)
	}
}

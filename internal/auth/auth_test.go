package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/sas"
)

const (
	testKey = "ZG1jdGwtdGVzdC1rZXktMDEyMzQ1Njc4OQ==" // base64("dmctl-test-key-0123456789")
	hubA    = "hub-a.azure-devices.net"
	hubB    = "hub-b.azure-devices.net"
)

func cs(host string) string {
	return "HostName=" + host + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func files(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		v, ok := m[p]
		if !ok {
			return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
		}
		return []byte(v), nil
	}
}

func TestResolveSASPrecedence(t *testing.T) {
	fs := files(map[string]string{"/cs.txt": cs(hubB) + "\n"})
	tests := []struct {
		name       string
		opts       Options
		wantHost   string
		wantSource string
	}{
		{"env only", Options{LookupEnv: env(map[string]string{EnvConnectionString: cs(hubA)})}, hubA, EnvConnectionString},
		{"file beats env", Options{ConnectionStringFile: "/cs.txt", ReadFile: fs, LookupEnv: env(map[string]string{EnvConnectionString: cs(hubA)})}, hubB, "--connection-string-file /cs.txt"},
		{"flag beats env", Options{ConnectionString: cs(hubB), LookupEnv: env(map[string]string{EnvConnectionString: cs(hubA)})}, hubB, "--connection-string"},
		{"explicit sas", Options{Method: MethodSAS, ConnectionString: cs(hubA), LookupEnv: env(nil)}, hubA, "--connection-string"},
		{"matching --hub", Options{Hub: "hub-a", ConnectionString: cs(hubA), LookupEnv: env(nil)}, hubA, "--connection-string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Resolve(tt.opts)
			require.NoError(t, err)
			assert.Equal(t, MethodSAS, c.Method)
			assert.Equal(t, tt.wantHost, c.Host)
			assert.Equal(t, tt.wantSource, c.Source)
			require.NotNil(t, c.Signer)
			assert.Nil(t, c.Token)
			assert.NotContains(t, c.Describe(), testKey)
			assert.Contains(t, c.Describe(), "SharedAccessKey=REDACTED")
		})
	}
}

func TestResolveSASSignerSignsWithTheKey(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c, err := Resolve(Options{ConnectionString: cs("127.0.0.1:8443"), LookupEnv: env(nil), Now: func() time.Time { return now }})
	require.NoError(t, err)
	tok, err := sas.Parse(c.Signer.Token())
	require.NoError(t, err)
	key, err := sas.DecodeKey(testKey)
	require.NoError(t, err)
	assert.NoError(t, tok.Verify(key, now))
	assert.Equal(t, "127.0.0.1:8443", tok.Resource)
	assert.Equal(t, "iothubowner", tok.KeyName)
}

func TestResolveErrors(t *testing.T) {
	fs := files(map[string]string{"/empty.txt": " \n", "/device.txt": "HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey=" + testKey})
	tests := []struct {
		name      string
		opts      Options
		wantInput string
		wantIn    []string
	}{
		{"nothing", Options{}, "", []string{"no credentials", "IOTHUB_CONNECTION_STRING", "--hub HOST", "azure-cli"}},
		{"both flags", Options{ConnectionString: cs(hubA), ConnectionStringFile: "/x"}, "--connection-string", []string{"not both"}},
		{"missing file", Options{ConnectionStringFile: "/nope.txt"}, "--connection-string-file /nope.txt", []string{"cannot read the file", "does not exist"}},
		{"empty file", Options{ConnectionStringFile: "/empty.txt"}, "--connection-string-file /empty.txt", []string{"the file is empty"}},
		{"device string", Options{ConnectionStringFile: "/device.txt"}, "--connection-string-file /device.txt", []string{"device connection string", "service connection string"}},
		{"bad env string", Options{LookupEnv: env(map[string]string{EnvConnectionString: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + testKey + ";Foo=bar"})}, EnvConnectionString, []string{"part 4 has an unknown key"}},
		{"bad base64 key", Options{ConnectionString: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=not*base64"}, "--connection-string", []string{"not valid base64"}},
		{"sas without string", Options{Method: MethodSAS, Hub: hubA}, "--auth sas", []string{"no connection string"}},
		{"hub mismatch", Options{Hub: hubB, ConnectionString: cs(hubA)}, "--hub", []string{hubB, hubA, "does not match"}},
		{"entra needs hub", Options{Method: MethodAzureCLI}, "--hub", []string{"--auth azure-cli needs --hub"}},
		{"entra with string", Options{Method: MethodAzureCLI, Hub: hubA, ConnectionString: cs(hubA)}, "--auth", []string{"for --auth sas"}},
		{"unknown method", Options{Method: "kerberos", Hub: hubA}, "--auth", []string{`"kerberos" is not an auth method`, "azure-cli"}},
		{"hub with scheme", Options{Hub: "https://hub-a.azure-devices.net"}, "--hub", []string{"URL scheme"}},
		{"hub with path", Options{Hub: "hub-a.azure-devices.net/x"}, "--hub", []string{"not a host name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.LookupEnv == nil {
				tt.opts.LookupEnv = env(nil)
			}
			if tt.opts.ReadFile == nil {
				tt.opts.ReadFile = fs
			}
			c, err := Resolve(tt.opts)
			require.Error(t, err)
			assert.Nil(t, c)
			var ie *InputError
			require.True(t, errors.As(err, &ie), "want *InputError, got %T %v", err, err)
			assert.Equal(t, tt.wantInput, ie.Input)
			for _, s := range tt.wantIn {
				assert.Contains(t, err.Error(), s)
			}
			assert.NotContains(t, err.Error(), testKey)
		})
	}
}

func TestNormalizeHub(t *testing.T) {
	for in, want := range map[string]string{
		"myhub":                   "myhub.azure-devices.net",
		"myhub.azure-devices.net": "myhub.azure-devices.net",
		"127.0.0.1:8443":          "127.0.0.1:8443",
		"localhost:8443":          "localhost:8443",
		" hub.example.com ":       "hub.example.com",
		"[::1]:8443":              "[::1]:8443",
	} {
		got, err := NormalizeHub(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "http://x", "a b", "x/y", "user@host", "h:0", "h:99999", "a..b", "[::1", "::1", "h_x"} {
		_, err := NormalizeHub(in)
		assert.Error(t, err, in)
	}
}

// A connection string (or a key) given to --hub or DMCTL_HUB is described,
// never echoed; a plausible host is quoted so the user sees the typo.
func TestNormalizeHubNeverEchoesASecret(t *testing.T) {
	const key = "8H02KG1w5GAu7YMgj0qgUaNsQP0RxSUkHDaDxLg14f4="
	for _, in := range []string{
		"HostName=h.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=" + key,
		key,
		strings.TrimRight(key, "="),
		"SharedAccessKey " + key,
		"h.azure-devices.net " + key,
		strings.Repeat("a", 300),
	} {
		_, err := NormalizeHub(in)
		require.Error(t, err, in)
		var ie *InputError
		require.ErrorAs(t, err, &ie)
		assert.Equal(t, "--hub", ie.Input)
		for i := 0; i+8 <= len(key); i++ {
			assert.NotContains(t, err.Error(), key[i:i+8])
		}
		assert.NotContains(t, err.Error(), "aaaaaaaa")
	}
	_, err := NormalizeHub("HostName=h;SharedAccessKey=" + key)
	assert.ErrorContains(t, err, "like a connection string")
	_, err = NormalizeHub("myhub.azure-devices.net/x")
	assert.ErrorContains(t, err, `"myhub.azure-devices.net/x" is not a host name (it contains a character other than`)
	_, err = NormalizeHub("https://x")
	assert.EqualError(t, err, `--hub: "https://x" has a URL scheme; give the hub's host name, e.g. myhub.azure-devices.net`)
}

func TestInputErrorsNeverEchoASecret(t *testing.T) {
	const key = "8H02KG1w5GAu7YMgj0qgUaNsQP0RxSUkHDaDxLg14f4="
	_, err := ParseMethod("HostName=h;SharedAccessKey=" + key)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "8H02KG1w")
	assert.Contains(t, err.Error(), "the value is not an auth method")
	_, err = ParseMethod("kerberos")
	assert.ErrorContains(t, err, `"kerberos" is not an auth method`)

	// A connection string given as the path of --connection-string-file.
	_, err = Resolve(Options{ConnectionStringFile: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key, LookupEnv: env(nil), ReadFile: files(nil)})
	var ie *InputError
	require.ErrorAs(t, err, &ie)
	assert.Contains(t, ie.Input, "--connection-string-file")
	assert.Contains(t, err.Error(), "cannot read the file")
	assert.NotContains(t, err.Error(), "8H02KG1w")
}

func TestDisableInstanceDiscovery(t *testing.T) {
	tests := map[string]bool{
		"":                                    false,
		"https://login.microsoftonline.com/":  false,
		"https://LOGIN.microsoftonline.us":    false,
		"login.chinacloudapi.cn":              false,
		"https://127.0.0.1:8443/":             true,
		"https://login.azurestack.contoso.io": true,
	}
	for v, want := range tests {
		vars := map[string]string{}
		if v != "" {
			vars[EnvAuthorityHost] = v
		}
		assert.Equal(t, want, disableInstanceDiscovery(env(vars)), v)
	}
}

func TestResolveEntraMethods(t *testing.T) {
	for _, m := range []Method{MethodDefault, MethodAzureCLI, MethodEnvironment, MethodManagedIdentity} {
		t.Run(string(m), func(t *testing.T) {
			c, err := Resolve(Options{Method: m, Hub: "hub-a", LookupEnv: env(nil)})
			if m == MethodEnvironment && err != nil {
				// Without AZURE_* variables the environment credential cannot be built: a credential error.
				var ce *CredentialError
				require.True(t, errors.As(err, &ce), "%T %v", err, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, m, c.Method)
			assert.Equal(t, hubA, c.Host)
			assert.Nil(t, c.Signer)
			require.NotNil(t, c.Token)
			assert.Contains(t, c.RefusedHint(), "IoT Hub Data Contributor")
			assert.Contains(t, c.RefusedHint(), hubA)
		})
	}
}

func TestHubAloneMeansDefault(t *testing.T) {
	c, err := Resolve(Options{Hub: "hub-a", LookupEnv: env(nil)})
	require.NoError(t, err)
	assert.Equal(t, MethodDefault, c.Method)
}

type fakeCred struct{ err error }

func (f fakeCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, f.err
}

func TestGuardedMarksCredentialFailures(t *testing.T) {
	g := guarded{method: MethodAzureCLI, cred: fakeCred{err: errors.New("AzureCLICredential: please run 'az login'\nmore details")}}
	_, err := g.GetToken(context.Background(), policy.TokenRequestOptions{})
	var ce *CredentialError
	require.True(t, errors.As(err, &ce))
	assert.True(t, ce.CredentialFailure())
	assert.Equal(t, "azure-cli credential could not get a token: AzureCLICredential: please run 'az login'", err.Error())
	assert.Contains(t, ce.Hint(), "az login")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = g.GetToken(ctx, policy.TokenRequestOptions{})
	assert.False(t, errors.As(err, &ce), "a cancelled request is not a credential failure")
}

// loopbackOnly refuses any request that is not for 127.0.0.1, so a mistake in
// the code under test fails the test instead of reaching out.
type loopbackOnly struct{ c *http.Client }

func (l loopbackOnly) Do(r *http.Request) (*http.Response, error) {
	if h, _, _ := net.SplitHostPort(r.URL.Host); h != "127.0.0.1" {
		return nil, fmt.Errorf("test transport: refusing non-loopback request to %s", r.URL.Host)
	}
	return l.c.Do(r)
}

// tokenEndpoint serves what MSAL needs for the client-credentials flow
// (entra-local.md) and records the scope it was asked for.
func tokenEndpoint(t *testing.T, token string) (*httptest.Server, *[]string) {
	var scopes []string
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		base := srv.URL + "/" + r.PathValue("tenant")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"issuer":                 base + "/v2.0",
		})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		scopes = append(scopes, r.PostForm.Get("scope"))
		if r.PostForm.Get("client_secret") != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
	})
	srv = httptest.NewUnstartedServer(mux)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &scopes
}

func TestEnvironmentCredentialAgainstLocalAuthority(t *testing.T) {
	srv, scopes := tokenEndpoint(t, "local-token-1")
	t.Setenv("AZURE_TENANT_ID", "tenant-1")
	t.Setenv("AZURE_CLIENT_ID", "client-1")
	t.Setenv("AZURE_CLIENT_SECRET", "s3cret")
	t.Setenv("AZURE_AUTHORITY_HOST", srv.URL+"/")
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
	client := srv.Client()

	for _, m := range []Method{MethodEnvironment, MethodDefault} {
		t.Run(string(m), func(t *testing.T) {
			c, err := Resolve(Options{Method: m, Hub: "127.0.0.1:1", Transport: loopbackOnly{client}})
			require.NoError(t, err)
			tok, err := c.Token.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://iothubs.azure.net/.default"}})
			require.NoError(t, err)
			assert.Equal(t, "local-token-1", tok.Token)
		})
	}
	require.NotEmpty(t, *scopes)
	assert.True(t, strings.HasPrefix((*scopes)[0], "https://iothubs.azure.net/.default"), (*scopes)[0])
}

func TestEnvironmentCredentialRefusedIsCredentialError(t *testing.T) {
	srv, _ := tokenEndpoint(t, "unused")
	t.Setenv("AZURE_TENANT_ID", "tenant-1")
	t.Setenv("AZURE_CLIENT_ID", "client-1")
	t.Setenv("AZURE_CLIENT_SECRET", "wrong-secret")
	t.Setenv("AZURE_AUTHORITY_HOST", srv.URL+"/")
	c, err := Resolve(Options{Method: MethodEnvironment, Hub: "127.0.0.1:1", Transport: loopbackOnly{srv.Client()}})
	require.NoError(t, err)
	_, err = c.Token.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://iothubs.azure.net/.default"}})
	var ce *CredentialError
	require.True(t, errors.As(err, &ce), "%T %v", err, err)
	assert.NotContains(t, err.Error(), "wrong-secret")
	assert.NotContains(t, err.Error(), "\n")
}

func TestReadsConnectionStringFileFromDisk(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cs")
	require.NoError(t, os.WriteFile(p, []byte(cs(hubA)+"\n"), 0o600))
	c, err := Resolve(Options{ConnectionStringFile: p, LookupEnv: env(nil)})
	require.NoError(t, err)
	assert.Equal(t, hubA, c.Host)
}

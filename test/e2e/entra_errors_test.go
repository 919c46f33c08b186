package e2e

import (
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/test/testbin"
)

// entraErrSetHint matches a hint that asks to set one of the variables
// every case here sets.
var entraErrSetHint = regexp.MustCompile(`(?i)\bset (AZURE_TENANT_ID|AZURE_CLIENT_ID|AZURE_CLIENT_SECRET|AZURE_AUTHORITY_HOST)\b`)

// entraErrHints returns the hint lines of stderr.
func entraErrHints(stderr string) []string {
	var hints []string
	for _, l := range strings.Split(stderr, "\n") {
		if i := strings.Index(l, "hint: "); i >= 0 {
			hints = append(hints, l[i:])
		}
	}
	return hints
}

// TestEntraErrorsNameTheRefusedInput drives the real EnvironmentCredential
// in the dmctl binary against hubsim's token endpoint (and a closed loopback
// port) with one wrong input at a time: each run exits 3 with a message that
// names the refused input and the token endpoint's AADSTS code (or the
// connection failure), a hint that does not ask to set what is set, and
// neither the real nor the wrong secret in any output.
func TestEntraErrorsNameTheRefusedInput(t *testing.T) {
	hub := testbin.StartHubsim(t, "--devices", "2", "--no-throttle")
	p := hub.Principal(t, "contributor")
	const wrongSecret = "Wr0ng~client.secret_ABCdef123-xyz789"

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "https://" + l.Addr().String() + "/"
	require.NoError(t, l.Close())

	base := func() map[string]string {
		return map[string]string{
			"AZURE_TENANT_ID":         hub.Entra.TenantID,
			"AZURE_CLIENT_ID":         p.ClientID,
			"AZURE_CLIENT_SECRET":     p.ClientSecret,
			"AZURE_AUTHORITY_HOST":    hub.Entra.AuthorityHost,
			"AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
			"SSL_CERT_FILE":           hub.CAFile,
		}
	}
	cases := []struct {
		name  string
		key   string
		value string
		want  []string
	}{
		{"wrong client secret", "AZURE_CLIENT_SECRET", wrongSecret,
			[]string{"the client secret (AZURE_CLIENT_SECRET) was refused", "invalid_client", "AADSTS7000215"}},
		{"unknown client id", "AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555",
			[]string{"the client id (AZURE_CLIENT_ID=11111111-2222-3333-4444-555555555555) is not known in tenant " + hub.Entra.TenantID, "unauthorized_client", "AADSTS700016"}},
		{"unknown tenant", "AZURE_TENANT_ID", "00000000-1111-2222-3333-444444444444",
			[]string{"the tenant (AZURE_TENANT_ID=00000000-1111-2222-3333-444444444444) was not found at authority AZURE_AUTHORITY_HOST=" + hub.Entra.AuthorityHost, "invalid_tenant", "AADSTS90002"}},
		{"unreachable authority", "AZURE_AUTHORITY_HOST", closed,
			[]string{"the authority host (AZURE_AUTHORITY_HOST=" + closed + ") could not be reached", "connection refused"}},
	}
	commands := []struct {
		name string
		args []string
		code int
	}{
		{"invoke", []string{"invoke", "reboot", "--device", "sim-000001"}, 3},
		{"invoke --debug", []string{"invoke", "reboot", "--device", "sim-000002", "--debug", "-o", "jsonl"}, 3},
		{"twin show", []string{"twin", "show", "--device", "sim-000001"}, 3},
		{"doctor", []string{"doctor", "--timeout", "20s"}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range commands {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					env := base()
					env[tc.key] = tc.value
					args := append(append([]string{}, c.args...), "--auth", "environment", "--hub", hub.HostName, "--ca-file", hub.CAFile)
					r := runDmctl(t, dmctlCmd{env: env}, args...)
					all := r.stdout + r.stderr
					assert.Equal(t, c.code, r.code, "stderr: %s", r.stderr)
					// doctor prints its checks (and their hints) on stdout.
					for _, w := range tc.want {
						assert.Contains(t, all, w)
					}
					assert.NotContains(t, all, "authentication failed", "not azidentity's generic line")
					hints := entraErrHints(all)
					require.NotEmpty(t, hints, "a hint says what to do: %s", all)
					for _, h := range hints {
						assert.NotRegexp(t, entraErrSetHint, h, "every variable is set: the hint must not ask to set one")
					}
					for _, s := range []string{p.ClientSecret, wrongSecret} {
						if w := secretsLeakedPiece(all, s); w != "" {
							t.Errorf("output holds %q, 8 characters of a client secret:\n%s", w, all)
						}
					}
					assert.NotContains(t, all, "eyJ", "no token (a JWT starts eyJ)")
				})
			}
		})
	}

	// The hint that goes with the error names the refused variable.
	t.Run("twin show hint names the refused variable", func(t *testing.T) {
		for _, tc := range cases {
			env := base()
			env[tc.key] = tc.value
			r := runDmctl(t, dmctlCmd{env: env}, "twin", "show", "--device", "sim-000001", "--auth", "environment",
				"--hub", hub.HostName, "--ca-file", hub.CAFile)
			assert.Equal(t, 3, r.code, r.stderr)
			assert.Contains(t, r.stderr, "hint: check "+tc.key, tc.name)
		}
	})
}

// TestEntraDebugShowsNoToken: a run that gets a token with --debug logs the
// hub calls without the bearer token and azidentity's events without the
// client secret.
func TestEntraDebugShowsNoToken(t *testing.T) {
	hub := testbin.StartHubsim(t, "--devices", "2", "--no-throttle")
	p := hub.Principal(t, "contributor")
	env := map[string]string{
		"AZURE_TENANT_ID":         hub.Entra.TenantID,
		"AZURE_CLIENT_ID":         p.ClientID,
		"AZURE_CLIENT_SECRET":     p.ClientSecret,
		"AZURE_AUTHORITY_HOST":    hub.Entra.AuthorityHost,
		"AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
		"SSL_CERT_FILE":           hub.CAFile,
	}
	r := runDmctl(t, dmctlCmd{env: env}, "invoke", "reboot", "--device", "sim-000001", "--debug", "--auth", "environment",
		"--hub", hub.HostName, "--ca-file", hub.CAFile, "-o", "jsonl")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "[Authentication]", "azidentity's events are in the debug log")
	assert.Contains(t, r.stderr, "Authorization: REDACTED", "the hub call is logged, its credential masked")
	all := r.stdout + r.stderr
	assert.NotContains(t, all, "eyJ", "no token (a JWT starts eyJ)")
	if w := secretsLeakedPiece(all, p.ClientSecret); w != "" {
		t.Errorf("output holds %q, 8 characters of the client secret:\n%s", w, all)
	}
}

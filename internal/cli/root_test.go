package cli

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
	"github.com/dmctl/dmctl/internal/cli/version"
	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
)

func TestExitCode(t *testing.T) {
	unauthorized := fleet.Summarize([]fleet.Result{{Outcome: fleet.OutcomeUnauthorized}, {Outcome: fleet.OutcomeUnauthorized}})
	mixed := fleet.Summarize([]fleet.Result{{Outcome: fleet.OutcomeUnauthorized}, {Outcome: fleet.OutcomeOffline}})
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain", errors.New("disk on fire"), 1},
		{"flag error", cmdutil.FlagErrorf("--device is required"), 2},
		{"wrapped flag error", fmt.Errorf("ctx: %w", cmdutil.FlagErrorf("x")), 2},
		{"auth input", &auth.InputError{Input: "--hub", Reason: "x"}, 2},
		{"iothub input", &iothub.InputError{Input: "device id", Reason: "x"}, 2},
		{"connection string", fmt.Errorf("load: %w", &connstr.Error{Reason: "x"}), 2},
		{"credential", &auth.CredentialError{Method: auth.MethodAzureCLI, Err: errors.New("no az")}, 3},
		{"all unauthorized", &cmdutil.TargetsError{Summary: unauthorized}, 3},
		{"targets failed", &cmdutil.TargetsError{Summary: mixed}, 4},
		{"interrupted", fmt.Errorf("%w: %w", cmdutil.ErrInterrupted, context.Canceled), 130},
		{"cancelled", context.Canceled, 130},
		{"interrupt beats failures", fmt.Errorf("%w: %w", cmdutil.ErrInterrupted, &cmdutil.TargetsError{Summary: mixed}), 130},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, cmdutil.ExitCode(tt.err))
		})
	}
}

func TestRunPrintsErrorsOnce(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown command", []string{"bogus"}, 2, "Error: unknown command \"bogus\" for \"dmctl\"\nRun 'dmctl --help' for usage.\n"},
		{"flag error", []string{"invoke", "reboot"}, 2, "Error: name the targets: --device ID (repeatable), --devices-file FILE (- for stdin) or --query SQL\nRun 'dmctl invoke --help' for usage.\n"},
		{"unknown flag", []string{"invoke", "reboot", "--device", "d", "--nope"}, 2, "Error: unknown flag: --nope\nRun 'dmctl invoke --help' for usage.\n"},
		{"version args", []string{"version", "extra"}, 2, "Error: dmctl version takes no arguments, got \"extra\"\nRun 'dmctl version --help' for usage.\n"},
		{"targets failed", []string{"invoke", "reboot", "--device", "off"}, 4, "" +
			"off: offline: 404 404103 DeviceNotOnline: gone (tracking id trk-DeviceNotOnline)\n" +
			"hint: an offline device may connect later: --wait-online 5m keeps retrying, --connect-timeout 60 lets the hub wait for it, --until-online 24h calls it once it connects.\n" +
			"1 target: 1 offline\n1 call (0 retries) in 0µs; latency p50 0µs, p95 0µs, p99 0µs\n"},
		{"success", []string{"invoke", "reboot", "--device", "d"}, 0, "1 target: 1 succeeded; device status 200 x1\n1 call (0 retries) in 0µs; latency p50 0µs, p95 0µs, p99 0µs\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEnv(t, map[string][]cmdtest.Answer{"off": {cmdtest.HubErr(404, 404103, "DeviceNotOnline", "gone")}})
			code := te.Run(tt.args...)
			assert.Equal(t, tt.code, code)
			assert.Equal(t, tt.stderr, te.ErrOut.String())
			assert.NotContains(t, te.ErrOut.String(), "goroutine", "no stack traces")
		})
	}
}

func TestRunCredentialErrorHint(t *testing.T) {
	te := newTestEnv(t, nil)
	te.F.Invoker = func() (fleet.Invoker, *auth.Credential, error) {
		return nil, nil, &auth.CredentialError{Method: auth.MethodEnvironment, Err: errors.New("EnvironmentCredential: missing AZURE_CLIENT_ID\nsee docs")}
	}
	assert.Equal(t, cmdutil.ExitAuth, te.Run("invoke", "m", "--device", "d"))
	assert.Equal(t, "Error: environment credential could not get a token: EnvironmentCredential: missing AZURE_CLIENT_ID\n"+
		"hint: "+auth.TokenFailureHint(auth.MethodEnvironment)+"\n", te.ErrOut.String())
}

func TestRunUsesRealFactoryForAuthErrors(t *testing.T) {
	te := newTestEnv(t, nil)
	f := cmdutil.NewFactory(te.IOS, func(string) (string, bool) { return "", false })
	code := Run(context.Background(), f, []string{"invoke", "reboot", "--device", "d"})
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Contains(t, te.ErrOut.String(), "Error: no credentials: either give a service connection string")

	te = newTestEnv(t, nil)
	f = cmdutil.NewFactory(te.IOS, func(k string) (string, bool) {
		if k == auth.EnvConnectionString {
			return "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + cmdtest.TestKey + ";Extra=1", true
		}
		return "", false
	})
	code = Run(context.Background(), f, []string{"invoke", "reboot", "--device", "d"})
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Equal(t, "Error: IOTHUB_CONNECTION_STRING: invalid connection string: part 4 has an unknown key (known keys: HostName, SharedAccessKeyName, SharedAccessKey, SharedAccessSignature, DeviceId, ModuleId, GatewayHostName, x509)\n"+
		"Run 'dmctl invoke --help' for usage.\n", te.ErrOut.String())
	assert.NotContains(t, te.ErrOut.String(), cmdtest.TestKey)
}

func TestRunInterrupted(t *testing.T) {
	te := newTestEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code := Run(ctx, te.F, []string{"invoke", "m", "--device", "a", "--device", "b", "-o", "jsonl"})
	assert.Equal(t, cmdutil.ExitInterrupted, code)
	assert.Empty(t, te.Inv.Calls, "nothing starts after the interrupt")
	assert.Equal(t, 2, strings.Count(te.Out.String(), `"outcome":"skipped"`))
	assert.True(t, strings.HasSuffix(te.ErrOut.String(), "Interrupted.\n"), te.ErrOut.String())
}

func TestVersion(t *testing.T) {
	te := newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("version"))
	assert.True(t, strings.HasPrefix(te.Out.String(), "dmctl version "+version.Version+" (commit "+version.Commit+", built "+version.Date+", go"), te.Out.String())

	te = newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("version", "-o", "json"))
	var info version.Info
	require.NoError(t, json.Unmarshal(te.Out.Bytes(), &info))
	assert.Equal(t, version.Version, info.Version)
	assert.Equal(t, version.Commit, info.Commit)
	assert.NotEmpty(t, info.GoVersion)
	assert.Empty(t, te.ErrOut.String())
}

func TestHelpTopics(t *testing.T) {
	te := newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("help", "exit-codes"))
	for _, code := range []string{"  0 ", "  1 ", "  2 ", "  3 ", "  4 ", "  5 ", "  130 "} {
		assert.Contains(t, te.Out.String(), code)
	}
	te = newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("help", "environment"))
	for _, v := range []string{"IOTHUB_CONNECTION_STRING", "DMCTL_OUTPUT", "DMCTL_HUB", "DMCTL_AUTH", "NO_COLOR", "AZURE_AUTHORITY_HOST", "HTTPS_PROXY", "SSL_CERT_FILE"} {
		assert.Contains(t, te.Out.String(), v)
	}
	te = newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("--help"))
	assert.Contains(t, te.Out.String(), "exit-codes")
	assert.Contains(t, te.Out.String(), "IoT Hub Data Contributor")
}

func TestRedactingWriter(t *testing.T) {
	var b strings.Builder
	w := cmdutil.NewRedactingWriter(&b)
	// A token split across writes is still masked.
	for _, part := range []string{"Authorization: SharedAccessSignature sr=h&si", "g=c2VjcmV0%3D&se=1\n", "Authorization: Bearer eyJ", "hbGciOi.x.y\n", "tail SharedAccessKey=", cmdtest.TestKey} {
		_, err := w.Write([]byte(part))
		require.NoError(t, err)
	}
	require.NoError(t, w.Flush())
	assert.Equal(t, "Authorization: SharedAccessSignature sr=h&sig=REDACTED&se=1\nAuthorization: Bearer REDACTED\ntail SharedAccessKey=REDACTED\n", b.String())
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{"0": 0, "45": 45 * time.Second, "1m30s": 90 * time.Second, " 2m ": 2 * time.Minute, "1500ms": 1500 * time.Millisecond}
	for in, want := range good {
		got, err := cmdutil.ParseDuration(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "x", "-5", "-1s", "1d", "99999999"} {
		_, err := cmdutil.ParseDuration(in)
		assert.Error(t, err, in)
	}
	assert.Equal(t, "0", cmdutil.FormatDuration(0))
	assert.Equal(t, "1.5s", cmdutil.FormatDuration(1500*time.Millisecond))
	// Durations as the docs write them, and readable back.
	for d, want := range map[time.Duration]string{5 * time.Minute: "5m", 10 * time.Minute: "10m", time.Hour: "1h", 90 * time.Second: "1m30s",
		24 * time.Hour: "24h", 45 * time.Second: "45s", time.Hour + 5*time.Second: "1h5s", 720 * time.Hour: "720h"} {
		assert.Equal(t, want, cmdutil.FormatDuration(d))
		back, err := cmdutil.ParseDuration(want)
		require.NoError(t, err)
		assert.Equal(t, d, back, want)
	}
}

func TestHeredoc(t *testing.T) {
	assert.Equal(t, "a\n  b\n\nc\n", cmdutil.Heredoc("\n\t\ta\n\t\t  b\n\n\t\tc\n\t"))
	assert.Equal(t, "  $ x\n  $ y", cmdutil.Example("\n\t$ x\n\t$ y\n"))
}

func TestNewHTTPClientCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	c, err := cmdutil.NewHTTPClient("", os.ReadFile)
	require.NoError(t, err)
	_, err = c.Get(srv.URL)
	require.Error(t, err, "without --ca-file the test CA is not trusted: verification is on")

	c, err = cmdutil.NewHTTPClient(caPath, os.ReadFile)
	require.NoError(t, err)
	resp, err := c.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 204, resp.StatusCode)

	_, err = cmdutil.NewHTTPClient(filepath.Join(dir, "missing.pem"), os.ReadFile)
	assert.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
	assert.Contains(t, err.Error(), "--ca-file "+filepath.Join(dir, "missing.pem")+": cannot read it: no such file or directory")

	junk := filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(junk, []byte("not a cert"), 0o600))
	_, err = cmdutil.NewHTTPClient(junk, os.ReadFile)
	assert.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
	assert.Contains(t, err.Error(), "it holds no PEM certificate")
}

func TestNewHTTPClientRefusesRedirects(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := cmdutil.NewHTTPClient("", os.ReadFile)
	require.NoError(t, err)
	resp, err := c.Post(srv.URL, "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	assert.Equal(t, 1, hits, "a POST is never re-sent to a redirect target")
}

package hubsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// DefaultWaitTimeout is how long `hubsim wait` waits by default.
const DefaultWaitTimeout = 30 * time.Second

// waitPollInterval is how often `hubsim wait` looks at DIR/hubsim.env and
// dials the address it names.
var waitPollInterval = 50 * time.Millisecond

// waitDialTimeout bounds one TLS connection attempt.
const waitDialTimeout = 2 * time.Second

// newWaitCmd is `hubsim wait --dir DIR`: it returns once the hubsim serving
// DIR is ready. That is race-free because a starting hubsim removes a stale
// DIR/hubsim.env before it listens and writes the new one (atomically) only
// once it serves (after the ready line), and because readiness is also
// checked by a TLS handshake with the address in the file, verified against
// the CA in it.
func newWaitCmd(_, stderr io.Writer) *cobra.Command {
	var dir string
	timeout := DefaultWaitTimeout
	cmd := &cobra.Command{
		Use:   "wait --dir DIR [--timeout 30s]",
		Short: "Wait until the hubsim serving DIR is ready",
		Long: `wait returns once the hubsim started with --dir DIR is ready: DIR/hubsim.env
exists and hubsim's HTTPS address named in it completes a TLS handshake
verified with DIR's CA. It exits 0 then, 1 when that did not happen within
--timeout, 2 for bad flags.

A starting hubsim removes a DIR/hubsim.env left by an earlier run before it
listens and writes the new one (atomically) only once it serves and has
printed its ready line, so wait never takes an old file for the new hub, and
once it returns both hubsim.env and the ready line are complete. Start hubsim
in the background, then wait:

  mkdir -p ./hub
  hubsim --dir ./hub --devices 100 > ./hub/ready.json &
  hubsim wait --dir ./hub
  source ./hub/hubsim.env`,
		Example: `  $ hubsim wait --dir ./hub
  $ hubsim wait --dir "$RUNNER_TEMP/hub" --timeout 1m`,
		Args:          noArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("dir") {
				return usagef("--dir is required: the directory the hubsim to wait for was started with")
			}
			if strings.TrimSpace(dir) == "" {
				return usagef("--dir: empty value; give the directory hubsim was started with")
			}
			if timeout <= 0 {
				return usagef("--timeout %s: must be more than 0", timeout)
			}
			addr, err := WaitReady(cmd.Context(), dir, timeout)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(stderr, "hubsim: ready on https://%s; environment in %s\n", addr, filepath.Join(dir, EnvFile))
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&dir, "dir", "", "the `DIR` the hubsim to wait for was started with (--dir)")
	fl.DurationVar(&timeout, "timeout", DefaultWaitTimeout, "give up after this long (exit 1)")
	return cmd
}

// WaitReady waits until the hubsim serving dir is ready (see newWaitCmd),
// polling every waitPollInterval, and returns its HTTPS host (HOST:PORT).
// After timeout, or when ctx ends, it returns an error that says what was
// missing.
func WaitReady(ctx context.Context, dir string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	envPath := filepath.Join(dir, EnvFile)
	var last error
	for {
		addr, err := probeReady(ctx, envPath)
		if err == nil {
			return addr, nil
		}
		if last == nil || ctx.Err() == nil {
			last = err // an attempt cut short by the deadline says less than a whole one
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.Canceled) {
				return "", fmt.Errorf("wait: interrupted: %v", last)
			}
			return "", fmt.Errorf("wait: hubsim --dir %s was not ready within %s: %v", dir, timeout, last)
		case <-time.After(waitPollInterval):
		}
	}
}

// probeReady reads the env file and completes one TLS handshake with the
// address it names.
func probeReady(ctx context.Context, envPath string) (string, error) {
	vars, err := readEnvFile(envPath)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s does not exist (is `hubsim --dir %s` running?)", envPath, filepath.Dir(envPath))
	}
	if err != nil {
		return "", err
	}
	addr, host, caFile := vars["HUBSIM_HTTPS_ADDR"], vars["HUBSIM_HOST"], vars["HUBSIM_CA_FILE"]
	if addr == "" || host == "" || caFile == "" {
		return "", fmt.Errorf("%s lacks HUBSIM_HTTPS_ADDR, HUBSIM_HOST or HUBSIM_CA_FILE", envPath)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return "", fmt.Errorf("read the CA named in %s: %w", envPath, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return "", fmt.Errorf("%s (HUBSIM_CA_FILE in %s) holds no PEM certificate", caFile, envPath)
	}
	serverName, _, err := net.SplitHostPort(host)
	if err != nil {
		return "", fmt.Errorf("HUBSIM_HOST %q in %s: %v", host, envPath, err)
	}
	dctx, cancel := context.WithTimeout(ctx, waitDialTimeout)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("https://%s (from %s) does not accept TLS connections: %v", addr, envPath, err)
	}
	_ = conn.Close()
	return host, nil
}

// readEnvFile parses the `export NAME='value'` lines WriteEnv writes.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if v, ok := shellUnquote(value); ok {
			vars[name] = v
		}
	}
	return vars, nil
}

// shellUnquote reverses shellQuote.
func shellUnquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return "", false
	}
	return strings.ReplaceAll(s[1:len(s)-1], `'\''`, "'"), true
}

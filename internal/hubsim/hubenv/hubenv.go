// Package hubenv is DIR/hubsim.env, the file a running hubsim describes
// itself in for `source` and for its own commands: its format (Write, Read),
// the hub it names with a TLS configuration that trusts the hub's CA (Load),
// and waiting until that hub serves (WaitReady, `hubsim wait`).
package hubenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/atomicfile"
)

// DefaultWaitTimeout is how long `hubsim wait` waits by default.
const DefaultWaitTimeout = 30 * time.Second

// waitPollInterval is how often `hubsim wait` looks at DIR/hubsim.env and
// dials the address it names.
var waitPollInterval = 50 * time.Millisecond

// waitDialTimeout bounds one TLS connection attempt.
const waitDialTimeout = 2 * time.Second

// WaitReady waits until the hubsim serving dir is ready (`hubsim wait`),
// polling every waitPollInterval, and returns its HTTPS host (HOST:PORT).
// After timeout, or when ctx ends, it returns an error that says what was
// missing.
func WaitReady(ctx context.Context, dir string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	envPath := filepath.Join(dir, File)
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

// Env is the running hub a DIR/hubsim.env names: its variables and a
// TLS configuration that trusts its CA for its host name.
type Env struct {
	Path string            // DIR/hubsim.env
	Vars map[string]string // HUBSIM_*, IOTHUB_CONNECTION_STRING, ...
	TLS  *tls.Config       // RootCAs = HUBSIM_CA_FILE, ServerName = HUBSIM_HOST without its port
}

// Load reads envPath (DIR/hubsim.env) and the CA it names. Errors
// say which file or variable is wrong.
func Load(envPath string) (*Env, error) {
	vars, err := Read(envPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist (is `hubsim --dir %s` running?)", envPath, filepath.Dir(envPath))
	}
	if err != nil {
		return nil, err
	}
	addr, host, caFile := vars["HUBSIM_HTTPS_ADDR"], vars["HUBSIM_HOST"], vars["HUBSIM_CA_FILE"]
	if addr == "" || host == "" || caFile == "" {
		return nil, fmt.Errorf("%s lacks HUBSIM_HTTPS_ADDR, HUBSIM_HOST or HUBSIM_CA_FILE", envPath)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read the CA named in %s: %w", envPath, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s (HUBSIM_CA_FILE in %s) holds no PEM certificate", caFile, envPath)
	}
	serverName := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		serverName = h // HostName has no port on 443
	}
	return &Env{Path: envPath, Vars: vars, TLS: &tls.Config{RootCAs: pool, ServerName: strings.Trim(serverName, "[]"), MinVersion: tls.VersionTLS12}}, nil
}

// probeReady reads the env file and completes one TLS handshake with the
// address it names.
func probeReady(ctx context.Context, envPath string) (string, error) {
	env, err := Load(envPath)
	if err != nil {
		return "", err
	}
	addr := env.Vars["HUBSIM_HTTPS_ADDR"]
	dctx, cancel := context.WithTimeout(ctx, waitDialTimeout)
	defer cancel()
	d := &tls.Dialer{Config: env.TLS}
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("https://%s (from %s) does not accept TLS connections: %v", addr, envPath, err)
	}
	_ = conn.Close()
	return env.Vars["HUBSIM_HOST"], nil
}

// Read parses the `export NAME='value'` lines Write writes.
func Read(path string) (map[string]string, error) {
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

// File is the name of the file in hubsim's --dir.
const File = "hubsim.env"

// Write writes path (mode 0600: it holds keys) atomically, so a reader
// (WaitReady, `source`) sees all of it or none: one `export NAME='value'`
// line per variable, in order.
func Write(path string, vars [][2]string) error {
	var b strings.Builder
	b.WriteString("# Written by hubsim for `source`. Holds secrets: keep it private.\n")
	for _, kv := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	return atomicfile.Write(path, []byte(b.String()), 0o600)
}

func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// shellUnquote reverses shellQuote.
func shellUnquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return "", false
	}
	return strings.ReplaceAll(s[1:len(s)-1], `'\''`, "'"), true
}

// Package doctor is `dmctl doctor`: checks of everything the other
// commands rely on.
package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
	"github.com/dmctl/dmctl/internal/sas"
)

// Doctor check statuses.
const (
	checkPass = "pass"
	checkFail = "fail"
	checkSkip = "skip" // not run because an earlier check failed
	checkInfo = "info" // a setting shown, nothing to pass or fail
)

// maxClockSkew is the skew doctor accepts: the hub refuses SAS tokens
// that a clock this far off makes look expired or not yet valid.
const maxClockSkew = 5 * time.Minute

// Check is one line of `dmctl doctor` (its public shape is
// output.DoctorCheck).
type Check struct {
	Name   string
	Status string
	Detail string
	Hint   string
	// auth marks a failure of the credential or its rights (exit 3).
	auth bool
}

// printFlags are doctor's formats: its report as text or JSON.
var printFlags = cmdutil.PrintFlags{Formats: []output.Format{output.FormatTable, output.FormatJSON, output.FormatJSONL}, Default: output.FormatTable}

// Options are the inputs of `dmctl doctor`.
type Options struct {
	F       *cmdutil.Factory
	Output  output.Format
	Timeout time.Duration
}

// NewCmdDoctor returns `dmctl doctor`.
func NewCmdDoctor(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the credential, hub, TLS, clock and permissions dmctl would use",
		Long: cmdutil.Heredoc(`
			Check, in order, what every other command relies on, and say for each
			check pass or fail with a hint:

			  profile      the saved profile applied, if any (dmctl config)
			  ca           the CA certificates trusted (system roots, SSL_CERT_FILE, --ca-file)
			  credential   which credential and hub are in use (shown redacted)
			  token        the token's audience and expiry (SAS signed locally, or
			               fetched from Microsoft Entra ID)
			  proxy        the proxy used for the hub (HTTPS_PROXY, NO_PROXY)
			  reachable    a TCP connection to the hub
			  tls          the hub's certificate chain, verified
			  clock        the skew between this machine and the hub's Date header
			               (fails at 5 minutes or more: SAS tokens would look expired)
			  permission   a harmless query (SELECT COUNT() FROM devices): is the
			               credential accepted, and may it read the registry?

			A check that cannot run because an earlier one failed is skipped. Nothing
			is changed on the hub and no method is invoked.

			Exit codes: 0 when every check passed; 3 when the credential, its token or
			its permission failed (wrong key, expired token, missing role); 4 when
			another check failed (hub unreachable, untrusted certificate, clock skew).
		`),
		Example: cmdutil.Example(`
			$ dmctl doctor
			$ dmctl doctor --hub myhub.azure-devices.net --auth azure-cli
			$ dmctl doctor --ca-file ./hubsim-ca.pem -o json
		`),
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := printFlags.Format(cmd, f)
			if err != nil {
				return err
			}
			opts.Output = format
			if opts.Timeout <= 0 {
				return cmdutil.FlagErrorf("--timeout: must be positive")
			}
			if runF != nil {
				return runF(opts)
			}
			return doctorRun(cmd.Context(), opts)
		},
	}
	cmdutil.DurationFlag(cmd.Flags(), &opts.Timeout, "timeout", 15*time.Second, false, "How long each network check may take")
	return cmd
}

func doctorRun(ctx context.Context, opts *Options) error {
	checks := runDoctorChecks(ctx, opts.F, opts.Timeout)
	report := output.DoctorReport{OK: true}
	var failed []string
	code := cmdutil.ExitOK
	for _, c := range checks {
		report.Checks = append(report.Checks, output.DoctorCheck{Name: c.Name, Status: c.Status, Detail: c.Detail, Hint: c.Hint})
		if c.Status != checkFail {
			continue
		}
		report.OK = false
		failed = append(failed, c.Name)
		if c.auth {
			code = cmdutil.ExitAuth
		} else if code == cmdutil.ExitOK {
			code = cmdutil.ExitTargets
		}
	}
	if err := output.PrintView(opts.F.IOStreams.Out, opts.Output, report); err != nil {
		return err
	}
	if code == cmdutil.ExitOK {
		return nil
	}
	return &cmdutil.ChecksFailed{Failed: failed, Of: len(checks), Auth: code == cmdutil.ExitAuth}
}

// runDoctorChecks resolves the credential through the same options as
// every command (cmdutil.Factory.AuthOptions) and checks it against the hub.
func runDoctorChecks(ctx context.Context, f *cmdutil.Factory, timeout time.Duration) []Check {
	c := &checker{ctx: ctx, f: f, timeout: timeout, now: f.Now}
	if c.now == nil {
		c.now = time.Now
	}
	c.profile()
	httpClient, ok := c.ca()
	if !ok {
		return c.checks
	}
	host, cred, ok := c.credential(httpClient)
	if !ok {
		return c.checks
	}
	hubURL := &url.URL{Scheme: "https", Host: host, Path: "/"}
	proxyURL := c.proxy(hubURL)
	if !c.reachable(host, proxyURL) || !c.tlsAndClock(httpClient, hubURL) {
		return c.checks
	}
	if cred == nil {
		c.skipRest("permission")
		return c.checks
	}
	c.add(permissionCheck(ctx, f, cred, timeout))
	return c.checks
}

// checker runs the checks in order, each one adding its line.
type checker struct {
	ctx     context.Context
	f       *cmdutil.Factory
	timeout time.Duration
	now     func() time.Time
	checks  []Check
}

func (c *checker) add(ch Check) { c.checks = append(c.checks, ch) }

// skipRest reports the checks an earlier failure keeps from running.
func (c *checker) skipRest(names ...string) {
	for _, n := range names {
		c.add(Check{Name: n, Status: checkSkip, Detail: "skipped: an earlier check failed"})
	}
}

func (c *checker) profile() {
	if p := c.f.Global.Applied; p != nil {
		c.add(Check{Name: "profile", Status: checkInfo, Detail: fmt.Sprintf("%q, from %s", p.Name, p.Source)})
		return
	}
	c.add(Check{Name: "profile", Status: checkInfo, Detail: "none"})
}

// ca builds the transport with the CAs dmctl trusts.
func (c *checker) ca() (*http.Client, bool) {
	g := c.f.Global
	httpClient, err := cmdutil.NewHTTPClient(g.CAFile, c.f.ReadFile)
	if err != nil {
		c.add(Check{Name: "ca", Status: checkFail, Detail: cmdutil.OneLine(err.Error()), Hint: "--ca-file must name a readable PEM file of CA certificates"})
		c.skipRest("credential", "token", "proxy", "reachable", "tls", "clock", "permission")
		return nil, false
	}
	c.add(Check{Name: "ca", Status: checkInfo, Detail: describeCAs(c.f, g.CAFile)})
	return httpClient, true
}

// credential resolves the credential (and checks its token); for a
// connection string holding a ready-made token it checks that token and
// returns no credential.
func (c *checker) credential(httpClient *http.Client) (string, *auth.Credential, bool) {
	o := c.f.AuthOptions(httpClient)
	if !o.Method.IsEntra() {
		cs, source, err := auth.ConnectionStringInUse(o)
		if err == nil && cs != nil && cs.SharedAccessKey == "" && cs.SharedAccessSignature != "" {
			c.add(Check{Name: "credential", Status: checkFail, auth: true,
				Detail: fmt.Sprintf("a SharedAccessSignature without a key from %s (%s)", source, cs.Redacted()),
				Hint:   "dmctl signs its own short-lived tokens and needs the policy's SharedAccessKey: use the service policy's connection string (az iot hub connection-string show --policy-name service)"})
			c.add(sasTokenCheck(cs.SharedAccessSignature, cs.HostName, c.now(), true))
			return cs.HostName, nil, true
		}
	}
	cred, err := auth.Resolve(o)
	if err != nil {
		hint := "give a service connection string (IOTHUB_CONNECTION_STRING or --connection-string-file), or --hub HOST with --auth"
		var ce *auth.CredentialError
		if errors.As(err, &ce) {
			hint = ce.Hint()
		}
		c.add(Check{Name: "credential", Status: checkFail, auth: true, Detail: cmdutil.OneLine(err.Error()), Hint: hint})
		c.skipRest("token", "proxy", "reachable", "tls", "clock", "permission")
		return "", nil, false
	}
	c.add(Check{Name: "credential", Status: checkPass, Detail: fmt.Sprintf("%s; hub %s", cred.Describe(), cred.Host)})
	if cred.Signer != nil {
		c.add(sasTokenCheck(cred.Signer.Token(), cred.Host, c.now(), false))
	} else {
		c.add(entraTokenCheck(c.ctx, cred, c.now(), c.timeout))
	}
	return cred.Host, cred, true
}

// proxy reports the proxy used for the hub, if any.
func (c *checker) proxy(hubURL *url.URL) *url.URL {
	proxyURL, err := http.ProxyFromEnvironment(&http.Request{URL: hubURL})
	switch {
	case err != nil:
		c.add(Check{Name: "proxy", Status: checkFail, Detail: cmdutil.OneLine(err.Error()), Hint: "check HTTPS_PROXY: it must be a URL such as http://proxy.example:3128"})
	case proxyURL != nil:
		c.add(Check{Name: "proxy", Status: checkInfo, Detail: redactURL(proxyURL) + " (from HTTPS_PROXY; NO_PROXY does not exclude the hub)"})
	default:
		c.add(Check{Name: "proxy", Status: checkInfo, Detail: "none (direct connection)"})
	}
	return proxyURL
}

// reachable opens a TCP connection to the hub (not through a proxy).
func (c *checker) reachable(host string, proxyURL *url.URL) bool {
	if proxyURL != nil {
		c.add(Check{Name: "reachable", Status: checkInfo, Detail: "through the proxy: see tls"})
		return true
	}
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		addr = net.JoinHostPort(host, "443")
	}
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(c.ctx, "tcp", addr)
	if err != nil {
		c.add(Check{Name: "reachable", Status: checkFail, Detail: cmdutil.OneLine(err.Error()),
			Hint: "check the host name, DNS, and that outbound TCP 443 (HTTPS) is allowed; behind a proxy set HTTPS_PROXY"})
		c.skipRest("tls", "clock", "permission")
		return false
	}
	_ = conn.Close()
	c.add(Check{Name: "reachable", Status: checkPass, Detail: "TCP connection to " + addr})
	return true
}

// tlsAndClock sends one unauthenticated GET (any HTTP answer will do): the
// certificate chain, and the skew against the answer's Date header.
func (c *checker) tlsAndClock(httpClient *http.Client, hubURL *url.URL) bool {
	rctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, hubURL.String(), nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		c.add(Check{Name: "tls", Status: checkFail, Detail: cmdutil.OneLine(err.Error()), Hint: tlsHint(err)})
		c.skipRest("clock", "permission")
		return false
	}
	_ = resp.Body.Close()
	c.add(Check{Name: "tls", Status: checkPass, Detail: describeChain(resp.TLS)})
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		c.add(Check{Name: "clock", Status: checkInfo, Detail: "the hub sent no Date header: skew unknown"})
		return true
	}
	skew := c.now().Sub(date).Round(time.Second)
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	detail := fmt.Sprintf("this machine is %s %s the hub", abs, map[bool]string{true: "ahead of", false: "behind"}[skew >= 0])
	if abs < 2*time.Second {
		detail = "in step with the hub (within the Date header's 1s resolution)"
	}
	if abs >= maxClockSkew {
		c.add(Check{Name: "clock", Status: checkFail, Detail: detail, Hint: "set this machine's clock (NTP): the hub refuses SAS tokens that look expired or not yet valid"})
	} else {
		c.add(Check{Name: "clock", Status: checkPass, Detail: detail})
	}
	return true
}

// tlsHint says what to do about a failed TLS check.
func tlsHint(err error) string {
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	switch {
	case errors.As(err, &uae):
		return "the hub's certificate is not signed by a CA this machine trusts: for hubsim or a private CA give --ca-file PATH (or SSL_CERT_FILE); behind a TLS-inspecting proxy, trust its CA the same way"
	case errors.As(err, &hne):
		return "the certificate is for another host name: check --hub or the connection string's HostName"
	case errors.As(err, &cie):
		return "the certificate is expired or not yet valid: check this machine's clock, and the CA's certificates"
	}
	return "the TLS handshake or the request failed: check the proxy and firewall"
}

func describeCAs(f *cmdutil.Factory, caFile string) string {
	parts := []string{"system roots"}
	if f.LookupEnv != nil {
		for _, k := range []string{"SSL_CERT_FILE", "SSL_CERT_DIR"} {
			if v, ok := f.LookupEnv(k); ok && v != "" {
				parts = append(parts, k+"="+v)
			}
		}
	}
	if caFile != "" {
		parts = append(parts, "--ca-file "+caFile)
	}
	return strings.Join(parts, " + ")
}

// sasTokenCheck reads a SAS token's audience and expiry (never its
// signature). given says the token came ready-made in a connection string.
func sasTokenCheck(token, host string, now time.Time, given bool) Check {
	t, err := sas.Parse(token)
	if err != nil {
		return Check{Name: "token", Status: checkFail, auth: true, Detail: cmdutil.OneLine(err.Error()), Hint: "the SharedAccessSignature is malformed"}
	}
	detail := fmt.Sprintf("SAS token for audience %s", t.Resource)
	if t.KeyName != "" {
		detail += fmt.Sprintf(" (policy %s)", t.KeyName)
	}
	if !t.Expiry.After(now) {
		return Check{Name: "token", Status: checkFail, auth: true,
			Detail: fmt.Sprintf("%s expired at %s (%s ago)", detail, t.Expiry.UTC().Format(time.RFC3339), now.Sub(t.Expiry).Round(time.Second)),
			Hint:   "the hub refuses an expired token: use a connection string with the policy's SharedAccessKey so dmctl signs fresh tokens"}
	}
	if !strings.HasPrefix(strings.ToLower(t.Resource), strings.ToLower(host)) {
		return Check{Name: "token", Status: checkFail, auth: true, Detail: detail + ", which is not the hub " + host,
			Hint: "the token was made for another hub"}
	}
	detail += fmt.Sprintf(", expires %s (in %s)", t.Expiry.UTC().Format(time.RFC3339), t.Expiry.Sub(now).Round(time.Second))
	if given {
		return Check{Name: "token", Status: checkInfo, Detail: detail}
	}
	return Check{Name: "token", Status: checkPass, Detail: detail + "; signed locally, renewed before expiry"}
}

// entraTokenCheck gets a token for IoT Hub and reads its audience and
// expiry (the claims are read, not verified: the hub verifies them).
func entraTokenCheck(ctx context.Context, cred *auth.Credential, now time.Time, timeout time.Duration) Check {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tk, err := cred.Token.GetToken(tctx, policy.TokenRequestOptions{Scopes: []string{iothub.TokenScope}})
	if err != nil {
		c := Check{Name: "token", Status: checkFail, auth: true, Detail: cmdutil.OneLine(err.Error())}
		var ce *auth.CredentialError
		if errors.As(err, &ce) {
			c.Hint = ce.Hint()
		}
		return c
	}
	detail := fmt.Sprintf("Entra ID token for scope %s, expires %s (in %s)", iothub.TokenScope, tk.ExpiresOn.UTC().Format(time.RFC3339), tk.ExpiresOn.Sub(now).Round(time.Second))
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tk.Token, claims); err == nil {
		if aud, err := claims.GetAudience(); err == nil && len(aud) > 0 {
			detail = fmt.Sprintf("Entra ID token for audience %s, expires %s (in %s)", strings.Join(aud, ","), tk.ExpiresOn.UTC().Format(time.RFC3339), tk.ExpiresOn.Sub(now).Round(time.Second))
		}
		for _, k := range []string{"upn", "appid", "oid"} {
			if v, ok := claims[k].(string); ok && v != "" {
				detail += fmt.Sprintf("; %s %s", k, v)
				break
			}
		}
	}
	return Check{Name: "token", Status: checkPass, Detail: detail}
}

func permissionCheck(ctx context.Context, f *cmdutil.Factory, cred *auth.Credential, timeout time.Duration) Check {
	c, _, err := f.HubClient()
	if err != nil {
		return Check{Name: "permission", Status: checkFail, auth: true, Detail: cmdutil.OneLine(err.Error())}
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	const q = "SELECT COUNT() AS numberOfDevices FROM devices"
	page, err := c.NewQueryPager(q, nil).NextPage(qctx)
	if err != nil {
		check := Check{Name: "permission", Status: checkFail, Detail: q + ": " + cmdutil.OneLine(err.Error())}
		if _, isAnswer := iothub.AsResponseError(err); isAnswer && iothub.KindOf(err) == iothub.KindUnauthorized {
			check.auth = true
			check.Hint = cred.RefusedHint()
		}
		return check
	}
	n := "?"
	if len(page.Items) > 0 {
		var row struct {
			N json.Number `json:"numberOfDevices"`
		}
		if json.Unmarshal(page.Items[0], &row) == nil && row.N != "" {
			n = row.N.String()
		}
	}
	return Check{Name: "permission", Status: checkPass, Detail: fmt.Sprintf("registry query allowed (%s devices)", n)}
}

func describeChain(st *tls.ConnectionState) string {
	if st == nil || len(st.VerifiedChains) == 0 {
		return "verified"
	}
	var names []string
	for _, cert := range st.VerifiedChains[0] {
		names = append(names, fmt.Sprintf("%q", cert.Subject.CommonName))
	}
	leaf := st.VerifiedChains[0][0]
	return fmt.Sprintf("%s, chain %s; leaf valid until %s", tls.VersionName(st.Version), strings.Join(names, " <- "), leaf.NotAfter.UTC().Format("2006-01-02"))
}

// redactURL drops a proxy URL's password.
func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}

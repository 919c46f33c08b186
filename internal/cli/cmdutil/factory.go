package cmdutil

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

// Our own environment variables (the rest are IOTHUB_CONNECTION_STRING and AZURE_*).
const (
	EnvOutput = "DMCTL_OUTPUT" // default for -o/--output
	EnvAuth   = "DMCTL_AUTH"   // default for --auth
	EnvHub    = "DMCTL_HUB"    // default for --hub
)

// GlobalOptions are the root's persistent flags: hub, credential, transport
// and output. They are filled by cobra before any RunE.
type GlobalOptions struct {
	Auth                 string
	Hub                  string
	ConnectionString     string
	ConnectionStringFile string
	CAFile               string
	APIVersion           string
	Debug                bool
	Output               string
	// Profile is --profile: the saved profile to apply (dmctl config).
	Profile string
	// outputSource names where Output came from, for error messages.
	OutputSource string
	AuthSource   string
	// profile is the profile applied, if any (ApplyProfile).
	Applied *ProfileRef
}

// Factory holds what commands depend on: streams, the environment, and a
// lazily built hub client. Tests replace Invoker.
type Factory struct {
	IOStreams *output.IOStreams
	LookupEnv func(string) (string, bool)
	ReadFile  func(string) ([]byte, error)
	Now       func() time.Time
	// Sleep waits between retries; nil means a real, cancellable sleep.
	Sleep  func(context.Context, time.Duration) error
	Global *GlobalOptions
	// HardStop ends on a second Ctrl-C (or SIGTERM): a run stops at once
	// instead of waiting for calls in flight. nil: never.
	HardStop context.Context
	// Debug receives --debug output (redacted); nil unless --debug.
	Debug *RedactingWriter
	// Invoker, when set, replaces the method invoker built on the hub
	// client (tests give a fake); nil: the hub client's.
	Invoker func() (fleet.Invoker, *auth.Credential, error)
	// Query, when set, replaces the pager over an IoT Hub query (--query)
	// built on the hub client; nil: the hub client's.
	Query func(sql string, opts iothub.QueryOptions) (fleet.Pager, error)
	// HubClientFunc, when set, replaces the lazily built hub client (tests
	// point it at a stub); nil: built once from the global options.
	HubClientFunc func() (*iothub.Client, *auth.Credential, error)

	hubOnce sync.Once
	hub     *iothub.Client
	hubCred *auth.Credential
	hubErr  error
}

// NewFactory returns the factory for a real process.
func NewFactory(io *output.IOStreams, lookupEnv func(string) (string, bool)) *Factory {
	return &Factory{
		IOStreams: io,
		LookupEnv: lookupEnv,
		ReadFile:  os.ReadFile,
		Now:       time.Now,
		Global:    &GlobalOptions{},
	}
}

// HubClient is the one hub client of the process, with the credential it
// uses (for hints): built on first use from the global options (flags,
// environment, profile), so commands that never call the hub never need
// credentials. Every command, completion and doctor reach the hub through
// it.
func (f *Factory) HubClient() (*iothub.Client, *auth.Credential, error) {
	if f.HubClientFunc != nil {
		return f.HubClientFunc()
	}
	f.hubOnce.Do(func() { f.hub, f.hubCred, f.hubErr = f.buildHubClient() })
	return f.hub, f.hubCred, f.hubErr
}

// MethodInvoker is the invoker of direct methods: Invoker when set, else
// the hub client's.
func (f *Factory) MethodInvoker() (fleet.Invoker, *auth.Credential, error) {
	if f.Invoker != nil {
		return f.Invoker()
	}
	c, cred, err := f.HubClient()
	if err != nil {
		return nil, nil, err
	}
	return fleet.ClientInvoker{Client: c}, cred, nil
}

// QueryPager is a pager over an IoT Hub query: Query when set, else the hub
// client's.
func (f *Factory) QueryPager(sql string, opts iothub.QueryOptions) (fleet.Pager, error) {
	if f.Query != nil {
		return f.Query(sql, opts)
	}
	c, _, err := f.HubClient()
	if err != nil {
		return nil, err
	}
	return c.NewQueryPager(sql, &opts), nil
}

var apiVersionShape = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)

// buildHubClient resolves the credential and builds the IoT Hub client.
// Input problems come back as usage errors; nothing is sent here.
func (f *Factory) buildHubClient() (*iothub.Client, *auth.Credential, error) {
	g := f.Global
	httpClient, err := NewHTTPClient(g.CAFile, f.ReadFile)
	if err != nil {
		return nil, nil, err
	}
	cred, err := auth.Resolve(f.AuthOptions(httpClient))
	if err != nil {
		return nil, nil, err
	}
	opts := &iothub.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: httpClient},
		APIVersion:    g.APIVersion,
	}
	opts.Debug = f.Debug != nil
	var c *iothub.Client
	if cred.Signer != nil {
		c, err = iothub.NewSASClient(cred.Host, cred.Signer, opts)
	} else {
		c, err = iothub.NewTokenClient(cred.Host, cred.Token, opts)
	}
	if err != nil {
		return nil, nil, err
	}
	return c, cred, nil
}

// AuthOptions are the inputs of credential resolution: the global options
// (flags, environment defaults and the profile applied to them) and the
// factory's environment. the hub client and doctor both resolve through it.
func (f *Factory) AuthOptions(transport *http.Client) auth.Options {
	g := f.Global
	o := auth.Options{
		Method:               auth.Method(g.Auth),
		Hub:                  g.Hub,
		ConnectionString:     g.ConnectionString,
		ConnectionStringFile: g.ConnectionStringFile,
		LookupEnv:            f.LookupEnv,
		ReadFile:             f.ReadFile,
		Now:                  f.Now,
	}
	if transport != nil {
		o.Transport = transport
	}
	if g.Applied != nil {
		o.Profile = g.Applied.Name
		o.ProfileConnectionString = g.Applied.Profile.ConnectionString
	}
	return o
}

// ApplyProfile fills the global options a saved profile sets and neither a
// flag nor an environment variable does (precedence: flag, environment,
// profile, default). When a connection string comes from a flag, a file or
// IOTHUB_CONNECTION_STRING, the profile's hub and auth are not applied: the
// connection string names the hub and the method.
func (f *Factory) ApplyProfile(flags interface{ Changed(string) bool }) error {
	ref, err := f.ActiveProfile()
	if err != nil || ref == nil {
		return err
	}
	g := f.Global
	g.Applied = ref
	p := ref.Profile
	envSet := func(k string) bool {
		if f.LookupEnv == nil {
			return false
		}
		v, ok := f.LookupEnv(k)
		return ok && v != ""
	}
	explicitConn := g.ConnectionString != "" || g.ConnectionStringFile != "" || envSet(auth.EnvConnectionString)
	from := fmt.Sprintf("(from profile %q)", ref.Name)
	if p.Hub != "" && !explicitConn && !flags.Changed("hub") && !envSet(EnvHub) {
		g.Hub = p.Hub
	}
	if p.Auth != "" && !explicitConn && !flags.Changed("auth") && !envSet(EnvAuth) {
		g.Auth = p.Auth
		g.AuthSource = "--auth " + from
	}
	if p.CAFile != "" && !flags.Changed("ca-file") {
		g.CAFile = p.CAFile
	}
	if p.Output != "" && !flags.Changed("output") && !envSet(EnvOutput) {
		g.Output = p.Output
		g.OutputSource = "-o/--output " + from
	}
	return nil
}

// NewHTTPClient builds the transport for hub and token calls
// (iothub.NewTransport, the one place that does) trusting the system roots
// plus --ca-file.
func NewHTTPClient(caFile string, readFile func(string) ([]byte, error)) (*http.Client, error) {
	if caFile == "" {
		return iothub.NewTransport(nil), nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pem, err := readFile(caFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, FlagErrorf("--ca-file %s: cannot read it: %v", caFile, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, FlagErrorf("--ca-file %s: it holds no PEM certificate", caFile)
	}
	return iothub.NewTransport(pool), nil
}

// envDefaults are the environment variables that stand for a flag, and
// that flag ("" when the variable is read whatever the flags say).
var envDefaults = []struct{ env, flag string }{
	{EnvAuth, "auth"}, {EnvHub, "hub"}, {EnvOutput, "output"}, {EnvProfile, "profile"}, {EnvConfigDir, ""},
}

// CheckEnvDefaults refuses an environment variable that is set but empty
// (or only spaces) where dmctl would read it: like an empty flag value, it
// is bad input, never "not given" (an unset variable in a CI template must
// not silently fall back to another hub or profile).
func (f *Factory) CheckEnvDefaults(flags interface{ Changed(string) bool }) error {
	if f.LookupEnv == nil {
		return nil
	}
	for _, e := range envDefaults {
		v, ok := f.LookupEnv(e.env)
		if !ok || strings.TrimSpace(v) != "" || (e.flag != "" && flags.Changed(e.flag)) {
			continue
		}
		return FlagErrorf("%s is set but empty: give it a value or unset it", e.env)
	}
	return nil
}

// CheckGlobal validates the persistent flags and their environment
// defaults before any command runs.
func (f *Factory) CheckGlobal() error {
	g := f.Global
	if _, err := output.ParseFormat(g.Output); err != nil {
		return FlagErrorf("%s: %v", g.OutputSource, err)
	}
	if g.Auth != "" {
		if _, err := auth.ParseMethod(g.Auth); err != nil {
			var ie *auth.InputError
			if errors.As(err, &ie) {
				return FlagErrorf("%s: %s", g.AuthSource, ie.Reason)
			}
			return FlagErrorWrap(err)
		}
	}
	if g.APIVersion != "" && !apiVersionShape.MatchString(g.APIVersion) {
		return FlagErrorf("--api-version: %q is not an api-version (expected YYYY-MM-DD, e.g. %s)", g.APIVersion, iothub.DefaultAPIVersion)
	}
	if g.Hub != "" {
		if _, err := auth.NormalizeHub(g.Hub); err != nil {
			return err
		}
	}
	return nil
}

func DescribeSource(flag, env string, changed bool) string {
	if changed {
		return flag
	}
	return fmt.Sprintf("%s (from %s)", flag, env)
}

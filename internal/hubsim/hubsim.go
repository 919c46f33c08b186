// Package hubsim is a local Azure IoT Hub. This package is the server: it
// turns a Config into a running hub (the --dir state and its secrets, the
// certificates, the listeners, the registry and fleet, the job engine), wires
// the layers together, and describes the result in the ready line and
// hubsim.env.
//
// The layers it wires (design.md section 2):
//   - rest: the service REST API, a route table and one
//     auth -> throttle -> fault chain;
//   - identity: the SAS policies, the one sr matcher and the X.509 checks,
//     for REST and every device transport alike;
//   - registry: the identities, keys and twins, and the simulated
//     devices' life cycles, over the fleet descriptions of sim;
//   - query, jobs, throttle, entra (the local tenant), certs;
//   - transport: the device endpoints, each on its own listener (the list
//     in New); transport/mqtt is MQTT over TLS or WebSocket. An AMQP
//     endpoint would be a package transport/amqp with a transport.New, one
//     entry in that list and its listen address in Config.
//
// The command line (flags -> Config, `hubsim device`, `wait`, `token`,
// `bench`) is cmd/hubsim.
package hubsim

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/ctxtime"

	"github.com/dmctl/dmctl/internal/hubsim/certs"
	"github.com/dmctl/dmctl/internal/hubsim/entra"
	"github.com/dmctl/dmctl/internal/hubsim/hubenv"
	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/hubsim/jobs"
	"github.com/dmctl/dmctl/internal/hubsim/methodlog"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/hubsim/rest"
	"github.com/dmctl/dmctl/internal/hubsim/sim"
	"github.com/dmctl/dmctl/internal/hubsim/throttle"
	"github.com/dmctl/dmctl/internal/hubsim/transport"
	hubmqtt "github.com/dmctl/dmctl/internal/hubsim/transport/mqtt"
)

// HubName is the hub's name in the ready line.
const HubName = "hubsim"

// DefaultAddr is where both listeners go by default: loopback, a free port.
const DefaultAddr = "127.0.0.1:0"

// Config configures a Server. The zero value is a hub on free loopback ports
// in a temporary directory, throttled like one S1 unit, without devices.
type Config struct {
	// Dir keeps the CA, server certificate and state.json (keys, Entra
	// tenant). Empty: a temporary directory removed by Shutdown.
	Dir string
	// HTTPSAddr and MQTTAddr are the listen addresses ("" = DefaultAddr).
	HTTPSAddr string
	MQTTAddr  string
	// Devices adds a generated fleet of that many simulated devices
	// (sim-000001...). FleetFile and Fleet add more.
	Devices   int
	FleetFile string
	Fleet     *sim.FleetSpec
	// Register adds identities without simulation (offline until a real
	// device connects); their connection strings are in the ready line. An
	// entry is "ID" (SAS keys), "ID:x509=PRIMARY[+SECONDARY]" (a self-signed
	// X.509 device with those certificate thumbprints) or "ID:x509ca" (a
	// CA-signed X.509 device); ID may be "deviceId/moduleId" (SAS only).
	Register []string
	// CACerts are PEM files of CA certificates trusted for devices whose
	// authentication is certificateAuthority (--ca-cert).
	CACerts []string
	// Tier (F1, S1, S2, S3; "" = S1) and Units (0 = 1) set the throttles;
	// NoThrottle turns them off.
	Tier       string
	Units      int
	NoThrottle bool
	// MethodLog appends one JSON line per delivered method to this file.
	MethodLog string
	// Seed drives simulation and faults; 0 = the seed kept in state.json
	// (random on first start), so a restart with the same Dir behaves the same.
	Seed int64
	// Faults are the global fault shares (0..1 each).
	Faults sim.FaultRates
	// Log receives diagnostics (nil = discarded); Verbose adds one line per request.
	Log     io.Writer
	Verbose bool
	// Now is the clock for tokens and timestamps (nil = time.Now).
	Now func() time.Time
}

// deviceEndpoint is one device endpoint the server serves: a transport on
// its own listener. New lists them (today MQTT on MQTTAddr); a transport
// added under internal/hubsim/transport joins the list with its address.
type deviceEndpoint struct {
	name string // the transport, in errors ("mqtt")
	flag string // the flag of its address, in input errors ("--mqtt-addr")
	addr string
	make transport.New
	ln   net.Listener
	ep   transport.Endpoint
}

// InputError is a Config value hubsim cannot use (bad fleet file, bad
// --register id, bad tier...). Main exits 2 for it.
type InputError struct {
	Flag string // the flag (or Config field) at fault, e.g. "--fleet"
	Err  error
}

// Error names the flag and the problem.
func (e *InputError) Error() string { return e.Flag + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *InputError) Unwrap() error { return e.Err }

// Server is a running (or ready to run) hub.
type Server struct {
	cfg        Config
	now        func() time.Time
	log        *log.Logger
	dir        string
	tempDir    bool
	state      *state
	certs      *certs.Bundle
	authority  *entra.Authority
	api        *rest.Handler // the service REST API
	reg        *registry.Registry
	jobs       *jobs.Engine // jobs v2
	limiter    *throttle.Limiter
	limits     throttle.Limits
	tierDesc   string
	mlog       *methodlog.Log
	hostName   string
	seed       int64
	sleep      func(ctx context.Context, d time.Duration) bool // traffic-shaping delay (tests replace it)
	registered []string
	clientCAs  *x509.CertPool // CAs trusted for certificateAuthority devices (nil: none)

	identitiesMu sync.Mutex
	identities   map[string]registry.IdentityRecord // registry API changes (identities.go)

	httpsLn   net.Listener
	httpSrv   *http.Server
	endpoints []*deviceEndpoint // the device endpoints; endpoints[0] is MQTT (GatewayHostName, mqttAddr)

	startOnce    sync.Once
	shutdownOnce sync.Once
	serveErr     chan error
}

// New prepares a hub: directory, state, certificates, listeners (bound, so
// the addresses are known), registry and fleet. Call Start to serve.
func New(cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.HTTPSAddr == "" {
		cfg.HTTPSAddr = DefaultAddr
	}
	if cfg.MQTTAddr == "" {
		cfg.MQTTAddr = DefaultAddr
	}
	s := &Server{cfg: cfg, now: cfg.Now, log: log.New(cfg.Log, "hubsim: ", 0), serveErr: make(chan error, 2), sleep: ctxtime.SleepOK}
	ready := false
	defer func() {
		if !ready {
			_ = s.cleanup()
		}
	}()
	var err error

	// Inputs first, so a bad flag costs nothing.
	if err := s.setupThrottle(); err != nil {
		return nil, err
	}
	var specs []*sim.FleetSpec
	if cfg.Devices < 0 {
		return nil, &InputError{"--devices", errors.New("must be 0 or more")}
	}
	if cfg.Devices > 0 {
		specs = append(specs, sim.GenerateFleet(cfg.Devices))
	}
	if cfg.FleetFile != "" {
		spec, err := sim.LoadFleetFile(cfg.FleetFile)
		if err != nil {
			return nil, &InputError{"--fleet", err}
		}
		specs = append(specs, spec)
	}
	if cfg.Fleet != nil {
		specs = append(specs, cfg.Fleet)
	}
	var entries []registerEntry
	for _, r := range cfg.Register {
		e, err := parseRegister(r)
		if err != nil {
			return nil, &InputError{"--register", err}
		}
		entries = append(entries, e)
	}

	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "hubsim-*")
		if err != nil {
			return nil, fmt.Errorf("create a temporary directory: %w", err)
		}
		s.dir, s.tempDir = d, true
	} else {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, &InputError{"--dir", err}
		}
		s.dir = cfg.Dir
	}
	// A hubsim.env left by an earlier run names listeners that are gone (or
	// another run's): remove it before listening, so that `hubsim wait` never
	// takes it for this run's. WriteEnv writes the new one once serving.
	if err := os.Remove(filepath.Join(s.dir, hubenv.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove the stale %s: %w", filepath.Join(s.dir, hubenv.File), err)
	}
	if s.state, err = loadState(s.dir); err != nil {
		return nil, err
	}
	s.seed = cfg.Seed
	if s.seed == 0 {
		s.seed = s.state.Seed
	}

	if s.httpsLn, err = net.Listen("tcp", cfg.HTTPSAddr); err != nil {
		return nil, &InputError{"--https-addr", err}
	}
	s.endpoints = []*deviceEndpoint{
		{name: "mqtt", flag: "--mqtt-addr", addr: cfg.MQTTAddr, make: hubmqtt.NewEndpoint},
	}
	for _, e := range s.endpoints {
		if e.ln, err = net.Listen("tcp", e.addr); err != nil {
			return nil, &InputError{e.flag, err}
		}
	}
	s.hostName = hostName(cfg.HTTPSAddr, s.httpsLn.Addr())

	host := s.hostName
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if s.certs, err = certs.LoadOrCreate(s.dir, []string{strings.Trim(host, "[]")}, s.now()); err != nil {
		return nil, err
	}
	if s.authority, err = entra.New(s.state.Entra, s.now); err != nil {
		return nil, fmt.Errorf("%s: %w", StateFile, err)
	}
	faulty := cfg.Faults != (sim.FaultRates{}) // some fault share is set (flags or fleet groups)
	for _, spec := range specs {
		for _, g := range spec.Groups {
			if g.Faults != nil {
				faulty = true
			}
		}
	}
	s.reg = registry.NewRegistry(registry.Options{HostName: s.hostName, Seed: s.seed, Now: s.now, Faults: cfg.Faults,
		SecondaryKey: s.state.deviceKey2})
	for _, spec := range specs {
		if err := s.reg.Apply(spec); err != nil {
			flag := "--fleet"
			if spec == cfg.Fleet {
				flag = "fleet"
			} else if cfg.Devices > 0 && spec == specs[0] {
				flag = "--devices"
			}
			return nil, &InputError{flag, err}
		}
	}
	if len(entries) > 0 {
		ids := make([]string, len(entries))
		for i, e := range entries {
			ids[i] = e.id
		}
		if err := s.reg.Register(ids...); err != nil {
			return nil, &InputError{"--register", err}
		}
		s.registered = ids
	}
	if err := s.setupX509(entries, specs); err != nil {
		return nil, err
	}
	if err := s.installKeys(); err != nil {
		return nil, err
	}
	if err := s.loadIdentities(); err != nil {
		return nil, err
	}

	if cfg.MethodLog != "" {
		if s.mlog, err = methodlog.Open(cfg.MethodLog); err != nil {
			return nil, &InputError{"--method-log", err}
		}
	}
	// The job engine runs device operations through the registry, paced by
	// the jobs device-operation throttle, with the tier's limit on active
	// jobs (none when unthrottled).
	s.jobs = jobs.New(jobs.Options{
		Registry: s.reg, Limiter: s.limiter, MaxConcurrentJobs: s.limits.MaxConcurrentJobs, Now: s.now, Log: s.log,
	})
	s.api = rest.New(rest.Config{
		Registry: s.reg, Jobs: s.jobs,
		Limiter: s.limiter, Tier: s.tierDesc, MaxConcurrentJobs: s.limits.MaxConcurrentJobs,
		Authority: s.authority, PolicyKeys: s.state.policyKeys, HostName: s.hostName,
		Now: s.now, Log: s.log, Verbose: cfg.Verbose, Faulty: faulty,
		Sleep:           func(ctx context.Context, d time.Duration) bool { return s.sleep(ctx, d) },
		FlushMethodLog:  s.flushMethodLog,
		IdentityChanged: s.recordIdentity,
	})
	s.reg.OnDelivered(s.onDelivered)

	errLog := io.Discard
	if cfg.Verbose {
		errLog = cfg.Log
	}
	s.httpSrv = &http.Server{
		Handler:           s.api,
		TLSConfig:         s.certs.TLSConfig(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(errLog, "hubsim: http: ", 0),
	}
	ready = true
	return s, nil
}

func (s *Server) setupThrottle() error {
	if s.cfg.NoThrottle {
		s.limiter = throttle.NewUnlimited()
		s.tierDesc = "unthrottled"
		return nil
	}
	tier, units := s.cfg.Tier, s.cfg.Units
	if tier == "" {
		tier = "S1"
	}
	if units == 0 {
		units = 1
	}
	l, err := throttle.LimitsFor(tier, units)
	if err != nil {
		flag := "--units"
		if !ValidTier(tier) {
			flag = "--tier"
		}
		return &InputError{flag, err}
	}
	s.limits = l
	s.limiter = throttle.New(l, s.now)
	s.tierDesc = fmt.Sprintf("%s x%d", strings.ToUpper(tier), units)
	return nil
}

// ValidTier reports whether t names an IoT Hub tier hubsim throttles like
// (F1, S1, S2, S3; any case).
func ValidTier(t string) bool {
	switch strings.ToUpper(t) {
	case "F1", "S1", "S2", "S3":
		return true
	}
	return false
}

// installKeys gives every identity its key derived from state.json's secret.
func (s *Server) installKeys() error {
	for _, id := range s.reg.DeviceIDs(false) {
		if err := s.reg.SetKey(id, "", s.state.deviceKey(id, "")); err != nil {
			return fmt.Errorf("set key of device %q: %w", id, err)
		}
	}
	var err error
	s.reg.Each("devices.modules", "", func(_ string, doc map[string]any) bool {
		d, _ := doc["deviceId"].(string)
		m, _ := doc["moduleId"].(string)
		if d == "" || m == "" {
			return true
		}
		if e := s.reg.SetKey(d, m, s.state.deviceKey(d, m)); e != nil {
			err = fmt.Errorf("set key of module %q/%q: %w", d, m, e)
			return false
		}
		return true
	})
	return err
}

// hostName is the hub host written in connection strings: the host given
// in the listen address (unless empty or unspecified, then the bound IP)
// with the bound port, unless that is 443.
func hostName(configured string, bound net.Addr) string {
	ba, ok := bound.(*net.TCPAddr)
	if !ok {
		return bound.String()
	}
	host, _, err := net.SplitHostPort(configured)
	if err != nil || host == "" {
		host = ba.IP.String()
	} else if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	if ba.IP.IsUnspecified() && host == ba.IP.String() {
		host = "127.0.0.1"
	}
	if ba.Port == 443 {
		// HTTPS's own port is left out, as in a real hub's HostName: the
		// Node service SDK cannot take a HostName with a port at all.
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, fmt.Sprint(ba.Port))
}

func (s *Server) onDelivered(d registry.Delivery) {
	s.api.CountDelivered()
	if s.mlog != nil {
		s.mlog.Record(d)
	}
}

func (s *Server) flushMethodLog() {
	if s.mlog != nil {
		s.mlog.Flush()
	}
}

// ServeHTTP serves the hub's REST API (package rest); tests drive it
// without a listener.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.api.ServeHTTP(w, r) }

// Start serves HTTPS and the device endpoint in the background. When it
// returns, both listeners accept connections.
func (s *Server) Start() error {
	var err error
	s.startOnce.Do(func() {
		for _, d := range s.endpoints {
			ep, e := d.make(transport.Config{
				Registry: s.reg, TLS: s.certs.TLSConfig(), HostName: s.hostName, Log: s.log, Verbose: s.cfg.Verbose,
				Dir: s.dir, ClientCAs: s.clientCAs,
			})
			if e != nil {
				// No endpoint: Shutdown must not close a typed nil one.
				err = fmt.Errorf("%s device endpoint: %w", d.name, e)
				return
			}
			d.ep = ep
		}
		go func() {
			if e := s.httpSrv.ServeTLS(s.httpsLn, "", ""); e != nil && !errors.Is(e, http.ErrServerClosed) {
				s.serveErr <- fmt.Errorf("https: %w", e)
			}
		}()
		for _, d := range s.endpoints {
			go func() {
				if e := d.ep.Serve(d.ln); e != nil && !errors.Is(e, net.ErrClosed) {
					s.serveErr <- fmt.Errorf("%s device endpoint: %w", d.name, e)
				}
			}()
		}
	})
	return err
}

// Errors delivers a fatal serving error, if one happens.
func (s *Server) Errors() <-chan error { return s.serveErr }

// Registry is the hub's device registry (for tests and the device endpoint).
func (s *Server) Registry() *registry.Registry { return s.reg }

// HostName is the hub host name used in connection strings.
func (s *Server) HostName() string { return s.hostName }

// Certs is the hub's certificate bundle.
func (s *Server) Certs() *certs.Bundle { return s.certs }

// Dir is the state directory.
func (s *Server) Dir() string { return s.dir }

// PolicyKey returns the key of a shared access policy.
func (s *Server) PolicyKey(policy string) ([]byte, bool) {
	k, ok := s.state.policyKeys[policy]
	return k, ok
}

// Shutdown stops accepting, waits for in-flight requests until ctx ends
// (then drops them), flushes the method log and removes a temporary Dir.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutdownOnce.Do(func() {
		if s.httpSrv != nil {
			if e := s.httpSrv.Shutdown(ctx); e != nil {
				_ = s.httpSrv.Close()
			}
		}
		if s.jobs != nil {
			s.jobs.Close()
		}
		for _, d := range s.endpoints {
			if d.ep != nil {
				_ = d.ep.Close()
			}
		}
		err = s.cleanup()
	})
	return err
}

func (s *Server) cleanup() error {
	var err error
	if s.httpsLn != nil {
		_ = s.httpsLn.Close()
	}
	for _, d := range s.endpoints {
		if d.ln != nil {
			_ = d.ln.Close()
		}
	}
	if s.mlog != nil {
		if e := s.mlog.Close(); e != nil {
			err = fmt.Errorf("--method-log: %w", e)
		}
		s.mlog = nil
	}
	if s.tempDir && s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
	return err
}

// Ready is the JSON line hubsim prints on stdout once it is listening.
type Ready struct {
	HTTPSAddr                         string            `json:"httpsAddr"`
	MQTTAddr                          string            `json:"mqttAddr"`
	CAFile                            string            `json:"caFile"`
	HostName                          string            `json:"hostName"`
	HubName                           string            `json:"hubName"`
	ServiceConnectionString           string            `json:"serviceConnectionString"`
	OwnerConnectionString             string            `json:"ownerConnectionString"`
	RegistryReadConnectionString      string            `json:"registryReadConnectionString"`
	RegistryReadWriteConnectionString string            `json:"registryReadWriteConnectionString"`
	DeviceConnectionStrings           map[string]string `json:"deviceConnectionStrings"`
	Entra                             ReadyEntra        `json:"entra"`
	Devices                           int               `json:"devices"`
	Modules                           int               `json:"modules"`
	Throttle                          string            `json:"throttle"`
	Seed                              int64             `json:"seed"`
	Dir                               string            `json:"dir"`
	PID                               int               `json:"pid"`
}

// ReadyEntra describes the local Entra tenant.
type ReadyEntra struct {
	AuthorityHost string           `json:"authorityHost"`
	TenantID      string           `json:"tenantId"`
	Audience      string           `json:"audience"`
	Principals    []ReadyPrincipal `json:"principals"`
}

// ReadyPrincipal is one app registration of the local tenant.
type ReadyPrincipal struct {
	Name         string `json:"name"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	ObjectID     string `json:"objectId"`
	Role         string `json:"role"`
}

// Ready describes the running hub (the ready line).
func (s *Server) Ready() Ready {
	nd, nm := s.reg.Count()
	r := Ready{
		HTTPSAddr:                         s.httpsLn.Addr().String(),
		MQTTAddr:                          s.endpoints[0].ln.Addr().String(),
		CAFile:                            s.certs.CAFile,
		HostName:                          s.hostName,
		HubName:                           HubName,
		ServiceConnectionString:           s.ServiceConnectionString(identity.PolicyService),
		OwnerConnectionString:             s.ServiceConnectionString(identity.PolicyOwner),
		RegistryReadConnectionString:      s.ServiceConnectionString(identity.PolicyRegistryRead),
		RegistryReadWriteConnectionString: s.ServiceConnectionString(identity.PolicyRegistryReadWrite),
		DeviceConnectionStrings:           map[string]string{},
		Entra: ReadyEntra{
			AuthorityHost: "https://" + s.hostName + "/",
			TenantID:      s.state.Entra.TenantID,
			Audience:      entra.Audience,
		},
		Devices:  nd,
		Modules:  nm,
		Throttle: s.tierDesc,
		Seed:     s.seed,
		Dir:      s.dir,
		PID:      os.Getpid(),
	}
	for _, id := range s.registered {
		// "dev/mod" registers a module: its string names DeviceId and
		// ModuleId and carries the module's own key.
		d, m, _ := strings.Cut(id, "/")
		r.DeviceConnectionStrings[id] = s.DeviceConnectionString(d, m)
	}
	for _, p := range s.state.Entra.Principals {
		r.Entra.Principals = append(r.Entra.Principals, ReadyPrincipal{
			Name: p.Name, ClientID: p.ClientID, ClientSecret: p.ClientSecret, ObjectID: p.ObjectID, Role: p.Role,
		})
	}
	return r
}

// ServiceConnectionString returns the connection string of a policy.
func (s *Server) ServiceConnectionString(policy string) string {
	return "HostName=" + s.hostName + ";SharedAccessKeyName=" + policy + ";SharedAccessKey=" +
		base64.StdEncoding.EncodeToString(s.state.policyKeys[policy])
}

// DeviceConnectionString returns the connection string of a device (or
// module when moduleID is set), whether or not it exists. GatewayHostName
// is the MQTT listener, so device SDKs connect there while their username
// and SAS sr carry the hub host name. An X.509 device's string ends in
// x509=true instead of a SharedAccessKey (the device brings its certificate).
func (s *Server) DeviceConnectionString(deviceID, moduleID string) string {
	cs := "HostName=" + s.hostName + ";DeviceId=" + deviceID
	if moduleID != "" {
		cs += ";ModuleId=" + moduleID
	}
	cs += ";GatewayHostName=" + hostName(s.cfg.MQTTAddr, s.endpoints[0].ln.Addr())
	if a, ok := s.reg.Auth(deviceID, moduleID); ok && a.X509() {
		return cs + ";x509=true"
	}
	key, ok := s.reg.Key(deviceID, moduleID) // the registry API may have set it
	if !ok {
		key = s.state.deviceKey(deviceID, moduleID)
	}
	return cs + ";SharedAccessKey=" + base64.StdEncoding.EncodeToString(key)
}

// WriteEnv writes Dir/hubsim.env (mode 0600: it holds keys) atomically, so a
// reader (`hubsim wait`, `source`) sees all of it or none. serve calls it once
// the hub serves; New removes the file an earlier run left.
func (s *Server) WriteEnv() (string, error) {
	r := s.Ready()
	vars := [][2]string{
		{"IOTHUB_CONNECTION_STRING", r.ServiceConnectionString},
		{"SSL_CERT_FILE", r.CAFile},
		{"DMCTL_CA_FILE", r.CAFile},
		{"NODE_EXTRA_CA_CERTS", r.CAFile},
		{"HUBSIM_HOST", r.HostName},
		{"HUBSIM_HTTPS_ADDR", r.HTTPSAddr},
		{"HUBSIM_MQTT_ADDR", r.MQTTAddr},
		{"HUBSIM_CA_FILE", r.CAFile},
		{"HUBSIM_OWNER_CONNECTION_STRING", r.OwnerConnectionString},
		{"HUBSIM_REGISTRY_READ_CONNECTION_STRING", r.RegistryReadConnectionString},
		{"HUBSIM_AUTHORITY_HOST", r.Entra.AuthorityHost},
		{"HUBSIM_TENANT_ID", r.Entra.TenantID},
	}
	for _, p := range r.Entra.Principals {
		if p.Role == entra.RoleDataContributor {
			vars = append(vars, [2]string{"HUBSIM_CLIENT_ID", p.ClientID}, [2]string{"HUBSIM_CLIENT_SECRET", p.ClientSecret})
			break
		}
	}
	path := filepath.Join(s.dir, hubenv.File)
	if err := hubenv.Write(path, vars); err != nil {
		return "", err
	}
	return path, nil
}

// MarshalReady encodes the ready line (one line, no trailing newline).
func MarshalReady(r Ready) ([]byte, error) {
	return json.Marshal(r)
}

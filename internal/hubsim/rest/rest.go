// Package rest is hubsim's service REST API: direct methods, twins, device
// query, jobs v2, the registry identity API and hubsim's own stats, over the
// wire contract of iothub-contract.md.
//
// Every request goes one way (Handler.ServeHTTP):
//
//	route table (path, method -> endpoint; 404, 405, bad path ids 400)
//	-> api-version -> authenticate and authorize (the endpoint's access, on
//	the path's resource: SAS with the one sr matcher of package identity, or
//	an Entra bearer token and its role) -> decode (the endpoint's body and
//	parameters; 400) -> throttle (the endpoint's class: 429001, or a shaping
//	delay) -> injected faults (direct methods) -> serve.
//
// So policy is declared per endpoint in the table (routes) and applied in
// one place (Handler.chain); a handler only decodes and serves.
package rest

import (
	"context"
	"io"
	"log"
	"time"

	"github.com/dmctl/dmctl/internal/ctxtime"
	"github.com/dmctl/dmctl/internal/hubsim/entra"
	"github.com/dmctl/dmctl/internal/hubsim/jobs"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/hubsim/throttle"
)

// Config is what the REST API works with; the server wires it.
type Config struct {
	Registry *registry.Registry
	Jobs     *jobs.Engine
	// Limiter throttles; Tier names the limits in 429001 messages and the
	// stats ("S1 x1", "unthrottled"); MaxConcurrentJobs is quoted in 429004.
	Limiter           *throttle.Limiter
	Tier              string
	MaxConcurrentJobs int
	// Authority is the local Entra tenant (token endpoint, bearer tokens).
	Authority *entra.Authority
	// PolicyKeys are the shared access policies' keys by name (their
	// permissions are identity.Policies').
	PolicyKeys map[string][]byte
	// HostName is the hub host, as in connection strings and token sr.
	HostName string
	Now      func() time.Time
	Log      *log.Logger
	Verbose  bool // one log line per request
	// Faulty says some fault share is set (flags or fleet groups), so
	// direct methods ask the registry for a fault.
	Faulty bool
	// Sleep waits out a traffic-shaping delay; false when ctx ended first
	// (nil: the real clock).
	Sleep func(ctx context.Context, d time.Duration) bool
	// FlushMethodLog, when set, is called before the stats are answered.
	FlushMethodLog func()
	// IdentityChanged, when set, is called after the registry identity API
	// created, replaced or deleted an identity (the server persists it).
	IdentityChanged func(deviceID, moduleID string)
}

// Handler serves the REST API (an http.Handler).
type Handler struct {
	cfg      Config
	reg      *registry.Registry
	jobs     *jobs.Engine
	limiter  *throttle.Limiter
	auth     *authenticator
	log      *log.Logger
	now      func() time.Time
	counters counters
	ids      idGen
}

// New returns the REST API over cfg.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	if cfg.Sleep == nil {
		cfg.Sleep = ctxtime.SleepOK
	}
	h := &Handler{
		cfg: cfg, reg: cfg.Registry, jobs: cfg.Jobs, limiter: cfg.Limiter, log: cfg.Log, now: cfg.Now,
		auth: newAuthenticator(cfg.PolicyKeys, cfg.Authority, cfg.HostName, cfg.Now),
	}
	h.ids.init()
	h.counters.started = cfg.Now()
	return h
}

// CountDelivered counts a method delivered to a device (the stats'
// methodsDelivered); the server calls it from the registry's OnDelivered.
func (h *Handler) CountDelivered() { h.counters.delivered.Add(1) }

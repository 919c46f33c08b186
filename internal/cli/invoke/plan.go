package invoke

import (
	"context"
	"io"

	"github.com/dmctl/dmctl/internal/cli/planfile"
	"github.com/dmctl/dmctl/internal/fleet"
)

// VersionReader reads twin versions for --plan and apply's drift check:
// batched queries paced to the --tier/--units query throttle, resent as
// idempotent reads.
func (opts *Options) VersionReader() (*fleet.VersionReader, error) {
	twins, err := opts.twins()
	if err != nil {
		return nil, err
	}
	return &fleet.VersionReader{Twins: twins, QueriesPerMinute: queriesPerMinute(opts.Tier, opts.Units), Retry: opts.readPolicy()}, nil
}

// writePlan resolves the targets (a query read to its end) and writes
// --plan's file with their twins' versions (planfile), sending no method.
func (opts *Options) writePlan(ctx context.Context) error {
	client, cred, err := opts.hub()
	if err != nil {
		return err
	}
	p := &planfile.Plan{Created: opts.now().UTC(), Hub: client.Host(), Method: opts.Method, Payload: opts.Payload, Run: opts.planRun,
		Sources: planfile.Sources{DevicesFiles: opts.DevicesFiles, Query: opts.QuerySQL, Module: opts.Module}}
	if cred != nil && cred.Host != "" {
		p.Hub = cred.Host
	}
	for _, t := range opts.Targets {
		p.Sources.Devices = append(p.Sources.Devices, t.DeviceID)
	}
	ts, err := opts.resolveTargets(ctx, true)
	defer ts.close()
	if err != nil {
		return err
	}
	var targets []fleet.Target
	for t, err := ts.Source.Next(ctx); err != io.EOF; t, err = ts.Source.Next(ctx) {
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	versions, err := opts.VersionReader()
	if err != nil {
		return err
	}
	return planfile.Write(ctx, opts.IO.ErrOut, opts.PlanFile, p, targets, ts.Duplicates(), versions)
}

// Run is invoke's run for options built elsewhere (dmctl apply): the same
// session, runner, journal, outcomes and exit codes.
func Run(ctx context.Context, opts *Options) error { return invokeRun(ctx, opts) }

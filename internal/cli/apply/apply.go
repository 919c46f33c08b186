// Package apply is `dmctl apply PLAN`: it runs a plan written by `dmctl
// invoke ... --plan PLAN` through invoke's own checks and run, comparing
// each target's twin with the plan's before its call.
package apply

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/invoke"
	"github.com/dmctl/dmctl/internal/cli/planfile"
	"github.com/dmctl/dmctl/internal/fleet"
)

// Options are apply's own flags; everything else comes from the plan.
type Options struct {
	PlanPath   string
	Journal    string
	Resume     string
	DryRun     bool
	Yes        bool
	AllowDrift bool
}

// NewCmdApply returns `dmctl apply`. runF, when set, receives invoke's
// options as apply built them, instead of running them (tests).
func NewCmdApply(f *cmdutil.Factory, runF func(*invoke.Options) error) *cobra.Command {
	opts := &Options{}
	cmd := &cobra.Command{
		Use:   "apply PLAN [--yes] [--dry-run] [--journal FILE | --resume FILE] [--allow-drift]",
		Short: "Run a plan written by dmctl invoke --plan",
		Long: cmdutil.Heredoc(`
			Run exactly the plan that dmctl invoke METHOD ... --plan PLAN wrote: its
			method and payload on its targets, with its timeouts, success statuses,
			resends, pace, waves, stop criteria and wait for outcomes. The plan's
			options are checked by invoke's own rules; a plan that is malformed, of
			another format version, edited inconsistently (a target twice, a target
			without version or etag, a bad id, method or option), or for another
			hub than the credential's is bad input: exit 2, nothing sent.

			Before each target's call, its twin's version and etag are compared
			with the plan's (read ahead in batched queries, a few hundred targets a
			query, paced to the --tier/--units query throttle, and read again when
			more than 10s old at the call): a target whose twin changed since the
			plan (tags, desired or reported properties) is not invoked and is
			reported drifted; one whose twin is gone, notFound. Both count as not
			succeeded (exit 4; --max-failures and --abort-if count them, and
			--abort-if 'drifted>N' stops on them). --allow-drift invokes them anyway.

			Results, summary, exit codes, the confirmation on a terminal, --yes,
			--dry-run, -o and --journal are invoke's. A journal written by apply
			continues with dmctl apply PLAN --resume JOURNAL (the same, unedited
			plan; dmctl invoke --resume refuses it); targets with a final result,
			drifted ones included, are not run again.
		`),
		Example: cmdutil.Example(`
			$ dmctl invoke firmwareUpdate --query "SELECT deviceId FROM devices WHERE tags.ring = 'canary'" --payload @fw.json --waves 1,10%,100% --max-failures 2% --plan canary.plan
			$ dmctl apply canary.plan
			$ dmctl apply canary.plan --yes --journal canary.journal -o jsonl
			$ dmctl apply canary.plan --resume canary.journal
			$ dmctl apply canary.plan --dry-run
			$ dmctl apply canary.plan --allow-drift
		`),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.FlagErrorf("apply needs exactly one PLAN argument (got %d), e.g. dmctl apply rollout.plan", len(args))
			}
			if strings.TrimSpace(args[0]) == "" {
				return cmdutil.FlagErrorf("PLAN is empty: name the plan file, e.g. dmctl apply rollout.plan")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.PlanPath = args[0]
			if opts.Journal != "" && opts.Resume != "" && filepath.Clean(opts.Journal) != filepath.Clean(opts.Resume) {
				return cmdutil.FlagErrorf("--journal and --resume name different files: --resume continues its own journal")
			}
			iopts, err := invokeOptions(cmd, f, opts)
			if err != nil {
				return err
			}
			if runF != nil {
				return runF(iopts)
			}
			return invoke.Run(cmd.Context(), iopts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.Journal, "journal", "", "Record each target before its call and its result after, in this new `FILE` (JSONL)")
	flags.StringVar(&opts.Resume, "resume", "", "Continue the run of this plan recorded in journal `FILE`: run only the targets it has no result for")
	flags.BoolVar(&opts.DryRun, "dry-run", false, "Print the plan's target count, a sample and the estimated duration; send nothing")
	flags.BoolVarP(&opts.Yes, "yes", "y", false, "Do not ask for confirmation on a terminal")
	flags.BoolVar(&opts.AllowDrift, "allow-drift", false, "Invoke targets whose twin changed since the plan, instead of reporting them drifted")
	cmd.ValidArgsFunction = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveDefault // PLAN is a file
	}
	return cmd
}

// invokeOptions reads the plan, checks it is for the credential's hub, and
// builds invoke's options from it through invoke's own flags and checks.
func invokeOptions(cmd *cobra.Command, f *cmdutil.Factory, opts *Options) (*invoke.Options, error) {
	p, sum, err := planfile.Read(opts.PlanPath)
	if err != nil {
		return nil, err
	}
	format, err := cmdutil.ResultFormats.Format(cmd, f)
	if err != nil {
		return nil, err
	}
	client, cred, err := f.HubClient()
	if err != nil {
		return nil, err
	}
	host := client.Host()
	if cred != nil && cred.Host != "" {
		host = cred.Host
	}
	if !strings.EqualFold(host, p.Hub) {
		return nil, cmdutil.FlagErrorf("plan %s: it is for hub %s, and the credential is for hub %s: apply it with a credential of %s, or make a plan for this hub", opts.PlanPath, p.Hub, host, p.Hub)
	}
	abs, err := filepath.Abs(opts.PlanPath)
	if err != nil {
		return nil, err
	}
	planned := p.Planned()
	targets := make([]fleet.Target, len(planned))
	for i, t := range planned {
		targets[i] = t.Target
	}
	iopts := invoke.NewOptions(f)
	iopts.Plan = &planfile.Planned{Path: abs, SHA256: sum, Targets: targets}
	var checked *invoke.Options
	ic := invoke.NewCmdInvokeFor(f, iopts, func(o *invoke.Options) error { checked = o; return nil })
	if err := setFlags(ic, p, opts); err != nil {
		return nil, cmdutil.FlagErrorf("plan %s: %v", opts.PlanPath, err)
	}
	args := []string{p.Method}
	if err := ic.Args(ic, args); err != nil {
		return nil, planError(opts.PlanPath, err)
	}
	if err := ic.RunE(ic, args); err != nil {
		return nil, planError(opts.PlanPath, err)
	}
	checked.Output = format
	if !opts.AllowDrift {
		versions, err := checked.VersionReader()
		if err != nil {
			return nil, err
		}
		checked.Plan.Drift = &fleet.DriftCheck{Reader: versions, Planned: planned, Now: checked.Now}
	}
	return checked, nil
}

// setFlags gives the plan's payload and options, and apply's own flags, to
// invoke's flags, as if typed on its command line.
func setFlags(ic *cobra.Command, p *planfile.Plan, opts *Options) error {
	fs := ic.Flags()
	if p.Payload != nil {
		var b bytes.Buffer
		if err := json.Compact(&b, p.Payload); err != nil {
			return err
		}
		if err := fs.Set("payload", b.String()); err != nil {
			return err
		}
	}
	if err := p.Run.SetFlags(fs); err != nil {
		return err
	}
	for name, v := range map[string]string{"journal": opts.Journal, "resume": opts.Resume} {
		if v != "" {
			if err := fs.Set(name, v); err != nil {
				return err
			}
		}
	}
	for name, v := range map[string]bool{"dry-run": opts.DryRun, "yes": opts.Yes} {
		if v {
			if err := fs.Set(name, "true"); err != nil {
				return err
			}
		}
	}
	return nil
}

// planError names the plan in a usage error found by invoke's checks.
func planError(path string, err error) error {
	var fe *cmdutil.FlagError
	if errors.As(err, &fe) {
		return cmdutil.FlagErrorf("plan %s: %v", path, err)
	}
	return err
}

package invoke

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/invoke/help"
	"github.com/dmctl/dmctl/internal/cli/planfile"
	"github.com/dmctl/dmctl/internal/cli/proc"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
	"github.com/dmctl/dmctl/internal/retry"
)

// Defaults and bounds of invoke's flags.
const (
	DefaultMaxAttempts = retry.DefaultMaxAttempts
	MaxMaxAttempts     = 100
	DefaultRetryFor    = retry.DefaultMaxElapsed
	MaxWait            = 24 * time.Hour
	// DefaultMaxConcurrency bounds --concurrency auto unless
	// --max-concurrency says otherwise (and the open-file limit allows it):
	// an S3 unit's 6,144 calls/s to devices answering in about a second
	// needs some 6,500 in flight.
	DefaultMaxConcurrency = 16384
	// MaxConcurrency bounds --concurrency N and --max-concurrency: the
	// transport keeps a connection per call in flight.
	MaxConcurrency = iothub.MaxConnections
	// openFilesReserve is how many open files the calls in flight leave to
	// the rest of dmctl (journal, spool, token cache, standard streams).
	openFilesReserve = 64
	// DefaultGrace is how long calls in flight may finish after Ctrl-C.
	DefaultGrace = 10 * time.Second
	// MaxGrace bounds --grace.
	MaxGrace = 5 * time.Minute
	// QueryPageSize is the page size asked of the hub for --query (the
	// documented maximum).
	QueryPageSize = 1000
	// dryRunSample is how many targets --dry-run lists.
	dryRunSample = 10
)

// Options are everything `dmctl invoke` needs: dependencies first,
// then values from flags, all checked before invokeRun sends anything.
type Options struct {
	IO      *output.IOStreams
	Invoker func() (fleet.Invoker, *auth.Credential, error)
	// Query returns a pager for --query; nil when the command has no hub.
	Query func(sql string, opts iothub.QueryOptions) (fleet.Pager, error)
	Now   func() time.Time
	// Sleep waits between attempts; nil means a real, cancellable sleep.
	Sleep func(context.Context, time.Duration) error
	// TempDir holds the targets' spool file; "" means the system's.
	TempDir string
	// Hub returns the REST client for twin reads and jobs (the factory's
	// one client, which Invoker's invoker also uses); nil means none.
	Hub func() (*iothub.Client, *auth.Credential, error)
	// Twins returns the twin reader of the wait phase; nil means the hub's.
	Twins func() (fleet.TwinReader, error)
	// HardStop ends on a second Ctrl-C: stop at once; nil: never.
	HardStop context.Context

	Output output.Format

	Method string
	// Targets are the --device targets as given (the plan removes duplicates).
	Targets []fleet.Target
	// DevicesFiles are the --devices-file paths ("-" for stdin), read in
	// order; their targets combine, duplicates removed.
	DevicesFiles []string
	// QuerySQL is --query.
	QuerySQL string
	// Module is --module, for every device.
	Module string

	Payload        json.RawMessage // nil sends JSON null
	Timeout        time.Duration
	ConnectTimeout time.Duration
	OKStatus       fleet.StatusSet
	Idempotent     bool
	WaitOnline     time.Duration
	MaxAttempts    int
	RetryFor       time.Duration

	// Concurrency is --concurrency N, a fixed number of calls in flight; 0
	// means auto (sized from the pace and the devices' answer times, up to
	// MaxInFlight).
	Concurrency int
	// MaxInFlight bounds auto: --max-concurrency, or DefaultMaxConcurrency,
	// lowered to what the open-file limit allows.
	MaxInFlight int
	// inFlightNote, when set, says that the open-file limit lowered
	// --concurrency or --max-concurrency.
	inFlightNote string
	// fdBound says the open-file limit set MaxInFlight.
	fdBound bool
	// Rate is --rate in calls per second; 0 means none (unless RateAuto).
	Rate     float64
	RateAuto bool
	// Tier and Units describe the hub (--tier, --units) for --rate auto and
	// --dry-run; Tier "" means unknown.
	Tier  string
	Units int

	// Journal is --journal; Resume is --resume (the journal continued).
	Journal string
	Resume  string
	// resume is the journal --resume read.
	resume *fleet.JournalState

	Waves       fleet.WavePlan
	WavePause   time.Duration
	MaxFailures fleet.Threshold
	// AbortIf are the --abort-if criteria, judged on every result;
	// MinSample is --min-sample (0: fleet.DefaultMinSample).
	AbortIf   []fleet.Criterion
	MinSample int
	// Gate is --gate, the shell command run between waves ("" none), with
	// GateTimeout and GateAfterLast.
	Gate          string
	GateTimeout   time.Duration
	GateAfterLast bool
	// UntilOnline is --until-online: park offline targets for this long
	// (0: don't).
	UntilOnline time.Duration

	DryRun bool
	Yes    bool
	Grace  time.Duration

	// Via is --via: ViaDirect, or ViaJob to run the fan-out as an IoT Hub job.
	Via string
	// Wait is what --wait, --wait-until and --fail-if wait for after each
	// method succeeded; nil means no wait. Its hub reader is set by the run.
	Wait *fleet.Wait

	// PlanFile is --plan: write the resolved run to this file, send nothing.
	PlanFile string
	planRun  planfile.Run
	// Plan is set by dmctl apply: the targets come from a plan file, not
	// from target flags. nil for invoke.
	Plan *planfile.Planned
}

// invokeFlags are the raw flag values before they are checked.
type invokeFlags struct {
	devices     []string
	module      string
	payload     string
	okStatus    string
	retryFor    time.Duration
	waitOnline  time.Duration
	rate        string
	concurrency string
	maxInFlight int
	// maxInFlightSet says --max-concurrency was given.
	maxInFlightSet bool
	waves          string
	batchSize      int
	maxFailures    string
	abortIf        []string
	minSample      int
	minSampleSet   bool
	gateTimeoutSet bool
	wait           waitFlags
}

// NewCmdInvoke returns `dmctl invoke`.
func NewCmdInvoke(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	return NewCmdInvokeFor(f, NewOptions(f), runF)
}

// NewOptions are invoke's Options with the factory's dependencies.
func NewOptions(f *cmdutil.Factory) *Options {
	return &Options{IO: f.IOStreams, Invoker: f.MethodInvoker, Query: f.QueryPager, Now: f.Now, Sleep: f.Sleep, Hub: f.HubClient, HardStop: f.HardStop}
}

// NewCmdInvokeFor is NewCmdInvoke filling opts (dmctl apply sets opts.Plan first).
func NewCmdInvokeFor(f *cmdutil.Factory, opts *Options, runF func(*Options) error) *cobra.Command {
	var fl invokeFlags
	cmd := &cobra.Command{
		Use:     "invoke METHOD (--device ID ... | --devices-file FILE | --query SQL) [flags]",
		Short:   "Invoke a direct method on devices, modules or a whole fleet",
		Long:    cmdutil.Heredoc(help.Long),
		Example: cmdutil.Example(help.Examples),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && cmd.Flags().Changed("resume") {
				return nil // the journal names the method
			}
			if len(args) != 1 {
				return cmdutil.FlagErrorf("invoke needs exactly one METHOD argument (got %d), e.g. dmctl invoke reboot --device ID", len(args))
			}
			if strings.TrimSpace(args[0]) == "" {
				return cmdutil.FlagErrorf("METHOD is empty: name the method, e.g. dmctl invoke reboot --device ID")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				opts.Method = args[0]
			}
			format, err := cmdutil.ResultFormats.Format(cmd, f)
			if err != nil {
				return err
			}
			opts.Output = format
			if opts.Resume != "" {
				if err := applyJournal(opts, &fl, cmd.Flags()); err != nil {
					return err
				}
			}
			fl.maxInFlightSet = cmd.Flags().Changed("max-concurrency")
			fl.minSampleSet = cmd.Flags().Changed("min-sample")
			fl.gateTimeoutSet = cmd.Flags().Changed("gate-timeout")
			if err := checkInvoke(opts, &fl, cmd.Flags().Changed("payload")); err != nil {
				return err
			}
			if err := checkWaitOutcome(opts, &fl.wait, cmd.Flags().Changed("wait-timeout")); err != nil {
				return err
			}
			if opts.Via == ViaJob {
				if err := checkViaJob(opts, cmd.Flags()); err != nil {
					return err
				}
			}
			if opts.PlanFile != "" {
				if opts.planRun, err = planfile.CheckFlags(cmd.Flags(), opts.Payload); err != nil {
					return err
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return invokeRun(cmd.Context(), opts)
		},
	}
	addInvokeFlags(cmd, f, opts, &fl)
	return cmd
}

// addInvokeFlags defines invoke's flags and their completions.
func addInvokeFlags(cmd *cobra.Command, f *cmdutil.Factory, opts *Options, fl *invokeFlags) {
	flags := cmd.Flags()
	flags.StringArrayVar(&fl.devices, "device", nil, "Device `ID` to invoke the method on (repeatable)")
	flags.StringArrayVar(&opts.DevicesFiles, "devices-file", nil, "Read targets from `FILE` (- for stdin): ids, device/module, or JSON lines with deviceId (repeatable: the files combine)")
	flags.StringVar(&opts.QuerySQL, "query", "", "Invoke on the devices (or modules) an IoT Hub query returns, e.g. \"SELECT deviceId FROM devices WHERE tags.site = 'a'\"")
	flags.StringVar(&fl.module, "module", "", "Invoke the method on this module `ID` of each device")
	flags.StringVar(&fl.payload, "payload", "", "Method payload: JSON text, @FILE, or - for stdin (default null)")
	cmdutil.DurationFlag(flags, &opts.Timeout, "timeout", iothub.DefaultResponseTimeout, true, "How long the hub waits for the device's answer (5s..300s)")
	cmdutil.DurationFlag(flags, &opts.ConnectTimeout, "connect-timeout", 0, true, "How long the hub waits for a disconnected device to connect (0..300s)")
	flags.StringVar(&fl.okStatus, "ok-status", "2xx", "Device statuses that count as success, e.g. 200,202 or 2xx")
	flags.BoolVar(&opts.Idempotent, "idempotent", false, "The method is safe to run twice: also resend after timeouts, 500/502 and lost connections, and rerun unknown targets on --resume")
	cmdutil.DurationFlag(flags, &fl.waitOnline, "wait-online", 0, false, "Keep retrying offline devices (404103) for up to this long")
	flags.IntVar(&opts.MaxAttempts, "max-attempts", DefaultMaxAttempts, "Send each call at most this many times (1: never resend)")
	cmdutil.DurationFlag(flags, &fl.retryFor, "retry-for", DefaultRetryFor, false, "Stop resending a call after this long")
	flags.StringVarP(&fl.concurrency, "concurrency", "c", "auto", fmt.Sprintf("Calls in flight: auto sizes them from the pace and the devices' answer times; a number `N` keeps exactly N (1..%d)", MaxConcurrency))
	flags.IntVar(&fl.maxInFlight, "max-concurrency", DefaultMaxConcurrency, fmt.Sprintf("With --concurrency auto, at most `N` calls in flight (1..%d; lowered to what the open-file limit allows)", MaxConcurrency))
	flags.StringVar(&fl.rate, "rate", "", "Pace calls: N/s, N/m, or auto (start at the --tier throttle and adapt to 429s)")
	flags.StringVar(&opts.Tier, "tier", "", "The hub's tier (F1, S1, S2, S3) for --rate auto and --dry-run estimates")
	flags.IntVar(&opts.Units, "units", 1, "The hub's number of units, with --tier")
	flags.StringVar(&opts.Journal, "journal", "", "Record each target before its call and its result after, in this new `FILE` (JSONL)")
	flags.StringVar(&opts.Resume, "resume", "", "Continue the run recorded in journal `FILE`: run only the targets it has no result for")
	flags.StringVar(&opts.PlanFile, "plan", "", "Send nothing: write the targets, their twins' versions and the run's options to this new plan `FILE` for dmctl apply")
	flags.StringVar(&fl.waves, "waves", "", "Run in cumulative waves, e.g. 1,10%,50%,100%")
	flags.IntVar(&fl.batchSize, "batch-size", 0, "Run in waves of N targets")
	cmdutil.DurationFlag(flags, &opts.WavePause, "wave-pause", 0, false, "Pause between waves")
	flags.StringVar(&fl.maxFailures, "max-failures", "", "Stop when more than N targets failed, or more than P% of the finished ones at the end of a wave (exit 5)")
	flags.StringArrayVar(&fl.abortIf, "abort-if", nil, "Stop as soon as more than N, or P% (after --min-sample finished), of the targets ended in CLASS: CLASS>N or CLASS>P%, CLASS an outcome (offline, timeout, failed, error, unknown, waitFailed, waitTimeout, ...) or any (exit 5; repeatable: any holds)")
	flags.IntVar(&fl.minSample, "min-sample", fleet.DefaultMinSample, "How many targets must have finished before an --abort-if percentage is judged")
	flags.StringVar(&opts.Gate, "gate", "", "Run this shell `COMMAND` after each wave, before the next; a non-zero exit stops the run (exit 5). It gets DMCTL_WAVE, DMCTL_WAVES, DMCTL_WAVE_RESULTS and DMCTL_RESULTS (JSON-lines files)")
	cmdutil.DurationFlag(flags, &opts.GateTimeout, "gate-timeout", fleet.DefaultGateTimeout, false, "Stop the run when one --gate run takes longer than this")
	flags.BoolVar(&opts.GateAfterLast, "gate-after-last", false, "Run the --gate after the last wave too")
	cmdutil.DurationFlag(flags, &opts.UntilOnline, "until-online", 0, false, "Park offline devices (404103) and call each as soon as it connects, for up to this long (e.g. 72h); then offline")
	flags.BoolVar(&opts.DryRun, "dry-run", false, "Resolve the targets, print their count, a sample and the estimated duration; send nothing")
	flags.BoolVarP(&opts.Yes, "yes", "y", false, "Do not ask for confirmation on a terminal")
	cmdutil.DurationFlag(flags, &opts.Grace, "grace", DefaultGrace, false, "After Ctrl-C, how long calls in flight may take to finish")
	addWaitOutcomeFlags(flags, &fl.wait)
	cmdutil.StringEnumFlag(cmd, flags, &opts.Via, "via", "", ViaDirect, []string{ViaDirect, ViaJob}, "Call each device from dmctl (direct), or run the fan-out as an IoT Hub scheduleDeviceMethod job (job)")
	_ = cmd.RegisterFlagCompletionFunc("wait", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{string(fleet.PresetReboot), string(fleet.PresetFirmware)}, cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("device", cmdutil.CompleteDeviceIDs(f))
	_ = cmd.RegisterFlagCompletionFunc("module", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("query", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("tier", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return iothub.TierNames(), cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("concurrency", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"auto"}, cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("max-concurrency", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("rate", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"auto"}, cobra.ShellCompDirectiveNoFileComp
	})
}

// checkInvoke turns raw flags into options, checking every input; any
// problem is a *cmdutil.FlagError naming the input, and nothing has been sent.
func checkInvoke(opts *Options, fl *invokeFlags, payloadGiven bool) error {
	if err := checkTargets(opts, fl); err != nil {
		return err
	}
	if err := checkCall(opts, fl, payloadGiven); err != nil {
		return err
	}
	if _, err := output.ParseFormat(string(opts.Output)); err != nil {
		return cmdutil.FlagErrorf("-o/--output: %v", err)
	}
	return checkFleetFlags(opts, fl)
}

// checkTargets checks METHOD and the target flags: ids, --module, --query
// and stdin.
func checkTargets(opts *Options, fl *invokeFlags) error {
	if opts.Method == "" {
		return cmdutil.FlagErrorf("invoke needs exactly one METHOD argument (got 0), e.g. dmctl invoke reboot --device ID")
	}
	if err := iothub.ValidateMethodName(opts.Method); err != nil {
		return cmdutil.FlagErrorf("METHOD: %v", err)
	}
	opts.Module = fl.module
	if opts.Plan != nil { // dmctl apply: planfile checked the targets
		opts.Targets = append(opts.Targets[:0], opts.Plan.PlannedTargets()...)
		return checkStdin(opts, fl)
	}
	plan := fleet.Plan{Devices: fl.devices, Files: opts.DevicesFiles, Query: opts.QuerySQL, Module: fl.module}
	if err := plan.Check(); err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	// The --device targets as given: the run's fleet.Plan removes
	// duplicates (its one rule) and counts them for the note on stderr.
	opts.Targets = opts.Targets[:0]
	for _, d := range fl.devices {
		opts.Targets = append(opts.Targets, fleet.Target{DeviceID: d, ModuleID: fl.module})
	}
	return checkStdin(opts, fl)
}

// checkStdin checks that stdin is read at most once, and not from a terminal.
func checkStdin(opts *Options, fl *invokeFlags) error {
	stdinFiles := 0
	for _, f := range opts.DevicesFiles {
		if f == "-" {
			stdinFiles++
		}
	}
	if stdinFiles > 0 && fl.payload == "-" {
		return cmdutil.FlagErrorf("--devices-file - and --payload - both read stdin; put one of them in a file")
	}
	if stdinFiles > 0 && opts.IO.IsStdinTTY() {
		return cmdutil.FlagErrorf("--devices-file - (stdin): stdin is a terminal; pipe the list in, or use --devices-file FILE")
	}
	return nil
}

// checkCall checks the call's payload, timeouts, success statuses and
// resend bounds.
func checkCall(opts *Options, fl *invokeFlags, payloadGiven bool) error {
	payload, err := cmdutil.ReadPayload(fl.payload, payloadGiven, opts.IO)
	if err != nil {
		return err
	}
	opts.Payload = payload
	if err := opts.checkResumePayload(); err != nil {
		return err
	}
	if err := cmdutil.CheckMethodTimeouts(opts.Timeout, opts.ConnectTimeout); err != nil {
		return err
	}
	ok, err := fleet.ParseStatusSet(fl.okStatus)
	if err != nil {
		return cmdutil.FlagErrorf("--ok-status: %v", err)
	}
	opts.OKStatus = ok
	if opts.MaxAttempts < 1 || opts.MaxAttempts > MaxMaxAttempts {
		return cmdutil.FlagErrorf("--max-attempts: %d is out of range: use 1 (never resend) to %d", opts.MaxAttempts, MaxMaxAttempts)
	}
	if opts.UntilOnline > fleet.MaxUntilOnline {
		return cmdutil.FlagErrorf("--until-online: %s is longer than %s", cmdutil.FormatDuration(opts.UntilOnline), cmdutil.FormatDuration(fleet.MaxUntilOnline))
	}
	if opts.UntilOnline > 0 && fl.waitOnline > 0 {
		return cmdutil.FlagErrorf("--until-online and --wait-online both wait for offline devices: --wait-online resends the call, --until-online watches the twin and calls once connected; give one")
	}
	if fl.waitOnline > MaxWait {
		return cmdutil.FlagErrorf("--wait-online: %s is longer than %s", cmdutil.FormatDuration(fl.waitOnline), cmdutil.FormatDuration(MaxWait))
	}
	if fl.retryFor > MaxWait {
		return cmdutil.FlagErrorf("--retry-for: %s is longer than %s", cmdutil.FormatDuration(fl.retryFor), cmdutil.FormatDuration(MaxWait))
	}
	opts.WaitOnline, opts.RetryFor = fl.waitOnline, fl.retryFor
	return nil
}

// checkInFlight reads --concurrency and --max-concurrency and bounds them by
// the open-file limit (0: unknown): each call in flight holds a connection.
func checkInFlight(opts *Options, fl *invokeFlags, openFiles int) error {
	opts.Concurrency = 0
	if v := strings.TrimSpace(fl.concurrency); !strings.EqualFold(v, "auto") {
		u, err := strconv.ParseUint(v, 10, 31) // digits only: no sign
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return cmdutil.FlagErrorf("--concurrency: %q is not auto or a whole number of calls in flight", fl.concurrency)
		}
		n := int(u)
		if err != nil || n < 1 || n > MaxConcurrency {
			return cmdutil.FlagErrorf("--concurrency: %s is out of range: use auto, or 1 to %d", v, MaxConcurrency)
		}
		if fl.maxInFlightSet {
			return cmdutil.FlagErrorf("--max-concurrency bounds --concurrency auto; with a fixed --concurrency %d leave it out", n)
		}
		opts.Concurrency = n
	}
	if fl.maxInFlight < 1 || fl.maxInFlight > MaxConcurrency {
		return cmdutil.FlagErrorf("--max-concurrency: %d is out of range: use 1 to %d", fl.maxInFlight, MaxConcurrency)
	}
	opts.MaxInFlight = fl.maxInFlight
	allowed := openFiles - openFilesReserve
	if openFiles <= 0 {
		return nil
	}
	allowed = max(allowed, 1)
	switch {
	case opts.Concurrency > allowed:
		opts.inFlightNote = fmt.Sprintf("--concurrency %d: the open-file limit (%d, ulimit -n) allows %d calls in flight; using %d", opts.Concurrency, openFiles, allowed, allowed)
		opts.Concurrency = allowed
	case opts.Concurrency == 0 && opts.MaxInFlight > allowed:
		if fl.maxInFlightSet {
			opts.inFlightNote = fmt.Sprintf("--max-concurrency %d: the open-file limit (%d, ulimit -n) allows %d calls in flight; using %d", opts.MaxInFlight, openFiles, allowed, allowed)
		}
		opts.MaxInFlight = allowed
		opts.fdBound = true
	}
	return nil
}

// checkFleetFlags checks the flags about pacing, waves, journals and safety.
func checkFleetFlags(opts *Options, fl *invokeFlags) error {
	if err := checkInFlight(opts, fl, proc.OpenFileLimit()); err != nil {
		return err
	}
	opts.Rate, opts.RateAuto = 0, false
	if fl.rate != "" {
		r, auto, err := fleet.ParseRate(fl.rate)
		if err != nil {
			return cmdutil.FlagErrorf("--rate: %v", err)
		}
		opts.Rate, opts.RateAuto = r, auto
	}
	if opts.Units < 1 {
		return cmdutil.FlagErrorf("--units: %d is out of range: a hub has at least 1 unit", opts.Units)
	}
	if opts.Tier != "" {
		opts.Tier = strings.ToUpper(strings.TrimSpace(opts.Tier))
		if _, err := iothub.TierRate(opts.Tier, opts.Units, 0); err != nil {
			return cmdutil.FlagErrorf("--tier: %v", err)
		}
	}
	if fl.waves != "" && fl.batchSize != 0 {
		return cmdutil.FlagErrorf("--waves and --batch-size both split the run into waves; use one of them")
	}
	opts.Waves = fleet.WavePlan{}
	if fl.waves != "" {
		w, err := fleet.ParseWaves(fl.waves)
		if err != nil {
			return cmdutil.FlagErrorf("--waves: %v", err)
		}
		opts.Waves = w
	}
	if fl.batchSize < 0 {
		return cmdutil.FlagErrorf("--batch-size: %d is out of range: use 1 or more", fl.batchSize)
	}
	opts.Waves.BatchSize = fl.batchSize
	if opts.WavePause > MaxWait {
		return cmdutil.FlagErrorf("--wave-pause: %s is longer than %s", cmdutil.FormatDuration(opts.WavePause), cmdutil.FormatDuration(MaxWait))
	}
	if opts.WavePause > 0 && opts.Waves.IsZero() {
		return cmdutil.FlagErrorf("--wave-pause needs --waves or --batch-size")
	}
	opts.MaxFailures = fleet.Threshold{}
	if fl.maxFailures != "" {
		t, err := fleet.ParseThreshold(fl.maxFailures)
		if err != nil {
			return cmdutil.FlagErrorf("--max-failures: %v", err)
		}
		if t.Percent > 0 && opts.Waves.IsZero() {
			return cmdutil.FlagErrorf("--max-failures %s: a percentage is checked when a wave ends; add --waves or --batch-size, or give a number of failures", fl.maxFailures)
		}
		opts.MaxFailures = t
	}
	opts.AbortIf = nil
	percent := false
	for _, v := range fl.abortIf {
		c, err := fleet.ParseCriterion(v)
		if err != nil {
			return cmdutil.FlagErrorf("--abort-if: %v", err)
		}
		percent = percent || c.Percent > 0
		opts.AbortIf = append(opts.AbortIf, c)
	}
	if fl.minSample < 1 {
		return cmdutil.FlagErrorf("--min-sample: %d is out of range: use 1 or more", fl.minSample)
	}
	if fl.minSampleSet && !percent {
		return cmdutil.FlagErrorf("--min-sample applies to --abort-if percentages (CLASS>P%%); none was given")
	}
	opts.MinSample = fl.minSample
	if opts.Gate != "" && opts.Waves.IsZero() && opts.Via != ViaJob { // --via job refuses --gate itself
		return cmdutil.FlagErrorf("--gate runs between waves: add --waves or --batch-size")
	}
	if opts.Gate == "" && (fl.gateTimeoutSet || opts.GateAfterLast) {
		return cmdutil.FlagErrorf("--gate-timeout and --gate-after-last need --gate")
	}
	if opts.GateTimeout <= 0 || opts.GateTimeout > fleet.MaxGateTimeout {
		return cmdutil.FlagErrorf("--gate-timeout: %s is out of range: use more than 0 and at most %s", cmdutil.FormatDuration(opts.GateTimeout), cmdutil.FormatDuration(fleet.MaxGateTimeout))
	}
	if opts.Grace > MaxGrace {
		return cmdutil.FlagErrorf("--grace: %s is longer than %s", cmdutil.FormatDuration(opts.Grace), cmdutil.FormatDuration(MaxGrace))
	}
	if opts.Journal != "" && opts.Resume != "" && filepath.Clean(opts.Journal) != filepath.Clean(opts.Resume) {
		return cmdutil.FlagErrorf("--journal and --resume name different files: --resume continues its own journal")
	}
	if opts.Journal != "" && opts.Resume == "" && !opts.DryRun {
		if fi, err := os.Stat(opts.Journal); err == nil && fi.IsDir() {
			return cmdutil.FlagErrorf("--journal %s: it is a directory; name a new file, e.g. %s", opts.Journal, filepath.Join(opts.Journal, "run.journal"))
		} else if err == nil {
			return cmdutil.FlagErrorf("--journal %s: the file already exists; continue that run with --resume %s, or choose a new file", opts.Journal, opts.Journal)
		}
	}
	return nil
}

// journalRun is what a journal's header records about the command, so that
// --resume runs the rest the same way. The payload itself is not stored
// (it may hold secrets), only its SHA-256.
type journalRun struct {
	Devices []string `json:"devices,omitempty"`
	// DevicesFile is the one --devices-file of journals written before
	// --devices-file could be repeated; DevicesFiles holds them all.
	DevicesFile    string   `json:"devicesFile,omitempty"`
	DevicesFiles   []string `json:"devicesFiles,omitempty"`
	Query          string   `json:"query,omitempty"`
	Module         string   `json:"module,omitempty"`
	PayloadSHA256  string   `json:"payloadSha256,omitempty"`
	Timeout        string   `json:"timeout"`
	ConnectTimeout string   `json:"connectTimeout"`
	OKStatus       string   `json:"okStatus"`
	Idempotent     bool     `json:"idempotent,omitempty"`
	WaitOnline     string   `json:"waitOnline,omitempty"`
	UntilOnline    string   `json:"untilOnline,omitempty"`
	MaxAttempts    int      `json:"maxAttempts"`
	RetryFor       string   `json:"retryFor"`
	// The wait for outcomes (--wait, --wait-until, --fail-if, --wait-timeout).
	Wait        string   `json:"wait,omitempty"`
	WaitUntil   []string `json:"waitUntil,omitempty"`
	FailIf      []string `json:"failIf,omitempty"`
	WaitTimeout string   `json:"waitTimeout,omitempty"`
	// Plan and PlanSHA256 name the plan file of a run of dmctl apply,
	// whose targets it holds (Devices is empty then).
	Plan       string `json:"plan,omitempty"`
	PlanSHA256 string `json:"planSha256,omitempty"`
}

func payloadDigest(p json.RawMessage) string {
	if p == nil {
		return ""
	}
	sum := sha256.Sum256(p)
	return hex.EncodeToString(sum[:])
}

// journalHeader is the header a new journal gets for opts.
func (opts *Options) journalHeader(devices []string) (fleet.JournalHeader, error) {
	var files []string
	for _, file := range opts.DevicesFiles {
		if file != "-" {
			if abs, err := filepath.Abs(file); err == nil {
				file = abs
			}
		}
		files = append(files, file)
	}
	run := journalRun{
		Devices: devices, DevicesFiles: files, Query: opts.QuerySQL, Module: opts.Module,
		PayloadSHA256: payloadDigest(opts.Payload), Timeout: opts.Timeout.String(), ConnectTimeout: opts.ConnectTimeout.String(),
		OKStatus: opts.OKStatus.String(), Idempotent: opts.Idempotent, WaitOnline: opts.WaitOnline.String(), UntilOnline: untilOnline(opts.UntilOnline),
		MaxAttempts: opts.MaxAttempts, RetryFor: opts.RetryFor.String(),
	}
	if p := opts.Plan; p != nil {
		run.Devices, run.Plan, run.PlanSHA256 = nil, p.Path, p.SHA256
	}
	if w := opts.Wait; w != nil {
		run.Wait, run.WaitTimeout = string(w.Preset), w.Timeout.String()
		for _, c := range w.Until {
			run.WaitUntil = append(run.WaitUntil, c.Text)
		}
		for _, c := range w.FailIf {
			run.FailIf = append(run.FailIf, c.Text)
		}
	}
	b, err := json.Marshal(run)
	if err != nil {
		return fleet.JournalHeader{}, err
	}
	return fleet.JournalHeader{Method: opts.Method, StartTime: opts.now(), Run: b}, nil
}

// untilOnline is --until-online in a journal header ("" when not given).
func untilOnline(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

// applyJournal reads --resume's journal and fills in what the command line
// leaves out: the method, the targets and the options the header records.
// Flags given on the command line win, except that the method and the
// payload must match the journal's.
func applyJournal(opts *Options, fl *invokeFlags, flags *pflag.FlagSet) error {
	st, err := fleet.ReadJournal(opts.Resume)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return cmdutil.FlagErrorf("--resume %s: cannot read it: %v", opts.Resume, pe.Err)
		}
		return cmdutil.FlagErrorf("--resume %v", err)
	}
	opts.resume = st
	h := st.Header
	if opts.Method == "" {
		opts.Method = h.Method
	} else if opts.Method != h.Method {
		return cmdutil.FlagErrorf("--resume %s: the journal's run invoked %q, not %q", opts.Resume, h.Method, opts.Method)
	}
	var run journalRun
	if len(h.Run) > 0 {
		if err := json.Unmarshal(h.Run, &run); err != nil {
			return cmdutil.FlagErrorf("--resume %s: line 1: the run's options are unreadable: %v", opts.Resume, err)
		}
	}
	if run.Plan != "" || opts.Plan != nil {
		if err := opts.Plan.CheckResume(opts.Resume, run.Plan, run.PlanSHA256); err != nil {
			return err
		}
	} else if err := opts.resumeTargets(run, fl, flags); err != nil {
		return err
	}
	if run.PayloadSHA256 != "" && !flags.Changed("payload") {
		return cmdutil.FlagErrorf("--resume %s: the run sent a payload, which the journal does not store (it may hold secrets); give the same --payload again", opts.Resume)
	}
	setDuration := func(name string, p *time.Duration, v string) error {
		if flags.Changed(name) || v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return cmdutil.FlagErrorf("--resume %s: line 1: %s %q is not a duration", opts.Resume, name, v)
		}
		*p = d
		return nil
	}
	for _, d := range []struct {
		name string
		p    *time.Duration
		v    string
	}{
		{"timeout", &opts.Timeout, run.Timeout}, {"connect-timeout", &opts.ConnectTimeout, run.ConnectTimeout},
		{"wait-online", &fl.waitOnline, run.WaitOnline}, {"retry-for", &fl.retryFor, run.RetryFor},
		{"until-online", &opts.UntilOnline, run.UntilOnline},
	} {
		if err := setDuration(d.name, d.p, d.v); err != nil {
			return err
		}
	}
	if !flags.Changed("ok-status") && run.OKStatus != "" {
		fl.okStatus = run.OKStatus
	}
	if !flags.Changed("idempotent") {
		opts.Idempotent = run.Idempotent
	}
	if !flags.Changed("max-attempts") && run.MaxAttempts > 0 {
		opts.MaxAttempts = run.MaxAttempts
	}
	if !flags.Changed("wait") && !flags.Changed("wait-until") && !flags.Changed("fail-if") {
		fl.wait.preset, fl.wait.until, fl.wait.failIf = run.Wait, run.WaitUntil, run.FailIf
		if err := setDuration("wait-timeout", &fl.wait.timeout, run.WaitTimeout); err != nil {
			return err
		}
	}
	return nil
}

// resumeTargets takes the run's targets from the journal. Target flags
// cannot add to them (a resumed run that silently dropped the journal's
// pending targets, or mixed two rollouts in one journal, would lose work):
// the only one allowed is --devices-file - when the run read its list from
// stdin, to pipe the same list again.
func (opts *Options) resumeTargets(run journalRun, fl *invokeFlags, flags *pflag.FlagSet) error {
	files := run.DevicesFiles
	if run.DevicesFile != "" {
		files = append([]string{run.DevicesFile}, files...)
	}
	stdin := false
	for _, f := range files {
		stdin = stdin || f == "-"
	}
	for _, name := range []string{"device", "devices-file", "query", "module"} {
		if !flags.Changed(name) {
			continue
		}
		if name == "devices-file" && stdin && len(opts.DevicesFiles) == 1 && opts.DevicesFiles[0] == "-" {
			continue
		}
		return cmdutil.FlagErrorf("--resume %s takes its targets from the journal; --%s cannot add to or replace them. "+
			"Invoke other targets in a run of their own (with its own --journal), after or beside this one", opts.Resume, name)
	}
	if stdin && !flags.Changed("devices-file") {
		return cmdutil.FlagErrorf("--resume %s: the run read its targets from stdin; pipe the same list again with --devices-file -", opts.Resume)
	}
	fl.devices, opts.DevicesFiles, opts.QuerySQL, fl.module = run.Devices, files, run.Query, run.Module
	return nil
}

// checkResumePayload checks --payload against the journal's digest.
func (opts *Options) checkResumePayload() error {
	if opts.resume == nil {
		return nil
	}
	var run journalRun
	_ = json.Unmarshal(opts.resume.Header.Run, &run)
	if got := payloadDigest(opts.Payload); got != run.PayloadSHA256 {
		if run.PayloadSHA256 == "" {
			return cmdutil.FlagErrorf("--resume %s: the run sent no payload, but --payload was given", opts.Resume)
		}
		return cmdutil.FlagErrorf("--resume %s: --payload differs from the payload the run sent", opts.Resume)
	}
	return nil
}

func (opts *Options) now() time.Time {
	if opts.Now != nil {
		return opts.Now()
	}
	return time.Now()
}

// retryPolicy is the retry.Policy the flags ask for.
func (opts *Options) retryPolicy() retry.Policy {
	return retry.Policy{
		MaxAttempts: opts.MaxAttempts,
		MaxElapsed:  opts.RetryFor,
		Idempotent:  opts.Idempotent,
		WaitOnline:  opts.WaitOnline,
		Sleep:       opts.Sleep,
		Now:         opts.Now,
	}
}

// pace is the pacing a run uses and how to describe it.
type pace struct {
	limiter fleet.Limiter
	rate    float64 // calls/s the estimate uses; 0 when unknown
	source  string
}

// sizingPace is the pace the calls in flight are sized for: the limiter's
// rate, else the tier's throttle, else one S1 unit's (the pace --rate auto
// starts from), so that an unpaced run to slow devices still gets the
// slots one unit's throttle needs.
func (pc pace) sizingPace() func() float64 {
	switch {
	case pc.limiter != nil:
		return pc.limiter.Rate
	case pc.rate > 0:
		r := pc.rate
		return func() float64 { return r }
	}
	return func() float64 { return fleet.AdaptiveDefaultStart }
}

// pace builds the limiter from --rate, --tier and --units.
func (opts *Options) pace() (pace, error) {
	payloadBytes := len(opts.Payload)
	if opts.Payload == nil {
		payloadBytes = len("null")
	}
	tierRate := 0.0
	tierText := ""
	if opts.Tier != "" {
		r, err := iothub.TierRate(opts.Tier, opts.Units, payloadBytes)
		if err != nil {
			return pace{}, cmdutil.FlagErrorf("--tier: %v", err)
		}
		tierRate = r
		tierText = fmt.Sprintf("tier %s, %d unit", opts.Tier, opts.Units)
		if opts.Units != 1 {
			tierText += "s"
		}
	}
	switch {
	case opts.RateAuto && tierRate > 0:
		return pace{limiter: fleet.NewAdaptiveRate(fleet.AdaptiveOptions{Start: tierRate}), rate: tierRate,
			source: "--rate auto from the published throttle of " + tierText}, nil
	case opts.RateAuto:
		return pace{limiter: fleet.NewAdaptiveRate(fleet.AdaptiveOptions{Start: fleet.AdaptiveDefaultStart, SlowStart: true}),
			rate: fleet.AdaptiveDefaultStart, source: "--rate auto, starting at one S1 unit's throttle; it rises until the hub throttles"}, nil
	case opts.Rate > 0:
		return pace{limiter: fleet.NewFixedRate(opts.Rate), rate: opts.Rate, source: "--rate"}, nil
	case tierRate > 0:
		return pace{rate: tierRate, source: "the published throttle of " + tierText}, nil
	}
	return pace{}, nil
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
	"github.com/dmctl/dmctl/internal/retry"
)

// Defaults and bounds of invoke's retry flags.
const (
	DefaultMaxAttempts = retry.DefaultMaxAttempts
	MaxMaxAttempts     = 100
	DefaultRetryFor    = retry.DefaultMaxElapsed
	MaxWait            = 24 * time.Hour
	// maxProblemLines is how many failed targets are listed on stderr.
	maxProblemLines = 10
)

// InvokeOptions are everything `dmctl invoke` needs: dependencies first,
// then values from flags, all checked before InvokeRun sends anything.
type InvokeOptions struct {
	IO      *output.IOStreams
	Invoker func() (fleet.Invoker, *auth.Credential, error)
	Now     func() time.Time
	// Sleep waits between attempts; nil means a real, cancellable sleep.
	Sleep func(context.Context, time.Duration) error

	Output output.Format

	Method         string
	Targets        []fleet.Target
	Payload        json.RawMessage // nil sends JSON null
	Timeout        time.Duration
	ConnectTimeout time.Duration
	OKStatus       fleet.StatusSet
	Idempotent     bool
	WaitOnline     time.Duration
	MaxAttempts    int
	RetryFor       time.Duration
}

// invokeFlags are the raw flag values before they are checked.
type invokeFlags struct {
	devices    []string
	module     string
	payload    string
	okStatus   string
	retryFor   time.Duration
	waitOnline time.Duration
}

// NewCmdInvoke returns `dmctl invoke`.
func NewCmdInvoke(f *Factory, runF func(*InvokeOptions) error) *cobra.Command {
	opts := &InvokeOptions{IO: f.IOStreams, Invoker: f.Invoker, Now: f.Now, Sleep: f.Sleep}
	var fl invokeFlags
	cmd := &cobra.Command{
		Use:   "invoke METHOD --device ID [--device ID ...] [flags]",
		Short: "Invoke a direct method on devices or modules",
		Long: heredoc(`
			Invoke a direct method on one or more devices (or on a module of each
			device) and report what each device answered.

			The device's answer is data: the hub's HTTP 200 carries the status the
			device returned, and --ok-status (default: any 2xx) decides what counts
			as success. Devices are invoked one after another.

			Direct methods are not idempotent: a method that timed out (504101) or a
			connection lost after sending may already have run, so dmctl resends
			only what cannot have reached the device (throttling, 503, connection
			refused) unless you say --idempotent. Offline devices (404103) are
			retried only with --wait-online.

			--payload takes JSON text, @FILE, or - for stdin (at most 128 KB); with
			no --payload the device gets null. --timeout is how long the hub waits
			for the device's answer (5s..300s); --connect-timeout how long it waits
			for a disconnected device to connect (0..300s). A bare number means
			seconds.
		`),
		Example: example(`
			$ dmctl invoke reboot --device thermostat-17
			$ dmctl invoke setInterval --device thermostat-17 --payload '{"seconds":30}'
			$ dmctl invoke firmwareUpdate --device gw-1 --device gw-2 --payload @fw.json --timeout 120
			$ dmctl invoke restart --device gw-1 --module telemetry -o json
			$ echo '{"level":"debug"}' | dmctl invoke setLogLevel --device gw-1 --payload -
			$ dmctl invoke getState --device thermostat-17 --idempotent --wait-online 2m
		`),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return FlagErrorf("invoke needs exactly one METHOD argument (got %d), e.g. dmctl invoke reboot --device ID", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Method = args[0]
			opts.Output = output.Format(f.Global.Output)
			if err := checkInvoke(opts, &fl, cmd.Flags().Changed("payload")); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return InvokeRun(cmd.Context(), opts)
		},
	}
	flags := cmd.Flags()
	flags.StringArrayVar(&fl.devices, "device", nil, "Device `ID` to invoke the method on (repeatable)")
	flags.StringVar(&fl.module, "module", "", "Invoke the method on this module `ID` of each device")
	flags.StringVar(&fl.payload, "payload", "", "Method payload: JSON text, @FILE, or - for stdin (default null)")
	durationFlag(flags, &opts.Timeout, "timeout", iothub.DefaultResponseTimeout, true, "How long the hub waits for the device's answer (5s..300s)")
	durationFlag(flags, &opts.ConnectTimeout, "connect-timeout", 0, true, "How long the hub waits for a disconnected device to connect (0..300s)")
	flags.StringVar(&fl.okStatus, "ok-status", "2xx", "Device statuses that count as success, e.g. 200,202 or 2xx")
	flags.BoolVar(&opts.Idempotent, "idempotent", false, "The method is safe to run twice: also resend after timeouts, 500/502 and lost connections")
	durationFlag(flags, &fl.waitOnline, "wait-online", 0, false, "Keep retrying offline devices (404103) for up to this long")
	flags.IntVar(&opts.MaxAttempts, "max-attempts", DefaultMaxAttempts, "Send each call at most this many times (1: never resend)")
	durationFlag(flags, &fl.retryFor, "retry-for", DefaultRetryFor, false, "Stop resending a call after this long")
	_ = cmd.RegisterFlagCompletionFunc("device", cobra.NoFileCompletions)
	_ = cmd.RegisterFlagCompletionFunc("module", cobra.NoFileCompletions)
	return cmd
}

// checkInvoke turns raw flags into options, checking every input; any
// problem is a *FlagError naming the input, and nothing has been sent.
func checkInvoke(opts *InvokeOptions, fl *invokeFlags, payloadGiven bool) error {
	if err := iothub.ValidateMethodName(opts.Method); err != nil {
		return FlagErrorf("METHOD: %v", err)
	}
	if len(fl.devices) == 0 {
		return FlagErrorf("--device is required: name at least one device (--device ID, repeatable)")
	}
	if fl.module != "" {
		if err := iothub.ValidateModuleID(fl.module); err != nil {
			return FlagErrorf("--module: %v", err)
		}
	}
	seen := map[string]bool{}
	opts.Targets = opts.Targets[:0]
	for _, d := range fl.devices {
		if err := iothub.ValidateDeviceID(d); err != nil {
			return FlagErrorf("--device: %v", err)
		}
		if seen[d] {
			return FlagErrorf("--device: %q is given more than once (it would be invoked twice)", d)
		}
		seen[d] = true
		opts.Targets = append(opts.Targets, fleet.Target{DeviceID: d, ModuleID: fl.module})
	}
	payload, err := readPayload(fl.payload, payloadGiven, opts.IO)
	if err != nil {
		return err
	}
	opts.Payload = payload
	if opts.Timeout < iothub.MinResponseTimeout || opts.Timeout > iothub.MaxResponseTimeout {
		return FlagErrorf("--timeout: %s is out of range: IoT Hub accepts %s to %s", seconds(opts.Timeout), seconds(iothub.MinResponseTimeout), seconds(iothub.MaxResponseTimeout))
	}
	if opts.ConnectTimeout > iothub.MaxConnectTimeout {
		return FlagErrorf("--connect-timeout: %s is out of range: IoT Hub accepts 0s to %s", seconds(opts.ConnectTimeout), seconds(iothub.MaxConnectTimeout))
	}
	ok, err := fleet.ParseStatusSet(fl.okStatus)
	if err != nil {
		return FlagErrorf("--ok-status: %v", err)
	}
	opts.OKStatus = ok
	if opts.MaxAttempts < 1 || opts.MaxAttempts > MaxMaxAttempts {
		return FlagErrorf("--max-attempts: %d is out of range: use 1 (never resend) to %d", opts.MaxAttempts, MaxMaxAttempts)
	}
	if fl.waitOnline > MaxWait {
		return FlagErrorf("--wait-online: %s is longer than %s", fl.waitOnline, MaxWait)
	}
	if fl.retryFor > MaxWait {
		return FlagErrorf("--retry-for: %s is longer than %s", fl.retryFor, MaxWait)
	}
	opts.WaitOnline, opts.RetryFor = fl.waitOnline, fl.retryFor
	if _, err := output.ParseFormat(string(opts.Output)); err != nil {
		return FlagErrorf("-o/--output: %v", err)
	}
	return nil
}

// readPayload reads --payload: JSON text, @FILE, or - for stdin, and checks
// that it is one JSON value of at most iothub.MaxPayloadBytes.
func readPayload(arg string, given bool, ios *output.IOStreams) (json.RawMessage, error) {
	if !given {
		return nil, nil
	}
	src := "--payload"
	var data []byte
	switch {
	case arg == "-":
		src = "--payload - (stdin)"
		if ios.IsStdinTTY() {
			return nil, FlagErrorf("%s: stdin is a terminal; pipe the payload in, or use --payload @FILE", src)
		}
		b, err := io.ReadAll(io.LimitReader(ios.In, iothub.MaxPayloadBytes+1))
		if err != nil {
			return nil, FlagErrorf("%s: cannot read it: %v", src, err)
		}
		data = b
	case strings.HasPrefix(arg, "@"):
		path := arg[1:]
		src = "--payload @" + path
		if path == "" {
			return nil, FlagErrorf("--payload @: give a file name after @")
		}
		b, err := readLimited(path, iothub.MaxPayloadBytes+1)
		if err != nil {
			return nil, FlagErrorf("%s: cannot read it: %v", src, err)
		}
		data = b
	default:
		data = []byte(arg)
	}
	if len(data) > iothub.MaxPayloadBytes {
		return nil, FlagErrorf("%s: the payload is larger than %d KB, the most IoT Hub accepts", src, iothub.MaxPayloadBytes/1024)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, FlagErrorf("%s: the payload is empty; give JSON such as {} or \"text\", or leave --payload out to send null", src)
	}
	if err := validJSON(trimmed); err != nil {
		return nil, FlagErrorf("%s: the payload is not valid JSON: %v", src, err)
	}
	return json.RawMessage(trimmed), nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// validJSON checks that b is exactly one JSON value and says where it is not.
func validJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%s (at byte %d)", se.Error(), se.Offset)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("it ends too early")
		}
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value (extra text at byte %d)", dec.InputOffset()+1)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("extra text after the JSON value (at byte %d)", dec.InputOffset())
	}
	return nil
}

// retryPolicy is the retry.Policy the flags ask for.
func (opts *InvokeOptions) retryPolicy() retry.Policy {
	p := retry.Policy{
		MaxAttempts: opts.MaxAttempts,
		MaxElapsed:  opts.RetryFor,
		Idempotent:  opts.Idempotent,
		WaitOnline:  opts.WaitOnline,
		Sleep:       opts.Sleep,
		Now:         opts.Now,
	}
	return p
}

// InvokeRun invokes the method on every target, writes results to stdout in
// the chosen format and the per-target problems, hints and summary to
// stderr. It returns a *TargetsError when a target did not succeed and
// ErrInterrupted when ctx was cancelled.
func InvokeRun(ctx context.Context, opts *InvokeOptions) error {
	inv, cred, err := opts.Invoker()
	if err != nil {
		return err
	}
	printer, err := output.NewResultPrinter(opts.Output, opts.IO)
	if err != nil {
		return FlagErrorf("-o/--output: %v", err)
	}
	var printErr error
	runner := fleet.NewRunner(inv)
	results, runErr := runner.Run(ctx, opts.Targets, fleet.RunOptions{
		Request: iothub.MethodRequest{
			MethodName:      opts.Method,
			Payload:         opts.Payload,
			ResponseTimeout: opts.Timeout,
			ConnectTimeout:  opts.ConnectTimeout,
		},
		OKStatus: opts.OKStatus,
		Retry:    opts.retryPolicy(),
		Now:      opts.Now,
		OnResult: func(r fleet.Result) {
			if err := printer.Add(r); err != nil && printErr == nil {
				printErr = err
			}
		},
	})
	if err := printer.Flush(); err != nil && printErr == nil {
		printErr = err
	}
	if printErr != nil {
		return fmt.Errorf("write results: %w", printErr)
	}
	summary := fleet.Summarize(results)
	errOut := opts.IO.ErrOut
	color := opts.IO.ErrColorEnabled()
	if err := output.WriteProblems(errOut, results, maxProblemLines, color); err != nil {
		return err
	}
	for _, h := range hints(results, cred, opts) {
		fmt.Fprintf(errOut, "hint: %s\n", h)
	}
	if err := output.WriteSummary(errOut, summary, color); err != nil {
		return err
	}
	if runErr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, runErr)
		}
		return runErr
	}
	if !summary.AllSucceeded() {
		return &TargetsError{Summary: summary}
	}
	return nil
}

// hints explains, once each, what to do about the kinds of failure seen.
func hints(results []fleet.Result, cred *auth.Credential, opts *InvokeOptions) []string {
	var refused, tokenFailed, offline, timedOut bool
	for _, r := range results {
		switch r.Outcome {
		case fleet.OutcomeUnauthorized:
			if r.Error != nil && r.Error.HTTPStatus != 0 {
				refused = true
			} else {
				tokenFailed = true
			}
		case fleet.OutcomeOffline:
			offline = true
		case fleet.OutcomeTimeout:
			timedOut = true
		}
	}
	var out []string
	if refused && cred != nil {
		out = append(out, cred.RefusedHint())
	}
	if tokenFailed && cred != nil {
		out = append(out, auth.TokenFailureHint(cred.Method))
	}
	if offline && opts.WaitOnline == 0 {
		out = append(out, "an offline device may connect later: --wait-online 5m keeps retrying, --connect-timeout 60 lets the hub wait for it.")
	}
	if timedOut && !opts.Idempotent {
		out = append(out, "a method that timed out may still have run on the device, so it was not resent; add --idempotent if running it twice is safe, or raise --timeout.")
	}
	return out
}

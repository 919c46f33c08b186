package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/flagguard"
	"github.com/dmctl/dmctl/internal/hubsim"
	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// Exit codes of the hubsim command.
const (
	ExitOK    = 0
	ExitError = 1 // runtime failure (I/O, listener died)
	ExitUsage = 2 // bad flags or input: nothing started
)

// shutdownGrace is how long in-flight requests get on SIGINT/SIGTERM.
const shutdownGrace = 10 * time.Second

// usageError is a command-line mistake (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// Main runs the hubsim command line with args (without the program name)
// and returns the process exit code. SIGINT and SIGTERM stop it cleanly.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdout, os.Stderr)
}

// Run is Main with explicit streams and a context whose end stops the hub.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(stdout, stderr)
	flagguard.Guard(cmd) // empty values and repeated one-value flags are bad input, as in dmctl
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	_, _ = fmt.Fprintln(stderr, "hubsim: "+err.Error())
	var ue *usageError
	var ie *hubsim.InputError
	if errors.As(err, &ue) || errors.As(err, &ie) {
		return ExitUsage
	}
	return ExitError
}

// flagError makes a flag parse error a usage error (exit 2) whose message
// names the flag and never quotes its value.
func flagError(_ *cobra.Command, err error) error {
	if msg, ok := flagguard.Describe(err); ok {
		return &usageError{errors.New(msg)}
	}
	return &usageError{err}
}

// noArgs refuses positional arguments as a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (hubsim takes flags only; see --help)", args[0])
	}
	return nil
}

type serveFlags struct {
	cfg      hubsim.Config
	register []string
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "hubsim",
		Short: "A local Azure IoT Hub with a simulated device fleet",
		Long: `hubsim is a local Azure IoT Hub for tests, demos and CI: the service REST API
(direct methods, device query, twins) over HTTPS with SAS and Entra ID checks,
a local Entra token endpoint, throttling by tier, fault injection and a
simulated fleet. Real devices (device SDKs, 'hubsim device') connect over
MQTT/TLS on --mqtt-addr with the connection strings of --register'ed ids:
with a SAS key, or with an X.509 client certificate (ID:x509=THUMBPRINT,
ID:x509ca and --ca-cert).

When it is listening it prints one JSON line on stdout (addresses, CA file,
connection strings, Entra principals) and writes DIR/hubsim.env (mode 0600)
for 'source'; 'hubsim wait --dir DIR' returns once that has happened. The
ready line holds every key: when stdout is a regular file, hubsim makes it
private (mode 0600) before writing the line. Logs go to stderr. SIGINT or
SIGTERM stop it.`,
		Example: `  $ hubsim --devices 1000
  $ hubsim --dir ./hub --https-addr 127.0.0.1:8443 --register thermostat-1,thermostat-2
  $ hubsim --dir ./hub --devices 100 > ready.json & hubsim wait --dir ./hub
  $ hubsim --fleet fleet.yaml --tier S2 --units 2 --method-log methods.jsonl
  $ hubsim --devices 100 --no-throttle --fault-throttle 0.05 --seed 7
  $ hubsim --register cam-1:x509=$(openssl x509 -in cam-1.pem -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
  $ hubsim --register cam-2:x509ca --ca-cert test-ca.pem`,
		Args:          noArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			f.cfg.Log = stderr
			return serve(cmd.Context(), f.cfg, stdout, stderr)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.SetFlagErrorFunc(flagError)

	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.cfg.Dir, "dir", "", "directory for the CA, certificates and state.json (keys, tenant); default: a temporary directory removed on exit")
	fl.StringVar(&f.cfg.HTTPSAddr, "https-addr", hubsim.DefaultAddr, "HTTPS listen address (service API and Entra token endpoint)")
	fl.StringVar(&f.cfg.MQTTAddr, "mqtt-addr", hubsim.DefaultAddr, "MQTT/TLS listen address for devices")
	fl.IntVar(&f.cfg.Devices, "devices", 0, "simulate `N` devices sim-000001... (online, 0 ms latency, status 200, device-management life cycles)")
	fl.StringVar(&f.cfg.FleetFile, "fleet", "", "fleet `FILE` (JSON or YAML) describing simulated device groups")
	fl.StringSliceVar(&f.register, "register", nil, "register device `ID`s without simulation (offline until a real device connects); comma-separated or repeated. "+
		"ID authenticates with SAS keys; ID:x509=THUMBPRINT[+THUMBPRINT] is a self-signed X.509 device (SHA-1 or SHA-256 of its certificate), "+
		"ID:x509ca a CA-signed one (certificate CN = ID, issued by a --ca-cert CA)")
	fl.StringArrayVar(&f.cfg.CACerts, "ca-cert", nil, "PEM `FILE` of CA certificates trusted for CA-signed X.509 devices (--register ID:x509ca, fleet authentication certificateAuthority); repeatable")
	fl.StringVar(&f.cfg.Tier, "tier", "S1", "IoT Hub tier whose throttles apply: F1, S1, S2 or S3")
	fl.IntVar(&f.cfg.Units, "units", 1, "number of purchased units of the tier")
	fl.BoolVar(&f.cfg.NoThrottle, "no-throttle", false, "turn throttling off (capacity tests)")
	fl.StringVar(&f.cfg.MethodLog, "method-log", "", "append one JSON line per delivered method to `FILE`")
	fl.Int64Var(&f.cfg.Seed, "seed", 0, "seed for simulation and faults (0: the seed kept in DIR/state.json)")
	fl.Float64Var(&f.cfg.Faults.Throttle, "fault-throttle", 0, "share (0..1) of method calls answered 429 / 429001")
	fl.Float64Var(&f.cfg.Faults.ServerError, "fault-server-error", 0, "share (0..1) of method calls answered 500 / 500001")
	fl.Float64Var(&f.cfg.Faults.Unavailable, "fault-unavailable", 0, "share (0..1) of method calls answered 503 / 503001")
	fl.Float64Var(&f.cfg.Faults.GatewayTimeout, "fault-gateway-timeout", 0, "share (0..1) of method calls answered 504 / 504101 without delivery")
	fl.Float64Var(&f.cfg.Faults.Drop, "fault-drop", 0, "share (0..1) of method calls delivered, then dropped without an answer")
	fl.BoolVarP(&f.cfg.Verbose, "verbose", "v", false, "log one line per request to stderr")

	cmd.AddCommand(newBenchCmd(stdout, stderr))
	cmd.AddCommand(newDeviceCmd(stdout, stderr))
	cmd.AddCommand(newWaitCmd(stdout, stderr))
	cmd.AddCommand(newTokenCmd(stdout, stderr))
	return cmd
}

// check validates flag values and combinations.
func (f *serveFlags) check(cmd *cobra.Command) error {
	fl := cmd.Flags()
	if f.cfg.NoThrottle && (fl.Changed("tier") || fl.Changed("units")) {
		return usagef("--no-throttle cannot be combined with --tier or --units")
	}
	if !hubsim.ValidTier(f.cfg.Tier) {
		return usagef("--tier %q: must be F1, S1, S2 or S3", f.cfg.Tier)
	}
	f.cfg.Tier = strings.ToUpper(f.cfg.Tier)
	if f.cfg.Units < 1 {
		return usagef("--units %d: must be at least 1", f.cfg.Units)
	}
	if f.cfg.Devices < 0 {
		return usagef("--devices %d: must be 0 or more", f.cfg.Devices)
	}
	const maxDevices = 1_000_000
	if f.cfg.Devices > maxDevices {
		return usagef("--devices %d: a hub holds at most %d devices and modules", f.cfg.Devices, maxDevices)
	}
	if err := checkFaults(f.cfg.Faults); err != nil {
		return err
	}
	for _, id := range f.register {
		id = strings.TrimSpace(id)
		if id == "" {
			return usagef("--register: an id is empty")
		}
		f.cfg.Register = append(f.cfg.Register, id)
	}
	for _, c := range f.cfg.CACerts {
		if strings.TrimSpace(c) == "" {
			return usagef("--ca-cert: the file name is empty")
		}
	}
	for _, a := range []struct{ flag, v string }{{"--https-addr", f.cfg.HTTPSAddr}, {"--mqtt-addr", f.cfg.MQTTAddr}} {
		if !strings.Contains(a.v, ":") {
			return usagef("%s %q: expected HOST:PORT (port 0 picks a free port)", a.flag, a.v)
		}
	}
	return nil
}

func checkFaults(fr sim.FaultRates) error {
	sum := 0.0
	for _, s := range []struct {
		flag string
		v    float64
	}{
		{"--fault-throttle", fr.Throttle}, {"--fault-server-error", fr.ServerError}, {"--fault-unavailable", fr.Unavailable},
		{"--fault-gateway-timeout", fr.GatewayTimeout}, {"--fault-drop", fr.Drop},
	} {
		if s.v < 0 || s.v > 1 || s.v != s.v {
			return usagef("%s %v: must be a share between 0 and 1", s.flag, s.v)
		}
		sum += s.v
	}
	if sum > 1+1e-9 {
		return usagef("--fault-* shares add up to %.3g: their sum must not exceed 1", sum)
	}
	return nil
}

// serve runs a hub until ctx ends.
func serve(ctx context.Context, cfg hubsim.Config, stdout, stderr io.Writer) error {
	if err := privateStdout(stdout); err != nil {
		return err
	}
	srv, err := hubsim.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	ready := srv.Ready()
	line, err := hubsim.MarshalReady(ready)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	if _, err := stdout.Write(append(line, '\n')); err != nil {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("write the ready line: %w", err)
	}
	// hubsim.env comes last: once it exists (`hubsim wait`), the hub serves
	// and the ready line is written.
	envPath, err := srv.WriteEnv()
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	_, _ = fmt.Fprintf(stderr, "hubsim: listening on https://%s (mqtt %s), %d devices, %d modules, throttle %s, seed %d; environment in %s\n",
		ready.HostName, ready.MQTTAddr, ready.Devices, ready.Modules, ready.Throttle, ready.Seed, envPath)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-srv.Errors():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serveErr != nil {
		return serveErr
	}
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintln(stderr, "hubsim: stopped")
	return nil
}

// privateStdout makes stdout mode 0600 when it is a regular file (`hubsim >
// ready.json`): the ready line holds every key, and a file the shell created
// with the umask (usually 0644) would leave them readable by everyone. Pipes
// and terminals are left alone. It runs before anything is written.
func privateStdout(stdout io.Writer) error {
	f, ok := stdout.(*os.File)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("stdout is the file %s, which the ready line (it holds every key) must not leave readable by others, and making it mode 0600 failed: %w", f.Name(), err)
	}
	return nil
}

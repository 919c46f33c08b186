// Package planfile is the file `dmctl invoke --plan FILE` writes and `dmctl
// apply FILE` runs: a versioned JSON document holding the hub, the method,
// the payload, the run options (invoke's flags by name, checked again by
// invoke's own rules when the plan is applied) and every target with its
// twin's version and etag as read when the plan was made.
package planfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dmctl/dmctl/internal/atomicfile"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
)

// FormatVersion is the plan format this dmctl writes and reads (the
// "dmctlPlan" field). A change a reader of version 1 would misread gets a
// new number.
const FormatVersion = 1

// maxPlanBytes bounds the file apply reads (about two million targets).
const maxPlanBytes = 256 << 20

// Run are the run options a plan records, each the value of the invoke
// flag its `flag` tag names, as text (defaults included, so the file says
// everything the run will use). Apply gives them back to invoke's own flags
// and checks, so an option added to invoke is one field here.
type Run struct {
	Timeout        string   `json:"timeout,omitempty" flag:"timeout"`
	ConnectTimeout string   `json:"connectTimeout,omitempty" flag:"connect-timeout"`
	OKStatus       string   `json:"okStatus,omitempty" flag:"ok-status"`
	Idempotent     bool     `json:"idempotent,omitempty" flag:"idempotent"`
	WaitOnline     string   `json:"waitOnline,omitempty" flag:"wait-online"`
	MaxAttempts    int      `json:"maxAttempts,omitempty" flag:"max-attempts"`
	RetryFor       string   `json:"retryFor,omitempty" flag:"retry-for"`
	Concurrency    string   `json:"concurrency,omitempty" flag:"concurrency"`
	MaxConcurrency int      `json:"maxConcurrency,omitempty" flag:"max-concurrency"`
	Rate           string   `json:"rate,omitempty" flag:"rate"`
	Tier           string   `json:"tier,omitempty" flag:"tier"`
	Units          int      `json:"units,omitempty" flag:"units"`
	Waves          string   `json:"waves,omitempty" flag:"waves"`
	BatchSize      int      `json:"batchSize,omitempty" flag:"batch-size"`
	WavePause      string   `json:"wavePause,omitempty" flag:"wave-pause"`
	MaxFailures    string   `json:"maxFailures,omitempty" flag:"max-failures"`
	AbortIf        []string `json:"abortIf,omitempty" flag:"abort-if"`
	MinSample      int      `json:"minSample,omitempty" flag:"min-sample"`
	Gate           string   `json:"gate,omitempty" flag:"gate"`
	GateTimeout    string   `json:"gateTimeout,omitempty" flag:"gate-timeout"`
	GateAfterLast  bool     `json:"gateAfterLast,omitempty" flag:"gate-after-last"`
	UntilOnline    string   `json:"untilOnline,omitempty" flag:"until-online"`
	Grace          string   `json:"grace,omitempty" flag:"grace"`
	Wait           string   `json:"wait,omitempty" flag:"wait"`
	WaitUntil      []string `json:"waitUntil,omitempty" flag:"wait-until"`
	FailIf         []string `json:"failIf,omitempty" flag:"fail-if"`
	WaitTimeout    string   `json:"waitTimeout,omitempty" flag:"wait-timeout"`
}

// Sources say what the targets were resolved from (for the reviewer; apply
// runs the targets, never the sources again).
type Sources struct {
	Devices      []string `json:"devices,omitempty"`
	DevicesFiles []string `json:"devicesFiles,omitempty"`
	Query        string   `json:"query,omitempty"`
	Module       string   `json:"module,omitempty"`
}

// Target is one planned target and its twin's version and etag.
type Target struct {
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId,omitempty"`
	Version  *int64 `json:"version"`
	ETag     string `json:"etag"`
}

// Plan is the file's content.
type Plan struct {
	Format  int       `json:"dmctlPlan"`
	Created time.Time `json:"created"`
	// Hub is the hub's host name (never a key).
	Hub    string `json:"hub"`
	Method string `json:"method"`
	// Payload is the JSON sent to every target; absent sends null.
	Payload json.RawMessage `json:"payload,omitempty"`
	Run     Run             `json:"run"`
	Sources Sources         `json:"sources"`
	Targets []Target        `json:"targets"`
}

// Planned are the plan's targets for the runner, in order.
func (p *Plan) Planned() []fleet.PlannedTarget {
	out := make([]fleet.PlannedTarget, len(p.Targets))
	for i, t := range p.Targets {
		out[i] = fleet.PlannedTarget{Target: fleet.Target{DeviceID: t.DeviceID, ModuleID: t.ModuleID}, Twin: fleet.TwinVersion{Version: *t.Version, ETag: t.ETag}}
	}
	return out
}

// runFields calls fn with each field of r that names a flag.
func (r *Run) runFields(fn func(name string, v reflect.Value) error) error {
	rv := reflect.ValueOf(r).Elem()
	for i := range rv.NumField() {
		if name := rv.Type().Field(i).Tag.Get("flag"); name != "" {
			if err := fn(name, rv.Field(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// RunFromFlags records the value of every Run flag in flags (invoke's,
// after parsing).
func RunFromFlags(flags *pflag.FlagSet) (Run, error) {
	var r Run
	err := r.runFields(func(name string, v reflect.Value) error {
		f := flags.Lookup(name)
		if f == nil {
			return fmt.Errorf("planfile: invoke has no flag --%s", name)
		}
		text := f.Value.String()
		switch v.Kind() {
		case reflect.String:
			v.SetString(text)
		case reflect.Bool:
			v.SetBool(text == "true")
		case reflect.Int:
			n, err := strconv.Atoi(text)
			if err != nil {
				return fmt.Errorf("planfile: --%s: %w", name, err)
			}
			v.SetInt(int64(n))
		case reflect.Slice:
			values, err := flags.GetStringArray(name)
			if err != nil {
				return fmt.Errorf("planfile: --%s: %w", name, err)
			}
			v.Set(reflect.ValueOf(values))
		}
		return nil
	})
	return r, err
}

// SetFlags gives r's values to invoke's flags, as if typed on its command
// line; a value equal to the flag's default is left as not given (so that a
// plan recording every default is checked like the command that made it).
func (r *Run) SetFlags(flags *pflag.FlagSet) error {
	return r.runFields(func(name string, v reflect.Value) error {
		f := flags.Lookup(name)
		if f == nil {
			return fmt.Errorf("planfile: invoke has no flag --%s", name)
		}
		var texts []string
		switch v.Kind() {
		case reflect.String:
			texts = []string{v.String()}
		case reflect.Bool:
			texts = []string{strconv.FormatBool(v.Bool())}
		case reflect.Int:
			texts = []string{strconv.FormatInt(v.Int(), 10)}
			if v.Int() == 0 { // absent from the file
				texts = nil
			}
		case reflect.Slice:
			texts = v.Interface().([]string)
		}
		for _, text := range texts {
			if v.Kind() != reflect.Slice && (text == "" || text == f.DefValue) {
				continue
			}
			if err := flags.Set(name, text); err != nil {
				return fmt.Errorf("run.%s (--%s) %q: %v", jsonName(name, r), name, text, err)
			}
		}
		return nil
	})
}

// jsonName is the JSON key of the Run field for flag name.
func jsonName(flag string, r *Run) string {
	t := reflect.TypeOf(r).Elem()
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("flag") == flag {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			return name
		}
	}
	return flag
}

// CheckPayload refuses a payload that looks like it holds a secret (a key,
// a SAS token, a password: what connstr redacts): a plan is meant to be
// reviewed and shared, and secrets never reach files dmctl writes.
func CheckPayload(p json.RawMessage) error {
	if p != nil && connstr.Redact(string(p)) != string(p) {
		return cmdutil.FlagErrorf("--plan: the payload holds what looks like a secret (a key, a SAS token or a password); a plan file is meant to be reviewed and shared: keep secrets out of the payload, or invoke without --plan")
	}
	return nil
}

// Create reads the version and etag of every target's twin, writes the
// plan to path (atomically, mode 0600) and returns it. A target with no
// twin is a *cmdutil.NotFoundError: nothing is written.
func Create(ctx context.Context, path string, p *Plan, targets []fleet.Target, versions *fleet.VersionReader) error {
	got := make(map[fleet.Target]fleet.TwinVersion, len(targets))
	if err := versions.Read(ctx, targets, func(t fleet.Target, v fleet.TwinVersion) { got[t] = v }); err != nil {
		return fmt.Errorf("--plan: read the targets' twins: %w", err)
	}
	var missing []string
	p.Targets = make([]Target, 0, len(targets))
	for _, t := range targets {
		v, ok := got[t]
		if !ok {
			missing = append(missing, t.String())
			continue
		}
		version := v.Version
		p.Targets = append(p.Targets, Target{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Version: &version, ETag: v.ETag})
	}
	if len(missing) > 0 {
		shown := missing[:min(len(missing), 5)]
		return &cmdutil.NotFoundError{Msg: fmt.Sprintf("--plan: %d %s no twin on hub %s (%s): no plan written",
			len(missing), cmdutil.Plural(len(missing), "target has", "targets have"), p.Hub, strings.Join(shown, ", "))}
	}
	b, err := Encode(p)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}

// Encode writes the plan as indented JSON with one target per line, so a
// plan of thousands of targets stays readable and diffs line by line.
func Encode(p *Plan) ([]byte, error) {
	targets := p.Targets
	head := *p
	head.Targets = nil
	var enc bytes.Buffer
	e := json.NewEncoder(&enc)
	e.SetEscapeHTML(false) // criteria such as offline>10% stay readable
	e.SetIndent("", "  ")
	if err := e.Encode(head); err != nil {
		return nil, err
	}
	b := enc.Bytes()
	// Replace `"targets": null` with one line per target.
	b = bytes.TrimSuffix(bytes.TrimRight(b, "\n}"), []byte(`"targets": null`))
	var out bytes.Buffer
	out.Write(b)
	out.WriteString(`"targets": [`)
	for i, t := range targets {
		line, err := marshalLine(t)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out.WriteByte(',')
		}
		out.WriteString("\n    ")
		out.Write(line)
	}
	if len(targets) > 0 {
		out.WriteString("\n  ")
	}
	out.WriteString("]\n}\n")
	return out.Bytes(), nil
}

// Read reads and checks the plan at path, and returns it with the SHA-256
// of the file (a journal records it: --resume continues only the same
// plan). Every problem is a *cmdutil.FlagError naming the file: a plan that
// cannot be read, of another format version, or edited inconsistently
// (a target twice, a target without version or etag, an invalid id or
// method) is bad input.
func Read(path string) (*Plan, string, error) {
	bad := func(format string, args ...any) error {
		return cmdutil.FlagErrorf("plan %s: %s", path, fmt.Sprintf(format, args...))
	}
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, "", bad("cannot read it: %v", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxPlanBytes+1))
	if err != nil {
		return nil, "", bad("cannot read it: %v", err)
	}
	if len(b) > maxPlanBytes {
		return nil, "", bad("the file is larger than %d MB", maxPlanBytes>>20)
	}
	var probe struct {
		Format *int `json:"dmctlPlan"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, "", bad("not a JSON plan: %v", err)
	}
	switch {
	case probe.Format == nil:
		return nil, "", bad(`not a dmctl plan: no "dmctlPlan" format field (write one with dmctl invoke ... --plan FILE)`)
	case *probe.Format != FormatVersion:
		return nil, "", bad("plan format %d is not one this dmctl reads (it reads format %d)", *probe.Format, FormatVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, "", bad("%v", err)
	}
	if err := p.check(); err != nil {
		return nil, "", bad("%v", err)
	}
	sum := sha256.Sum256(b)
	return &p, hex.EncodeToString(sum[:]), nil
}

// check checks what invoke's flags do not: the hub, the method, the targets.
func (p *Plan) check() error {
	if strings.TrimSpace(p.Hub) == "" {
		return errors.New(`"hub" is empty: a plan names the hub it is for`)
	}
	if err := iothub.ValidateMethodName(p.Method); err != nil {
		return fmt.Errorf(`"method": %v`, err)
	}
	seen := make(map[fleet.Target]int, len(p.Targets))
	for i, t := range p.Targets {
		at := fmt.Sprintf("targets[%d]", i)
		if err := iothub.ValidateDeviceID(t.DeviceID); err != nil {
			return fmt.Errorf("%s: deviceId: %v", at, err)
		}
		ft := fleet.Target{DeviceID: t.DeviceID, ModuleID: t.ModuleID}
		if t.ModuleID != "" {
			if err := iothub.ValidateModuleID(t.ModuleID); err != nil {
				return fmt.Errorf("%s (%s): moduleId: %v", at, t.DeviceID, err)
			}
		}
		if j, dup := seen[ft]; dup {
			return fmt.Errorf("%s: %s is listed twice (also targets[%d])", at, ft, j)
		}
		seen[ft] = i
		if t.Version == nil || t.ETag == "" {
			return fmt.Errorf("%s (%s): no twin version and etag: every target needs both (make a new plan rather than editing one)", at, ft)
		}
	}
	return nil
}

// marshalLine is v's JSON on one line, without HTML escaping.
func marshalLine(v any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

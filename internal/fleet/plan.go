package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// Plan is a run's targets as the user named them: device ids, devices
// files (or stdin), one query, and a module for every device. It is the one
// target pipeline, for direct runs, --via job and jobs create alike, with
// one duplicate rule (a target named twice is run once, and counted) and
// one set of limits (IoT Hub's id rules, the 8 KB query). The zero value is
// an empty plan.
type Plan struct {
	// Devices are the --device ids, in order.
	Devices []string
	// Targets are targets already named (ids with their module), listed
	// before Devices.
	Targets []Target
	// Files are the --devices-file paths, "-" for Stdin, read in order.
	Files []string
	// Stdin is read for the file "-".
	Stdin io.Reader
	// Query is --query ("" for none): SELECT ... FROM devices[.modules].
	Query string
	// Module is --module: the module of every device ("" for none).
	Module string

	// Pager opens the query; nil when there is no hub.
	Pager func(sql string, opts iothub.QueryOptions) (Pager, error)
	// PageSize is the page size asked of the hub.
	PageSize int
	// Retry resends query pages (as idempotent reads).
	Retry retry.Policy
	// TempDir holds the spool file; "" means the system's.
	TempDir string
	// Keep, when set, is asked once about every distinct target; false
	// leaves it out of the run (--resume: it has a final result).
	Keep func(Target) bool
}

// Queries dmctl takes targets from.
var (
	queryShape      = regexp.MustCompile(`(?is)^\s*select\s.*\sfrom\s+devices(\.modules)?(\s|$)`)
	queryModules    = regexp.MustCompile(`(?is)\sfrom\s+devices\.modules(\s|$)`)
	queryOtherTable = regexp.MustCompile(`(?is)\sfrom\s+devices\.(jobs|[a-z]+)`)
)

// Check validates what can be checked without reading a file or the hub:
// every id, the module, the query's shape and length. Problems are
// *InputError naming the flag.
func (p *Plan) Check() error {
	if len(p.Devices) == 0 && len(p.Targets) == 0 && len(p.Files) == 0 && p.Query == "" {
		return &InputError{Reason: "name the targets: --device ID (repeatable), --devices-file FILE (- for stdin) or --query SQL"}
	}
	if p.Module != "" {
		if err := iothub.ValidateModuleID(p.Module); err != nil {
			return &InputError{Input: "--module", Reason: err.Error()}
		}
	}
	for _, d := range p.Devices {
		if err := iothub.ValidateDeviceID(d); err != nil {
			return &InputError{Input: "--device", Reason: err.Error()}
		}
	}
	stdin := 0
	for _, f := range p.Files {
		if f == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		return &InputError{Reason: "--devices-file - is given more than once: stdin can be read once"}
	}
	return p.checkQuery()
}

func (p *Plan) checkQuery() error {
	q := p.Query
	if q == "" {
		return nil
	}
	bad := func(format string, args ...any) error {
		return &InputError{Input: "--query", Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case strings.TrimSpace(q) == "":
		return bad("the query is empty")
	case len(q) > iothub.MaxQueryLength:
		return bad("the query has %d characters; IoT Hub accepts queries of at most %d", len(q), iothub.MaxQueryLength)
	case !queryShape.MatchString(q):
		if m := queryOtherTable.FindStringSubmatch(q); m != nil && !strings.EqualFold(m[1], "modules") {
			return bad("targets come from FROM devices or FROM devices.modules, not devices.%s", m[1])
		}
		return bad("%q is not a device query: write SELECT deviceId FROM devices [WHERE ...] (or FROM devices.modules)", q)
	case p.Module != "" && queryModules.MatchString(q):
		return &InputError{Reason: "--module cannot be combined with a FROM devices.modules query: the query already names the modules"}
	}
	return nil
}

// QueryNamesModules reports whether the query selects modules.
func (p *Plan) QueryNamesModules() bool { return queryModules.MatchString(p.Query) }

// Listed calls fn with every distinct target of Devices and Files (not the
// query), in order, and returns how many duplicates it left out. A bad file
// line is an *InputError naming the file and the line.
func (p *Plan) Listed(fn func(Target) error) (dupes int, err error) {
	seen := NewTargetSet()
	add := func(t Target) error {
		if !seen.Add(t) {
			dupes++
			return nil
		}
		return fn(t)
	}
	for _, t := range p.Targets {
		if err := add(t); err != nil {
			return dupes, err
		}
	}
	for _, d := range p.Devices {
		if err := add(Target{DeviceID: d, ModuleID: p.Module}); err != nil {
			return dupes, err
		}
	}
	for _, path := range p.Files {
		if err := p.readFile(path, add); err != nil {
			return dupes, err
		}
	}
	return dupes, nil
}

// readFile reads one devices file (or stdin) and calls add with each target.
func (p *Plan) readFile(path string, add func(Target) error) error {
	name := "--devices-file " + path
	r := p.Stdin
	if path == "-" {
		name = "--devices-file - (stdin)"
		if r == nil {
			return &InputError{Input: name, Reason: "there is no stdin to read"}
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return &InputError{Input: name, Reason: "cannot read it: " + err.Error()}
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	return ReadTargets(r, name, p.Module, add)
}

// Resolved are a plan's targets, ready to run.
type Resolved struct {
	// Source yields the targets: the listed ones from the spool, then the
	// rest of a streaming query.
	Source Source
	// Total is the number of targets when Known; a streaming query is not.
	Total int
	Known bool
	spool *Spool
	dupes *int
}

// Duplicates is how many duplicates were left out so far (it grows while a
// query streams).
func (r *Resolved) Duplicates() int {
	if r == nil || r.dupes == nil {
		return 0
	}
	return *r.dupes
}

// Close removes the spool file.
func (r *Resolved) Close() {
	if r != nil && r.spool != nil {
		_ = r.spool.Close()
	}
}

// Resolve reads the plan's targets. Files are read to their end and spooled
// to a temporary file, so a bad line stops the run before anything is sent.
// A query is spooled too when the total must be known first (needTotal);
// otherwise its first page is read now (so a refused query stops the run
// before anything is sent: its error is a *QueryError) and the rest streams
// as the run goes. The result must be closed, also on error.
func (p *Plan) Resolve(ctx context.Context, needTotal bool) (*Resolved, error) {
	dupes := 0
	res := &Resolved{dupes: &dupes}
	spool, err := NewSpool(p.TempDir)
	if err != nil {
		return nil, err
	}
	res.spool = spool
	seen := NewTargetSet()
	keep := func(t Target) bool {
		if !seen.Add(t) {
			dupes++
			return false
		}
		return p.Keep == nil || p.Keep(t)
	}
	add := func(t Target) error {
		if !keep(t) {
			return nil
		}
		if err := spool.Add(t); err != nil {
			return fmt.Errorf("write the targets' temporary file: %w", err)
		}
		return nil
	}
	listed := *p
	listed.Keep = nil
	listedDupes, err := listed.Listed(add)
	dupes += listedDupes
	if err != nil {
		return res, err
	}
	stream, err := p.openQuery(ctx, needTotal, add, keep)
	if err != nil {
		return res, err
	}
	src, err := spool.Source()
	if err != nil {
		return res, err
	}
	res.Source, res.Total, res.Known = src, spool.Len(), true
	if stream != nil {
		res.Source, res.Known = Chain(src, stream), false
	}
	return res, nil
}

// openQuery reads the query's first page; with needTotal it reads every
// page into add, else it returns the query as a filtered stream.
func (p *Plan) openQuery(ctx context.Context, needTotal bool, add func(Target) error, keep func(Target) bool) (Source, error) {
	if p.Query == "" {
		return nil, nil
	}
	if p.Pager == nil {
		return nil, errors.New("--query: no hub client to run the query with")
	}
	pager, err := p.Pager(p.Query, iothub.QueryOptions{PageSize: p.PageSize, Retry: retry.Pages(p.Retry)})
	if err != nil {
		return nil, err
	}
	qs := NewQuerySource(pager, p.Module)
	first, err := qs.Next(ctx)
	switch {
	case err == io.EOF:
		return nil, nil
	case err != nil:
		return nil, err
	case !needTotal:
		return NewFilter(Chain(NewSliceSource([]Target{first}), qs), keep), nil
	}
	for t, err := first, error(nil); ; t, err = qs.Next(ctx) {
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if err := add(t); err != nil {
			return nil, err
		}
	}
}

package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"

	"github.com/dmctl/dmctl/internal/iothub"
)

// Source yields targets one at a time, so a fleet of any size streams from
// files or hub query pages to the workers without being held in memory.
// Next returns io.EOF after the last target. Sources are not safe for
// concurrent use; the runner calls Next from one goroutine.
type Source interface {
	Next(ctx context.Context) (Target, error)
}

// RemoteSource is implemented by sources whose Next may call the hub (a
// query). After an interruption the runner does not read such a source to
// its end to report the rest as skipped; local sources it does.
type RemoteSource interface {
	Source
	Remote() bool
}

// IsRemote reports whether s (or any source it chains) reads from the hub.
func IsRemote(s Source) bool {
	r, ok := s.(RemoteSource)
	return ok && r.Remote()
}

// SliceSource yields the targets of a slice in order.
type SliceSource struct {
	targets []Target
	i       int
}

// NewSliceSource returns a Source over targets.
func NewSliceSource(targets []Target) *SliceSource { return &SliceSource{targets: targets} }

// Next implements Source.
func (s *SliceSource) Next(context.Context) (Target, error) {
	if s.i >= len(s.targets) {
		return Target{}, io.EOF
	}
	t := s.targets[s.i]
	s.i++
	return t, nil
}

type chain struct {
	srcs []Source
}

// Chain returns a Source that yields every target of srcs, one source after
// the other.
func Chain(srcs ...Source) Source { return &chain{srcs: srcs} }

func (c *chain) Next(ctx context.Context) (Target, error) {
	for len(c.srcs) > 0 {
		t, err := c.srcs[0].Next(ctx)
		if err == io.EOF {
			c.srcs = c.srcs[1:]
			continue
		}
		return t, err
	}
	return Target{}, io.EOF
}

func (c *chain) Remote() bool {
	for _, s := range c.srcs {
		if IsRemote(s) {
			return true
		}
	}
	return false
}

// TargetSet remembers targets in 16 bytes each (a 128-bit FNV-1a hash of
// "device/module"), so deduplicating or skipping 100,000 targets costs a
// few megabytes whatever the length of the ids. Two different targets
// share a hash with a probability around n²/2¹²⁹, which is nil for any
// fleet a hub can hold. The zero value is not usable; use NewTargetSet.
type TargetSet struct {
	m map[[16]byte]struct{}
}

// NewTargetSet returns an empty set.
func NewTargetSet() *TargetSet { return &TargetSet{m: map[[16]byte]struct{}{}} }

func targetKey(t Target) [16]byte {
	h := fnv.New128a()
	_, _ = io.WriteString(h, t.DeviceID)
	_, _ = h.Write([]byte{'/'})
	_, _ = io.WriteString(h, t.ModuleID)
	var k [16]byte
	h.Sum(k[:0])
	return k
}

// Add adds t and reports whether it was new.
func (s *TargetSet) Add(t Target) bool {
	k := targetKey(t)
	if _, ok := s.m[k]; ok {
		return false
	}
	s.m[k] = struct{}{}
	return true
}

// Remove removes t.
func (s *TargetSet) Remove(t Target) { delete(s.m, targetKey(t)) }

// Has reports whether t is in the set.
func (s *TargetSet) Has(t Target) bool {
	_, ok := s.m[targetKey(t)]
	return ok
}

// Len is the number of targets in the set.
func (s *TargetSet) Len() int { return len(s.m) }

// Filter yields the targets of a source that pass a test, counting the
// others. It passes Remote through.
type Filter struct {
	src  Source
	keep func(Target) bool
	// Dropped counts the targets that did not pass.
	Dropped int
}

// NewFilter returns a Filter over src that keeps the targets keep accepts.
func NewFilter(src Source, keep func(Target) bool) *Filter { return &Filter{src: src, keep: keep} }

// Dedupe returns a Filter that drops every target seen before; Dropped
// counts the duplicates.
func Dedupe(src Source) *Filter {
	seen := NewTargetSet()
	return NewFilter(src, seen.Add)
}

// Next implements Source.
func (f *Filter) Next(ctx context.Context) (Target, error) {
	for {
		t, err := f.src.Next(ctx)
		if err != nil {
			return t, err
		}
		if f.keep(t) {
			return t, nil
		}
		f.Dropped++
	}
}

// Remote implements RemoteSource.
func (f *Filter) Remote() bool { return IsRemote(f.src) }

// InputError is a problem with a list of targets found before anything was
// sent: it names the input (e.g. "--devices-file ids.txt"), the line when
// there is one, and what is wrong.
type InputError struct {
	Input  string
	Line   int // 1-based; 0 when the problem is not on one line
	Reason string
}

// Error is "INPUT: line N: REASON" ("REASON" alone without an input).
func (e *InputError) Error() string {
	if e.Input == "" {
		return e.Reason
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.Input, e.Line, e.Reason)
	}
	return e.Input + ": " + e.Reason
}

// MaxLineBytes bounds one line of a targets file (a JSONL result line
// carries the device's payload, at most a few hundred KB).
const MaxLineBytes = 4 << 20

// ReadTargets reads a list of targets, one per line, and calls fn with each
// in order. A line is a device id, "device/module", or a JSON object with
// "deviceId" (and optionally "moduleId"), such as a line of `-o jsonl` or
// of a journal; journal bookkeeping lines (with "dmctlJournal" or "event")
// are ignored, as are blank lines and lines starting with #. module, when
// not empty, is the module for lines that name none; a line naming another
// module is an error. Every id is checked against IoT Hub's rules; the first
// bad line stops the read with an *InputError naming input and the line.
// An error from fn stops the read and is returned as it is.
func ReadTargets(r io.Reader, input, module string, fn func(Target) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	line := 0
	bad := func(format string, args ...any) error {
		return &InputError{Input: input, Line: line, Reason: fmt.Sprintf(format, args...)}
	}
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf")) // a UTF-8 BOM
		}
		text = bytes.TrimSpace(text)
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		var t Target
		if text[0] == '{' {
			var rec struct {
				DeviceID     *string         `json:"deviceId"`
				ModuleID     *string         `json:"moduleId"`
				DmctlJournal json.RawMessage `json:"dmctlJournal"`
				Event        json.RawMessage `json:"event"`
			}
			if err := json.Unmarshal(text, &rec); err != nil {
				return bad("not a JSON object with a deviceId: %v", err)
			}
			if rec.DmctlJournal != nil || rec.Event != nil {
				continue
			}
			if rec.DeviceID == nil {
				return bad(`the JSON object has no "deviceId"`)
			}
			t.DeviceID = *rec.DeviceID
			if rec.ModuleID != nil {
				t.ModuleID = *rec.ModuleID
			}
		} else {
			s := string(text)
			dev, mod, hasMod := strings.Cut(s, "/")
			t.DeviceID = dev
			if hasMod {
				if mod == "" {
					return bad("%q: nothing after the /; write device or device/module", s)
				}
				t.ModuleID = mod
			}
		}
		if err := iothub.ValidateDeviceID(t.DeviceID); err != nil {
			return bad("%v", err)
		}
		if t.ModuleID != "" {
			if err := iothub.ValidateModuleID(t.ModuleID); err != nil {
				return bad("%v", err)
			}
		}
		switch {
		case module == "":
		case t.ModuleID == "":
			t.ModuleID = module
		case t.ModuleID != module:
			return bad("names module %q but --module is %q", t.ModuleID, module)
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		line++
		if errors.Is(err, bufio.ErrTooLong) {
			return bad("longer than %d MB", MaxLineBytes>>20)
		}
		return &InputError{Input: input, Reason: fmt.Sprintf("cannot read it: %v", err)}
	}
	return nil
}

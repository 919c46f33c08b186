package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dmctl/dmctl/internal/iothub"
)

// Spool holds resolved targets in a temporary file, one per line, so a
// fleet can be checked and counted before anything is sent (and read a
// second time) without holding it in memory.
type Spool struct {
	f *os.File
	w *bufio.Writer
	n int
}

// NewSpool creates a spool file in dir ("" means the system's temporary
// directory). Close removes it.
func NewSpool(dir string) (*Spool, error) {
	f, err := os.CreateTemp(dir, "dmctl-targets-*.spool")
	if err != nil {
		return nil, fmt.Errorf("create a temporary file for the targets: %w", err)
	}
	return &Spool{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Add appends t. Device and module ids cannot hold tabs or newlines.
func (s *Spool) Add(t Target) error {
	s.n++
	if _, err := s.w.WriteString(t.DeviceID); err != nil {
		return err
	}
	if err := s.w.WriteByte('\t'); err != nil {
		return err
	}
	if _, err := s.w.WriteString(t.ModuleID); err != nil {
		return err
	}
	return s.w.WriteByte('\n')
}

// Len is the number of targets added.
func (s *Spool) Len() int { return s.n }

// Source returns a Source reading the spool from its start. Add must not be
// called after it.
func (s *Spool) Source() (Source, error) {
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("write the targets' temporary file: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read the targets' temporary file: %w", err)
	}
	sc := bufio.NewScanner(s.f)
	sc.Buffer(make([]byte, 4096), 1<<16)
	return &spoolSource{sc: sc}, nil
}

// Close removes the spool file.
func (s *Spool) Close() error {
	err := s.f.Close()
	if rerr := os.Remove(s.f.Name()); err == nil {
		err = rerr
	}
	return err
}

type spoolSource struct {
	sc *bufio.Scanner
}

func (s *spoolSource) Next(context.Context) (Target, error) {
	if !s.sc.Scan() {
		if err := s.sc.Err(); err != nil {
			return Target{}, fmt.Errorf("read the targets' temporary file: %w", err)
		}
		return Target{}, io.EOF
	}
	dev, mod, _ := strings.Cut(s.sc.Text(), "\t")
	return Target{DeviceID: dev, ModuleID: mod}, nil
}

// Pager is the part of an *iothub.QueryPager a QuerySource needs.
type Pager interface {
	More() bool
	NextPage(ctx context.Context) (iothub.QueryPage, error)
}

// QuerySource yields the devices (or modules) a hub query returns, reading
// one page at a time (the pager resends a page as its iothub.QueryOptions
// say).
type QuerySource struct {
	pager  Pager
	module string
	items  []json.RawMessage
	item   int
	// Pages counts the pages read so far.
	Pages int
}

// NewQuerySource returns a Source over the items of pager. module, when not
// empty, is the module for items that name none (a FROM devices query).
func NewQuerySource(pager Pager, module string) *QuerySource {
	return &QuerySource{pager: pager, module: module}
}

// Remote implements RemoteSource.
func (q *QuerySource) Remote() bool { return true }

// QueryError is a query page the hub refused or that holds no usable
// target. Page is 1-based.
type QueryError struct {
	Page int
	Err  error
}

// Error says which page failed and why.
func (e *QueryError) Error() string {
	return fmt.Sprintf("query page %d: %v", e.Page, e.Err)
}

// Unwrap returns the cause.
func (e *QueryError) Unwrap() error { return e.Err }

// Next implements Source.
func (q *QuerySource) Next(ctx context.Context) (Target, error) {
	for q.item >= len(q.items) {
		if !q.pager.More() {
			return Target{}, io.EOF
		}
		page, err := q.pager.NextPage(ctx)
		if err != nil {
			return Target{}, &QueryError{Page: q.Pages + 1, Err: err}
		}
		q.Pages++
		q.items, q.item = page.Items, 0
	}
	raw := q.items[q.item]
	q.item++
	var rec struct {
		DeviceID *string `json:"deviceId"`
		ModuleID string  `json:"moduleId"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil || rec.DeviceID == nil {
		return Target{}, &QueryError{Page: q.Pages, Err: errors.New("an item has no deviceId: the query must select deviceId (or *) FROM devices or devices.modules")}
	}
	t := Target{DeviceID: *rec.DeviceID, ModuleID: rec.ModuleID}
	if t.ModuleID == "" {
		t.ModuleID = q.module
	}
	if err := iothub.ValidateDeviceID(t.DeviceID); err != nil {
		return Target{}, &QueryError{Page: q.Pages, Err: err}
	}
	if t.ModuleID != "" {
		if err := iothub.ValidateModuleID(t.ModuleID); err != nil {
			return Target{}, &QueryError{Page: q.Pages, Err: err}
		}
	}
	return t, nil
}

package output

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/fleet"
)

// Format is an -o/--output value.
type Format string

// The output formats.
const (
	FormatTable Format = "table" // aligned columns, sorted, printed once at the end
	FormatWide  Format = "wide"  // table plus attempts, error code, tracking id, payload
	FormatJSON  Format = "json"  // one JSON array of results at the end, sorted
	FormatJSONL Format = "jsonl" // one JSON result per line, written as each completes
	FormatName  Format = "name"  // device or device/module per line, sorted
)

// Formats lists the accepted -o values, in the order help shows them.
func Formats() []string {
	return []string{string(FormatTable), string(FormatWide), string(FormatJSON), string(FormatJSONL), string(FormatName)}
}

// ParseFormat checks an -o value.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if s == f {
			return Format(f), nil
		}
	}
	return "", fmt.Errorf("%q is not an output format (use one of %s)", s, strings.Join(Formats(), ", "))
}

// ResultPrinter writes results to stdout. Add is called with each result as
// it completes; Flush once at the end. Streaming formats write in Add, the
// others in Flush.
type ResultPrinter interface {
	Add(r fleet.Result) error
	Flush() error
}

// NewResultPrinter returns the printer for format, writing to s.Out.
func NewResultPrinter(format Format, s *IOStreams) (ResultPrinter, error) {
	switch format {
	case FormatTable, FormatWide:
		return &tablePrinter{w: s.Out, wide: format == FormatWide, color: s.ColorEnabled()}, nil
	case FormatJSON:
		return &jsonPrinter{w: s.Out}, nil
	case FormatJSONL:
		return &jsonlPrinter{w: s.Out}, nil
	case FormatName:
		return &namePrinter{w: s.Out}, nil
	}
	return nil, fmt.Errorf("%q is not an output format (use one of %s)", format, strings.Join(Formats(), ", "))
}

func newEncoder(w io.Writer, indent bool) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc
}

// jsonlPrinter writes each result as one line as it comes, with the
// result's own encoder (no reflection) and one reused buffer.
type jsonlPrinter struct {
	w   io.Writer
	buf []byte
}

func (p *jsonlPrinter) Add(r fleet.Result) error {
	b, err := r.AppendJSON(p.buf[:0])
	if err != nil {
		return err
	}
	b = append(b, '\n')
	p.buf = b
	_, err = p.w.Write(b)
	return err
}
func (p *jsonlPrinter) Flush() error { return nil }

type jsonPrinter struct {
	w       io.Writer
	results []fleet.Result
}

func (p *jsonPrinter) Add(r fleet.Result) error { p.results = append(p.results, r); return nil }
func (p *jsonPrinter) Flush() error {
	results := sorted(p.results)
	if results == nil {
		results = []fleet.Result{}
	}
	return newEncoder(p.w, true).Encode(results)
}

type namePrinter struct {
	w       io.Writer
	targets []fleet.Target // only the names: no payloads held
}

func (p *namePrinter) Add(r fleet.Result) error {
	p.targets = append(p.targets, r.Target())
	return nil
}
func (p *namePrinter) Flush() error {
	sort.SliceStable(p.targets, func(i, j int) bool {
		if p.targets[i].DeviceID != p.targets[j].DeviceID {
			return p.targets[i].DeviceID < p.targets[j].DeviceID
		}
		return p.targets[i].ModuleID < p.targets[j].ModuleID
	})
	bw := bufio.NewWriter(p.w)
	for _, t := range p.targets {
		_, _ = bw.WriteString(t.String())
		_ = bw.WriteByte('\n')
	}
	return bw.Flush()
}

type tablePrinter struct {
	w       io.Writer
	wide    bool
	color   bool
	results []fleet.Result
}

func (p *tablePrinter) Add(r fleet.Result) error {
	if !p.wide {
		r.Payload = nil // the narrow table never shows it: do not hold it
	}
	p.results = append(p.results, r)
	return nil
}

// payloadWidth is how much of a payload the wide table shows.
const payloadWidth = 40

func (p *tablePrinter) Flush() error {
	if len(p.results) == 0 {
		return nil
	}
	results := sorted(p.results)
	withModule := false
	for _, r := range results {
		if r.ModuleID != "" {
			withModule = true
			break
		}
	}
	header := []string{"DEVICE"}
	if withModule {
		header = append(header, "MODULE")
	}
	header = append(header, "OUTCOME", "STATUS", "DURATION")
	if p.wide {
		header = append(header, "ATTEMPTS", "ERROR CODE", "TRACKING ID", "PAYLOAD")
	}
	rows := make([][]string, 0, len(results))
	for _, r := range results {
		row := []string{cell(r.DeviceID)}
		if withModule {
			row = append(row, cell(r.ModuleID))
		}
		status := "-"
		if r.Status != nil {
			status = strconv.Itoa(*r.Status)
		}
		duration := FormatDuration(r.Duration())
		if r.Outcome == fleet.OutcomeSkipped {
			duration = "-"
		}
		if !p.wide && r.Attempts > 1 {
			duration += fmt.Sprintf(" (%d attempts)", r.Attempts)
		}
		row = append(row, colorOutcome(r.Outcome, p.color), status, duration)
		if p.wide {
			code, tracking := "", ""
			if r.Error != nil {
				code, tracking = r.Error.CodeText(), r.Error.TrackingID
			}
			row = append(row, strconv.Itoa(r.Attempts), dash(cell(code)), dash(cell(tracking)), dash(truncate(cell(string(r.Payload)), payloadWidth)))
		}
		rows = append(rows, row)
	}
	return writeTable(p.w, header, rows)
}

// sorted orders results by device, then module, keeping the input order
// for equal keys. It sorts in place (printers own their slices) and
// returns results.
func sorted(results []fleet.Result) []fleet.Result {
	out := results
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].DeviceID != out[j].DeviceID {
			return out[i].DeviceID < out[j].DeviceID
		}
		return out[i].ModuleID < out[j].ModuleID
	})
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell makes text safe for one table cell: one line, no control characters
// (a hub message or payload must not move the cursor or change colours).
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

// truncate shortens s to at most n runes, marking the cut with "...".
func truncate(s string, n int) string {
	rs := []rune(s)
	if len(rs) <= n {
		return s
	}
	return string(rs[:n-3]) + "..."
}

// ANSI colours; only written when the stream is a terminal and NO_COLOR is unset.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiDim    = "\x1b[2m"
)

func outcomeColor(o fleet.Outcome) string {
	switch o {
	case fleet.OutcomeSucceeded:
		return ansiGreen
	case fleet.OutcomeOffline, fleet.OutcomeTimeout, fleet.OutcomeThrottled, fleet.OutcomeUnknown, fleet.OutcomeWaitTimeout:
		return ansiYellow
	case fleet.OutcomeSkipped:
		return ansiDim
	}
	return ansiRed
}

func colorOutcome(o fleet.Outcome, color bool) string {
	if !color {
		return string(o)
	}
	return outcomeColor(o) + string(o) + ansiReset
}

// FormatDuration shows a duration the way people read it: "850µs", "12ms",
// "1.2s", "2m5s".
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return d.Round(time.Second).String()
}

// WriteJSON writes v as JSON followed by a newline: indented for json, on one
// line for jsonl. HTML characters are not escaped.
func WriteJSON(w io.Writer, v any, indent bool) error {
	return newEncoder(w, indent).Encode(v)
}

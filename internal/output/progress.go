package output

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/fleet"
)

// ProgressInterval is how often the progress bar is redrawn.
const ProgressInterval = 200 * time.Millisecond

// progressWindow is how far back the bar's calls/s look.
const progressWindow = 5 * time.Second

// ProgressBar draws one status line on a terminal (stderr) while a run
// goes: done/total, a bar, calls/s, ETA and failures so far. Only use it
// when the stream is a terminal; it redraws in place with \r.
type ProgressBar struct {
	w     io.Writer
	snap  func() fleet.ProgressSnapshot
	now   func() time.Time
	width int

	mu      sync.Mutex
	samples []progressSample
	drawn   bool
	stop    chan struct{}
	done    chan struct{}
}

type progressSample struct {
	at   time.Time
	done int
}

// NewProgressBar returns a bar over snap's counters, drawn on w. now nil
// means time.Now.
func NewProgressBar(w io.Writer, snap func() fleet.ProgressSnapshot, now func() time.Time) *ProgressBar {
	if now == nil {
		now = time.Now
	}
	return &ProgressBar{w: w, snap: snap, now: now, width: 24}
}

// Start redraws the bar every ProgressInterval until Stop.
func (b *ProgressBar) Start() {
	b.stop, b.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.done)
		t := time.NewTicker(ProgressInterval)
		defer t.Stop()
		b.Draw()
		for {
			select {
			case <-t.C:
				b.Draw()
			case <-b.stop:
				return
			}
		}
	}()
}

// Stop stops redrawing and clears the line, so what follows (the summary)
// starts on a clean line.
func (b *ProgressBar) Stop() {
	if b.stop != nil {
		close(b.stop)
		<-b.done
		b.stop = nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clearLocked()
}

// Suspend clears the bar, runs fn (which may write to the same terminal),
// and lets the next tick redraw the bar.
func (b *ProgressBar) Suspend(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clearLocked()
	fn()
}

func (b *ProgressBar) clearLocked() {
	if b.drawn {
		_, _ = io.WriteString(b.w, "\r\x1b[K")
		b.drawn = false
	}
}

// Draw redraws the bar once.
func (b *ProgressBar) Draw() {
	s := b.snap()
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.samples = append(b.samples, progressSample{at: now, done: s.Done})
	for len(b.samples) > 2 && now.Sub(b.samples[1].at) >= progressWindow {
		b.samples = b.samples[1:]
	}
	rate := 0.0
	if first := b.samples[0]; now.Sub(first.at) > 0 {
		rate = float64(s.Done-first.done) / now.Sub(first.at).Seconds()
	}
	_, _ = io.WriteString(b.w, "\r\x1b[K"+b.Line(s, rate))
	b.drawn = true
}

// Line renders the bar's text for a snapshot and a recent rate of finished
// targets per second, e.g.
//
//	[#########---------------]  3,750/10,000  37%  812/s  ETA 8s  3 failed  wave 2/4
func (b *ProgressBar) Line(s fleet.ProgressSnapshot, rate float64) string {
	var parts []string
	if s.Total > 0 {
		frac := float64(s.Done) / float64(s.Total)
		frac = min(max(frac, 0), 1)
		fill := int(frac * float64(b.width))
		parts = append(parts, "["+strings.Repeat("#", fill)+strings.Repeat("-", b.width-fill)+"]",
			fmt.Sprintf("%s/%s", Thousands(s.Done), Thousands(s.Total)), fmt.Sprintf("%d%%", int(frac*100)))
	} else {
		parts = append(parts, fmt.Sprintf("%s done", Thousands(s.Done)))
		if s.Seen > s.Done {
			parts = append(parts, fmt.Sprintf("%s read", Thousands(s.Seen)))
		}
	}
	parts = append(parts, formatRate(rate)+"/s")
	if s.Total > 0 && rate > 0 && s.Done < s.Total {
		eta := time.Duration(float64(s.Total-s.Done) / rate * float64(time.Second))
		parts = append(parts, "ETA "+eta.Round(time.Second).String())
	}
	if s.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%s failed", Thousands(s.Failed)))
	}
	if s.Throttles > 0 {
		parts = append(parts, fmt.Sprintf("%s throttled", Thousands(s.Throttles)))
	}
	if s.Parked > 0 {
		parts = append(parts, fmt.Sprintf("%s parked", Thousands(s.Parked)))
	}
	if s.Slots > 0 && (s.Total == 0 || s.Done < s.Total) {
		inFlight := fmt.Sprintf("%s/%s in flight", Thousands(s.InFlight), Thousands(s.Slots))
		if s.Held {
			inFlight += " (held: every slot taken)"
		}
		parts = append(parts, inFlight)
	}
	if s.Wave > 0 {
		if s.Waves > 0 {
			parts = append(parts, fmt.Sprintf("wave %d/%d", s.Wave, s.Waves))
		} else {
			parts = append(parts, fmt.Sprintf("wave %d", s.Wave))
		}
	}
	return strings.Join(parts, "  ")
}

// Thousands writes n with comma separators: 10,000.
func Thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + Thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// FlushingWriter buffers writes to a slow stream (a pipe, a file) and
// flushes every interval, on Flush and on Close, so a stream of 20,000
// lines a second costs a few write calls, not 20,000, and a reader still
// sees lines within the interval. It is safe for concurrent use.
type FlushingWriter struct {
	mu    sync.Mutex
	w     *bufio.Writer
	err   error
	onErr func(error)
	stop  chan struct{}
	done  chan struct{}
}

// OnError sets fn to be called once, with the first error a write or a
// flush meets (a closed pipe: the reader exited), from whichever goroutine
// met it. Set it before the first write.
func (f *FlushingWriter) OnError(fn func(error)) {
	f.mu.Lock()
	f.onErr = fn
	f.mu.Unlock()
}

// failedLocked records the first error and reports it.
func (f *FlushingWriter) failedLocked(err error) {
	if err == nil || f.err != nil {
		return
	}
	f.err = err
	if f.onErr != nil {
		go f.onErr(err)
	}
}

// NewFlushingWriter wraps w.
func NewFlushingWriter(w io.Writer, interval time.Duration) *FlushingWriter {
	f := &FlushingWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = f.Flush()
			case <-f.stop:
				return
			}
		}
	}()
	return f
}

// Write implements io.Writer.
func (f *FlushingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.w.Write(p)
	f.failedLocked(err)
	return n, err
}

// Flush writes what is buffered.
func (f *FlushingWriter) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.failedLocked(f.w.Flush())
	}
	return f.err
}

// Close stops the periodic flush and flushes.
func (f *FlushingWriter) Close() error {
	select {
	case <-f.stop:
	default:
		close(f.stop)
		<-f.done
	}
	return f.Flush()
}

// suspendingWriter routes writes through a progress bar's Suspend, so data
// written to a terminal never lands in the middle of the bar.
type suspendingWriter struct {
	bar *ProgressBar
	w   io.Writer
}

// SuspendingWriter returns a writer that clears bar before each write to w.
func SuspendingWriter(bar *ProgressBar, w io.Writer) io.Writer {
	return &suspendingWriter{bar: bar, w: w}
}

func (s *suspendingWriter) Write(p []byte) (n int, err error) {
	s.bar.Suspend(func() { n, err = s.w.Write(p) })
	return n, err
}

// DryRun is what --dry-run reports: the targets a run would invoke and how
// long it would take.
type DryRun struct {
	Method  string
	Hub     string
	Targets int
	Sample  []fleet.Target
	// Rate is the pace the estimate assumes, calls/s; 0 when there is none.
	Rate float64
	// RateSource says where Rate comes from, e.g. "--rate 40/s".
	RateSource string
	// Estimate is Targets at Rate; 0 without a rate.
	Estimate time.Duration
	// Waves describes the wave plan, "" without one.
	Waves string
	// Note explains a missing estimate.
	Note string
}

type dryRunSample struct {
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId,omitempty"`
}

// dryRunView is DryRun's JSON form (camelCase, additive changes only).
type dryRunView struct {
	DryRun           bool           `json:"dryRun"`
	Method           string         `json:"method"`
	Hub              string         `json:"hub,omitempty"`
	Targets          int            `json:"targets"`
	Sample           []dryRunSample `json:"sample"`
	Rate             float64        `json:"rate,omitempty"`
	RateSource       string         `json:"rateSource,omitempty"`
	EstimatedSeconds *float64       `json:"estimatedSeconds,omitempty"`
	Waves            string         `json:"waves,omitempty"`
	Note             string         `json:"note,omitempty"`
}

// WriteDryRun writes d for people (table, wide) or as JSON (json, jsonl).
func WriteDryRun(w io.Writer, d DryRun, format Format) error {
	if format == FormatJSON || format == FormatJSONL {
		v := dryRunView{DryRun: true, Method: d.Method, Hub: d.Hub, Targets: d.Targets, Sample: []dryRunSample{},
			Rate: d.Rate, RateSource: d.RateSource, Waves: d.Waves, Note: d.Note}
		for _, t := range d.Sample {
			v.Sample = append(v.Sample, dryRunSample{DeviceID: t.DeviceID, ModuleID: t.ModuleID})
		}
		if d.Estimate > 0 {
			secs := d.Estimate.Seconds()
			v.EstimatedSeconds = &secs
		}
		return WriteJSON(w, v, format == FormatJSON)
	}
	var b strings.Builder
	hub := ""
	if d.Hub != "" {
		hub = " on hub " + d.Hub
	}
	fmt.Fprintf(&b, "Dry run: would invoke %q on %s%s (nothing was sent).\n", d.Method, plural(d.Targets, "target"), hub)
	for _, t := range d.Sample {
		b.WriteString("  " + cell(t.String()) + "\n")
	}
	if more := d.Targets - len(d.Sample); more > 0 {
		fmt.Fprintf(&b, "  ... and %s more\n", Thousands(more))
	}
	if d.Waves != "" {
		fmt.Fprintf(&b, "Waves: %s\n", d.Waves)
	}
	switch {
	case d.Estimate > 0:
		fmt.Fprintf(&b, "Estimated duration: %s at %s calls/s (%s)\n", FormatDuration(d.Estimate), formatRate(d.Rate), d.RateSource)
	case d.Note != "":
		fmt.Fprintf(&b, "Estimated duration: %s\n", d.Note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

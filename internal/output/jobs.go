package output

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// JobView is a job as dmctl shows it (`dmctl jobs show|list|create|cancel`).
// Its JSON form is public API: camelCase, additive changes only.
type JobView struct {
	JobID          string `json:"jobId"`
	Type           string `json:"type"`
	Status         string `json:"status"`
	QueryCondition string `json:"queryCondition,omitempty"`
	// Method, Payload and the timeouts describe a scheduleDeviceMethod job.
	Method                 string          `json:"method,omitempty"`
	Payload                json.RawMessage `json:"payload,omitempty"`
	ResponseTimeoutSeconds int64           `json:"responseTimeoutSeconds,omitempty"`
	ConnectTimeoutSeconds  int64           `json:"connectTimeoutSeconds"`
	// UpdateTwin is the patch of a scheduleUpdateTwin job.
	UpdateTwin          json.RawMessage `json:"updateTwin,omitempty"`
	CreatedTime         *time.Time      `json:"createdTime,omitempty"`
	StartTime           *time.Time      `json:"startTime,omitempty"`
	EndTime             *time.Time      `json:"endTime,omitempty"`
	MaxExecutionSeconds int64           `json:"maxExecutionSeconds,omitempty"`
	FailureReason       string          `json:"failureReason,omitempty"`
	StatusMessage       string          `json:"statusMessage,omitempty"`
	Statistics          JobStatistics   `json:"statistics"`
}

// JobStatistics are a job's device counts (the hub's deviceJobStatistics).
type JobStatistics struct {
	Devices   int `json:"devices"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Running   int `json:"running"`
	Pending   int `json:"pending"`
}

// Done is the number of devices with a result.
func (s JobStatistics) Done() int { return s.Succeeded + s.Failed }

// JobPrinter writes jobs to stdout: Add each, Flush once.
type JobPrinter interface {
	Add(j JobView) error
	Flush() error
}

// NewJobPrinter returns the printer for format: a table (sorted as given),
// json (an array, or one object when single is set), jsonl, or name (job
// ids).
func NewJobPrinter(format Format, s *IOStreams, single bool) (JobPrinter, error) {
	switch format {
	case FormatTable, FormatWide:
		return &jobTable{w: s.Out, wide: format == FormatWide, color: s.ColorEnabled()}, nil
	case FormatJSON:
		return &jobJSON{w: s.Out, single: single}, nil
	case FormatJSONL:
		return &jobJSONL{w: s.Out}, nil
	case FormatName:
		return &jobNames{w: s.Out}, nil
	}
	return nil, fmt.Errorf("%q is not an output format (use one of %s)", format, strings.Join(Formats(), ", "))
}

type jobJSON struct {
	w      io.Writer
	single bool
	jobs   []JobView
}

func (p *jobJSON) Add(j JobView) error { p.jobs = append(p.jobs, j); return nil }
func (p *jobJSON) Flush() error {
	if p.single && len(p.jobs) == 1 {
		return WriteJSON(p.w, p.jobs[0], true)
	}
	jobs := p.jobs
	if jobs == nil {
		jobs = []JobView{}
	}
	return WriteJSON(p.w, jobs, true)
}

type jobJSONL struct{ w io.Writer }

func (p *jobJSONL) Add(j JobView) error { return WriteJSON(p.w, j, false) }
func (p *jobJSONL) Flush() error        { return nil }

type jobNames struct{ w io.Writer }

func (p *jobNames) Add(j JobView) error {
	_, err := io.WriteString(p.w, j.JobID+"\n")
	return err
}
func (p *jobNames) Flush() error { return nil }

type jobTable struct {
	w     io.Writer
	wide  bool
	color bool
	jobs  []JobView
}

func (p *jobTable) Add(j JobView) error { p.jobs = append(p.jobs, j); return nil }

func (p *jobTable) Flush() error {
	if len(p.jobs) == 0 {
		return nil
	}
	header := []string{"JOB ID", "STATUS", "METHOD", "DEVICES", "SUCCEEDED", "FAILED", "RUNNING", "PENDING", "START"}
	if p.wide {
		header = append(header, "END", "QUERY CONDITION", "FAILURE REASON")
	}
	rows := make([][]string, 0, len(p.jobs))
	for _, j := range p.jobs {
		what := j.Method
		if what == "" {
			what = "(" + j.Type + ")"
		}
		s := j.Statistics
		row := []string{cell(j.JobID), colorJobStatus(j.Status, p.color), cell(what), strconv.Itoa(s.Devices), strconv.Itoa(s.Succeeded),
			strconv.Itoa(s.Failed), strconv.Itoa(s.Running), strconv.Itoa(s.Pending), formatTime(j.StartTime)}
		if p.wide {
			row = append(row, formatTime(j.EndTime), dash(truncate(cell(j.QueryCondition), 60)), dash(truncate(cell(j.FailureReason), 60)))
		}
		rows = append(rows, row)
	}
	return writeTable(p.w, header, rows)
}

func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func colorJobStatus(s string, color bool) string {
	if !color {
		return cell(s)
	}
	switch s {
	case "completed":
		return ansiGreen + s + ansiReset
	case "failed":
		return ansiRed + s + ansiReset
	case "cancelled":
		return ansiDim + s + ansiReset
	}
	return cell(s)
}

// JobProgress reports a job's progress on stderr while dmctl waits for it.
// On a terminal it keeps one line up to date; otherwise it writes a plain
// line each time the job's status changes, and nothing in between.
type JobProgress struct {
	w        io.Writer
	tty      bool
	last     string // the last status reported (plain mode)
	drawn    bool   // a live line is on screen (terminal mode)
	finished bool
}

// NewJobProgress returns a progress reporter writing to w; tty says whether
// w is a terminal.
func NewJobProgress(w io.Writer, tty bool) *JobProgress { return &JobProgress{w: w, tty: tty} }

// Update shows j's state after elapsed waiting.
func (p *JobProgress) Update(j JobView, elapsed time.Duration) {
	if p.finished {
		return
	}
	if p.tty {
		_, _ = fmt.Fprintf(p.w, "\r\x1b[K%s", JobProgressLine(j, elapsed))
		p.drawn = true
		return
	}
	if j.Status == p.last {
		return
	}
	p.last = j.Status
	_, _ = fmt.Fprintln(p.w, JobProgressLine(j, elapsed))
}

// Done ends the live line (on a terminal) with a final state.
func (p *JobProgress) Done(j JobView, elapsed time.Duration) {
	if p.finished {
		return
	}
	if p.tty {
		_, _ = fmt.Fprintf(p.w, "\r\x1b[K%s\n", JobProgressLine(j, elapsed))
	} else if j.Status != p.last {
		_, _ = fmt.Fprintln(p.w, JobProgressLine(j, elapsed))
	}
	p.finished = true
}

// Clear removes a live line (an interrupted wait).
func (p *JobProgress) Clear() {
	if p.tty && p.drawn && !p.finished {
		_, _ = fmt.Fprint(p.w, "\r\x1b[K")
	}
	p.finished = true
}

// JobProgressLine is one line about a job, e.g.
//
//	job fw-1 running: 42/100 devices done (40 succeeded, 2 failed), 5 running, 53 pending [12s]
func JobProgressLine(j JobView, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s %s", cell(j.JobID), cell(j.Status))
	s := j.Statistics
	switch {
	case j.Status == "scheduled" && j.StartTime != nil:
		fmt.Fprintf(&b, ": starts %s", j.StartTime.UTC().Format(time.RFC3339))
	case s.Devices > 0 || j.Status == "running" || j.EndTime != nil:
		fmt.Fprintf(&b, ": %d/%s done (%d succeeded, %d failed)", s.Done(), plural(s.Devices, "device"), s.Succeeded, s.Failed)
		if s.Running > 0 {
			fmt.Fprintf(&b, ", %d running", s.Running)
		}
		if s.Pending > 0 {
			fmt.Fprintf(&b, ", %d pending", s.Pending)
		}
		if rest := s.Devices - s.Done() - s.Running - s.Pending; rest > 0 {
			fmt.Fprintf(&b, ", %d canceled", rest)
		}
	}
	if j.FailureReason != "" {
		b.WriteString(": " + cell(j.FailureReason))
	}
	fmt.Fprintf(&b, " [%s]", FormatDuration(elapsed))
	return b.String()
}

package fleet

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// JournalVersion is the format version written in a journal's first line.
const JournalVersion = 1

// JournalSyncInterval is how often a journal with new lines is fsynced.
// Every line reaches the operating system (write(2)) before the call it
// records is sent or as soon as its result is known, so a killed dmctl
// loses nothing; the fsync bounds what a machine crash can lose.
const JournalSyncInterval = 200 * time.Millisecond

// JournalHeader is the first line of a journal: which run it records.
type JournalHeader struct {
	Version   int       `json:"dmctlJournal"`
	Method    string    `json:"method"`
	StartTime time.Time `json:"startTime"`
	// Run holds the command's options (targets, payload digest, retry
	// settings), so --resume can run the rest the same way. fleet does not
	// read it.
	Run json.RawMessage `json:"run,omitempty"`
}

// gateRecord is written when a health gate (--gate) has run after a wave.
type gateRecord struct {
	Event    string    `json:"event"` // "gate"
	Wave     int       `json:"wave"`
	Waves    int       `json:"waves,omitempty"`
	Passed   bool      `json:"passed"`
	ExitCode int       `json:"exitCode"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
}

// dispatchRecord is written before a target's first call is sent.
type dispatchRecord struct {
	Event    string    `json:"event"` // "dispatched", "parked"
	DeviceID string    `json:"deviceId"`
	ModuleID string    `json:"moduleId,omitempty"`
	Time     time.Time `json:"time"`
}

// Journal appends a run's progress to a JSONL file: a header line, a
// "dispatched" line before each target's first call is sent, and each
// target's result (the -o jsonl shape) once it is known. It is safe for
// concurrent use.
type Journal struct {
	path  string
	mu    sync.Mutex
	f     *os.File
	w     *bufio.Writer
	dirty bool
	err   error
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// CreateJournal creates a new journal at path and writes its header. An
// existing file is an error: continuing a run is --resume's job.
func CreateJournal(path string, h JournalHeader) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	j := newJournal(path, f)
	h.Version = JournalVersion
	h.StartTime = h.StartTime.UTC()
	if err := j.write(h); err != nil {
		_ = j.Close()
		return nil, err
	}
	return j, nil
}

// AppendJournal opens an existing journal to continue it (--resume).
func AppendJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	return newJournal(path, f), nil
}

func newJournal(path string, f *os.File) *Journal {
	j := &Journal{path: path, f: f, w: bufio.NewWriterSize(f, 16<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go j.syncer()
	return j
}

// Path is the journal's file name.
func (j *Journal) Path() string { return j.path }

func (j *Journal) syncer() {
	defer close(j.done)
	t := time.NewTicker(JournalSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = j.Sync()
		case <-j.stop:
			return
		}
	}
}

// write appends v as one line and hands it to the operating system.
func (j *Journal) write(v any) error {
	var line []byte
	var err error
	if r, ok := v.(Result); ok {
		line, err = r.AppendJSON(nil)
	} else {
		line, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	_, _ = j.w.Write(line)
	_ = j.w.WriteByte('\n')
	if err := j.w.Flush(); err != nil {
		j.err = fmt.Errorf("journal %s: %w", j.path, err)
		return j.err
	}
	j.dirty = true
	return nil
}

// Dispatched records that t's first call is about to be sent. It returns
// once the line has reached the operating system.
func (j *Journal) Dispatched(t Target, at time.Time) error {
	return j.write(dispatchRecord{Event: "dispatched", DeviceID: t.DeviceID, ModuleID: t.ModuleID, Time: at.UTC()})
}

// Result records a target's result.
func (j *Journal) Result(r Result) error { return j.write(r) }

// Parked records that t's device was offline and t is parked until it
// connects (--until-online): the device did not get the method, so
// --resume runs t again.
func (j *Journal) Parked(t Target, at time.Time) error {
	return j.write(dispatchRecord{Event: "parked", DeviceID: t.DeviceID, ModuleID: t.ModuleID, Time: at.UTC()})
}

// Gate records how a health gate ended after a wave (the gate's command is
// not recorded: it may hold a secret). --resume ignores these lines.
func (j *Journal) Gate(wave, waves, exitCode int, passed bool, reason string, at time.Time) error {
	return j.write(gateRecord{Event: "gate", Wave: wave, Waves: waves, Passed: passed, ExitCode: exitCode, Reason: reason, Time: at.UTC()})
}

// Sync fsyncs the journal if lines were added since the last sync.
func (j *Journal) Sync() error {
	j.mu.Lock()
	dirty := j.dirty
	j.dirty = false
	err := j.err
	j.mu.Unlock()
	if err != nil || !dirty {
		return err
	}
	if serr := j.f.Sync(); serr != nil {
		j.mu.Lock()
		if j.err == nil {
			j.err = fmt.Errorf("journal %s: %w", j.path, serr)
		}
		err = j.err
		j.mu.Unlock()
	}
	return err
}

// Err is the first write error, if any.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Close syncs and closes the journal.
func (j *Journal) Close() error {
	var err error
	j.once.Do(func() {
		close(j.stop)
		<-j.done
		err = j.Sync()
		if cerr := j.f.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// JournalState is what a journal says about a run, for --resume.
type JournalState struct {
	Header JournalHeader
	// Final holds the targets with a final result: every outcome but
	// skipped and unknown. They are not run again.
	Final *TargetSet
	// FinalSummary counts those final results.
	FinalSummary Summary
	// Unknown holds the targets whose call may have reached the device
	// without an answer being recorded: dispatched with no result after it
	// (in flight when dmctl was killed), or with an unknown result. They are
	// not run again unless the method is idempotent.
	Unknown []Result
	unknown *TargetSet
}

// Pending reports whether t still has to run on resume: it has no final
// result, and it is not unknown unless idempotent says it may run twice.
func (s *JournalState) Pending(t Target, idempotent bool) bool {
	if s.Final.Has(t) {
		return false
	}
	return idempotent || !s.unknown.Has(t)
}

// JournalError is a journal that cannot be read as one.
type JournalError struct {
	Path   string
	Line   int
	Reason string
}

// Error names the file and the line.
func (e *JournalError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.Path, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Reason)
}

// inflightMessage explains an unknown target found in a journal.
const inflightMessage = "the call was in flight when dmctl stopped; the device may have run the method, so it is not resent without --idempotent"

type journalEntry struct {
	final    bool
	unknown  bool
	outcome  Outcome
	status   int // -1: none
	attempts int
	res      *Result // kept for unknown entries only
}

// ReadJournal reads a journal written by Journal. The last record of a
// target decides its state. A last line cut short (a crash in the middle of
// a write) is ignored; any other unreadable line is an error.
func ReadJournal(path string) (*JournalState, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return readJournal(f, path, nil)
}

// WalkJournalResults calls fn with the last word of the journal on every
// target it records, in the order of those last lines: the final result
// (skipped included, for targets a stopped run never started), or an
// unknown result for a target dispatched and never answered (a run that was
// killed). The results of every run of a resumed rollout are merged this
// way. It returns the journal's state, as ReadJournal does.
func WalkJournalResults(path string, fn func(Result) error) (*JournalState, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	last := map[[16]byte]int{}
	st, err := readJournal(f, path, last)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, &JournalError{Path: path, Reason: fmt.Sprintf("cannot read it: %v", err)}
	}
	br := bufio.NewReaderSize(f, 64<<10)
	for line := 1; ; line++ {
		text, rerr := br.ReadBytes('\n')
		if len(text) == 0 && rerr != nil {
			return st, nil
		}
		var rec struct {
			Event    string    `json:"event"`
			DeviceID *string   `json:"deviceId"`
			ModuleID string    `json:"moduleId"`
			Time     time.Time `json:"time"`
		}
		if line == 1 || json.Unmarshal(bytes.TrimSpace(text), &rec) != nil || rec.DeviceID == nil {
			continue
		}
		t := Target{DeviceID: *rec.DeviceID, ModuleID: rec.ModuleID}
		if last[targetKey(t)] != line {
			continue
		}
		var res Result
		switch rec.Event {
		case "dispatched":
			res = Result{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Method: st.Header.Method, Outcome: OutcomeUnknown,
				Attempts: 1, StartTime: rec.Time.UTC(), Error: &ResultError{Message: inflightMessage}}
		case "parked":
			res = Result{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Method: st.Header.Method, Outcome: OutcomeSkipped,
				Attempts: 1, StartTime: rec.Time.UTC(), Error: &ResultError{Message: "not run: the device was offline, parked when the run stopped (--until-online)"}}
		case "":
			if err := json.Unmarshal(bytes.TrimSpace(text), &res); err != nil {
				return nil, &JournalError{Path: path, Line: line, Reason: err.Error()}
			}
		default:
			continue
		}
		if err := fn(res); err != nil {
			return st, err
		}
	}
}

// readJournal reads a journal; when last is not nil, it also records for
// each target the line of its last record (a result or a dispatch). It is
// long because it is the one reader of the format: the header, every record
// kind and the torn-tail rule are checked in one pass, side by side.
func readJournal(r io.Reader, path string, last map[[16]byte]int) (*JournalState, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	st := &JournalState{Final: NewTargetSet(), unknown: NewTargetSet()}
	entries := map[[16]byte]*journalEntry{}
	var order [][16]byte // unknown candidates in journal order
	line := 0
	for {
		text, err := br.ReadBytes('\n')
		if len(text) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return nil, &JournalError{Path: path, Reason: fmt.Sprintf("cannot read it: %v", err)}
		}
		line++
		complete := bytes.HasSuffix(text, []byte("\n"))
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		var rec struct {
			Version  *int      `json:"dmctlJournal"`
			Event    string    `json:"event"`
			DeviceID *string   `json:"deviceId"`
			ModuleID string    `json:"moduleId"`
			Time     time.Time `json:"time"`
			Outcome  Outcome   `json:"outcome"`
		}
		if jerr := json.Unmarshal(text, &rec); jerr != nil {
			if !complete {
				break // cut short by a crash
			}
			return nil, &JournalError{Path: path, Line: line, Reason: fmt.Sprintf("not a journal line: %v", jerr)}
		}
		if line == 1 {
			if rec.Version == nil {
				return nil, &JournalError{Path: path, Line: 1, Reason: "this is not a dmctl journal (the first line has no \"dmctlJournal\")"}
			}
			if *rec.Version != JournalVersion {
				return nil, &JournalError{Path: path, Line: 1, Reason: fmt.Sprintf("journal format %d is not supported (this dmctl reads format %d)", *rec.Version, JournalVersion)}
			}
			if err := json.Unmarshal(text, &st.Header); err != nil {
				return nil, &JournalError{Path: path, Line: 1, Reason: err.Error()}
			}
			continue
		}
		if rec.DeviceID == nil && rec.Event != "" && rec.Event != "dispatched" && rec.Version == nil {
			continue // a run's own event ("gate"): no target's
		}
		if rec.DeviceID == nil {
			if rec.Version != nil {
				return nil, &JournalError{Path: path, Line: line, Reason: "a second journal header: the file mixes two runs"}
			}
			return nil, &JournalError{Path: path, Line: line, Reason: `no "deviceId"`}
		}
		t := Target{DeviceID: *rec.DeviceID, ModuleID: rec.ModuleID}
		k := targetKey(t)
		e := entries[k]
		if e == nil {
			e = &journalEntry{}
			entries[k] = e
		}
		if last != nil && (rec.Event == "dispatched" || rec.Event == "parked" || rec.Event == "") {
			last[k] = line
		}
		switch {
		case rec.Event == "parked":
			*e = journalEntry{} // refused offline (404103): not run, --resume runs it
		case rec.Event == "dispatched":
			*e = journalEntry{unknown: true, res: &Result{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Method: st.Header.Method,
				Outcome: OutcomeUnknown, Attempts: 1, StartTime: rec.Time.UTC(), Error: &ResultError{Message: inflightMessage}}}
			order = append(order, k)
		case rec.Event != "":
			// An event this version does not know: ignore it (additive format).
		case rec.Outcome == "":
			return nil, &JournalError{Path: path, Line: line, Reason: `a result with no "outcome"`}
		case rec.Outcome == OutcomeSkipped:
			*e = journalEntry{}
		case rec.Outcome == OutcomeUnknown:
			var res Result
			if err := json.Unmarshal(text, &res); err != nil {
				return nil, &JournalError{Path: path, Line: line, Reason: err.Error()}
			}
			*e = journalEntry{unknown: true, res: &res}
			order = append(order, k)
		default:
			var res Result
			if err := json.Unmarshal(text, &res); err != nil {
				return nil, &JournalError{Path: path, Line: line, Reason: err.Error()}
			}
			status := -1
			if res.Status != nil {
				status = *res.Status
			}
			*e = journalEntry{final: true, outcome: res.Outcome, status: status, attempts: res.Attempts}
		}
		if err == io.EOF {
			break
		}
	}
	if line == 0 {
		return nil, &JournalError{Path: path, Reason: "it is empty"}
	}
	tally := NewTally()
	for k, e := range entries {
		if !e.final {
			continue
		}
		st.Final.m[k] = struct{}{}
		r := Result{Outcome: e.outcome, Attempts: e.attempts}
		if e.status >= 0 {
			s := e.status
			r.Status = &s
		}
		tally.Count(r)
	}
	st.FinalSummary = tally.Summary()
	for _, k := range order {
		e := entries[k]
		if !e.unknown || hasKey(st.unknown, k) {
			continue
		}
		st.unknown.m[k] = struct{}{}
		st.Unknown = append(st.Unknown, *e.res)
	}
	return st, nil
}

func hasKey(s *TargetSet, k [16]byte) bool {
	_, ok := s.m[k]
	return ok
}

// Package methodlog is hubsim's --method-log: one JSON line per method the
// registry delivered to a device, the ground truth tests compare a client's
// account with.
package methodlog

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/jsontext"

	"github.com/dmctl/dmctl/internal/hubsim/registry"
)

// flushInterval bounds how long a delivered method may sit in the
// buffer before it reaches the file.
const flushInterval = 100 * time.Millisecond

// Log appends one JSON line per delivered method:
//
//	{"time":"2025-01-02T03:04:05.123456789Z","deviceId":"d","moduleId":"","method":"reboot","requestId":"...","status":200}
type Log struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	buf  []byte
	err  error
	stop chan struct{}
	done chan struct{}
}

// Open opens (appends to) the log file at path and starts its flusher.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--method-log: %w", err)
	}
	l := &Log{f: f, w: bufio.NewWriterSize(f, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go l.flusher()
	return l, nil
}

func (l *Log) flusher() {
	defer close(l.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.Flush()
		case <-l.stop:
			return
		}
	}
}

// Flush writes what is buffered to the file.
func (l *Log) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Buffered() > 0 && l.err == nil {
		l.err = l.w.Flush()
	}
}

// Record appends d.
func (l *Log) Record(d registry.Delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf[:0]
	b = append(b, `{"time":`...)
	b = jsontext.AppendString(b, d.Time.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"deviceId":`...)
	b = jsontext.AppendString(b, d.DeviceID)
	b = append(b, `,"moduleId":`...)
	b = jsontext.AppendString(b, d.ModuleID)
	b = append(b, `,"method":`...)
	b = jsontext.AppendString(b, d.Method)
	b = append(b, `,"requestId":`...)
	b = jsontext.AppendString(b, d.RequestID)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(d.Status), 10)
	b = append(b, '}', '\n')
	l.buf = b
	if l.err == nil {
		_, l.err = l.w.Write(b)
	}
}

// Close flushes and closes the file.
func (l *Log) Close() error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = l.w.Flush()
	}
	if err := l.f.Close(); l.err == nil {
		l.err = err
	}
	return l.err
}

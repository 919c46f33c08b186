package cli

import (
	"bytes"
	"io"
	"sync"

	"github.com/dmctl/dmctl/internal/connstr"
)

// redactingWriter passes text to w line by line with every secret masked
// (connstr.Redact), so a token split across two writes is still caught.
// It is safe for concurrent use; Flush writes a final partial line.
type redactingWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func newRedactingWriter(w io.Writer) *redactingWriter { return &redactingWriter{w: w} }

func (r *redactingWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			break
		}
		line := connstr.Redact(string(r.buf[:i+1]))
		r.buf = r.buf[i+1:]
		if _, err := io.WriteString(r.w, line); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush writes whatever is buffered, redacted, with a final newline.
func (r *redactingWriter) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == 0 {
		return nil
	}
	line := connstr.Redact(string(r.buf)) + "\n"
	r.buf = nil
	_, err := io.WriteString(r.w, line)
	return err
}

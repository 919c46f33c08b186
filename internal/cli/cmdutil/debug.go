package cmdutil

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/dmctl/dmctl/internal/connstr"
)

// RedactingWriter passes text to w line by line with every secret masked
// (redactDebugLine), so a token split across two writes is still caught.
// It is safe for concurrent use; Flush writes a final partial line.
//
// Everything --debug prints goes through it: the hub client's request and
// response lines and azidentity's authentication events. On top of
// connstr.Redact (keys, SAS signatures, bearer tokens, client secrets and
// access tokens in form bodies and JSON, long base64 runs) it masks the
// value of credential headers whose scheme Redact does not know.
type RedactingWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func NewRedactingWriter(w io.Writer) *RedactingWriter { return &RedactingWriter{w: w} }

func (r *RedactingWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			break
		}
		line := redactDebugLine(string(r.buf[:i+1]))
		r.buf = r.buf[i+1:]
		if _, err := io.WriteString(r.w, line); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush writes whatever is buffered, redacted, with a final newline.
func (r *RedactingWriter) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == 0 {
		return nil
	}
	line := redactDebugLine(string(r.buf)) + "\n"
	r.buf = nil
	_, err := io.WriteString(r.w, line)
	return err
}

// credentialHeader finds "Authorization: value" (and the other headers that
// carry credentials) as a header dump or a JSON or Go map prints it; the
// value runs to the end of the header (',' '}' ']' a quote or the line's end).
var credentialHeader = regexp.MustCompile(`(?i)\b(authorization|proxy-authorization|cookie|set-cookie)(["']?[ \t]*[:=][ \t]*\[?["']?)([^,;}\]"'\r\n]+)`)

// redactDebugLine masks the secrets in one line of --debug output: what
// connstr.Redact finds, then the value of a credential header that Redact
// did not recognise (a scheme it does not know, a token without a scheme).
func redactDebugLine(s string) string {
	s = connstr.Redact(s)
	return credentialHeader.ReplaceAllStringFunc(s, func(m string) string {
		g := credentialHeader.FindStringSubmatch(m)
		v := strings.TrimSpace(g[3])
		for _, known := range []string{"REDACTED", "SharedAccessSignature ", "Bearer REDACTED", "Basic REDACTED"} {
			if strings.HasPrefix(v, known) {
				return m // masked by connstr.Redact already (a SAS token keeps sr, se and skn)
			}
		}
		return g[1] + g[2] + "REDACTED"
	})
}

package cmdutil

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/dmctl/dmctl/internal/output"
)

// Confirm asks question on stderr and reads a yes or no from stdin. It
// returns ErrPromptInterrupted as soon as ctx ends (Ctrl-C), without
// waiting for Enter and without taking a line typed later as the answer.
// End of input counts as no.
func Confirm(ctx context.Context, ios *output.IOStreams, question string) (bool, error) {
	_, _ = fmt.Fprintf(ios.ErrOut, "%s [y/N] ", question)
	type answer struct {
		line string
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		line, err := readLine(ios.In)
		ch <- answer{line, err}
	}()
	select {
	case <-ctx.Done():
		_, _ = fmt.Fprintln(ios.ErrOut)
		return false, ErrPromptInterrupted
	case a := <-ch:
		if a.err != nil && a.line == "" {
			_, _ = fmt.Fprintln(ios.ErrOut)
			return false, nil
		}
		switch strings.ToLower(strings.TrimSpace(a.line)) {
		case "y", "yes":
			return true, nil
		}
		return false, nil
	}
}

// readLine reads one line a byte at a time, so that nothing after it is
// taken from stdin (a later --devices-file - or payload still gets it).
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			return b.String(), err
		}
	}
}

// Package output renders results for people and scripts: the IO streams and
// their terminal facts, the printers selected by -o (table, wide, json,
// jsonl, name), and the summary. It never calls the network and is the only
// importer of tablewriter.
package output

import (
	"bytes"
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams are the three standard streams and what we know about them.
// stdout carries data only; everything else goes to ErrOut.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY  bool
	stdoutTTY bool
	stderrTTY bool
	noColor   bool
}

// System returns the process's streams, asking the terminal which of them
// are TTYs. lookupEnv (os.LookupEnv when nil) is read once, here, for NO_COLOR.
func System(lookupEnv func(string) (string, bool)) *IOStreams {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	_, noColor := lookupEnv("NO_COLOR")
	return &IOStreams{
		In:        os.Stdin,
		Out:       os.Stdout,
		ErrOut:    os.Stderr,
		stdinTTY:  isTerminal(os.Stdin),
		stdoutTTY: isTerminal(os.Stdout),
		stderrTTY: isTerminal(os.Stderr),
		noColor:   noColor,
	}
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Test returns streams over buffers, none of them a TTY, colour allowed when
// a TTY is switched on. Use the Set*TTY methods to pretend otherwise.
func Test() (s *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// IsStdinTTY reports whether stdin is a terminal.
func (s *IOStreams) IsStdinTTY() bool { return s.stdinTTY }

// IsStdoutTTY reports whether stdout is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }

// IsStderrTTY reports whether stderr is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// SetStdinTTY overrides the stdin TTY fact (tests).
func (s *IOStreams) SetStdinTTY(v bool) { s.stdinTTY = v }

// SetStdoutTTY overrides the stdout TTY fact (tests).
func (s *IOStreams) SetStdoutTTY(v bool) { s.stdoutTTY = v }

// SetStderrTTY overrides the stderr TTY fact (tests).
func (s *IOStreams) SetStderrTTY(v bool) { s.stderrTTY = v }

// SetNoColor records that NO_COLOR is set (tests).
func (s *IOStreams) SetNoColor(v bool) { s.noColor = v }

// ColorEnabled reports whether stdout may carry colour: a terminal, and
// NO_COLOR not set.
func (s *IOStreams) ColorEnabled() bool { return s.stdoutTTY && !s.noColor }

// ErrColorEnabled reports whether stderr may carry colour.
func (s *IOStreams) ErrColorEnabled() bool { return s.stderrTTY && !s.noColor }

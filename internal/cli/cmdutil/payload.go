package cmdutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

// ReadPayload reads --payload: JSON text, @FILE, or - for stdin, and checks
// that it is one JSON value of at most iothub.MaxPayloadBytes.
func ReadPayload(arg string, given bool, ios *output.IOStreams) (json.RawMessage, error) {
	if !given {
		return nil, nil
	}
	src := "--payload"
	var data []byte
	switch {
	case arg == "-":
		src = "--payload - (stdin)"
		if ios.IsStdinTTY() {
			return nil, FlagErrorf("%s: stdin is a terminal; pipe the payload in, or use --payload @FILE", src)
		}
		b, err := io.ReadAll(io.LimitReader(ios.In, iothub.MaxPayloadBytes+1))
		if err != nil {
			return nil, FlagErrorf("%s: cannot read it: %v", src, err)
		}
		data = b
	case strings.HasPrefix(arg, "@"):
		path := arg[1:]
		src = "--payload @" + path
		if path == "" {
			return nil, FlagErrorf("--payload @: give a file name after @")
		}
		b, err := readLimited(path, iothub.MaxPayloadBytes+1)
		if err != nil {
			return nil, FlagErrorf("%s: cannot read it: %v", src, err)
		}
		data = b
	default:
		data = []byte(arg)
	}
	if len(data) > iothub.MaxPayloadBytes {
		return nil, FlagErrorf("%s: the payload is larger than %d KB, the most IoT Hub accepts", src, iothub.MaxPayloadBytes/1024)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, FlagErrorf("%s: the payload is empty; give JSON such as {} or \"text\", or leave --payload out to send null", src)
	}
	if err := validJSON(trimmed); err != nil {
		return nil, FlagErrorf("%s: the payload is not valid JSON: %v", src, err)
	}
	return json.RawMessage(trimmed), nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return io.ReadAll(io.LimitReader(f, limit))
}

// validJSON checks that b is exactly one JSON value and says where it is not.
func validJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%s (at byte %d)", se.Error(), se.Offset)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("it ends too early")
		}
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value (extra text at byte %d)", dec.InputOffset()+1)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("extra text after the JSON value (at byte %d)", dec.InputOffset())
	}
	return nil
}

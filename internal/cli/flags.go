package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// enumValue is a string flag that only takes one of a fixed set of values.
type enumValue struct {
	p       *string
	options []string
}

func (e *enumValue) Set(v string) error {
	for _, o := range e.options {
		if v == o {
			*e.p = v
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(e.options, ", "))
}

func (e *enumValue) String() string { return *e.p }
func (e *enumValue) Type() string   { return "string" }

// stringEnumFlag defines a flag that validates, documents and completes its
// values in one place (gh's StringEnumFlag).
func stringEnumFlag(cmd *cobra.Command, flags *pflag.FlagSet, p *string, name, short, def string, options []string, usage string) *pflag.Flag {
	*p = def
	f := flags.VarPF(&enumValue{p: p, options: options}, name, short, fmt.Sprintf("%s: {%s}", usage, strings.Join(options, "|")))
	_ = cmd.RegisterFlagCompletionFunc(name, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return options, cobra.ShellCompDirectiveNoFileComp
	})
	return f
}

// durationValue is a duration flag where a bare integer means seconds
// ("45" is 45s). With wholeSeconds, fractions of a second are refused
// because IoT Hub takes whole seconds.
type durationValue struct {
	p            *time.Duration
	wholeSeconds bool
}

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	if d.wholeSeconds && v%time.Second != 0 {
		return fmt.Errorf("%q is not a whole number of seconds", s)
	}
	*d.p = v
	return nil
}

// String shows whole seconds as "30s" and zero as "0" (which pflag then
// leaves out of the help text).
func (d *durationValue) String() string { return seconds(*d.p) }

func (d *durationValue) Type() string { return "duration" }

// parseDuration reads "30s", "2m", "1m30s" or a bare number of seconds.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		if n > int64(24*time.Hour/time.Second) {
			return 0, fmt.Errorf("%q seconds is too long", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use e.g. 30s, 2m, or a number of seconds)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return v, nil
}

func durationFlag(flags *pflag.FlagSet, p *time.Duration, name string, def time.Duration, wholeSeconds bool, usage string) {
	*p = def
	flags.Var(&durationValue{p: p, wholeSeconds: wholeSeconds}, name, usage)
}

// seconds formats a duration for messages: "0", "45s", "300s", or Go's
// form for fractions ("1.5s").
func seconds(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

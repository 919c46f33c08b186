package cmdutil

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dmctl/dmctl/internal/iothub"
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

// StringEnumFlag defines a flag that validates, documents and completes its
// values in one place (gh's StringEnumFlag).
func StringEnumFlag(cmd *cobra.Command, flags *pflag.FlagSet, p *string, name, short, def string, options []string, usage string) *pflag.Flag {
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
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	if d.wholeSeconds && v%time.Second != 0 {
		return fmt.Errorf("%q is not a whole number of seconds", s)
	}
	*d.p = v
	return nil
}

// String shows the duration as the docs write it ("30s", "10m", "2h") and
// zero as "0" (which pflag then leaves out of the help text).
func (d *durationValue) String() string { return FormatDuration(*d.p) }

func (d *durationValue) Type() string { return "duration" }

// ParseDuration reads "30s", "2m", "1m30s" or a bare number of seconds.
func ParseDuration(s string) (time.Duration, error) {
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

func DurationFlag(flags *pflag.FlagSet, p *time.Duration, name string, def time.Duration, wholeSeconds bool, usage string) {
	*p = def
	flags.Var(&durationValue{p: p, wholeSeconds: wholeSeconds}, name, usage)
}

// FormatDuration writes a flag's duration as the docs and help write
// durations, losslessly and readable back by ParseDuration: "0", "45s",
// "10m", "1h", "1m30s", "24h", or Go's form below a second ("1.5s", "250ms").
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 0 || d%time.Second != 0:
		return d.String()
	}
	var b strings.Builder
	if h := d / time.Hour; h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "h")
	}
	if m := d % time.Hour / time.Minute; m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "m")
	}
	if s := d % time.Minute / time.Second; s > 0 {
		b.WriteString(strconv.FormatInt(int64(s), 10) + "s")
	}
	return b.String()
}

// CheckMethodTimeouts checks --timeout and --connect-timeout against the
// range IoT Hub accepts for a method call (in whole seconds, as the hub
// takes them), for invoke and jobs alike.
func CheckMethodTimeouts(response, connect time.Duration) error {
	secs := func(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) + "s" }
	if response < iothub.MinResponseTimeout || response > iothub.MaxResponseTimeout {
		return FlagErrorf("--timeout: %s is out of range: IoT Hub accepts %s to %s", secs(response), secs(iothub.MinResponseTimeout), secs(iothub.MaxResponseTimeout))
	}
	if connect > iothub.MaxConnectTimeout {
		return FlagErrorf("--connect-timeout: %s is out of range: IoT Hub accepts 0s to %s", secs(connect), secs(iothub.MaxConnectTimeout))
	}
	return nil
}

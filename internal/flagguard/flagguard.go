// Package flagguard holds the flag rules both binaries (dmctl and hubsim)
// apply to every command: an empty value is bad input, and a flag that
// takes one value may be given once.
package flagguard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The flag layer's two rules for every command (design.md §3, "Bad input"):
//
//   - an empty value (also one of only spaces) is bad input, never "not
//     given": `--connection-string "$UNSET"` must not fall back to
//     IOTHUB_CONNECTION_STRING, nor `--module ""` invoke the device;
//   - a flag that takes one value may be given once: the last of two values
//     never wins silently. Flags whose values accumulate (string arrays such
//     as --device, --devices-file, --wait-until) stay repeatable, and
//     on/off flags (--yes, --debug) may be repeated.
//
// Guard applies them once, to the whole command tree, by wrapping each
// flag's pflag.Value; no command checks them flag by flag.

// flagInputError is what a guarded Set returns. Its message names the flag
// and never holds the value (a value may be a secret).
type flagInputError struct{ msg string }

func (e *flagInputError) Error() string { return e.msg }

// guardedValue wraps a flag's value with the empty and repeat rules.
type guardedValue struct {
	pflag.Value
	flag *pflag.Flag
	sets int
}

// repeatable reports whether the flag accumulates values.
func (g *guardedValue) repeatable() bool {
	if _, ok := g.Value.(pflag.SliceValue); ok {
		return true
	}
	return g.Type() == "bool" || g.Type() == "count"
}

func (g *guardedValue) Set(s string) error {
	name := flagName(g.flag)
	if strings.TrimSpace(s) == "" {
		return &flagInputError{msg: fmt.Sprintf("%s: the value is empty; give a value or leave the flag out (an empty shell variable?)", name)}
	}
	if g.sets > 0 && !g.repeatable() {
		return &flagInputError{msg: fmt.Sprintf("%s is given more than once: it takes one value, so give it once", name)}
	}
	g.sets++
	if err := g.Value.Set(s); err != nil {
		return &flagInputError{msg: name + ": " + valueProblem(g.Type(), s, err, g.flag.Annotations[secretAnnotation] != nil)}
	}
	return nil
}

// Repeatable reports whether the flag accumulates values (and so may be
// given more than once).
func Repeatable(f *pflag.Flag) bool {
	if g, ok := f.Value.(*guardedValue); ok {
		return g.repeatable()
	}
	return (&guardedValue{Value: f.Value, flag: f}).repeatable()
}

// secretAnnotation marks a flag whose value is a secret: messages about it
// never quote the value.
const secretAnnotation = "flagguard_secret"

// MarkSecret marks the named flag of fs as holding a secret.
func MarkSecret(fs *pflag.FlagSet, name string) {
	_ = fs.SetAnnotation(name, secretAnnotation, []string{"true"})
}

// valueProblem says what is wrong with a value the flag's own Set refused.
// pflag's typed values answer with strconv's wording; ours already name the
// problem.
func valueProblem(typ, s string, err error, secret bool) string {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		shown := strconv.Quote(s)
		if secret {
			shown = "the value"
		}
		switch {
		case typ == "bool":
			return shown + " is not true or false"
		case errors.Is(ne.Err, strconv.ErrRange):
			return shown + " is out of range"
		}
		return shown + " is not a whole number"
	}
	if secret {
		return "the value is not valid"
	}
	return err.Error()
}

// flagName is how messages name a flag: --name, or -o/--output.
func flagName(f *pflag.Flag) string {
	if f.Shorthand != "" {
		return "-" + f.Shorthand + "/--" + f.Name
	}
	return "--" + f.Name
}

// Guard wraps every flag of cmd and its subcommands (each *pflag.Flag
// once: persistent flags are shared by pointer with the children).
func Guard(cmd *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	var walk func(c *cobra.Command)
	wrap := func(f *pflag.Flag) {
		if seen[f] {
			return
		}
		seen[f] = true
		if _, done := f.Value.(*guardedValue); done {
			return
		}
		f.Value = &guardedValue{Value: f.Value, flag: f}
	}
	walk = func(c *cobra.Command) {
		c.PersistentFlags().VisitAll(wrap)
		c.LocalNonPersistentFlags().VisitAll(wrap)
		c.Flags().VisitAll(wrap)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd)
}

// Describe turns pflag's and cobra's parse errors into a message that names
// the flag and never quotes a value (pflag's own message does: `invalid
// argument "<value>" for "--flag" flag`). ok is false for other errors.
func Describe(err error) (msg string, ok bool) {
	var fe *flagInputError
	if errors.As(err, &fe) {
		return fe.msg, true
	}
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) {
		name := flagName(ive.GetFlag())
		secret := ive.GetFlag().Annotations[secretAnnotation] != nil
		return name + ": " + valueProblem(ive.GetFlag().Value.Type(), ive.GetValue(), ive.Unwrap(), secret), true
	}
	return "", false
}

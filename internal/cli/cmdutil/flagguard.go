package cmdutil

import (
	"errors"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dmctl/dmctl/internal/flagguard"
)

// GuardFlags applies the flag rules (internal/flagguard: an empty value is
// bad input; a one-value flag is given once) to the whole command tree.
func GuardFlags(cmd *cobra.Command) { flagguard.Guard(cmd) }

// MarkSecret marks the named flag of fs as holding a secret: messages about
// it never quote the value.
func MarkSecret(fs *pflag.FlagSet, name string) { flagguard.MarkSecret(fs, name) }

// Repeatable reports whether the flag accumulates values (and so may be
// given more than once).
func Repeatable(f *pflag.Flag) bool { return flagguard.Repeatable(f) }

// FlagParseError turns pflag's and cobra's parse errors into usage errors
// whose message names the flag and never quotes a value.
func FlagParseError(err error) error {
	if msg, ok := flagguard.Describe(err); ok {
		return FlagErrorWrap(errors.New(msg))
	}
	return FlagErrorWrap(err)
}

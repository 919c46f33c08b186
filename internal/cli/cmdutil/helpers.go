package cmdutil

import (
	"errors"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// ErrCancelled is returned when the user answers no to the confirmation
// prompt; nothing was sent.
var ErrCancelled = errors.New("cancelled: nothing was sent")

// IsBrokenPipe reports whether err is a write to a closed pipe.
func IsBrokenPipe(err error) bool {
	return err != nil && errors.Is(err, syscall.EPIPE)
}

func Plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ShortText cuts s to n characters for a message.
func ShortText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Heredoc removes the common indentation of a raw string literal and its
// first newline, so help text can be indented like the code around it.
func Heredoc(s string) string {
	lines := strings.Split(strings.TrimPrefix(s, "\n"), "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, "\t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	var b strings.Builder
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		l = strings.TrimRight(l, " \t")
		if i == len(lines)-1 && l == "" {
			break
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// Example formats an Example block: Heredoc, then indented by two spaces as
// cobra's help shows examples.
func Example(s string) string {
	lines := strings.Split(strings.TrimRight(Heredoc(s), "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// NoArgs refuses positional arguments as a usage error.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return FlagErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// GroupCommand makes a command that only holds subcommands print its help
// when run alone and refuse an unknown subcommand as a usage error (exit 2)
// instead of printing help and exiting 0.
func GroupCommand(cmd *cobra.Command) {
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return FlagErrorf("unknown command %q for %q; see '%s --help'", args[0], cmd.CommandPath(), cmd.CommandPath())
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

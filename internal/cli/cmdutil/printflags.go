package cmdutil

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/output"
)

// PrintFlags are the output formats a command prints and its default (the
// one place -o/--output is read, as cli-runtime's PrintFlags are kubectl's).
type PrintFlags struct {
	// Formats are the formats the command prints; empty means every one.
	Formats []output.Format
	// Default is used when no format was chosen, or when the one DMCTL_OUTPUT
	// or a profile chose is not among Formats.
	Default output.Format
}

// ResultFormats are the formats of commands that print results or jobs
// (every format, table by default).
var ResultFormats = PrintFlags{Default: output.FormatTable}

// TextFormats are the formats of commands that print one view: text,
// JSON, JSON lines and names (table means text).
var TextFormats = PrintFlags{Formats: []output.Format{output.FormatTable, output.FormatJSON, output.FormatJSONL, output.FormatName}, Default: output.FormatTable}

func (p PrintFlags) allows(f output.Format) bool {
	if len(p.Formats) == 0 {
		return true
	}
	for _, x := range p.Formats {
		if x == f {
			return true
		}
	}
	return false
}

// Format is the format cmd prints in: -o given on the command line (which
// must be one of Formats: else a usage error naming them), else the one
// DMCTL_OUTPUT or the profile chose when the command prints it, else
// Default.
func (p PrintFlags) Format(cmd *cobra.Command, f *Factory) (output.Format, error) {
	chosen, err := output.ParseFormat(f.Global.Output)
	if err != nil {
		return "", FlagErrorf("%s: %v", f.Global.OutputSource, err)
	}
	if cmd.Flags().Changed("output") {
		if !p.allows(chosen) {
			names := make([]string, len(p.Formats))
			for i, x := range p.Formats {
				names[i] = string(x)
			}
			return "", FlagErrorf("-o/--output: %s prints %s (got %q)", cmd.CommandPath(), strings.Join(names, ", "), chosen)
		}
		return chosen, nil
	}
	if f.outputChosenElsewhere() && p.allows(chosen) {
		return chosen, nil
	}
	return p.Default, nil
}

// outputChosenElsewhere reports whether DMCTL_OUTPUT or the applied profile
// set -o/--output.
func (f *Factory) outputChosenElsewhere() bool {
	if g := f.Global; g.Applied != nil && g.Applied.Profile.Output != "" {
		return true
	}
	if f.LookupEnv == nil {
		return false
	}
	v, ok := f.LookupEnv(EnvOutput)
	return ok && strings.TrimSpace(v) != ""
}

package cli

import "github.com/spf13/cobra"

// isConfigCommand reports whether cmd is `dmctl config` or one of its
// subcommands: those manage profiles and never apply one.
func isConfigCommand(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Name() == "config" && c.Parent() != nil && c.Parent().Parent() == nil {
			return true
		}
	}
	return false
}

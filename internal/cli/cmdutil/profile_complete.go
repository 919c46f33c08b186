package cmdutil

import (
	"github.com/spf13/cobra"
)

// CompleteProfileNames completes a profile name with the saved ones.
func CompleteProfileNames(f *Factory) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		c, _, err := f.LoadConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return c.Names(), cobra.ShellCompDirectiveNoFileComp
	}
}

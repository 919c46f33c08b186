package cli

import (
	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/apply"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/config"
	"github.com/dmctl/dmctl/internal/cli/doctor"
	"github.com/dmctl/dmctl/internal/cli/invoke"
	"github.com/dmctl/dmctl/internal/cli/jobs"
	"github.com/dmctl/dmctl/internal/cli/journal"
	"github.com/dmctl/dmctl/internal/cli/twin"
	"github.com/dmctl/dmctl/internal/cli/version"
)

// NewCmdRoot returns the dmctl command tree: cmdutil's root with every
// command, the help topics and --version.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.NewRootCmd(f)
	var showVersion bool
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if showVersion {
			format, err := cmdutil.TextFormats.Format(cmd, f)
			if err != nil {
				return err
			}
			return version.Print(&version.Options{IO: f.IOStreams, Output: format})
		}
		return cmd.Help()
	}
	cmd.Flags().BoolVar(&showVersion, "version", false, "Show dmctl's version (as dmctl version does)")

	cmd.AddCommand(invoke.NewCmdInvoke(f, nil))
	cmd.AddCommand(apply.NewCmdApply(f, nil))
	cmd.AddCommand(jobs.NewCmdJobs(f))
	cmd.AddCommand(twin.NewCmdTwin(f))
	cmd.AddCommand(journal.NewCmdJournal(f))
	cmd.AddCommand(version.NewCmdVersion(f, nil))
	cmd.AddCommand(config.NewCmdConfig(f))
	cmd.AddCommand(doctor.NewCmdDoctor(f, nil))
	for _, t := range helpTopics {
		cmd.AddCommand(newHelpTopic(t.name, t.short, t.long))
	}
	cmdutil.AddDynamicCompletions(cmd, f)
	cmdutil.GuardFlags(cmd)
	return cmd
}

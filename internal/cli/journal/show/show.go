// Package show is `dmctl journal show`.
package show

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/output"
)

// Options are `dmctl journal show`'s inputs.
type Options struct {
	IO     *output.IOStreams
	Output output.Format
	Path   string
}

// NewCmdShow returns `dmctl journal show`.
func NewCmdShow(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IOStreams}
	return &cobra.Command{
		Use:   "show FILE",
		Short: "Print the final result of every target a journal records",
		Long: cmdutil.Heredoc(`
			Print the results a journal (dmctl invoke --journal FILE) holds, in dmctl
			invoke's result shape and formats (-o table, wide, json, jsonl, name), with
			the summary on stderr: for each target the last word of every run of the
			rollout (the first run and each --resume), so results that reached only the
			journal (a closed stdout, a run in the background) are not lost.

			A target the run never started is skipped; one whose call was in flight
			when dmctl was killed is unknown. A target the run had not read yet when it
			was killed (the rest of a --query, say) is not in the journal: dmctl invoke
			--resume FILE runs it. Nothing is sent to the hub.

			Exit codes are those of the rollout: 0 when every target succeeded, 4 when
			some did not (skipped included), 3 when the hub refused every one.
		`),
		Example: cmdutil.Example(`
			$ dmctl journal show fw.journal
			$ dmctl journal show fw.journal -o jsonl | jq -c 'select(.outcome != "succeeded")'
		`),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.FlagErrorf("journal show needs exactly one journal FILE argument (got %d), e.g. dmctl journal show fw.journal", len(args))
			}
			return nil
		},
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveDefault
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := cmdutil.ResultFormats.Format(cmd, f)
			if err != nil {
				return err
			}
			opts.Output, opts.Path = format, args[0]
			if runF != nil {
				return runF(opts)
			}
			return journalShowRun(opts)
		},
	}
}

func journalShowRun(opts *Options) error {
	printer, err := output.NewResultPrinter(opts.Output, opts.IO)
	if err != nil {
		return cmdutil.FlagErrorf("-o/--output: %v", err)
	}
	tally := fleet.NewTally()
	problems := output.NewProblems(output.MaxProblemLines)
	var writeErr error
	st, err := fleet.WalkJournalResults(opts.Path, func(r fleet.Result) error {
		tally.Count(r)
		problems.Add(r)
		if writeErr == nil {
			writeErr = printer.Add(r)
		}
		return nil
	})
	if err != nil {
		var pe *os.PathError
		var je *fleet.JournalError
		switch {
		case errors.As(err, &pe):
			return cmdutil.FlagErrorf("FILE %s: cannot read it: %v", opts.Path, pe.Err)
		case errors.As(err, &je):
			return cmdutil.FlagErrorf("FILE %v", err)
		}
		return err
	}
	if writeErr == nil {
		writeErr = printer.Flush()
	}
	if writeErr != nil {
		return fmt.Errorf("write results: %w", writeErr)
	}
	errOut, color := opts.IO.ErrOut, opts.IO.ErrColorEnabled()
	if err := problems.Write(errOut, color); err != nil {
		return err
	}
	sum := tally.Summary()
	_, _ = fmt.Fprintf(errOut, "journal %s: %q started %s\n", opts.Path, st.Header.Method, st.Header.StartTime.UTC().Format("2006-01-02T15:04:05Z"))
	if err := output.WriteTotals(errOut, "", sum, color); err != nil {
		return err
	}
	switch {
	case sum.Targets == 0:
		_, _ = fmt.Fprintln(errOut, "note: the journal records no target yet")
	case !sum.AllSucceeded():
		return &cmdutil.TargetsError{Summary: sum}
	}
	return nil
}

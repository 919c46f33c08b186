package planfile

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/fleet"
)

// Planned is what dmctl apply hands invoke's run: the plan file's targets,
// in order, and the check of their twins against the plan (nil with
// --allow-drift). Its methods are safe on nil (a run of dmctl invoke).
type Planned struct {
	Path    string // absolute, as journals record it
	SHA256  string // of the file: a journal resumes only the same plan
	Targets []fleet.Target
	Drift   *fleet.DriftCheck
}

// PlannedTargets are the targets, nil for no plan.
func (p *Planned) PlannedTargets() []fleet.Target {
	if p == nil {
		return nil
	}
	return p.Targets
}

// DriftCheck is the drift check, nil for none.
func (p *Planned) DriftCheck() *fleet.DriftCheck {
	if p == nil {
		return nil
	}
	return p.Drift
}

// ResumeCommand is the command that continues the run's journal.
func (p *Planned) ResumeCommand(journal string) string {
	if p == nil {
		return "dmctl invoke --resume " + journal
	}
	return "dmctl apply " + p.Path + " --resume " + journal
}

// CheckResume checks that a journal (resumed with --resume journal) and
// the run agree: a journal of dmctl apply (plan and its digest recorded)
// continues only with the same plan, a journal of dmctl invoke only with
// invoke.
func (p *Planned) CheckResume(journal, plan, planSHA256 string) error {
	switch {
	case p == nil:
		return cmdutil.FlagErrorf("--resume %s: the journal is of dmctl apply %s; continue it with dmctl apply %s --resume %s", journal, plan, plan, journal)
	case plan == "":
		return cmdutil.FlagErrorf("--resume %s: the journal is of a dmctl invoke run, not of a plan; continue it with dmctl invoke --resume %s", journal, journal)
	case planSHA256 != p.SHA256:
		return cmdutil.FlagErrorf("--resume %s: the journal is of plan %s as it was then, and %s differs from it; a plan is not edited between runs (make a new plan and start a new journal)", journal, plan, p.Path)
	}
	return nil
}

// CheckFlags checks invoke's --plan (a file in an existing directory)
// against its other flags and the payload, and records the run's options.
func CheckFlags(flags *pflag.FlagSet, payload []byte) (Run, error) {
	path, _ := flags.GetString("plan")
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return Run{}, cmdutil.FlagErrorf("--plan %s: it is a directory; name a file, e.g. %s", path, filepath.Join(path, "rollout.plan"))
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return Run{}, cmdutil.FlagErrorf("--plan %s: the directory %s does not exist", path, filepath.Dir(path))
	}
	for _, name := range []string{"dry-run", "journal", "resume", "via"} {
		if flags.Changed(name) {
			return Run{}, cmdutil.FlagErrorf("--plan writes a plan and sends nothing; --%s belongs to the run: give it to dmctl apply FILE (or leave it out)", name)
		}
	}
	if err := CheckPayload(payload); err != nil {
		return Run{}, err
	}
	return RunFromFlags(flags)
}

// Write reads the twins' versions of targets, writes p to path with them
// (Create) and its summary to stderr; dupes is how many duplicate targets
// the resolution removed.
func Write(ctx context.Context, stderr io.Writer, path string, p *Plan, targets []fleet.Target, dupes int, versions *fleet.VersionReader) error {
	p.Format = FormatVersion
	if err := Create(ctx, path, p, targets, versions); err != nil {
		return err
	}
	if dupes > 0 {
		_, _ = fmt.Fprintf(stderr, "note: %d duplicate %s removed\n", dupes, cmdutil.Plural(dupes, "target", "targets"))
	}
	if len(targets) == 0 {
		_, _ = fmt.Fprintln(stderr, "note: no targets: the plan is empty (applying it sends nothing)")
	}
	return WriteSummary(stderr, p, path)
}

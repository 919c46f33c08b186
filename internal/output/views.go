package output

import (
	"fmt"
	"io"
	"strings"

	"github.com/dmctl/dmctl/internal/fleet"
)

// The public JSON shapes of dmctl's commands other than results and jobs
// (fleet.Result is also the journal's format; JobView is in jobs.go). Each
// is a view: its JSON tags are public API (additive changes only), and it
// knows its text form, so commands print through PrintView and never
// format stdout by hand.

// View is a printable object: JSON as its tags say, text for a person.
type View interface {
	WriteText(w io.Writer) error
}

// Namer is a view with a -o name form.
type Namer interface {
	WriteNames(w io.Writer) error
}

// PrintView writes v in format: json (indented), jsonl (one line), name
// (for a Namer), else its text.
func PrintView(w io.Writer, format Format, v View) error {
	switch format {
	case FormatJSON, FormatJSONL:
		return WriteJSON(w, v, format == FormatJSON)
	case FormatName:
		if n, ok := v.(Namer); ok {
			return n.WriteNames(w)
		}
	}
	return v.WriteText(w)
}

// ProfileView is the public JSON shape of a saved profile (dmctl config
// get-profile and list): its connection string is redacted.
type ProfileView struct {
	Name             string `json:"name"`
	Current          bool   `json:"current"`
	Hub              string `json:"hub,omitempty"`
	Auth             string `json:"auth,omitempty"`
	CAFile           string `json:"caFile,omitempty"`
	Output           string `json:"output,omitempty"`
	ConnectionString string `json:"connectionString,omitempty"`
}

// WriteText writes "key: value" lines for the fields that are set.
func (v ProfileView) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\ncurrent: %t\n", v.Name, v.Current)
	for _, kv := range [][2]string{{"hub", v.Hub}, {"auth", v.Auth}, {"caFile", v.CAFile}, {"output", v.Output}, {"connectionString", v.ConnectionString}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteNames writes the profile's name.
func (v ProfileView) WriteNames(w io.Writer) error {
	_, err := fmt.Fprintln(w, v.Name)
	return err
}

// ProfileList is dmctl config list: a table with * marking the current one.
type ProfileList []ProfileView

// WriteText writes the table (nothing for no profiles).
func (l ProfileList) WriteText(w io.Writer) error {
	if len(l) == 0 {
		return nil
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	rows := make([][]string, 0, len(l))
	for _, v := range l {
		mark := ""
		if v.Current {
			mark = "*"
		}
		what := v.Hub
		if what == "" && v.ConnectionString != "" {
			what = "(connection string)"
		}
		rows = append(rows, []string{mark, v.Name, dash(what), dash(v.Auth)})
	}
	return writeTable(w, []string{"CURRENT", "NAME", "HUB", "AUTH"}, rows)
}

// WriteNames writes one name a line.
func (l ProfileList) WriteNames(w io.Writer) error {
	for _, v := range l {
		if err := v.WriteNames(w); err != nil {
			return err
		}
	}
	return nil
}

// VersionView is dmctl version.
type VersionView struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// WriteText writes one line.
func (v VersionView) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "dmctl version %s (commit %s, built %s, %s %s)\n", v.Version, v.Commit, v.Date, v.GoVersion, v.Platform)
	return err
}

// WriteNames writes the version alone.
func (v VersionView) WriteNames(w io.Writer) error {
	_, err := fmt.Fprintln(w, v.Version)
	return err
}

// DoctorCheck is one check of dmctl doctor.
type DoctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Hint   string `json:"hint,omitempty"`
}

// DoctorReport is dmctl doctor's report.
type DoctorReport struct {
	OK     bool          `json:"ok"`
	Checks []DoctorCheck `json:"checks"`
}

// WriteText writes a line per check, and its hint under it.
func (r DoctorReport) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-4s  %-11s %s\n", strings.ToUpper(c.Status), c.Name, c.Detail)
		if c.Hint != "" {
			fmt.Fprintf(&b, "      %-11s hint: %s\n", "", c.Hint)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteTargetNames writes one target a line (device or device/module), as
// next yields them until it says no more.
func WriteTargetNames(w io.Writer, next func() (fleet.Target, bool)) error {
	var b strings.Builder
	for t, ok := next(); ok; t, ok = next() {
		b.WriteString(t.String())
		b.WriteByte('\n')
		if b.Len() > 64<<10 {
			if _, err := io.WriteString(w, b.String()); err != nil {
				return err
			}
			b.Reset()
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWalkJournalResults: the last word on each target wins across runs:
// a skipped target later run, a dispatched one never answered (unknown),
// a result replaced by a resumed run's.
func TestWalkJournalResults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	lines := []string{
		`{"dmctlJournal":1,"method":"reboot","startTime":"2026-03-04T05:06:07Z"}`,
		`{"event":"dispatched","deviceId":"a","time":"2026-03-04T05:06:07Z"}`,
		`{"deviceId":"a","method":"reboot","outcome":"succeeded","status":200,"attempts":1,"startTime":"2026-03-04T05:06:07Z","durationMs":1}`,
		`{"deviceId":"b","method":"reboot","outcome":"skipped","attempts":0,"startTime":"2026-03-04T05:06:07Z","durationMs":0}`,
		`{"event":"dispatched","deviceId":"c","time":"2026-03-04T05:06:08Z"}`,
		``,
		`{"event":"dispatched","deviceId":"b","time":"2026-03-04T05:07:07Z"}`,
		`{"deviceId":"b","method":"reboot","outcome":"failed","status":500,"attempts":1,"startTime":"2026-03-04T05:07:07Z","durationMs":1}`,
		`{"event":"dispatched","deviceId":"d","moduleId":"m","time":"2026-03-04T05:07:07Z"}`,
		`{"deviceId":"d","moduleId":"m","method":"reboot","outcome":"offline","attempts":1,"startTime":"2026-03-04T05:07:07Z","durationMs":1}`,
	}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	got := map[string]Outcome{}
	var order []string
	st, err := WalkJournalResults(path, func(r Result) error {
		got[r.Target().String()] = r.Outcome
		order = append(order, r.Target().String())
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]Outcome{"a": OutcomeSucceeded, "b": OutcomeFailed, "c": OutcomeUnknown, "d/m": OutcomeOffline}, got)
	assert.Equal(t, []string{"a", "c", "b", "d/m"}, order, "in the order of each target's last line")
	assert.Equal(t, "reboot", st.Header.Method)

	_, err = WalkJournalResults(filepath.Join(t.TempDir(), "none"), func(Result) error { return nil })
	assert.Error(t, err)
}

package fleet

import (
	"errors"
	"strings"
	"testing"

	"github.com/dmctl/dmctl/internal/iothub"
)

// FuzzReadTargets: a targets file never panics the reader; every target it
// accepts has valid ids, and every refusal is an *InputError with a line.
func FuzzReadTargets(f *testing.F) {
	f.Add("d1\nd2/m\n# c\n\n", "")
	f.Add(`{"deviceId":"a","moduleId":"b","payload":{"x":[1]}}`+"\n{\"dmctlJournal\":1}\n", "m")
	f.Add("a b\n", "")
	f.Add("\xef\xbb\xbfx/\n", "z")
	f.Fuzz(func(t *testing.T, text, module string) {
		if module != "" && iothub.ValidateModuleID(module) != nil {
			return
		}
		err := ReadTargets(strings.NewReader(text), "--devices-file f", module, func(tg Target) error {
			if iothub.ValidateDeviceID(tg.DeviceID) != nil {
				t.Fatalf("accepted an invalid device id %q", tg.DeviceID)
			}
			if tg.ModuleID != "" && iothub.ValidateModuleID(tg.ModuleID) != nil {
				t.Fatalf("accepted an invalid module id %q", tg.ModuleID)
			}
			if module != "" && tg.ModuleID != module {
				t.Fatalf("module %q, want %q", tg.ModuleID, module)
			}
			return nil
		})
		var ie *InputError
		if err != nil && !errors.As(err, &ie) {
			t.Fatalf("not an InputError: %v", err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "--devices-file f: ") {
			t.Fatalf("the error does not name the input: %v", err)
		}
	})
}

// FuzzReadJournal: any file given to --resume is read or refused with a
// *JournalError, never a panic.
func FuzzReadJournal(f *testing.F) {
	f.Add(`{"dmctlJournal":1,"method":"m"}` + "\n" + `{"event":"dispatched","deviceId":"a","time":"2026-01-01T00:00:00Z"}` + "\n" + `{"deviceId":"a","outcome":"unknown"}`)
	f.Add(`{"dmctlJournal":1}` + "\n" + `{"deviceId":"b","outcome":"succeeded","status":200}` + "\n" + `{"deviceId":"b","outcome":"skip`)
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, text string) {
		st, err := readJournal(strings.NewReader(text), "j", nil)
		if err != nil {
			var je *JournalError
			if !errors.As(err, &je) {
				t.Fatalf("not a JournalError: %v", err)
			}
			return
		}
		for _, u := range st.Unknown {
			if st.Final.Has(u.Target()) {
				t.Fatalf("%s is both final and unknown", u.Target())
			}
			if st.Pending(u.Target(), false) {
				t.Fatalf("unknown %s would be run again without --idempotent", u.Target())
			}
		}
	})
}

package invoke

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

func TestInvokeWaitFlagsToOptions(t *testing.T) {
	te := newTestEnv(t, nil)
	o, _, err := parseInvoke(t, te, "firmwareUpdate", "--device", "d", "--wait", "Firmware",
		"--wait-until", "properties.reported.fw.version == '2.0'", "--fail-if", "properties.reported.fw.error != null",
		"--fail-if", "connectionState == Disconnected", "--wait-timeout", "90s")
	require.NoError(t, err)
	require.NotNil(t, o.Wait)
	assert.Equal(t, fleet.PresetFirmware, o.Wait.Preset)
	require.Len(t, o.Wait.Until, 1)
	assert.Equal(t, "properties.reported.fw.version", o.Wait.Until[0].PathText())
	assert.Len(t, o.Wait.FailIf, 2)
	assert.Equal(t, 90*time.Second, o.Wait.Timeout)
	assert.Equal(t, ViaDirect, o.Via)

	te = newTestEnv(t, nil)
	o, _, err = parseInvoke(t, te, "reboot", "--device", "d", "--wait", "reboot")
	require.NoError(t, err)
	assert.Equal(t, DefaultWaitTimeout, o.Wait.Timeout)

	te = newTestEnv(t, nil)
	o, _, err = parseInvoke(t, te, "reboot", "--device", "d")
	require.NoError(t, err)
	assert.Nil(t, o.Wait, "no wait unless asked")

	te = newTestEnv(t, nil)
	o, _, err = parseInvoke(t, te, "reboot", "--query", "SELECT deviceId FROM devices WHERE tags.site = 'a'", "--via", "job", "--timeout", "60", "--connect-timeout", "30")
	require.NoError(t, err)
	assert.Equal(t, ViaJob, o.Via)
}

func TestInvokeWaitFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown preset", []string{"m", "--device", "d", "--wait", "reset"}, `--wait: "reset" is not a preset: use reboot or firmware, or --wait-until COND for any other outcome`},
		{"bad condition", []string{"m", "--device", "d", "--wait-until", "reported.x == 1"}, `--wait-until: "reported.x == 1": the path must start at the twin's top level, e.g. properties.reported.reported.x or connectionState`},
		{"bad fail-if", []string{"m", "--device", "d", "--wait", "reboot", "--fail-if", "properties.reported.x ~ 1"}, `--fail-if: "properties.reported.x ~ 1": after the path expected ==, !=, in or not in`},
		{"fail-if alone", []string{"m", "--device", "d", "--fail-if", "properties.reported.x == 1"}, "--fail-if needs something to wait for: add --wait reboot|firmware or --wait-until COND"},
		{"timeout alone", []string{"m", "--device", "d", "--wait-timeout", "1m"}, "--wait-timeout needs something to wait for: add --wait reboot|firmware or --wait-until COND"},
		{"timeout too short", []string{"m", "--device", "d", "--wait", "reboot", "--wait-timeout", "100ms"}, "--wait-timeout: 100ms is out of range: use 1s to 24h0m0s"},
		{"bad via", []string{"m", "--device", "d", "--via", "bus"}, `--via: "bus" is not one of direct, job`},
		{"via job and rate", []string{"m", "--device", "d", "--via", "job", "--rate", "5"}, "--via job cannot be combined with --rate: the hub paces a job itself, at its jobs throttle (S1: 10 devices/s)"},
		{"via job and module", []string{"m", "--device", "d", "--via", "job", "--module", "x"}, "--via job cannot be combined with --module: IoT Hub jobs invoke device methods, not module methods"},
		{"via job and journal", []string{"m", "--device", "d", "--via", "job", "--journal", "j"}, "--via job cannot be combined with --journal: the hub keeps a job's per-device records (dmctl jobs results JOB-ID reads them again)"},
		{"via job and modules query", []string{"m", "--query", "SELECT deviceId FROM devices.modules", "--via", "job"}, "--via job: --query selects modules (FROM devices.modules); IoT Hub jobs invoke device methods only"},
		{"via job and group by", []string{"m", "--query", "SELECT deviceId FROM devices GROUP BY deviceId", "--via", "job"}, `--via job: a job selects devices with a WHERE clause only; --query "SELECT deviceId FROM devices GROUP BY deviceId" uses TOP, GROUP BY or ORDER BY`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			o, code, err := parseInvoke(t, te, tt.args...)
			require.Error(t, err)
			assert.Nil(t, o)
			assert.Equal(t, tt.want, err.Error())
			assert.Equal(t, cmdutil.ExitUsage, code)
		})
	}
}

func TestJobConditionOf(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT deviceId FROM devices":                                     "*",
		"select * from devices where tags.site = 'a'":                      "tags.site = 'a'",
		"SELECT deviceId FROM devices\n WHERE tags.x IN ['a','b'] AND a=1": "tags.x IN ['a','b'] AND a=1",
	} {
		got, err := jobConditionOf(sql)
		require.NoError(t, err, sql)
		assert.Equal(t, want, got, sql)
	}
}

func TestInvokeJobCondition(t *testing.T) {
	te := newTestEnv(t, nil)
	o := fleetOpts(te, output.FormatJSON)
	o.Targets = []fleet.Target{{DeviceID: "a"}, {DeviceID: "b'c"}}
	o.DevicesFiles = []string{writeFile(t, "ids.txt", "d\na\n")}
	o.QuerySQL = "SELECT deviceId FROM devices WHERE tags.site = 'x'"
	cond, ids, err := o.jobCondition()
	require.NoError(t, err)
	assert.Equal(t, 3, ids, "duplicates removed")
	assert.Equal(t, `deviceId IN ['a', "b'c", 'd'] OR (tags.site = 'x')`, cond)

	o.QuerySQL = "SELECT deviceId FROM devices"
	cond, _, err = o.jobCondition()
	require.NoError(t, err)
	assert.Equal(t, "*", cond, "every device covers the ids too")

	o.QuerySQL = ""
	var many []string
	for i := range 1000 {
		many = append(many, fmt.Sprintf("device-%05d", i))
	}
	o.DevicesFiles = []string{writeFile(t, "many.txt", strings.Join(many, "\n"))}
	_, _, err = o.jobCondition()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "IoT Hub accepts queries of at most 8192 characters")
	assert.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
}

// twinsByScript is a TwinReader whose GetTwin answers from a script of
// documents per device (the last one repeats).
type twinsByScript map[string][]string

func (s twinsByScript) Query(string, iothub.QueryOptions) fleet.Pager { return &pager{} }
func (s twinsByScript) GetTwin(_ context.Context, id, _ string) (json.RawMessage, error) {
	docs := s[id]
	doc := docs[0]
	if len(docs) > 1 {
		s[id] = docs[1:]
	}
	return json.RawMessage(doc), nil
}

func TestInvokeRunWaitFirmware(t *testing.T) {
	te := newTestEnv(t, nil)
	o := fleetOpts(te, output.FormatJSON)
	o.Method = "firmwareUpdate"
	o.Targets = []fleet.Target{{DeviceID: "d1"}}
	o.Wait = &fleet.Wait{Preset: fleet.PresetFirmware, Timeout: time.Minute}
	fw := func(s string) string {
		return `{"deviceId":"d1","properties":{"reported":{"iothubDM":{"firmwareUpdate":{"status":"` + s + `","error":{"code":"E1","message":"bad image"}}}}}}`
	}
	o.Twins = func() (fleet.TwinReader, error) {
		return twinsByScript{"d1": {fw("downloading"), fw("applying"), fw("applyFailed")}}, nil
	}
	err := invokeRun(context.Background(), o)
	require.Error(t, err)
	assert.Equal(t, cmdutil.ExitTargets, cmdutil.ExitCode(err))
	var rs []map[string]any
	require.NoError(t, json.Unmarshal(te.Out.Bytes(), &rs), te.Out.String())
	require.Len(t, rs, 1)
	assert.Equal(t, "waitFailed", rs[0]["outcome"])
	assert.Equal(t, float64(200), rs[0]["status"], "the method's answer is kept")
	assert.Equal(t, map[string]any{
		"properties.reported.iothubDM.firmwareUpdate.status": "applyFailed",
		"properties.reported.iothubDM.firmwareUpdate.error":  map[string]any{"code": "E1", "message": "bad image"},
	}, rs[0]["waitValue"])
	assert.Contains(t, te.ErrOut.String(), `d1: waitFailed: the method succeeded, then the firmware update failed: status "applyFailed"`)
	assert.Contains(t, te.ErrOut.String(), "1 waitFailed")
	assert.Len(t, te.Inv.Calls, 1, "the method is sent once")
}

func TestInvokeViaJobDryRun(t *testing.T) {
	te := newTestEnv(t, nil)
	var ids []string
	for i := 1; i <= 25; i++ {
		ids = append(ids, fmt.Sprintf("sim-%03d", i))
	}
	withQuery(te, &pager{pages: [][]string{ids}})
	code := te.Run("invoke", "reboot", "--query", "SELECT deviceId FROM devices WHERE tags.x = 1", "--via", "job", "--dry-run", "--tier", "S1")
	assert.Equal(t, 0, code, te.ErrOut.String())
	assert.Empty(t, te.Inv.Calls, "a dry run sends nothing")
	assert.Contains(t, te.Out.String(), "Dry run: would invoke \"reboot\" on 25 targets on hub hub.example.test (nothing was sent).\n")
	assert.Contains(t, te.Out.String(), "Estimated duration: 2.5s at 10.0 calls/s (--via job: the jobs throttle of tier S1)\n")
}

func TestInvokeResumeKeepsTheWait(t *testing.T) {
	te := newTestEnv(t, nil)
	journal := filepath.Join(t.TempDir(), "fw.journal")
	o, _, err := parseInvoke(t, te, "firmwareUpdate", "--device", "d1", "--device", "d2", "--wait", "firmware",
		"--fail-if", "tags.hold == yes", "--wait-timeout", "45s", "--journal", journal)
	require.NoError(t, err)
	h, err := o.journalHeader([]string{"d1", "d2"})
	require.NoError(t, err)
	j, err := fleet.CreateJournal(journal, h)
	require.NoError(t, err)
	require.NoError(t, j.Close())

	te = newTestEnv(t, nil)
	o, _, err = parseInvoke(t, te, "--resume", journal)
	require.NoError(t, err)
	require.NotNil(t, o.Wait, "the journal's wait is repeated")
	assert.Equal(t, fleet.PresetFirmware, o.Wait.Preset)
	require.Len(t, o.Wait.FailIf, 1)
	assert.Equal(t, "tags.hold == yes", o.Wait.FailIf[0].Text)
	assert.Equal(t, 45*time.Second, o.Wait.Timeout)

	te = newTestEnv(t, nil)
	o, _, err = parseInvoke(t, te, "--resume", journal, "--wait", "reboot")
	require.NoError(t, err)
	assert.Equal(t, fleet.PresetReboot, o.Wait.Preset, "a wait flag given again wins")
	assert.Empty(t, o.Wait.FailIf)
}

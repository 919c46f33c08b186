package twin

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
)

const twinBody = `{"deviceId":"d#1","etag":"AAAAAAAAAAE=","version":4,"status":"enabled","connectionState":"Connected",
"tags":{"site":"plant-a","zones":["z1","z2"]},
"properties":{"desired":{"$version":1},"reported":{"iothubDM":{"reboot":{"lastReboot":"2026-03-04T05:06:07Z"}},"big":12345678901234567890,"$version":3}}}`

func TestTwinShow(t *testing.T) {
	h := cmdtest.NewStubHub(t)
	h.On("GET /twins/d%231", cmdtest.OK200(twinBody))
	h.On("GET /twins/d%231/modules/m1", cmdtest.OK200(`{"deviceId":"d#1","moduleId":"m1","properties":{}}`))

	te := h.Env(newTestEnv(t, nil))
	require.Equal(t, 0, h.Run(te, "twin", "show", "--device", "d#1"), te.ErrOut.String())
	assert.JSONEq(t, twinBody, te.Out.String())
	assert.Contains(t, te.Out.String(), "\n  \"deviceId\"", "indented JSON by default")
	assert.Contains(t, te.Out.String(), "12345678901234567890", "numbers are kept as written")
	assert.Empty(t, te.ErrOut.String())

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--path", "properties.reported.iothubDM.reboot.lastReboot"}, "\"2026-03-04T05:06:07Z\"\n"},
		{[]string{"--path", "tags.zones.1"}, "\"z2\"\n"},
		{[]string{"--path", "properties.reported.iothubDM", "-o", "jsonl"}, `{"reboot":{"lastReboot":"2026-03-04T05:06:07Z"}}` + "\n"},
		{[]string{"--path", "version"}, "4\n"},
	}
	for _, tc := range tests {
		te := h.Env(newTestEnv(t, nil))
		require.Equal(t, 0, h.Run(te, append([]string{"twin", "show", "--device", "d#1"}, tc.args...)...), te.ErrOut.String())
		assert.Equal(t, tc.want, te.Out.String(), "%v", tc.args)
	}

	te = h.Env(newTestEnv(t, nil))
	require.Equal(t, 0, h.Run(te, "twin", "show", "--device", "d#1", "--module", "m1", "-o", "jsonl"))
	assert.Equal(t, `{"deviceId":"d#1","moduleId":"m1","properties":{}}`+"\n", te.Out.String())

	te = h.Env(newTestEnv(t, nil))
	assert.Equal(t, cmdutil.ExitTargets, h.Run(te, "twin", "show", "--device", "d#1", "--path", "properties.reported.nope.x"))
	assert.Equal(t, "Error: twin of d#1 has no properties.reported.nope\n", te.ErrOut.String())
	assert.Empty(t, te.Out.String())

	te = h.Env(newTestEnv(t, nil))
	te.Env["DMCTL_OUTPUT"] = "table"
	require.Equal(t, 0, h.Run(te, "twin", "show", "--device", "d#1", "--path", "version"), "a table default from the environment is ignored")
	assert.Equal(t, "4\n", te.Out.String())

	h.On("GET /twins/gone", cmdtest.StubAnswer{Status: 404, Body: cmdtest.HubErrBody(404001, "Device gone not registered.")})
	te = h.Env(newTestEnv(t, nil))
	assert.Equal(t, cmdutil.ExitTargets, h.Run(te, "twin", "show", "--device", "gone"))
	assert.Contains(t, te.ErrOut.String(), "Error: twin of gone: hub answered 404 404001")

	h.On("GET /twins/locked", cmdtest.StubAnswer{Status: 401, Body: cmdtest.HubErrBody(401003, "Principal x is not authorized for GET on /twins/locked due to no assigned permissions")})
	te = h.Env(newTestEnv(t, nil))
	assert.Equal(t, cmdutil.ExitAuth, h.Run(te, "twin", "show", "--device", "locked"))
}

func TestTwinShowBadInput(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"twin", "show"}, "--device is required"},
		{[]string{"twin", "show", "--device", "a b"}, "--device: invalid device id"},
		{[]string{"twin", "show", "--device", "a", "--module", "m/1"}, "--module: invalid module id"},
		{[]string{"twin", "show", "--device", "a", "--path", "tags..x"}, "empty step"},
		{[]string{"twin", "show", "--device", "a", "-o", "table"}, "dmctl twin show prints json, jsonl"},
		{[]string{"twin", "show", "extra", "--device", "a"}, "takes no arguments"},
	}
	for _, tc := range tests {
		te := newTestEnv(t, nil)
		assert.Equal(t, cmdutil.ExitUsage, te.Run(tc.args...), "%v", tc.args)
		assert.Contains(t, te.ErrOut.String(), tc.msg, "%v", tc.args)
	}
}

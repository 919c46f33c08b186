package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
)

const twinBody = `{"deviceId":"d#1","etag":"AAAAAAAAAAE=","version":4,"status":"enabled","connectionState":"Connected",
"tags":{"site":"plant-a","zones":["z1","z2"]},
"properties":{"desired":{"$version":1},"reported":{"iothubDM":{"reboot":{"lastReboot":"2026-03-04T05:06:07Z"}},"big":12345678901234567890,"$version":3}}}`

func TestTwinShow(t *testing.T) {
	h := newJobsHub(t)
	h.on("GET /twins/d%231", ok200(twinBody))
	h.on("GET /twins/d%231/modules/m1", ok200(`{"deviceId":"d#1","moduleId":"m1","properties":{}}`))

	te := h.env(t)
	require.Equal(t, 0, h.run(te, "twin", "show", "--device", "d#1"), te.errOut.String())
	assert.JSONEq(t, twinBody, te.out.String())
	assert.Contains(t, te.out.String(), "\n  \"deviceId\"", "indented JSON by default")
	assert.Contains(t, te.out.String(), "12345678901234567890", "numbers are kept as written")
	assert.Empty(t, te.errOut.String())

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
		te := h.env(t)
		require.Equal(t, 0, h.run(te, append([]string{"twin", "show", "--device", "d#1"}, tc.args...)...), te.errOut.String())
		assert.Equal(t, tc.want, te.out.String(), "%v", tc.args)
	}

	te = h.env(t)
	require.Equal(t, 0, h.run(te, "twin", "show", "--device", "d#1", "--module", "m1", "-o", "jsonl"))
	assert.Equal(t, `{"deviceId":"d#1","moduleId":"m1","properties":{}}`+"\n", te.out.String())

	te = h.env(t)
	assert.Equal(t, cmdutil.ExitTargets, h.run(te, "twin", "show", "--device", "d#1", "--path", "properties.reported.nope.x"))
	assert.Equal(t, "Error: twin of d#1 has no properties.reported.nope\n", te.errOut.String())
	assert.Empty(t, te.out.String())

	te = h.env(t)
	te.env["DMCTL_OUTPUT"] = "table"
	require.Equal(t, 0, h.run(te, "twin", "show", "--device", "d#1", "--path", "version"), "a table default from the environment is ignored")
	assert.Equal(t, "4\n", te.out.String())

	h.on("GET /twins/gone", stubAnswer{status: 404, body: hubErrBody(404001, "Device gone not registered.")})
	te = h.env(t)
	assert.Equal(t, cmdutil.ExitTargets, h.run(te, "twin", "show", "--device", "gone"))
	assert.Contains(t, te.errOut.String(), "Error: twin of gone: hub answered 404 404001")

	h.on("GET /twins/locked", stubAnswer{status: 401, body: hubErrBody(401003, "Principal x is not authorized for GET on /twins/locked due to no assigned permissions")})
	te = h.env(t)
	assert.Equal(t, cmdutil.ExitAuth, h.run(te, "twin", "show", "--device", "locked"))
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
		{[]string{"twin", "show", "--device", "a", "-o", "table"}, "twin show prints JSON"},
		{[]string{"twin", "show", "extra", "--device", "a"}, "takes no arguments"},
	}
	for _, tc := range tests {
		te := newTestEnv(t, nil)
		assert.Equal(t, cmdutil.ExitUsage, te.run(tc.args...), "%v", tc.args)
		assert.Contains(t, te.errOut.String(), tc.msg, "%v", tc.args)
	}
}

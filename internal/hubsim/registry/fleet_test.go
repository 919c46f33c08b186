package registry

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// Applying parsed fleet files (parsing and validation are sim's tests).

func TestApplyParsedFleet(t *testing.T) {
	spec, err := sim.LoadFleetFile(filepath.Join("..", "sim", "testdata", "fleet.yaml"))
	require.NoError(t, err)
	r := NewRegistry(Options{})
	require.NoError(t, r.Apply(spec))
	d, m := r.Count()
	assert.Equal(t, 102, d)
	assert.Equal(t, 200, m)
	ids := r.DeviceIDs(false)
	assert.Equal(t, []string{"gw-1", "gw-2", "therm-0001"}, ids[:3])
	assert.Equal(t, "therm-0100", ids[len(ids)-1])
}

func TestApplyValidates(t *testing.T) {
	bad := -0.5
	spec := &sim.FleetSpec{Groups: []sim.Group{{IDPattern: "x-%d", Count: 1, Connection: sim.Connection{OnlineShare: &bad}}}}
	assert.ErrorContains(t, NewRegistry(Options{}).Apply(spec), "onlineShare")
}

func TestLiteralIDForCountOne(t *testing.T) {
	spec, err := sim.ParseFleet([]byte("groups:\n  - idPattern: gateway-main\n    count: 1\n  - idPattern: \"100%%-%d\"\n    count: 2\n"), "yaml")
	require.NoError(t, err)
	r := NewRegistry(Options{})
	require.NoError(t, r.Apply(spec))
	assert.Equal(t, []string{"100%-1", "100%-2", "gateway-main"}, r.DeviceIDs(false))
}

func TestFleetValuesKeepTheirTypes(t *testing.T) {
	spec, err := sim.ParseFleet([]byte(`
groups:
  - idPattern: d-%d
    count: 1
    tags: {list: [1, 2.5, "x", {k: true}], big: 12345678901, neg: -3}
    methods:
      ping: {payload: [1, {a: null}]}
`), "")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"list": []any{1.0, 2.5, "x", map[string]any{"k": true}}, "big": 12345678901.0, "neg": -3.0}, spec.Groups[0].Tags)
	assert.JSONEq(t, `[1,{"a":null}]`, string(spec.Groups[0].Methods["ping"].Payload))
	r := NewRegistry(Options{})
	require.NoError(t, r.Apply(spec))
	st, resp, err := r.InvokeMethod(context.Background(), "d-1", "", "ping", nil, 0, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 200, st)
	assert.JSONEq(t, `[1,{"a":null}]`, string(resp))
	tw, err := r.Twin("d-1", "")
	require.NoError(t, err)
	assert.Equal(t, 2.5, path(tw, "tags", "list").([]any)[1])
}

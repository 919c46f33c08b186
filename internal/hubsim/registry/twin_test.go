package registry

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
	"github.com/dmctl/dmctl/internal/testkit"
)

// fixedClock returns a clock whose every reading is a second later than
// the one before.
func fixedClock() func() time.Time {
	return testkit.NewTickingClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), time.Second).Now
}

func TestTwinShape(t *testing.T) {
	r := newFleet(t, Options{Now: fixedClock()}, sim.Group{Name: "g", Count: 2, Modules: []string{"m"},
		Tags: map[string]any{"site": "a", "loc": map[string]any{"floor": 2.0}}, Desired: map[string]any{"interval": 5.0},
		Reported: map[string]any{"fw": "1.0"}})
	tw, err := r.Twin("dev-001", "")
	require.NoError(t, err)
	for _, k := range []string{"deviceId", "etag", "deviceEtag", "version", "status", "statusUpdateTime", "connectionState",
		"lastActivityTime", "cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint", "modelId", "capabilities", "tags", "properties"} {
		assert.Contains(t, tw, k)
	}
	assert.NotContains(t, tw, "moduleId")
	assert.Equal(t, "dev-001", tw["deviceId"])
	assert.Equal(t, "AAAAAAAAAAE=", tw["etag"])
	assert.Equal(t, int64(1), tw["version"])
	assert.Equal(t, "enabled", tw["status"])
	assert.Equal(t, "Connected", tw["connectionState"])
	assert.Equal(t, "sas", tw["authenticationType"])
	assert.Equal(t, map[string]any{"iotEdge": false}, tw["capabilities"])
	assert.Equal(t, map[string]any{"site": "a", "loc": map[string]any{"floor": 2.0}}, tw["tags"])
	assert.Equal(t, 5.0, path(tw, "properties", "desired", "interval"))
	assert.Equal(t, int64(1), path(tw, "properties", "desired", "$version"))
	assert.Equal(t, int64(1), path(tw, "properties", "desired", "$metadata", "interval", "$lastUpdatedVersion"))
	assert.Equal(t, "1.0", path(tw, "properties", "reported", "fw"))
	assert.Equal(t, "2026-03-04T05:06:08.0000000Z", path(tw, "properties", "reported", "$metadata", "fw", "$lastUpdated"))
	assert.Equal(t, int64(1), path(tw, "properties", "reported", "$version"))

	// The document survives a JSON round trip and is the caller's to change.
	_, err = json.Marshal(tw)
	require.NoError(t, err)
	tw["tags"].(map[string]any)["site"] = "changed"
	path(tw, "properties", "desired").(map[string]any)["interval"] = 99.0
	again, _ := r.Twin("dev-001", "")
	assert.Equal(t, "a", path(again, "tags", "site"))
	assert.Equal(t, 5.0, path(again, "properties", "desired", "interval"))
	other, _ := r.Twin("dev-002", "")
	assert.Equal(t, "a", path(other, "tags", "site"))

	mt, err := r.Twin("dev-001", "m")
	require.NoError(t, err)
	assert.Equal(t, "m", mt["moduleId"])
	_, err = r.Twin("dev-001", "zz")
	assert.ErrorIs(t, err, ErrModuleNotFound)
	_, err = r.Twin("zz", "")
	assert.ErrorIs(t, err, ErrDeviceNotFound)
}

func TestEtag(t *testing.T) {
	assert.Equal(t, "AAAAAAAAAAE=", Etag(1))
	assert.Equal(t, "AAAAAAAAAAI=", Etag(2))
	assert.True(t, etagMatches(`"AAAAAAAAAAE="`, 1))
	assert.True(t, etagMatches(`W/"AAAAAAAAAAE="`, 1))
	assert.True(t, etagMatches(`AAAAAAAAAAE=`, 1))
	assert.True(t, etagMatches(`*`, 7))
	assert.True(t, etagMatches(`"*"`, 7))
	assert.True(t, etagMatches(``, 7))
	assert.False(t, etagMatches(`"AAAAAAAAAAE="`, 2))
}

func TestPatchTwin(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 2, Tags: map[string]any{"site": "a", "keep": true}})
	tw0, _ := r.Twin("dev-001", "")

	tw, err := r.PatchTwin("dev-001", "", map[string]any{
		"deviceId": "ignored",
		"tags":     map[string]any{"site": "b", "loc": map[string]any{"floor": 3.0, "room": "r1"}},
		"properties": map[string]any{"desired": map[string]any{
			"interval": 10.0, "cfg": map[string]any{"a": 1.0, "b": 2.0}, "$version": 99.0, "$metadata": map[string]any{}}},
	}, `"`+tw0["etag"].(string)+`"`)
	require.NoError(t, err)
	assert.Equal(t, "dev-001", tw["deviceId"])
	assert.Equal(t, map[string]any{"site": "b", "keep": true, "loc": map[string]any{"floor": 3.0, "room": "r1"}}, tw["tags"])
	assert.Equal(t, 10.0, path(tw, "properties", "desired", "interval"))
	assert.Equal(t, int64(2), path(tw, "properties", "desired", "$version"))
	assert.Equal(t, int64(2), tw["version"])
	assert.NotEqual(t, tw0["etag"], tw["etag"])
	assert.Equal(t, int64(2), path(tw, "properties", "desired", "$metadata", "cfg", "a", "$lastUpdatedVersion"))
	assert.Equal(t, int64(2), path(tw, "properties", "desired", "$metadata", "$lastUpdatedVersion"))

	// Null deletes; nested merge keeps siblings.
	tw2, err := r.PatchTwin("dev-001", "", map[string]any{
		"tags":       map[string]any{"keep": nil, "loc": map[string]any{"room": nil}},
		"properties": map[string]any{"desired": map[string]any{"cfg": map[string]any{"a": nil}, "gone": nil}},
	}, "*")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"site": "b", "loc": map[string]any{"floor": 3.0}}, tw2["tags"])
	assert.Equal(t, map[string]any{"b": 2.0}, path(tw2, "properties", "desired", "cfg"))
	assert.Nil(t, path(tw2, "properties", "desired", "$metadata", "cfg", "a"))
	assert.NotNil(t, path(tw2, "properties", "desired", "$metadata", "cfg", "b"))
	assert.Equal(t, int64(3), tw2["version"])
	assert.Equal(t, int64(3), path(tw2, "properties", "desired", "$version"))

	// Tags-only patch: desired $version unchanged, twin version bumps.
	tw3, err := r.PatchTwin("dev-001", "", map[string]any{"tags": map[string]any{"x": "y"}}, "")
	require.NoError(t, err)
	assert.Equal(t, int64(4), tw3["version"])
	assert.Equal(t, int64(3), path(tw3, "properties", "desired", "$version"))

	// Stale etag.
	_, err = r.PatchTwin("dev-001", "", map[string]any{"tags": map[string]any{"x": "z"}}, `"`+tw0["etag"].(string)+`"`)
	assert.ErrorIs(t, err, ErrPreconditionFailed)
	cur, _ := r.Twin("dev-001", "")
	assert.Equal(t, "y", path(cur, "tags", "x"), "a failed patch changes nothing")

	// The other device still shares the untouched template.
	other, _ := r.Twin("dev-002", "")
	assert.Equal(t, map[string]any{"site": "a", "keep": true}, other["tags"])
	assert.Equal(t, int64(1), other["version"])

	// An empty patch changes nothing.
	tw4, err := r.PatchTwin("dev-001", "", map[string]any{}, "")
	require.NoError(t, err)
	assert.Equal(t, int64(4), tw4["version"])

	// tags: null clears them.
	tw5, err := r.PatchTwin("dev-001", "", map[string]any{"tags": nil}, "")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{}, tw5["tags"])
	assert.Equal(t, int64(4), r.Stats().TwinUpdates, "four patches changed the twin")
}

func TestPatchTwinInvalid(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1})
	deep := map[string]any{"v": 1.0}
	for i := 0; i < 11; i++ {
		deep = map[string]any{"n": deep}
	}
	big := map[string]any{"s": strings.Repeat("x", 33*1024)}
	for name, patch := range map[string]map[string]any{
		"reported":           {"properties": map[string]any{"reported": map[string]any{"a": 1.0}}},
		"desired not object": {"properties": map[string]any{"desired": "x"}},
		"properties not obj": {"properties": 5.0},
		"unknown section":    {"properties": map[string]any{"other": map[string]any{}}},
		"tags not object":    {"tags": []any{1.0}},
		"dot in key":         {"tags": map[string]any{"a.b": 1.0}},
		"dollar in key":      {"properties": map[string]any{"desired": map[string]any{"$x": 1.0}}},
		"space in key":       {"tags": map[string]any{"a b": 1.0}},
		"too deep":           {"properties": map[string]any{"desired": deep}},
		"desired too large":  {"properties": map[string]any{"desired": big}},
		"tags too large":     {"tags": map[string]any{"s": strings.Repeat("x", 9*1024)}},
		"unsupported value":  {"tags": map[string]any{"f": func() {}}},
	} {
		_, err := r.PatchTwin("dev-001", "", patch, "")
		assert.ErrorIs(t, err, ErrInvalidPatch, name)
	}
	tw, _ := r.Twin("dev-001", "")
	assert.Equal(t, int64(1), tw["version"], "nothing changed")
	assert.Equal(t, "AAAAAAAAAAE=", tw["etag"])
	// Arrays (with objects inside) are fine; their objects follow the name rules.
	_, err := r.PatchTwin("dev-001", "", map[string]any{"tags": map[string]any{"list": []any{1.0, "x", map[string]any{"k": json.Number("2")}, nil}}}, "")
	require.NoError(t, err)
	_, err = r.PatchTwin("dev-001", "", map[string]any{"tags": map[string]any{"list": []any{map[string]any{"a.b": 1.0}}}}, "")
	assert.ErrorIs(t, err, ErrInvalidPatch)
	// A PUT cannot contain nulls.
	_, err = r.ReplaceTwin("dev-001", "", map[string]any{"tags": map[string]any{"a": nil}}, "")
	assert.ErrorIs(t, err, ErrInvalidPatch)
	// An empty reported section (as in a twin read back) is tolerated.
	_, err = r.PatchTwin("dev-001", "", map[string]any{"properties": map[string]any{"reported": map[string]any{"$version": 1.0}}}, "")
	assert.NoError(t, err)
	_, err = r.PatchTwin("nope", "", map[string]any{}, "")
	assert.ErrorIs(t, err, ErrDeviceNotFound)
}

func TestReplaceTwin(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1, Tags: map[string]any{"old": 1.0}, Desired: map[string]any{"a": 1.0, "b": 2.0}, Reported: map[string]any{"r": 1.0}})
	var got []map[string]any
	cancel := r.OnDesired("dev-001", "", func(p map[string]any) { got = append(got, p) })
	defer cancel()
	tw, err := r.ReplaceTwin("dev-001", "", map[string]any{
		"tags":       map[string]any{"new": "x"},
		"properties": map[string]any{"desired": map[string]any{"b": 3.0, "c": 4.0}, "reported": map[string]any{"ignored": true}},
	}, "AAAAAAAAAAE=")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"new": "x"}, tw["tags"])
	assert.Equal(t, 3.0, path(tw, "properties", "desired", "b"))
	assert.Equal(t, 4.0, path(tw, "properties", "desired", "c"))
	assert.Nil(t, path(tw, "properties", "desired", "a"))
	assert.Equal(t, 1.0, path(tw, "properties", "reported", "r"))
	assert.Nil(t, path(tw, "properties", "reported", "ignored"))
	assert.Equal(t, int64(2), path(tw, "properties", "desired", "$version"))
	require.Len(t, got, 1)
	assert.Equal(t, map[string]any{"a": nil, "b": 3.0, "c": 4.0, "$version": int64(2)}, got[0])

	// Without tags or desired, PUT empties them.
	tw, err = r.ReplaceTwin("dev-001", "", map[string]any{}, "*")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{}, tw["tags"])
	assert.Nil(t, path(tw, "properties", "desired", "b"))
	_, err = r.ReplaceTwin("dev-001", "", map[string]any{}, "AAAAAAAAAAE=")
	assert.ErrorIs(t, err, ErrPreconditionFailed)
}

func TestUpdateReported(t *testing.T) {
	r := NewRegistry(Options{Now: fixedClock()})
	require.NoError(t, r.Register("real", "real2/mod"))
	v, err := r.UpdateReported("real", "", map[string]any{"temp": 20.5, "cfg": map[string]any{"a": 1.0, "b": 2.0}})
	require.NoError(t, err)
	assert.Equal(t, int64(2), v)
	v, err = r.UpdateReported("real", "", map[string]any{"cfg": map[string]any{"a": nil}, "temp": nil, "$version": 7.0})
	require.NoError(t, err)
	assert.Equal(t, int64(3), v)
	tw, _ := r.Twin("real", "")
	assert.Equal(t, map[string]any{"b": 2.0}, path(tw, "properties", "reported", "cfg"))
	assert.Nil(t, path(tw, "properties", "reported", "temp"))
	assert.Equal(t, int64(3), path(tw, "properties", "reported", "$version"))
	assert.Equal(t, int64(3), tw["version"])
	assert.Equal(t, int64(1), path(tw, "properties", "desired", "$version"))
	assert.NotNil(t, path(tw, "properties", "reported", "$metadata", "cfg", "b", "$lastUpdated"))
	assert.Nil(t, path(tw, "properties", "reported", "$metadata", "temp"))
	assert.NotEqual(t, "0001-01-01T00:00:00Z", tw["lastActivityTime"])

	v, err = r.UpdateReported("real2", "mod", map[string]any{"x": true})
	require.NoError(t, err)
	assert.Equal(t, int64(2), v)

	_, err = r.UpdateReported("real", "", map[string]any{"bad.key": 1.0})
	assert.ErrorIs(t, err, ErrInvalidPatch)
	_, err = r.UpdateReported("real", "", map[string]any{"s": strings.Repeat("y", 40*1024)})
	assert.ErrorIs(t, err, ErrInvalidPatch)
	_, err = r.UpdateReported("nope", "", map[string]any{})
	assert.ErrorIs(t, err, ErrDeviceNotFound)
	tw, _ = r.Twin("real", "")
	assert.Equal(t, int64(3), path(tw, "properties", "reported", "$version"), "refused patches change nothing")
	assert.Equal(t, int64(3), r.Stats().ReportedUpdates)
}

func TestOnDesired(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Register("real", "other"))
	var mu sync.Mutex
	var a, b []map[string]any
	cancelA := r.OnDesired("real", "", func(p map[string]any) { mu.Lock(); a = append(a, p); mu.Unlock() })
	cancelB := r.OnDesired("real", "", func(p map[string]any) { mu.Lock(); b = append(b, p); mu.Unlock() })
	_, err := r.PatchTwin("real", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"x": 1.0, "y": nil}}}, "")
	require.NoError(t, err)
	_, err = r.PatchTwin("real", "", map[string]any{"tags": map[string]any{"t": 1.0}}, "")
	require.NoError(t, err)
	_, err = r.PatchTwin("other", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"z": 1.0}}}, "")
	require.NoError(t, err)
	require.Len(t, a, 1, "tags-only patches and other devices do not notify")
	assert.Equal(t, map[string]any{"x": 1.0, "y": nil, "$version": int64(2)}, a[0])
	require.Len(t, b, 1)
	a[0]["x"] = "mutated by subscriber A"
	assert.Equal(t, 1.0, b[0]["x"], "each subscriber gets its own copy")

	cancelA()
	cancelA()
	_, err = r.PatchTwin("real", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"x": 2.0}}}, "")
	require.NoError(t, err)
	assert.Len(t, a, 1)
	require.Len(t, b, 2)
	assert.Equal(t, int64(3), b[1]["$version"])
	cancelB()

	// A subscriber may call back into the registry.
	r.OnDesired("real", "", func(p map[string]any) {
		_, _ = r.UpdateReported("real", "", map[string]any{"ack": p["$version"]})
	})
	_, err = r.PatchTwin("real", "", map[string]any{"properties": map[string]any{"desired": map[string]any{"x": 3.0}}}, "")
	require.NoError(t, err)
	tw, _ := r.Twin("real", "")
	assert.Equal(t, int64(4), path(tw, "properties", "reported", "ack"))
	assert.NotPanics(t, func() { r.OnDesired("nope", "", func(map[string]any) {})() })
}

func TestEachPaging(t *testing.T) {
	r := NewRegistry(Options{})
	require.NoError(t, r.Apply(&sim.FleetSpec{Groups: []sim.Group{
		{Name: "b", IDPattern: "b-%04d", Count: 1500, Modules: []string{"m2", "m1"}},
		{Name: "a", IDPattern: "a-%04d", Count: 500},
	}}))
	require.NoError(t, r.Register("c-real", "a-0001/zz"))
	for _, m := range []string{"m1", "m2"} {
		_, err := r.Twin("b-0001", m)
		require.NoError(t, err, "modules listed out of order are found")
	}

	page := func(collection, cursor string, n int) (ids []string, next string) {
		r.Each(collection, cursor, func(cur string, doc map[string]any) bool {
			id := doc["deviceId"].(string)
			if m, ok := doc["moduleId"].(string); ok {
				id += "/" + m
			}
			require.Equal(t, id, cur)
			ids = append(ids, id)
			next = cur
			return len(ids) < n
		})
		return ids, next
	}
	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 100)
		ids, next := page("devices", cursor, 300)
		all = append(all, ids...)
		if len(ids) < 300 {
			break
		}
		cursor = next
	}
	require.Len(t, all, 2001)
	assert.Equal(t, "a-0001", all[0])
	assert.Equal(t, "c-real", all[2000])
	for i := 1; i < len(all); i++ {
		require.Less(t, all[i-1], all[i], "sorted, no duplicates")
	}

	var mods []string
	cursor = ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 1000)
		ids, next := page("devices.modules", cursor, 7)
		mods = append(mods, ids...)
		if len(ids) < 7 {
			break
		}
		cursor = next
	}
	require.Len(t, mods, 3001)
	assert.Equal(t, []string{"a-0001/zz", "b-0001/m1", "b-0001/m2", "b-0002/m1"}, mods[:4])
	for i := 1; i < len(mods); i++ {
		require.Less(t, mods[i-1], mods[i])
	}
	// A device id as module cursor means: after all of that device's modules.
	ids, _ := page("devices.modules", "b-0001", 2)
	assert.Equal(t, []string{"b-0002/m1", "b-0002/m2"}, ids)
	// A cursor that is not an id starts at the next id.
	ids, _ = page("devices", "a-0499x", 2)
	assert.Equal(t, []string{"a-0500", "b-0001"}, ids)
	ids, _ = page("devices", "zzz", 2)
	assert.Empty(t, ids)
	ids, _ = page("devices.jobs", "", 2)
	assert.Empty(t, ids)
}

func TestTwinVersionUnderConcurrency(t *testing.T) {
	r := newFleet(t, Options{}, sim.Group{Name: "g", Count: 1})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				_, err := r.PatchTwin("dev-001", "", map[string]any{"tags": map[string]any{fmt.Sprintf("k%d", i): float64(j)}}, "")
				assert.NoError(t, err)
				_, err = r.UpdateReported("dev-001", "", map[string]any{fmt.Sprintf("r%d", i): float64(j)})
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	tw, _ := r.Twin("dev-001", "")
	assert.Equal(t, int64(1+400), tw["version"])
	assert.Equal(t, int64(1+200), path(tw, "properties", "reported", "$version"))
	assert.Len(t, tw["tags"], 8)
}

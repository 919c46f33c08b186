package query

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func run(t *testing.T, sql string, docs []map[string]any) []map[string]any {
	t.Helper()
	q, err := Parse(sql)
	require.NoError(t, err)
	rows, err := q.Run(seq(docs, nil))
	require.NoError(t, err)
	require.NotNil(t, rows)
	return rows
}

func TestProjection(t *testing.T) {
	docs := twins(t)
	dev01 := docs[0]
	reported := dev01["properties"].(map[string]any)["reported"].(map[string]any)
	tags := dev01["tags"].(map[string]any)

	q, err := Parse(`SELECT deviceId, tags.location, properties.reported.iothubDM AS dm FROM devices WHERE deviceId = 'dev-01'`)
	require.NoError(t, err)
	require.False(t, q.IsAggregate())
	assert.Equal(t, map[string]any{
		"deviceId": "dev-01",
		"location": tags["location"],
		"dm":       reported["iothubDM"],
	}, q.Project(dev01))

	// Undefined values are left out of the row, not set to null: dev-05 has
	// no tags.location.
	assert.Equal(t, map[string]any{
		"deviceId": "dev-05",
		"dm":       map[string]any{"reboot": map[string]any{"lastReboot": "2024-05-01T10:00:00Z"}},
	}, q.Project(docs[4]))
	// null is a value and is kept.
	q2, err := Parse(`SELECT deviceId, properties.reported.connectivity FROM devices`)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"deviceId": "dev-04", "connectivity": nil}, q2.Project(docs[3]))
}

func TestProjectionDocExample(t *testing.T) {
	// iot-hub query-twins.md: the names in the result use the twin's own
	// spelling.
	rows := run(t, `SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'`, twins(t))
	assert.Equal(t, []map[string]any{{"deviceId": "dev-03", "lastActivityTime": "2024-05-20T00:00:00Z"}}, rows)
}

func TestProjectionNames(t *testing.T) {
	docs := twins(t)
	rows := run(t, `SELECT deviceId AS id, version * 2, tags['ring'], UPPER(tags.ring), capabilities.iotEdge FROM devices WHERE deviceId = 'dev-03'`, docs)
	assert.Equal(t, []map[string]any{{
		"id":      "dev-03",
		"$1":      float64(18),
		"ring":    "prod",
		"$2":      "PROD",
		"iotEdge": true,
	}}, rows)
}

func TestSelectStarReturnsDocument(t *testing.T) {
	docs := twins(t)
	q, err := Parse(`SELECT * FROM devices WHERE deviceId = 'dev-02'`)
	require.NoError(t, err)
	rows, err := q.Run(seq(docs, nil))
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, docs[1], rows[0])
	// The very same map, not a copy.
	rows[0]["marker"] = true
	assert.Equal(t, true, docs[1]["marker"])
}

func TestRunPlain(t *testing.T) {
	docs := twins(t)
	rows := run(t, `SELECT deviceId FROM devices WHERE connectionState = 'Connected'`, docs)
	assert.Equal(t, []map[string]any{{"deviceId": "dev-01"}, {"deviceId": "dev-02"}, {"deviceId": "dev-04"}, {"deviceId": "dev-06"}}, rows)

	rows = run(t, `SELECT * FROM devices WHERE tags.nothing = 1`, docs)
	assert.Empty(t, rows)
}

func TestRunTopStopsEarly(t *testing.T) {
	docs := twins(t)
	q, err := Parse(`SELECT TOP 2 deviceId FROM devices WHERE connectionState = 'Connected'`)
	require.NoError(t, err)
	yielded := 0
	rows, err := q.Run(seq(docs, &yielded))
	require.NoError(t, err)
	assert.Equal(t, []map[string]any{{"deviceId": "dev-01"}, {"deviceId": "dev-02"}}, rows)
	assert.Equal(t, 2, yielded, "Run stops asking for documents once TOP rows are found")

	q, err = Parse(`SELECT TOP 0 * FROM devices`)
	require.NoError(t, err)
	yielded = 0
	rows, err = q.Run(seq(docs, &yielded))
	require.NoError(t, err)
	assert.Empty(t, rows)
	assert.NotNil(t, rows)
	assert.Equal(t, 0, yielded)
}

func TestCount(t *testing.T) {
	docs := twins(t)
	tests := []struct {
		sql  string
		want []map[string]any
	}{
		{`SELECT COUNT() AS n FROM devices`, []map[string]any{{"n": int64(6)}}},
		{`SELECT COUNT() as totalNumberOfDevices FROM devices`, []map[string]any{{"totalNumberOfDevices": int64(6)}}},
		{`SELECT COUNT() FROM devices WHERE connectionState = 'Connected'`, []map[string]any{{"$1": int64(4)}}},
		{`SELECT COUNT(*) AS n FROM devices WHERE tags.location.region IN ['US', 'EU']`, []map[string]any{{"n": int64(4)}}},
		{`SELECT COUNT() AS n FROM devices WHERE tags.nothing = 1`, []map[string]any{{"n": int64(0)}}},
		{`SELECT COUNT(properties.reported.iothubDM) AS withDM, COUNT() AS total FROM devices`, []map[string]any{{"withDM": int64(5), "total": int64(6)}}},
		{`SELECT COUNT(), COUNT(tags.critical) FROM devices`, []map[string]any{{"$1": int64(6), "$2": int64(2)}}},
		{`SELECT SUM(version) AS s, AVG(version) AS a, MIN(version) AS lo, MAX(version) AS hi FROM devices`,
			[]map[string]any{{"s": float64(24), "a": float64(4), "lo": float64(1), "hi": float64(9)}}},
		{`SELECT MIN(lastActivityTime) AS first, MAX(lastActivityTime) AS last FROM devices WHERE status = 'enabled'`,
			[]map[string]any{{"first": "2024-05-20T00:00:00Z", "last": "2024-06-03T00:00:00Z"}}},
		{`SELECT AVG(tags.nothing) AS a, MAX(tags.nothing) AS m, SUM(tags.nothing) AS s FROM devices`,
			[]map[string]any{{"s": float64(0)}}},
	}
	for _, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			q, err := Parse(tc.sql)
			require.NoError(t, err)
			assert.True(t, q.IsAggregate())
			assert.Nil(t, q.Project(docs[0]), "Project has no meaning for an aggregate query")
			rows, err := q.Run(seq(docs, nil))
			require.NoError(t, err)
			assert.Equal(t, tc.want, rows)
		})
	}
}

func TestGroupBy(t *testing.T) {
	docs := twins(t)

	// The documented example (iot-hub-devguide-query-language.md).
	rows := run(t, `SELECT properties.reported.telemetryConfig.status AS status,
	    COUNT() AS numberOfDevices
	  FROM devices
	  GROUP BY properties.reported.telemetryConfig.status`, docs)
	assert.Equal(t, []map[string]any{
		{"status": "Success", "numberOfDevices": int64(3)},
		{"status": "Pending", "numberOfDevices": int64(1)},
		{"status": "Error", "numberOfDevices": int64(1)},
		{"numberOfDevices": int64(1)}, // dev-05 reports no telemetryConfig
	}, rows)

	rows = run(t, `SELECT tags.location.region, COUNT() AS n, MIN(version) AS lo, MAX(version) AS hi, AVG(version) AS avg, SUM(version) AS sum
	  FROM devices GROUP BY tags.location.region`, docs)
	assert.Equal(t, []map[string]any{
		{"region": "US", "n": int64(2), "lo": float64(3), "hi": float64(5), "avg": float64(4), "sum": float64(8)},
		{"region": "EU", "n": int64(2), "lo": float64(1), "hi": float64(9), "avg": float64(5), "sum": float64(10)},
		{"n": int64(1), "lo": float64(2), "hi": float64(2), "avg": float64(2), "sum": float64(2)},
		{"region": "us", "n": int64(1), "lo": float64(4), "hi": float64(4), "avg": float64(4), "sum": float64(4)},
	}, rows)

	// Two keys; 2 (number) and '2' (string) are different groups.
	rows = run(t, `SELECT tags.ring, tags.floor, COUNT() AS n FROM devices WHERE IS_DEFINED(tags.floor) GROUP BY tags.ring, tags.floor`, docs)
	assert.Equal(t, []map[string]any{
		{"ring": "canary", "floor": float64(3), "n": int64(1)},
		{"ring": "prod", "floor": float64(1), "n": int64(1)},
		{"ring": "prod", "floor": float64(2), "n": int64(1)},
		{"ring": "prod", "floor": "2", "n": int64(1)},
	}, rows)

	// GROUP BY without aggregates gives the distinct values.
	rows = run(t, `SELECT connectionState FROM devices GROUP BY connectionState`, docs)
	assert.Equal(t, []map[string]any{{"connectionState": "Connected"}, {"connectionState": "Disconnected"}}, rows)

	// WHERE applies before grouping; no documents, no groups.
	rows = run(t, `SELECT tags.ring, COUNT() AS n FROM devices WHERE tags.nothing = 1 GROUP BY tags.ring`, docs)
	assert.Empty(t, rows)

	// TOP limits groups.
	rows = run(t, `SELECT TOP 1 tags.ring, COUNT() AS n FROM devices GROUP BY tags.ring`, docs)
	assert.Equal(t, []map[string]any{{"ring": "canary", "n": int64(2)}}, rows)

	// Schema names are matched case-insensitively in both lists.
	rows = run(t, `SELECT ConnectionState AS cs, COUNT() AS n FROM devices GROUP BY connectionstate`, docs)
	assert.Equal(t, []map[string]any{{"cs": "Connected", "n": int64(4)}, {"cs": "Disconnected", "n": int64(2)}}, rows)
}

func TestRunNeedsSource(t *testing.T) {
	q, err := Parse(`SELECT * FROM devices`)
	require.NoError(t, err)
	rows, err := q.Run(nil)
	require.Error(t, err)
	assert.Nil(t, rows)
}

func TestConcurrentUse(t *testing.T) {
	// A parsed query is shared by concurrent requests (run with -race).
	docs := twins(t)
	q, err := Parse(`SELECT tags.location.region AS region, COUNT() AS n FROM devices WHERE connectionState = 'Connected' GROUP BY tags.location.region`)
	require.NoError(t, err)
	want := []map[string]any{{"region": "US", "n": int64(2)}, {"region": "EU", "n": int64(1)}, {"region": "us", "n": int64(1)}}
	done := make(chan []map[string]any)
	for range 8 {
		go func() {
			rows, _ := q.Run(seq(docs, nil))
			done <- rows
		}()
	}
	for range 8 {
		assert.Equal(t, want, <-done)
	}
}

package query

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConditionsOnTwins(t *testing.T) {
	docs := twins(t)
	all := []string{"dev-01", "dev-02", "dev-03", "dev-04", "dev-05", "dev-06"}
	tests := []struct {
		name string
		cond string
		want []string
	}{
		{"tag equality", `tags.location.region = 'US'`, []string{"dev-01", "dev-02"}},
		{"double-quoted string", `tags.location.region = "US"`, []string{"dev-01", "dev-02"}},
		{"!= skips devices without the tag", `tags.location.region != 'US'`, []string{"dev-03", "dev-04", "dev-06"}},
		{"<> is !=", `tags.location.region <> 'US'`, []string{"dev-03", "dev-04", "dev-06"}},
		{"NOT of undefined stays undefined", `NOT (tags.location.region = 'US')`, []string{"dev-03", "dev-04", "dev-06"}},
		{"firmware status", `properties.reported.iothubDM.firmwareUpdate.status = 'applyComplete'`, []string{"dev-01"}},
		{"firmware in progress", `properties.reported.iothubDM.firmwareUpdate.status IN ['waiting', 'downloading', 'downloadComplete', 'applying']`, []string{"dev-02", "dev-06"}},
		{"firmware error code", `properties.reported.iothubDM.firmwareUpdate.error.code = 'E42'`, []string{"dev-03"}},
		{"connection state", `connectionState = 'Connected'`, []string{"dev-01", "dev-02", "dev-04", "dev-06"}},
		{"status", `status = 'disabled'`, []string{"dev-05"}},
		{"AND with IN", `connectionState = 'Connected' AND tags.location.region IN ['US', 'EU']`, []string{"dev-01", "dev-02", "dev-04"}},
		{"IN", `properties.reported.connectivity IN ['wired', 'wifi']`, []string{"dev-01", "dev-02", "dev-06"}},
		{"IN with parentheses", `properties.reported.connectivity IN ('wired', 'wifi')`, []string{"dev-01", "dev-02", "dev-06"}},
		{"NIN includes null, skips undefined", `properties.reported.connectivity NIN ['wired', 'wifi']`, []string{"dev-03", "dev-04"}},
		{"NOT IN is NIN", `properties.reported.connectivity NOT IN ['wired', 'wifi']`, []string{"dev-03", "dev-04"}},
		{"deviceId IN", `deviceId IN ['dev-01', 'dev-05', 'nope']`, []string{"dev-01", "dev-05"}},
		{"empty IN", `deviceId IN []`, []string{}},
		{"empty NIN", `deviceId NIN []`, all},
		{"IN mixed constants", `tags.floor IN [1, '2', true, null]`, []string{"dev-02", "dev-06"}},
		{"is_defined lower case", `is_defined(properties.reported.iothubDM)`, []string{"dev-01", "dev-02", "dev-03", "dev-05", "dev-06"}},
		{"NOT IS_DEFINED", `NOT IS_DEFINED(properties.reported.iothubDM.firmwareUpdate)`, []string{"dev-04", "dev-05"}},
		{"IS_DEFINED counts null", `IS_DEFINED(properties.reported.connectivity)`, []string{"dev-01", "dev-02", "dev-03", "dev-04", "dev-06"}},
		{"IS_NULL", `IS_NULL(properties.reported.connectivity)`, []string{"dev-04"}},
		{"= null", `properties.reported.connectivity = null`, []string{"dev-04"}},
		{"IS_STRING", `IS_STRING(tags.floor)`, []string{"dev-06"}},
		{"IS_NUMBER", `IS_NUMBER(tags.floor)`, []string{"dev-01", "dev-02", "dev-03"}},
		{"IS_BOOL", `IS_BOOL(tags.critical)`, []string{"dev-03", "dev-04"}},
		{"IS_OBJECT", `IS_OBJECT(tags.location)`, []string{"dev-01", "dev-02", "dev-03", "dev-04", "dev-06"}},
		{"bare boolean property", `tags.critical`, []string{"dev-03"}},
		{"= true", `tags.critical = true`, []string{"dev-03"}},
		{"capabilities", `capabilities.iotEdge = true`, []string{"dev-03"}},

		// Precedence: NOT > AND > OR.
		{"AND binds tighter than OR", `tags.location.region = 'US' OR tags.location.region = 'EU' AND connectionState = 'Disconnected'`, []string{"dev-01", "dev-02", "dev-03"}},
		{"parentheses override", `(tags.location.region = 'US' OR tags.location.region = 'EU') AND connectionState = 'Disconnected'`, []string{"dev-03"}},
		{"NOT binds tighter than AND", `NOT tags.location.region = 'US' AND connectionState = 'Connected'`, []string{"dev-04", "dev-06"}},
		{"false AND undefined is false, so NOT is true", `NOT (tags.location.region = 'US' AND connectionState = 'Connected')`, []string{"dev-03", "dev-04", "dev-05", "dev-06"}},
		{"undefined OR true", `tags.no.such.path = 1 OR deviceId = 'dev-02'`, []string{"dev-02"}},
		{"undefined never matches !=", `tags.nonexistent != 1`, []string{}},
		{"nested NOT NOT", `NOT NOT connectionState = 'Connected'`, []string{"dev-01", "dev-02", "dev-04", "dev-06"}},

		// Numbers and strings.
		{">= number", `properties.reported.telemetryConfig.sendFrequencyInSecs >= 300`, []string{"dev-01", "dev-03", "dev-06"}},
		{"< number", `properties.reported.telemetryConfig.sendFrequencyInSecs < 100`, []string{"dev-02", "dev-04"}},
		{"number vs string is undefined", `tags.floor > 1`, []string{"dev-01", "dev-03"}},
		{"string vs number", `tags.floor = '2'`, []string{"dev-06"}},
		{"ISO time strings compare", `lastActivityTime > '2024-05-25'`, []string{"dev-01", "dev-02", "dev-04", "dev-06"}},
		{"<= string", `deviceId <= 'dev-02'`, []string{"dev-01", "dev-02"}},
		{"arithmetic", `version + 1 > 5`, []string{"dev-01", "dev-03"}},
		{"modulo", `version % 2 = 0`, []string{"dev-05", "dev-06"}},
		{"negative literal", `-version < -4`, []string{"dev-01", "dev-03"}},
		{"hex literal", `version = 0x9`, []string{"dev-03"}},
		{"exponent literal", `properties.reported.telemetryConfig.sendFrequencyInSecs = 3e2`, []string{"dev-01", "dev-06"}},
		{"division by zero is undefined", `version / 0 = 1 OR deviceId = 'dev-04'`, []string{"dev-04"}},
		{"path vs path", `properties.desired.telemetryConfig.sendFrequencyInSecs = properties.reported.telemetryConfig.sendFrequencyInSecs`, []string{"dev-01", "dev-03", "dev-06"}},
		{"$version identifier", `properties.reported.$version > 5`, []string{"dev-01", "dev-03"}},
		{"bracket key", `properties.reported['$version'] > 5`, []string{"dev-01", "dev-03"}},
		{"bracket then dot", `tags['location'].region = 'EU'`, []string{"dev-03", "dev-04"}},
		{"object comparison is undefined", `tags.location = tags.location`, []string{}},

		// Functions.
		{"STARTSWITH and ENDSWITH", `STARTSWITH(deviceId, 'dev-0') AND ENDSWITH(tags.location.plant, '43')`, []string{"dev-01", "dev-02", "dev-06"}},
		{"STARTS_WITH ignore case", `STARTS_WITH(tags.location.region, 'u', true)`, []string{"dev-01", "dev-02", "dev-06"}},
		{"CONTAINS", `CONTAINS(properties.reported.iothubDM.firmwareUpdate.fwPackageUri, '/fw/')`, []string{"dev-01", "dev-02"}},
		{"LOWER", `LOWER(properties.reported.iothubDM.firmwareUpdate.status) IN ['applycomplete', 'applyfailed']`, []string{"dev-01", "dev-03"}},
		{"UPPER", `UPPER(tags.location.region) = 'US'`, []string{"dev-01", "dev-02", "dev-06"}},
		{"LENGTH", `LENGTH(tags.ring) = 4`, []string{"dev-02", "dev-03", "dev-06"}},
		{"AS_NUMBER", `AS_NUMBER(tags.floor) = 2`, []string{"dev-03", "dev-06"}},

		// Case: keywords and schema fields are case-insensitive, tags are not.
		{"keywords any case", `connectionState = 'Connected' and NOT is_defined(tags.critical) Or deviceId = 'dev-05'`, []string{"dev-01", "dev-02", "dev-05", "dev-06"}},
		{"schema field case-insensitive", `DeviceId = 'dev-03'`, []string{"dev-03"}},
		{"properties.reported case-insensitive", `Properties.Reported.connectivity = 'wired'`, []string{"dev-02"}},
		{"tag names case-sensitive", `tags.Location.region = 'US'`, []string{}},
		{"collection prefix stripped", `devices.deviceId = 'dev-04'`, []string{"dev-04"}},
		{"string escapes", `'it''s' = "it's" AND 'a\u0062c' = 'abc' AND deviceId = 'dev-01'`, []string{"dev-01"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCondition(tc.cond)
			require.NoError(t, err)
			q, err := Parse("SELECT * FROM devices WHERE " + tc.cond)
			require.NoError(t, err)
			var gotC, gotQ []map[string]any
			for _, d := range docs {
				if c.Match(d) {
					gotC = append(gotC, d)
				}
				if q.Match(d) {
					gotQ = append(gotQ, d)
				}
			}
			assert.Equal(t, tc.want, ids(gotC), "ParseCondition")
			assert.Equal(t, tc.want, ids(gotQ), "Parse")
		})
	}
}

func TestConditionStarMatchesAll(t *testing.T) {
	for _, s := range []string{"*", "  * "} {
		c, err := ParseCondition(s)
		require.NoError(t, err)
		assert.True(t, c.MatchesAll())
		for _, d := range twins(t) {
			assert.True(t, c.Match(d))
		}
		assert.True(t, c.Match(map[string]any{}))
	}
	c, err := ParseCondition(`deviceId IN ['a','b']`)
	require.NoError(t, err)
	assert.False(t, c.MatchesAll())
	assert.True(t, c.Match(map[string]any{"deviceId": "a"}))
	assert.True(t, c.Match(map[string]any{"deviceId": "b"}))
	assert.False(t, c.Match(map[string]any{"deviceId": "c"}))
	assert.False(t, c.Match(map[string]any{}))
}

func TestQueryWithoutWhereMatchesAll(t *testing.T) {
	q, err := Parse("SELECT * FROM devices")
	require.NoError(t, err)
	for _, d := range twins(t) {
		assert.True(t, q.Match(d))
	}
}

func TestGoNumberTypes(t *testing.T) {
	// Twins built in Go (not decoded from JSON) may hold integers.
	c, err := ParseCondition(`version = 7 AND properties.reported.n >= 2.5 AND tags.u < 10`)
	require.NoError(t, err)
	doc := map[string]any{
		"version":    int64(7),
		"properties": map[string]any{"reported": map[string]any{"n": json.Number("2.5")}},
		"tags":       map[string]any{"u": uint8(9)},
	}
	assert.True(t, c.Match(doc))
	doc["version"] = int(8)
	assert.False(t, c.Match(doc))
}

func TestArrayIndex(t *testing.T) {
	c, err := ParseCondition(`tags.rings[1] = 'b' AND NOT IS_DEFINED(tags.rings[5])`)
	require.NoError(t, err)
	assert.True(t, c.Match(map[string]any{"tags": map[string]any{"rings": []any{"a", "b"}}}))
	assert.False(t, c.Match(map[string]any{"tags": map[string]any{"rings": []any{"b", "a"}}}))
	assert.False(t, c.Match(map[string]any{"tags": map[string]any{"rings": "ab"}}))
}

func TestJobConditions(t *testing.T) {
	jobs := decodeDocs(t, jobsJSON)
	tests := []struct {
		sql  string
		want []string // deviceId/jobId
	}{
		{`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job-1'`, []string{"dev-01/job-1", "dev-02/job-1"}},
		{`SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'dev-01' AND devices.jobs.jobType = 'scheduleUpdateTwin'`, []string{"dev-01/job-2"}},
		{`SELECT * FROM devices.jobs WHERE jobId = 'job-1' AND status = 'completed'`, []string{"dev-01/job-1"}},
		{`select * from DEVICES.JOBS where Devices.Jobs.Status IN ['failed', 'canceled']`, []string{"dev-02/job-1"}},
		{`SELECT * FROM devices.jobs WHERE devices.jobs.createdTimeUtc > '2024-06-02'`, []string{"dev-01/job-2"}},
		{`SELECT * FROM devices.jobs WHERE devices.jobs.createdDateTimeUtc < '2024-06-02'`, []string{"dev-01/job-1", "dev-02/job-1"}},
		{`SELECT * FROM devices.jobs WHERE outcome.deviceMethodResponse.status = 200`, []string{"dev-01/job-1"}},
		{`SELECT * FROM devices.jobs WHERE devices.jobs.error.code = 'DeviceNotOnline'`, []string{"dev-02/job-1"}},
		{`SELECT * FROM devices.jobs WHERE NOT IS_DEFINED(endTimeUtc)`, []string{"dev-01/job-2"}},
		{`SELECT * FROM devices.jobs`, []string{"dev-01/job-1", "dev-02/job-1", "dev-01/job-2"}},
	}
	for _, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			q, err := Parse(tc.sql)
			require.NoError(t, err)
			assert.Equal(t, DevicesJobs, q.From())
			assert.False(t, q.IsAggregate())
			rows, err := q.Run(seq(jobs, nil))
			require.NoError(t, err)
			got := []string{}
			for _, r := range rows {
				got = append(got, r["deviceId"].(string)+"/"+r["jobId"].(string))
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestModuleQuery(t *testing.T) {
	modules := []map[string]any{
		{"deviceId": "device1", "moduleId": "scanner", "properties": map[string]any{"reported": map[string]any{"status": "scanning"}}},
		{"deviceId": "device2", "moduleId": "scanner", "properties": map[string]any{"reported": map[string]any{"status": "idle"}}},
		{"deviceId": "device3", "moduleId": "scanner", "properties": map[string]any{"reported": map[string]any{"status": "scanning"}}},
	}
	q, err := Parse(`SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND devices.modules.deviceId IN ['device1', 'device2']`)
	require.NoError(t, err)
	assert.Equal(t, DevicesModules, q.From())
	rows, err := q.Run(seq(modules, nil))
	require.NoError(t, err)
	assert.Equal(t, []string{"device1"}, ids(rows))
}

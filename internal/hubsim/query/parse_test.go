package query

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		sql       string
		from      Collection
		aggregate bool
		top       int // -1: none
	}{
		{`SELECT * FROM devices`, Devices, false, -1},
		{`select * from devices`, Devices, false, -1},
		{`SELECT * FROM Devices WHERE tags.location.region = 'US'`, Devices, false, -1},
		{"SELECT *\n  FROM devices\n  WHERE tags.location.region = 'US'\n    AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60", Devices, false, -1},
		{`SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']`, Devices, false, -1},
		{`SELECT * FROM devices WHERE is_defined(properties.reported.connectivity)`, Devices, false, -1},
		{`SELECT deviceId, tags.location, properties.reported.iothubDM AS dm FROM devices`, Devices, false, -1},
		{`SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'`, Devices, false, -1},
		{`SELECT COUNT() AS n FROM devices`, Devices, true, -1},
		{`SELECT COUNT() as totalNumberOfDevices FROM devices`, Devices, true, -1},
		{`SELECT COUNT(*) FROM devices`, Devices, true, -1},
		{`SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status`, Devices, true, -1},
		{`SELECT tags.location.region, tags.ring, COUNT() FROM devices GROUP BY tags.location.region, tags.ring`, Devices, true, -1},
		{`SELECT tags.ring FROM devices GROUP BY tags.ring`, Devices, true, -1},
		{`SELECT TOP 10 * FROM devices`, Devices, false, 10},
		{`SELECT TOP 0 deviceId FROM devices`, Devices, false, 0},
		{`SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['device1', 'device2']`, DevicesModules, false, -1},
		{`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'myJobId'`, DevicesJobs, false, -1},
		{`SELECT * FROM devices . jobs`, DevicesJobs, false, -1},
		{`SELECT * FROM devices WHERE x = -1.5e-3 AND y = 0XfF AND z = +2E+2 - 1 * 3 / 4 % 5`, Devices, false, -1},
		{`SELECT * FROM devices WHERE tags.x = undefined OR tags.y = [1, 'a', null]`, Devices, false, -1},
		{`SELECT * FROM devices WHERE ((((deviceId = 'a'))))`, Devices, false, -1},
		{`SELECT * FROM devices WHERE tags.from.select = 1`, Devices, false, -1},
		{`SELECT * FROM devices WHERE deviceId = 'ünïcødé' AND tags.名前 = 'x'`, Devices, false, -1},
	}
	for _, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			q, err := Parse(tc.sql)
			require.NoError(t, err)
			assert.Equal(t, tc.from, q.From())
			assert.Equal(t, tc.aggregate, q.IsAggregate())
			n, ok := q.Top()
			assert.Equal(t, tc.top >= 0, ok)
			if ok {
				assert.Equal(t, tc.top, n)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		sql  string
		want string
	}{
		{``, `syntax error at position 1: the query is empty; expected SELECT ... FROM devices`},
		{`   `, `syntax error at position 1: the query is empty; expected SELECT ... FROM devices`},
		{`FROM devices`, `syntax error at position 1: expected SELECT, got 'FROM'`},
		{`SELECT`, `syntax error at position 7: expected '*' or a list of properties after 'SELECT', got end of query`},
		{`SELECT FROM devices`, `syntax error at position 8: expected '*' or a list of properties after 'SELECT', got 'FROM'`},
		{`SELECT * devices`, `syntax error at position 10: expected FROM, got 'devices'`},
		{`SELECT * FROM`, `syntax error at position 14: expected a collection after 'FROM' (devices, devices.modules or devices.jobs), got end of query`},
		{`SELECT * FROM things`, `syntax error at position 15: unknown collection 'things'; use devices, devices.modules or devices.jobs`},
		{`SELECT * FROM devices.twins`, `syntax error at position 15: unknown collection 'devices.twins'; use devices, devices.modules or devices.jobs`},
		{`SELECT * FROM devices.`, `syntax error at position 23: expected a name after '.', got end of query`},
		{`SELECT * FROM devices WHERE`, `syntax error at position 28: expected a condition after 'WHERE', got end of query`},
		{`SELECT * FROM devices WHERE x = AND y = 1`, `syntax error at position 33: expected a value after '=', got 'AND'`},
		{`SELECT * FROM devices WHERE x = 1 AND`, `syntax error at position 38: expected a value after 'AND', got end of query`},
		{`SELECT * FROM devices WHERE x = 1 OR OR y = 2`, `syntax error at position 38: expected a value after 'OR', got 'OR'`},
		{`SELECT * FROM devices WHERE (x = 1`, `syntax error at position 35: expected ')' to close the '(' at position 29, got end of query`},
		{`SELECT * FROM devices WHERE x = 1)`, `syntax error at position 34: expected GROUP BY or end of query, got ')'`},
		{`SELECT * FROM devices WHERE x = 'abc`, `syntax error at position 33: unterminated string starting here`},
		{`SELECT * FROM devices WHERE x = "abc`, `syntax error at position 33: unterminated string starting here`},
		{`SELECT * FROM devices WHERE x = 'a\qb'`, `syntax error at position 35: invalid escape '\q' in string`},
		{`SELECT * FROM devices WHERE x = '\u12'`, `syntax error at position 34: invalid escape in string: \u needs 4 hexadecimal digits`},
		{`SELECT * FROM devices WHERE x == 1`, `syntax error at position 31: use '=' for equality, not '=='`},
		{`SELECT * FROM devices WHERE x = 1 && y = 2`, `syntax error at position 35: '&&' is not supported; use AND`},
		{`SELECT * FROM devices WHERE x = 1 || y = 2`, `syntax error at position 35: '||' is not supported; use OR`},
		{`SELECT * FROM devices WHERE !x`, `syntax error at position 29: unexpected character '!'; use NOT or '!='`},
		{`SELECT * FROM devices WHERE x = #`, `syntax error at position 33: unexpected character '#'`},
		{`SELECT * FROM devices WHERE x = 12abc`, `syntax error at position 33: invalid number '12abc'`},
		{`SELECT * FROM devices WHERE x = 0x`, `syntax error at position 33: invalid number '0x'`},
		{`SELECT * FROM devices WHERE x = 1 = 2`, `syntax error at position 35: comparisons cannot be chained; join them with AND`},
		{`SELECT * FROM devices WHERE x IN 'a'`, `syntax error at position 34: expected '[' after 'IN', got string 'a'`},
		{`SELECT * FROM devices WHERE x nin 'a'`, `syntax error at position 35: expected '[' after 'NIN', got string 'a'`},
		{`SELECT * FROM devices WHERE x IN ['a', b]`, `syntax error at position 40: the list after IN may hold only constants (strings, numbers, true, false, null), got 'b'`},
		{`SELECT * FROM devices WHERE x IN ['a' 'b']`, `syntax error at position 39: expected ',' or ']' in the list after IN, got string 'b'`},
		{`SELECT * FROM devices WHERE x IN ['a'`, `syntax error at position 38: expected ',' or ']' in the list after IN, got end of query`},
		{`SELECT * FROM devices WHERE FOO(x)`, `syntax error at position 29: unknown function 'FOO'`},
		{`SELECT * FROM devices WHERE IS_DEFINED()`, `syntax error at position 29: IS_DEFINED expects 1 argument, got 0`},
		{`SELECT * FROM devices WHERE STARTSWITH(deviceId)`, `syntax error at position 29: STARTSWITH expects 2 or 3 arguments, got 1`},
		{`SELECT * FROM devices WHERE is_defined(x y)`, `syntax error at position 42: expected ',' or ')' in the arguments of IS_DEFINED, got 'y'`},
		{`SELECT * FROM devices WHERE COUNT() > 1`, `syntax error at position 29: aggregate COUNT() is allowed only in the SELECT list`},
		{`SELECT * FROM devices WHERE tags.`, `syntax error at position 34: expected a property name after '.', got end of query`},
		{`SELECT * FROM devices WHERE tags[x] = 1`, `syntax error at position 34: expected a quoted property name or an array index after '[', got 'x'`},
		{`SELECT * FROM devices WHERE tags['x' = 1`, `syntax error at position 38: expected ']', got '='`},
		{`SELECT * FROM devices ORDER BY deviceId`, `syntax error at position 23: expected WHERE, GROUP BY or end of query, got 'ORDER'`},
		{`SELECT * FROM devices WHERE x = 1 y`, `syntax error at position 35: expected GROUP BY or end of query, got 'y'`},
		{`SELECT *, deviceId FROM devices`, `syntax error at position 9: '*' cannot be combined with other SELECT items`},
		{`SELECT deviceId, * FROM devices`, `syntax error at position 18: '*' cannot be combined with other SELECT items`},
		{`SELECT deviceId AS FROM devices`, `syntax error at position 20: expected a name after 'AS', got 'FROM'`},
		{`SELECT deviceId, FROM devices`, `syntax error at position 18: expected a property or an aggregate after ',', got 'FROM'`},
		{`SELECT deviceId, tags.deviceId FROM devices`, `syntax error at position 18: duplicate column name 'deviceId' in the SELECT list; rename one with AS`},
		{`SELECT COUNT() + 1 FROM devices`, `syntax error at position 16: expected FROM, got '+'`},
		{`SELECT 1 + COUNT() FROM devices`, `syntax error at position 12: aggregate COUNT() must be a whole SELECT item, not part of an expression`},
		{`SELECT SUM() FROM devices`, `syntax error at position 12: SUM expects 1 argument, got 0`},
		{`SELECT COUNT( FROM devices`, `syntax error at position 15: expected a value after '(', got 'FROM'`},
		{`SELECT deviceId, COUNT() FROM devices`, `syntax error at position 8: 'deviceId' must be in GROUP BY or inside an aggregate such as COUNT()`},
		{`SELECT tags.ring, COUNT() FROM devices GROUP BY tags.location.region`, `syntax error at position 8: 'tags.ring' must be in GROUP BY or inside an aggregate such as COUNT()`},
		{`SELECT * FROM devices GROUP BY tags.ring`, `syntax error at position 32: SELECT * cannot be used with GROUP BY; select the grouped properties and aggregates`},
		{`SELECT COUNT() FROM devices GROUP tags.ring`, `syntax error at position 35: expected BY after 'GROUP', got 'tags'`},
		{`SELECT COUNT() FROM devices GROUP BY`, `syntax error at position 37: expected a property path after 'BY', got end of query`},
		{`SELECT COUNT() FROM devices GROUP BY tags.a tags.b`, `syntax error at position 45: expected ',' or end of query, got 'tags'`},
		{`SELECT deviceId FROM devices.jobs`, `syntax error at position 8: queries on devices.jobs support only SELECT * (no projections, aggregates or GROUP BY)`},
		{`SELECT COUNT() FROM devices.jobs`, `syntax error at position 8: queries on devices.jobs support only SELECT * (no projections, aggregates or GROUP BY)`},
		{`SELECT TOP x * FROM devices`, `syntax error at position 12: expected a whole number after 'TOP', got 'x'`},
		{`SELECT TOP 1.5 * FROM devices`, `syntax error at position 12: expected a whole number after 'TOP', got '1.5'`},
		{`SELECT * FROM devices WHERE deviceId = 'ü' AND #`, `syntax error at position 48: unexpected character '#'`},
		{"SELECT * FROM devices WHERE x = '\xff'", `syntax error at position 34: the query is not valid UTF-8`},
		{`SELECT * FROM devices WHERE ` + strings.Repeat("(", 101) + `x = 1` + strings.Repeat(")", 101), `syntax error at position 129: the expression is nested too deeply (more than 100 levels)`},
		{`SELECT * FROM devices WHERE ` + strings.Repeat("NOT ", 101) + `x = 1`, `syntax error at position 429: the expression is nested too deeply (more than 100 levels)`},
		{`SELECT * FROM devices WHERE deviceId = '` + strings.Repeat("a", MaxLength) + `'`, `syntax error at position 8193: the query is 8233 characters long; the maximum is 8192`},
	}
	for _, tc := range tests {
		name := tc.sql
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			q, err := Parse(tc.sql)
			require.Error(t, err)
			assert.Nil(t, q)
			var qe *Error
			require.True(t, errors.As(err, &qe), "error is a *query.Error: %T", err)
			assert.Equal(t, tc.want, err.Error())
			assert.GreaterOrEqual(t, qe.Pos, 1)
		})
	}
}

func TestParseConditionErrors(t *testing.T) {
	tests := []struct {
		cond string
		want string
	}{
		{``, `syntax error at position 1: the condition is empty; use '*' for all devices`},
		{`WHERE deviceId = 'a'`, `syntax error at position 1: a queryCondition has no WHERE keyword; remove it`},
		{`deviceId = 'a' deviceId`, `syntax error at position 16: unexpected 'deviceId' after the condition`},
		{`AND deviceId = 'a'`, `syntax error at position 1: expected a condition, got 'AND'`},
		{`deviceId IN ['a',`, `syntax error at position 18: the list after IN may hold only constants (strings, numbers, true, false, null), got end of query`},
		{`* AND deviceId = 'a'`, `syntax error at position 1: expected a condition, got '*'`},
		{`SELECT * FROM devices`, `syntax error at position 1: expected a condition, got 'SELECT'`},
	}
	for _, tc := range tests {
		t.Run(tc.cond, func(t *testing.T) {
			c, err := ParseCondition(tc.cond)
			require.Error(t, err)
			assert.Nil(t, c)
			var qe *Error
			require.True(t, errors.As(err, &qe))
			assert.Equal(t, tc.want, err.Error())
		})
	}
}

func TestErrorPositionCountsCharacters(t *testing.T) {
	// 'ü' is two bytes but one character.
	_, err := Parse(`SELECT * FROM devices WHERE tags.ü = AND`)
	var qe *Error
	require.True(t, errors.As(err, &qe))
	assert.Equal(t, 38, qe.Pos)
	assert.Equal(t, "expected a value after '=', got 'AND'", qe.Msg)
}

package query

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that no input makes Parse or ParseCondition panic, that
// every failure is a *Error pointing inside the text, and that whatever
// parses can be evaluated over real twins without panicking.
func FuzzParse(f *testing.F) {
	seeds := []string{
		`SELECT * FROM devices`,
		`SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60`,
		`SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']`,
		`SELECT * FROM devices WHERE NOT is_defined(properties.reported.iothubDM.firmwareUpdate) OR x NIN [1, -2.5, null, true]`,
		`SELECT deviceId, tags.location, properties.reported.iothubDM AS dm FROM devices`,
		`SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status`,
		`SELECT TOP 3 COUNT(), SUM(version), AVG(version), MIN(deviceId), MAX(lastActivityTime) FROM devices`,
		`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job-1' AND devices.jobs.createdTimeUtc > '2016-09-01'`,
		`SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['device1','device2']`,
		`SELECT * FROM devices WHERE STARTSWITH(deviceId, 'sim-', true) AND LENGTH(LOWER(tags['a-b'])) % 2 = 0`,
		`SELECT * FROM devices WHERE tags.list[0] = 'it''s' AND "\u00e9\n" <> 'x' AND version / 0 = 0x1F`,
		`deviceId IN ['a','b']`,
		`*`,
		`SELECT * FROM devices WHERE ((((x = 1))`,
		`SELECT * FROM devices WHERE x = 'unterminated`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	docs := twins(f)
	jobs := decodeDocs(f, jobsJSON)
	f.Fuzz(func(t *testing.T, s string) {
		checkErr := func(err error) {
			var qe *Error
			if !errors.As(err, &qe) {
				t.Fatalf("error is %T, not *query.Error: %v", err, err)
			}
			if n := utf8.RuneCountInString(s); qe.Pos < 1 || (qe.Pos > n+1 && qe.Pos != MaxLength+1) {
				t.Fatalf("position %d outside the %d-character input: %v", qe.Pos, n, err)
			}
			if qe.Msg == "" {
				t.Fatal("empty message")
			}
		}
		q, err := Parse(s)
		if err != nil {
			checkErr(err)
		} else {
			src := docs
			if q.From() == DevicesJobs {
				src = jobs
			}
			for _, d := range src {
				q.Match(d)
				q.Project(d)
			}
			if _, err := q.Run(seq(src, nil)); err != nil {
				t.Fatalf("Run: %v", err)
			}
		}
		c, err := ParseCondition(s)
		if err != nil {
			checkErr(err)
			return
		}
		for _, d := range docs {
			c.Match(d)
		}
	})
}

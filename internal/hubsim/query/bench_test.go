package query

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

const benchFleet = 100_000

var (
	fleetOnce sync.Once
	fleetDocs []map[string]any
)

// fleet builds benchFleet twins shaped like hubsim's (numbers as float64,
// as encoding/json decodes them), reproducibly.
func fleet() []map[string]any {
	fleetOnce.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		regions := []string{"US", "EU", "APAC", "LATAM"}
		fw := []string{"waiting", "downloading", "downloadComplete", "applying", "applyComplete", "applyFailed"}
		rings := []string{"canary", "prod", "prod", "prod"}
		states := []string{"Connected", "Connected", "Connected", "Disconnected"}
		fleetDocs = make([]map[string]any, benchFleet)
		for i := range fleetDocs {
			tags := map[string]any{
				"location": map[string]any{"region": regions[rng.IntN(len(regions))], "plant": fmt.Sprintf("plant-%02d", rng.IntN(40))},
				"ring":     rings[rng.IntN(len(rings))],
			}
			if rng.IntN(50) == 0 {
				tags["quarantine"] = true
			}
			reported := map[string]any{
				"telemetryConfig": map[string]any{"sendFrequencyInSecs": float64(30 * (1 + rng.IntN(20)))},
				"$version":        float64(1 + rng.IntN(100)),
			}
			if rng.IntN(10) != 0 {
				reported["iothubDM"] = map[string]any{"firmwareUpdate": map[string]any{
					"status":       fw[rng.IntN(len(fw))],
					"fwPackageUri": "https://contoso.example/fw/2.1.bin",
				}}
			}
			fleetDocs[i] = map[string]any{
				"deviceId":         fmt.Sprintf("sim-%06d", i+1),
				"etag":             "AAAAAAAAAAE=",
				"version":          float64(1 + rng.IntN(50)),
				"status":           "enabled",
				"connectionState":  states[rng.IntN(len(states))],
				"lastActivityTime": "2024-06-01T12:00:00Z",
				"tags":             tags,
				"properties": map[string]any{
					"desired":  map[string]any{"$version": float64(1)},
					"reported": reported,
				},
			}
		}
	})
	return fleetDocs
}

// BenchmarkMatch measures one WHERE evaluation against one twin, cycling
// through a fleet of 100,000 twins; ns/op is the cost per document.
func BenchmarkMatch(b *testing.B) {
	docs := fleet()
	cases := []struct{ name, where string }{
		{"equality", `connectionState = 'Connected'`},
		{"fleet-filter", `tags.location.region IN ['US', 'EU'] AND properties.reported.iothubDM.firmwareUpdate.status = 'applyComplete' AND connectionState = 'Connected' AND NOT IS_DEFINED(tags.quarantine)`},
		{"or-not-functions", `(STARTSWITH(deviceId, 'sim-0001') OR properties.reported.telemetryConfig.sendFrequencyInSecs >= 300) AND NOT (tags.ring = 'canary') AND properties.reported.$version % 2 = 0`},
		{"missing-path", `tags.no.such.path = 1 OR properties.reported.nothing IN [1, 2, 3]`},
	}
	for _, tc := range cases {
		q, err := Parse("SELECT * FROM devices WHERE " + tc.where)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			matched, i := 0, 0
			for b.Loop() {
				if q.Match(docs[i]) {
					matched++
				}
				i++
				if i == len(docs) {
					i = 0
				}
			}
			b.ReportMetric(float64(matched)/float64(b.N)*100, "%matched")
		})
	}
}

// BenchmarkRun measures a whole query over the 100,000-twin fleet per op.
func BenchmarkRun(b *testing.B) {
	docs := fleet()
	cases := []struct{ name, sql string }{
		{"count", `SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected' AND tags.ring = 'prod'`},
		{"group-by", `SELECT properties.reported.iothubDM.firmwareUpdate.status AS status, COUNT() AS n FROM devices GROUP BY properties.reported.iothubDM.firmwareUpdate.status`},
		{"project", `SELECT deviceId, tags.location.region AS region FROM devices WHERE properties.reported.iothubDM.firmwareUpdate.status = 'applyFailed'`},
	}
	for _, tc := range cases {
		q, err := Parse(tc.sql)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := q.Run(seq(docs, nil)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchFleet, "ns/doc")
		})
	}
}

// BenchmarkParse measures parsing a typical fleet query.
func BenchmarkParse(b *testing.B) {
	const sql = `SELECT deviceId, properties.reported.iothubDM AS dm FROM devices WHERE tags.location.region IN ['US', 'EU'] AND (properties.reported.iothubDM.firmwareUpdate.status = 'applyComplete' OR NOT IS_DEFINED(properties.reported.iothubDM))`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(sql); err != nil {
			b.Fatal(err)
		}
	}
}

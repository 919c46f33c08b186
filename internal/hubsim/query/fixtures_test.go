package query

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// twinsJSON is a small fleet of device twins in the shape the hub returns
// (iothub-contract.md §4.2), decoded the way hubsim's REST layer decodes
// JSON (numbers become float64).
const twinsJSON = `[
{"deviceId":"dev-01","etag":"AAAAAAAAAAE=","version":5,"status":"enabled","connectionState":"Connected",
 "lastActivityTime":"2024-06-01T12:00:00Z","authenticationType":"sas","capabilities":{"iotEdge":false},
 "tags":{"location":{"region":"US","plant":"Redmond43"},"floor":3,"ring":"canary"},
 "properties":{
  "desired":{"telemetryConfig":{"sendFrequencyInSecs":300},"$version":4},
  "reported":{"connectivity":"wifi","telemetryConfig":{"sendFrequencyInSecs":300,"status":"Success"},
   "iothubDM":{"firmwareUpdate":{"status":"applyComplete","fwPackageUri":"https://contoso.example/fw/2.1.bin","error":null}},
   "$version":7}}},
{"deviceId":"dev-02","etag":"AAAAAAAAAAI=","version":3,"status":"enabled","connectionState":"Connected",
 "lastActivityTime":"2024-06-02T08:30:00Z","authenticationType":"sas","capabilities":{"iotEdge":false},
 "tags":{"location":{"region":"US","plant":"Redmond43"},"floor":1,"ring":"prod"},
 "properties":{
  "desired":{"telemetryConfig":{"sendFrequencyInSecs":60},"$version":2},
  "reported":{"connectivity":"wired","telemetryConfig":{"sendFrequencyInSecs":30,"status":"Pending"},
   "iothubDM":{"firmwareUpdate":{"status":"downloading","fwPackageUri":"https://contoso.example/fw/2.1.bin"}},
   "$version":3}}},
{"deviceId":"dev-03","etag":"AAAAAAAAAAM=","version":9,"status":"enabled","connectionState":"Disconnected",
 "lastActivityTime":"2024-05-20T00:00:00Z","authenticationType":"sas","capabilities":{"iotEdge":true},
 "tags":{"location":{"region":"EU","plant":"Dublin1"},"floor":2,"ring":"prod","critical":true},
 "properties":{
  "desired":{"telemetryConfig":{"sendFrequencyInSecs":600},"$version":5},
  "reported":{"connectivity":"cellular","telemetryConfig":{"sendFrequencyInSecs":600,"status":"Error"},
   "iothubDM":{"firmwareUpdate":{"status":"applyFailed","error":{"code":"E42","message":"checksum mismatch"}}},
   "$version":12}}},
{"deviceId":"dev-04","etag":"AAAAAAAAAAQ=","version":1,"status":"enabled","connectionState":"Connected",
 "lastActivityTime":"2024-06-03T00:00:00Z","authenticationType":"sas","capabilities":{"iotEdge":false},
 "tags":{"location":{"region":"EU","plant":"Dublin1"},"ring":"canary","critical":false},
 "properties":{
  "desired":{"$version":1},
  "reported":{"connectivity":null,"telemetryConfig":{"sendFrequencyInSecs":60,"status":"Success"},"$version":2}}},
{"deviceId":"dev-05","etag":"AAAAAAAAAAU=","version":2,"status":"disabled","connectionState":"Disconnected",
 "lastActivityTime":"0001-01-01T00:00:00Z","authenticationType":"sas","capabilities":{"iotEdge":false},
 "tags":{},
 "properties":{
  "desired":{"$version":1},
  "reported":{"iothubDM":{"reboot":{"lastReboot":"2024-05-01T10:00:00Z"}},"$version":4}}},
{"deviceId":"dev-06","etag":"AAAAAAAAAAY=","version":4,"status":"enabled","connectionState":"Connected",
 "lastActivityTime":"2024-05-31T23:59:59Z","authenticationType":"sas","capabilities":{"iotEdge":false},
 "tags":{"location":{"region":"us","plant":"Redmond43"},"floor":"2","ring":"prod"},
 "properties":{
  "desired":{"telemetryConfig":{"sendFrequencyInSecs":300},"$version":3},
  "reported":{"connectivity":"wifi","telemetryConfig":{"sendFrequencyInSecs":300,"status":"Success"},
   "iothubDM":{"firmwareUpdate":{"status":"waiting"}},"$version":5}}}
]`

// jobsJSON holds device-job records (iothub-contract.md §3.5).
const jobsJSON = `[
{"deviceId":"dev-01","jobId":"job-1","jobType":"scheduleDeviceMethod","status":"completed",
 "startTimeUtc":"2024-06-01T10:00:00Z","endTimeUtc":"2024-06-01T10:00:02Z",
 "createdDateTimeUtc":"2024-06-01T09:59:00Z","lastUpdatedDateTimeUtc":"2024-06-01T10:00:02Z",
 "outcome":{"deviceMethodResponse":{"status":200,"payload":{"ok":true}}}},
{"deviceId":"dev-02","jobId":"job-1","jobType":"scheduleDeviceMethod","status":"failed",
 "startTimeUtc":"2024-06-01T10:00:00Z","endTimeUtc":"2024-06-01T10:00:30Z",
 "createdDateTimeUtc":"2024-06-01T09:59:00Z","lastUpdatedDateTimeUtc":"2024-06-01T10:00:30Z",
 "error":{"code":"DeviceNotOnline","description":"The device is not online"}},
{"deviceId":"dev-01","jobId":"job-2","jobType":"scheduleUpdateTwin","status":"pending",
 "startTimeUtc":"2024-06-05T00:00:00Z",
 "createdDateTimeUtc":"2024-06-04T12:00:00Z","lastUpdatedDateTimeUtc":"2024-06-04T12:00:00Z"}
]`

func decodeDocs(t testing.TB, s string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &docs))
	return docs
}

func twins(t testing.TB) []map[string]any { return decodeDocs(t, twinsJSON) }

// seq yields docs in order and counts how many were handed out.
func seq(docs []map[string]any, yielded *int) func(func(map[string]any) bool) {
	return func(yield func(map[string]any) bool) {
		for _, d := range docs {
			if yielded != nil {
				*yielded++
			}
			if !yield(d) {
				return
			}
		}
	}
}

func ids(docs []map[string]any) []string {
	out := []string{}
	for _, d := range docs {
		out = append(out, d["deviceId"].(string))
	}
	return out
}

package sim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fleetJSON = `{
  "seed": 7,
  "groups": [
    {
      "name": "thermostats",
      "idPattern": "therm-%04d",
      "count": 100,
      "tags": {"site": "plant-a", "floor": 3},
      "reported": {"fw": "1.0"},
      "modules": ["mod1", "mod2"],
      "connection": {"onlineShare": 0.95, "flapping": {"meanUp": "10m", "meanDown": "30s"}},
      "methods": {
        "reboot": {"latency": {"dist": "uniform", "min": "5ms", "max": "50ms"}, "status": 200, "payload": {"ok": true}, "downtime": "5s"},
        "firmwareUpdate": {"failureRate": 0.03, "stepDuration": "1s"},
        "ping": {"latency": "20ms"},
        "slow": {"latency": {"dist": "normal", "mean": "100ms", "stddev": "10ms", "min": "50ms"}},
        "*": {"status": 200}
      },
      "faults": {"throttle": 0.01, "serverError": 0, "unavailable": 0, "gatewayTimeout": 0, "drop": 0,
                 "methods": {"reboot": {"throttle": 0.5}}}
    },
    {"idPattern": "gw-%d", "count": 2}
  ]
}`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestLoadFleetFileJSONAndYAML(t *testing.T) {
	fleetYAML, err := os.ReadFile(filepath.Join("testdata", "fleet.yaml"))
	require.NoError(t, err)
	fromJSON, err := LoadFleetFile(writeFile(t, "fleet.json", fleetJSON))
	require.NoError(t, err)
	fromYAML, err := LoadFleetFile(writeFile(t, "fleet.yaml", string(fleetYAML)))
	require.NoError(t, err)
	sniffed, err := LoadFleetFile(writeFile(t, "fleet.conf", string(fleetYAML)))
	require.NoError(t, err)
	sniffedJSON, err := LoadFleetFile(writeFile(t, "fleet.txt", fleetJSON))
	require.NoError(t, err)

	for name, spec := range map[string]*FleetSpec{"json": fromJSON, "yaml": fromYAML, "sniffed yaml": sniffed, "sniffed json": sniffedJSON} {
		require.NotNil(t, spec.Seed, name)
		assert.Equal(t, int64(7), *spec.Seed, name)
		require.Len(t, spec.Groups, 2, name)
		g := spec.Groups[0]
		assert.Equal(t, "thermostats", g.Name, name)
		assert.Equal(t, "therm-%04d", g.IDPattern, name)
		assert.Equal(t, 100, g.Count, name)
		assert.Equal(t, map[string]any{"site": "plant-a", "floor": float64(3)}, g.Tags, name)
		assert.Equal(t, map[string]any{"fw": "1.0"}, g.Reported, name)
		assert.Equal(t, []string{"mod1", "mod2"}, g.Modules, name)
		require.NotNil(t, g.Connection.OnlineShare, name)
		assert.Equal(t, 0.95, *g.Connection.OnlineShare, name)
		require.NotNil(t, g.Connection.Flapping, name)
		assert.Equal(t, Duration(10*time.Minute), g.Connection.Flapping.MeanUp, name)
		assert.Equal(t, Duration(30*time.Second), g.Connection.Flapping.MeanDown, name)

		rb := g.Methods["reboot"]
		require.NotNil(t, rb.Latency, name)
		assert.Equal(t, "uniform", rb.Latency.Dist, name)
		assert.Equal(t, Duration(5*time.Millisecond), *rb.Latency.Min, name)
		assert.Equal(t, Duration(50*time.Millisecond), *rb.Latency.Max, name)
		assert.Equal(t, 200, *rb.Status, name)
		assert.JSONEq(t, `{"ok":true}`, string(rb.Payload), name)
		assert.Equal(t, Duration(5*time.Second), *rb.Downtime, name)
		fw := g.Methods["firmwareUpdate"]
		assert.Equal(t, 0.03, *fw.FailureRate, name)
		assert.Equal(t, Duration(time.Second), *fw.StepDuration, name)
		assert.Equal(t, &Latency{Dist: "fixed", Value: Duration(20 * time.Millisecond)}, g.Methods["ping"].Latency, name)
		assert.Equal(t, Duration(100*time.Millisecond), *g.Methods["slow"].Latency.Mean, name)
		assert.Contains(t, g.Methods, "*", name)

		require.NotNil(t, g.Faults, name)
		assert.Equal(t, 0.01, *g.Faults.Throttle, name)
		assert.Equal(t, 0.5, *g.Faults.Methods["reboot"].Throttle, name)

		assert.Equal(t, "gw-%d", spec.Groups[1].IDPattern, name)
		assert.Empty(t, spec.Groups[1].Name, name)
	}
}

func TestFleetFileErrors(t *testing.T) {
	group := func(extra string) string {
		return `{"groups":[{"idPattern":"d-%d","count":2},{"idPattern":"e-%d","count":3` + extra + `}]}`
	}
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"not JSON", `{"groups": [`, "not valid JSON"},
		{"not YAML", "groups: [\n  - a: b\n - c", "not valid YAML"},
		{"root not object", `[1,2]`, "fleet: must be an object"},
		{"unknown root field", `{"groups":[{"idPattern":"d-%d","count":1}],"sede":1}`, "sede: unknown field"},
		{"seed not integer", `{"seed":"x","groups":[{"idPattern":"d-%d","count":1}]}`, "seed: must be a number"},
		{"seed fractional", `{"seed":1.5,"groups":[{"idPattern":"d-%d","count":1}]}`, "seed: must be an integer"},
		{"groups missing", `{"seed":1}`, "groups: required"},
		{"groups not array", `{"groups":{}}`, "groups: must be an array"},
		{"groups empty", `{"groups":[]}`, "groups: at least one group is required"},
		{"group not object", `{"groups":[3]}`, "groups[0]: must be an object"},
		{"unknown group field", group(`,"modulez":[]`), "groups[1].modulez: unknown field"},
		{"idPattern missing", `{"groups":[{"count":1}]}`, "groups[0].idPattern: required"},
		{"idPattern no verb", group(`,"idPattern":"x"`), "groups[1].idPattern: \"x\": needs an integer verb"},
		{"idPattern string verb", `{"groups":[{"idPattern":"d-%s","count":2}]}`, "groups[0].idPattern: \"d-%s\": the only verb allowed"},
		{"idPattern two verbs", `{"groups":[{"idPattern":"d-%d-%d","count":2}]}`, "more than one verb"},
		{"idPattern bad char", `{"groups":[{"idPattern":"d/%d","count":2}]}`, "groups[0].idPattern: \"d/%d\": device id \"d/1\": character '/' is not allowed"},
		{"count missing", `{"groups":[{"idPattern":"d-%d"}]}`, "groups[0].count: required"},
		{"count zero", `{"groups":[{"idPattern":"d-%d","count":0}]}`, "groups[0].count: must be between 1 and"},
		{"count string", `{"groups":[{"idPattern":"d-%d","count":"5"}]}`, "groups[0].count: must be a number, not a string"},
		{"duplicate names", `{"groups":[{"name":"a","idPattern":"d-%d","count":1},{"name":"a","idPattern":"e-%d","count":1}]}`, "groups[1].name: \"a\" is also the name of groups[0]"},
		{"tags not object", group(`,"tags":[1]`), "groups[1].tags: must be an object, not an array"},
		{"tags bad key", group(`,"tags":{"a.b":1}`), "groups[1].tags: member name \"a.b\""},
		{"reported bad key", group(`,"reported":{"$x":1}`), "groups[1].reported: member name \"$x\""},
		{"modules not array", group(`,"modules":"m"`), "groups[1].modules: must be an array of module ids"},
		{"module not string", group(`,"modules":[1]`), "groups[1].modules[0]: must be a string"},
		{"module duplicate", group(`,"modules":["m","m"]`), "groups[1].modules[1]: duplicate module id \"m\""},
		{"module bad id", group(`,"modules":["a b"]`), "groups[1].modules[0]: module id \"a b\""},
		{"connection unknown", group(`,"connection":{"online":1}`), "groups[1].connection.online: unknown field"},
		{"onlineShare > 1", group(`,"connection":{"onlineShare":1.5}`), "groups[1].connection.onlineShare: must be a share between 0 and 1"},
		{"onlineShare string", group(`,"connection":{"onlineShare":"most"}`), "groups[1].connection.onlineShare: must be a number"},
		{"flapping missing meanDown", group(`,"connection":{"flapping":{"meanUp":"1s"}}`), "groups[1].connection.flapping.meanDown: required"},
		{"flapping bad duration", group(`,"connection":{"flapping":{"meanUp":"soon","meanDown":"1s"}}`), "groups[1].connection.flapping.meanUp: not a duration"},
		{"flapping zero", group(`,"connection":{"flapping":{"meanUp":"0s","meanDown":"1s"}}`), "groups[1].connection.flapping.meanUp: must be positive"},
		{"methods not object", group(`,"methods":[]`), "groups[1].methods: must be an object"},
		{"method bad name", group(`,"methods":{"re boot":{}}`), "groups[1].methods[\"re boot\"]: method name \"re boot\""},
		{"method unknown field", group(`,"methods":{"reboot":{"delay":"1s"}}`), "groups[1].methods.reboot.delay: unknown field"},
		{"latency min not duration", group(`,"methods":{"reboot":{"latency":{"dist":"uniform","min":5,"max":"50ms"}}}`), "groups[1].methods.reboot.latency.min: not a duration"},
		{"latency min bad string", group(`,"methods":{"reboot":{"latency":{"dist":"uniform","min":"5 parsecs","max":"50ms"}}}`), "groups[1].methods.reboot.latency.min: not a duration"},
		{"latency dist missing", group(`,"methods":{"reboot":{"latency":{"min":"5ms"}}}`), "groups[1].methods.reboot.latency.dist: required"},
		{"latency dist unknown", group(`,"methods":{"reboot":{"latency":{"dist":"poisson"}}}`), "groups[1].methods.reboot.latency.dist: \"poisson\": must be fixed, uniform or normal"},
		{"latency uniform no max", group(`,"methods":{"reboot":{"latency":{"dist":"uniform","min":"5ms"}}}`), "groups[1].methods.reboot.latency.max: required for dist uniform"},
		{"latency max < min", group(`,"methods":{"reboot":{"latency":{"dist":"uniform","min":"50ms","max":"5ms"}}}`), "groups[1].methods.reboot.latency.max: must not be less than min"},
		{"latency negative", group(`,"methods":{"ping":{"latency":"-5ms"}}`), "groups[1].methods.ping.latency.value: must not be negative"},
		{"latency fixed with min", group(`,"methods":{"ping":{"latency":{"dist":"fixed","value":"1ms","min":"1ms"}}}`), "groups[1].methods.ping.latency.min: only for dist uniform and normal"},
		{"latency value for uniform", group(`,"methods":{"ping":{"latency":{"dist":"uniform","value":"1ms","min":"1ms","max":"2ms"}}}`), "groups[1].methods.ping.latency.value: only for dist fixed"},
		{"latency normal without mean", group(`,"methods":{"ping":{"latency":{"dist":"normal","stddev":"1ms"}}}`), "groups[1].methods.ping.latency.mean: required for dist normal"},
		{"latency not object", group(`,"methods":{"ping":{"latency":5}}`), "groups[1].methods.ping.latency: must be an object"},
		{"status string", group(`,"methods":{"ping":{"status":"ok"}}`), "groups[1].methods.ping.status: must be a number"},
		{"status fractional", group(`,"methods":{"ping":{"status":200.5}}`), "groups[1].methods.ping.status: must be an integer"},
		{"downtime for ping", group(`,"methods":{"ping":{"downtime":"1s"}}`), "groups[1].methods.ping.downtime: only for reboot, factoryReset"},
		{"downtime bad", group(`,"methods":{"reboot":{"downtime":"forever"}}`), "groups[1].methods.reboot.downtime: not a duration"},
		{"downtime negative", group(`,"methods":{"reboot":{"downtime":"-1s"}}`), "groups[1].methods.reboot.downtime: must not be negative"},
		{"failureRate for reboot", group(`,"methods":{"reboot":{"failureRate":0.1}}`), "groups[1].methods.reboot.failureRate: only for firmwareUpdate"},
		{"failureRate > 1", group(`,"methods":{"firmwareUpdate":{"failureRate":2}}`), "groups[1].methods.firmwareUpdate.failureRate: must be a share between 0 and 1"},
		{"stepDuration for reboot", group(`,"methods":{"reboot":{"stepDuration":"1s"}}`), "groups[1].methods.reboot.stepDuration: only for firmwareUpdate"},
		{"stepDuration bad", group(`,"methods":{"firmwareUpdate":{"stepDuration":true}}`), "groups[1].methods.firmwareUpdate.stepDuration: not a duration"},
		{"faults unknown", group(`,"faults":{"timeout":0.1}`), "groups[1].faults.timeout: unknown field"},
		{"fault share > 1", group(`,"faults":{"drop":1.1}`), "groups[1].faults.drop: must be a share between 0 and 1"},
		{"fault share negative", group(`,"faults":{"throttle":-0.1}`), "groups[1].faults.throttle: must be a share between 0 and 1"},
		{"fault sum > 1", group(`,"faults":{"throttle":0.6,"drop":0.6}`), "groups[1].faults: fault shares add up to 1.2"},
		{"method fault sum > 1", group(`,"faults":{"throttle":0.6,"methods":{"reboot":{"drop":0.6}}}`), "groups[1].faults.methods.reboot: fault shares add up to 1.2"},
		{"method fault nested methods", group(`,"faults":{"methods":{"reboot":{"methods":{}}}}`), "groups[1].faults.methods.reboot.methods: unknown field"},
		{"method fault bad name", group(`,"faults":{"methods":{"a/b":{"drop":0.1}}}`), "groups[1].faults.methods[\"a/b\"]: method name \"a/b\""},
		{"payload in YAML with non-string keys", "groups:\n  - idPattern: d-%d\n    count: 1\n    methods:\n      ping:\n        payload: {1: 2}\n", "groups[0].methods.ping.payload: object keys must be strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFleet([]byte(tt.doc), "")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestFleetFileErrorNamesFile(t *testing.T) {
	p := writeFile(t, "bad.json", `{"groups":[{"idPattern":"d-%d","count":1},{"idPattern":"e-%d","count":1,"methods":{"reboot":{"latency":{"dist":"uniform","min":"x","max":"1ms"}}}}]}`)
	_, err := LoadFleetFile(p)
	require.Error(t, err)
	assert.Equal(t, "bad.json: groups[1].methods.reboot.latency.min: not a duration: \"x\" (use e.g. \"250ms\", \"1m30s\")", err.Error())

	_, err = LoadFleetFile(filepath.Join(t.TempDir(), "missing.yaml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.yaml")

	// Several errors are reported together.
	_, err = ParseFleet([]byte(`{"groups":[{"idPattern":"d-%d","count":0,"tags":5}]}`), "json")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "groups[0].count")
	assert.Contains(t, err.Error(), "groups[0].tags")
}

func TestValidateHandBuiltSpec(t *testing.T) {
	require.NoError(t, GenerateFleet(10).Validate())
	assert.ErrorContains(t, GenerateFleet(0).Validate(), "groups[0].count: must be between 1 and")
	assert.ErrorContains(t, (*FleetSpec)(nil).Validate(), "no fleet")
	bad := -0.5
	spec := &FleetSpec{Groups: []Group{{IDPattern: "x-%d", Count: 1, Connection: Connection{OnlineShare: &bad}}}}
	assert.ErrorContains(t, spec.Validate(), "groups[0].connection.onlineShare")
	huge := &FleetSpec{Groups: []Group{{IDPattern: "a-%d", Count: MaxFleetDevices}, {IDPattern: "b-%d", Count: 1}}}
	assert.ErrorContains(t, huge.Validate(), "at most 1000000")
}

func TestFleetDocumentMentionsEveryField(t *testing.T) {
	doc, err := os.ReadFile("fleetfile.md")
	require.NoError(t, err)
	for _, field := range []string{"seed", "groups", "name", "idPattern", "count", "tags", "desired", "reported", "modules",
		"connection", "onlineShare", "flapping", "meanUp", "meanDown", "methods", "latency", "dist", "fixed", "uniform", "normal",
		"value", "min", "max", "mean", "stddev", "status", "payload", "downtime", "failureRate", "stepDuration", "faults",
		"throttle", "serverError", "unavailable", "gatewayTimeout", "drop"} {
		assert.True(t, strings.Contains(string(doc), "`"+field+"`"), "fleetfile.md does not mention `%s`", field)
	}
}

func TestFleetSpecJSONRoundTrip(t *testing.T) {
	spec, err := ParseFleet([]byte(fleetJSON), "json")
	require.NoError(t, err)
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"meanUp":"10m0s"`)
	var back FleetSpec
	require.NoError(t, json.Unmarshal(b, &back))
	require.NoError(t, back.Validate())
	assert.Equal(t, spec.Groups[0].Connection.Flapping, back.Groups[0].Connection.Flapping)
	assert.Equal(t, *spec.Groups[0].Methods["reboot"].Latency.Max, *back.Groups[0].Methods["reboot"].Latency.Max)

	var d Duration
	assert.ErrorContains(t, json.Unmarshal([]byte(`5`), &d), "not a duration")
	assert.ErrorContains(t, json.Unmarshal([]byte(`"5 days"`), &d), "not a duration")
}

func TestDeviceIDs(t *testing.T) {
	spec, err := ParseFleet([]byte("groups:\n  - idPattern: gateway-main\n    count: 1\n  - idPattern: \"100%%-%d\"\n    count: 2\n  - {idPattern: therm-%04d, count: 3}\n"), "yaml")
	require.NoError(t, err)
	assert.Equal(t, []string{"gateway-main"}, spec.Groups[0].DeviceIDs(), "a literal id for count 1")
	assert.Equal(t, []string{"100%-1", "100%-2"}, spec.Groups[1].DeviceIDs())
	assert.Equal(t, []string{"therm-0001", "therm-0002", "therm-0003"}, spec.Groups[2].DeviceIDs())
}

func TestFleetFileAuthenticationErrors(t *testing.T) {
	group := func(extra string) string {
		return `{"groups":[{"idPattern":"d-%d","count":2` + extra + `}]}`
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"not an object":     {group(`,"authentication":"x509"`), "groups[0].authentication: must be an object, not a string"},
		"type missing":      {group(`,"authentication":{}`), "groups[0].authentication.type: required (sas, selfSigned or certificateAuthority)"},
		"type unknown":      {group(`,"authentication":{"type":"x509"}`), `groups[0].authentication: type: "x509" is not sas`},
		"unknown field":     {group(`,"authentication":{"type":"sas","thumbprint":"x"}`), "groups[0].authentication.thumbprint: unknown field"},
		"no thumbprint":     {group(`,"authentication":{"type":"selfSigned"}`), "groups[0].authentication: x509Thumbprint.primaryThumbprint: required for type selfSigned"},
		"bad thumbprint":    {group(`,"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"abc"}}`), "a thumbprint has 40 (SHA-1) or 64 (SHA-256) hex digits"},
		"thumbprint number": {group(`,"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":5}}`), "groups[0].authentication.x509Thumbprint.primaryThumbprint: must be a string"},
		"thumbprint for CA": {group(`,"authentication":{"type":"certificateAuthority","x509Thumbprint":{"primaryThumbprint":"` + tpSHA1 + `"}}`), "only for type selfSigned"},
		"unknown tp field":  {group(`,"authentication":{"type":"selfSigned","x509Thumbprint":{"primary":"x"}}`), "groups[0].authentication.x509Thumbprint.primary: unknown field"},
		"caCerts string":    {`{"caCerts":"ca.pem","groups":[{"idPattern":"d-%d","count":1}]}`, "caCerts: must be an array of PEM file paths, not a string"},
		"caCerts number":    {`{"caCerts":[1],"groups":[{"idPattern":"d-%d","count":1}]}`, "caCerts[0]: must be a string"},
		"caCerts empty":     {`{"caCerts":[""],"groups":[{"idPattern":"d-%d","count":1}]}`, "caCerts[0]: must not be empty"},
	} {
		_, err := ParseFleet([]byte(tc.doc), "")
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}

func TestLoadFleetFileCACertsRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "fleets")
	require.NoError(t, os.Mkdir(sub, 0o700))
	p := filepath.Join(sub, "fleet.yaml")
	require.NoError(t, os.WriteFile(p, []byte("caCerts: [ca.pem, ../root.pem, /etc/abs.pem]\ngroups:\n  - {idPattern: d-%d, count: 1}\n"), 0o600))
	spec, err := LoadFleetFile(p)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(sub, "ca.pem"), filepath.Join(dir, "root.pem"), "/etc/abs.pem"}, spec.CACerts)
}

func TestFleetDocumentMentionsAuthentication(t *testing.T) {
	doc, err := os.ReadFile("fleetfile.md")
	require.NoError(t, err)
	for _, field := range []string{"authentication", "type", "x509Thumbprint", "primaryThumbprint", "secondaryThumbprint",
		"sas", "selfSigned", "certificateAuthority", "caCerts"} {
		assert.True(t, strings.Contains(string(doc), "`"+field+"`"), "fleetfile.md does not mention `%s`", field)
	}
}

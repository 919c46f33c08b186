package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Built-in device-management methods (iothub-contract.md §4.3).
const (
	MethodReboot         = "reboot"
	MethodFirmwareUpdate = "firmwareUpdate"
	MethodFactoryReset   = "factoryReset"
)

// Defaults of the simulation.
const (
	DefaultDowntime     = 5 * time.Second
	DefaultStepDuration = time.Second
	// MaxFleetDevices bounds a fleet (IoT Hub allows 1,000,000 devices and
	// modules per hub).
	MaxFleetDevices = 1_000_000
)

// GenerateFleet returns the fleet of --devices N: n devices sim-000001...,
// all online, 0 ms latency, status 200, with the device-management life
// cycles.
func GenerateFleet(n int) *FleetSpec {
	return &FleetSpec{Groups: []Group{{Name: "sim", IDPattern: "sim-%06d", Count: n}}}
}

// LoadFleetFile reads and validates a fleet file. The format is chosen by
// extension (.json, .yaml, .yml) or, for any other name, by sniffing: a
// document starting with '{' is JSON, anything else YAML. Every error names
// the file and the field path, e.g.
// "fleet.json: groups[1].methods.reboot.latency.min: not a duration".
//
// The format (all fields optional unless marked required):
//
//	seed: 1                          # integer; replaces --seed for this fleet
//	groups:                          # required, at least one
//	  - name: thermostats            # unique; default group1, group2, ...
//	    idPattern: therm-%04d        # required; one integer verb receiving 1..count
//	                                 # (a literal id is allowed when count is 1)
//	    count: 100                   # required, >= 1
//	    tags: {site: plant-a}        # twin tags (object)
//	    desired: {}                  # initial desired properties (object)
//	    reported: {fw: "1.0"}        # initial reported properties (object)
//	    modules: [mod1]              # module ids created on every device
//	    connection:
//	      onlineShare: 0.95          # 0..1, default 1; the seed picks exactly
//	                                 # round((1-share)*count) permanently offline devices
//	      flapping: {meanUp: 10m, meanDown: 30s}   # the others flap (exponential periods)
//	    methods:                     # per method name, or "*" for any other method
//	      reboot:
//	        latency: {dist: uniform, min: 5ms, max: 50ms}
//	        # dist fixed: value (or the shorthand latency: 20ms);
//	        # dist uniform: min, max; dist normal: mean and stddev,
//	        # or min and max (mean (min+max)/2, stddev (max-min)/6), clipped to [min,max]
//	        status: 200              # device status, default 200
//	        payload: {any: json}     # response payload
//	        downtime: 5s             # reboot, factoryReset, "*": offline period (default 5s)
//	      firmwareUpdate:
//	        failureRate: 0.03        # firmwareUpdate, "*": share of failed updates
//	        stepDuration: 1s         # firmwareUpdate, "*": time between states (default 1s)
//	      "*": {status: 200}
//	    faults:                      # shares 0..1 (sum <= 1) of calls hit by injected faults;
//	      throttle: 0.01             # they override the --fault flags field by field
//	      serverError: 0
//	      unavailable: 0
//	      gatewayTimeout: 0
//	      drop: 0
//	      methods: {reboot: {throttle: 0.5}}   # per method, overriding the group's
//	    authentication:              # how the group's devices connect (modules: SAS always)
//	      type: selfSigned           # sas (default), selfSigned or certificateAuthority
//	      x509Thumbprint: {primaryThumbprint: <40 or 64 hex>, secondaryThumbprint: ...}
//	                                 # selfSigned only: SHA-1 or SHA-256 of the device certificate
//	caCerts: [ca.pem]                # PEM files (relative to the fleet file) of CA certificates
//	                                 # trusted for certificateAuthority devices, like --ca-cert
//
// Durations are Go duration strings ("250ms", "1m30s").
func LoadFleetFile(path string) (*FleetSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet file: %w", err)
	}
	format := ""
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		format = "json"
	case ".yaml", ".yml":
		format = "yaml"
	}
	spec, err := ParseFleet(data, format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	for i, f := range spec.CACerts {
		if !filepath.IsAbs(f) {
			spec.CACerts[i] = filepath.Join(filepath.Dir(path), f)
		}
	}
	return spec, nil
}

// ParseFleet parses and validates a fleet document. format is "json",
// "yaml" or "" to sniff.
func ParseFleet(data []byte, format string) (*FleetSpec, error) {
	if format == "" {
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
			format = "json"
		} else {
			format = "yaml"
		}
	}
	var doc any
	switch format {
	case "json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
		if dec.More() {
			return nil, errors.New("not valid JSON: data after the top-level object")
		}
	case "yaml":
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("not valid YAML: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown fleet file format %q", format)
	}
	p := &parser{}
	spec := p.fleet(doc)
	if err := p.err(); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return spec, nil
}

// parser converts a generic document into a FleetSpec, collecting errors
// that name the field path.
type parser struct{ errs []error }

const maxErrors = 20

func (p *parser) fail(path, format string, args ...any) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
}

func (p *parser) err() error { return errors.Join(p.errs...) }

func join(path, key string) string {
	if path == "" {
		return key
	}
	if isPlainKey(key) {
		return path + "." + key
	}
	return path + "[" + quoteKey(key) + "]"
}

func isPlainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		plain := c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !plain {
			return false
		}
	}
	return true
}

func quoteKey(k string) string { b, _ := json.Marshal(k); return string(b) }

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func (p *parser) object(path string, v any, allowed ...string) (map[string]any, bool) {
	m, ok := asObject(v)
	if !ok {
		p.fail(path, "must be an object, not %s", kindOf(v))
		return nil, false
	}
	if allowed != nil {
		keys := sortedKeys(m)
		for _, k := range keys {
			if !contains(allowed, k) {
				p.fail(join(path, k), "unknown field (expected one of %s)", strings.Join(allowed, ", "))
			}
		}
	}
	return m, true
}

// asObject accepts the map types encoding/json and yaml.v3 produce.
func asObject(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			ks, ok := k.(string)
			if !ok {
				return nil, false
			}
			out[ks] = val
		}
		return out, true
	}
	return nil, false
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, int, int64, uint64, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any, map[any]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (p *parser) number(path string, v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		if err != nil {
			p.fail(path, "not a number")
			return 0, false
		}
		return f, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	p.fail(path, "must be a number, not %s", kindOf(v))
	return 0, false
}

func (p *parser) integer(path string, v any) (int64, bool) {
	if n, ok := v.(json.Number); ok {
		i, err := n.Int64()
		if err != nil {
			p.fail(path, "must be an integer")
			return 0, false
		}
		return i, true
	}
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	f, ok := p.number(path, v)
	if !ok {
		return 0, false
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		p.fail(path, "must be an integer")
		return 0, false
	}
	return int64(f), true
}

func (p *parser) str(path string, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		p.fail(path, "must be a string, not %s", kindOf(v))
	}
	return s, ok
}

func (p *parser) share(path string, v any) *float64 {
	f, ok := p.number(path, v)
	if !ok {
		return nil
	}
	return &f
}

func (p *parser) duration(path string, v any) (Duration, bool) {
	s, ok := v.(string)
	if !ok {
		p.fail(path, "not a duration: must be a string such as \"250ms\" or \"1m30s\", not %s", kindOf(v))
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		p.fail(path, "not a duration: %q (use e.g. \"250ms\", \"1m30s\")", s)
		return 0, false
	}
	return Duration(d), true
}

func (p *parser) durationPtr(path string, v any) *Duration {
	d, ok := p.duration(path, v)
	if !ok {
		return nil
	}
	return &d
}

// jsonValue converts a decoded value to plain JSON types (map[string]any,
// []any, float64/json.Number, string, bool, nil).
func (p *parser) jsonValue(path string, v any) any {
	switch t := v.(type) {
	case nil, string, bool, json.Number, float64:
		return t
	case int:
		return json.Number(fmt.Sprint(t))
	case int64:
		return json.Number(fmt.Sprint(t))
	case uint64:
		return json.Number(fmt.Sprint(t))
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = p.jsonValue(index(path, i), e)
		}
		return out
	case map[string]any, map[any]any:
		m, ok := asObject(t)
		if !ok {
			p.fail(path, "object keys must be strings")
			return nil
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = p.jsonValue(join(path, k), e)
		}
		return out
	}
	p.fail(path, "unsupported value of type %T", v)
	return nil
}

func (p *parser) jsonObject(path string, v any) map[string]any {
	if _, ok := p.object(path, v); !ok {
		return nil
	}
	m, _ := p.jsonValue(path, v).(map[string]any)
	return normalizeNumbers(m).(map[string]any)
}

// normalizeNumbers turns json.Number into float64 (or int64 when integral)
// so twins hold the same types as documents decoded by the server.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return float64(i)
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeNumbers(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = normalizeNumbers(e)
		}
		return t
	}
	return v
}

func (p *parser) fleet(doc any) *FleetSpec {
	spec := &FleetSpec{}
	root, ok := p.object("fleet", doc, "seed", "groups", "caCerts")
	if !ok {
		return spec
	}
	if v, ok := root["caCerts"]; ok {
		spec.CACerts = p.caCerts("caCerts", v)
	}
	if v, ok := root["seed"]; ok {
		if s, ok := p.integer("seed", v); ok {
			spec.Seed = &s
		}
	}
	gv, ok := root["groups"]
	if !ok {
		p.fail("groups", "required")
		return spec
	}
	list, ok := gv.([]any)
	if !ok {
		p.fail("groups", "must be an array, not %s", kindOf(gv))
		return spec
	}
	for i, g := range list {
		spec.Groups = append(spec.Groups, p.group(index("groups", i), g))
	}
	return spec
}

func (p *parser) group(path string, v any) Group {
	var g Group
	m, ok := p.object(path, v, "name", "idPattern", "count", "tags", "desired", "reported", "modules", "connection", "methods", "faults", "authentication")
	if !ok {
		return g
	}
	if v, ok := m["name"]; ok {
		g.Name, _ = p.str(join(path, "name"), v)
	}
	if v, ok := m["idPattern"]; ok {
		g.IDPattern, _ = p.str(join(path, "idPattern"), v)
	} else {
		p.fail(join(path, "idPattern"), "required")
	}
	if v, ok := m["count"]; ok {
		if n, ok := p.integer(join(path, "count"), v); ok {
			if n < 1 || n > MaxFleetDevices {
				p.fail(join(path, "count"), "must be between 1 and %d", MaxFleetDevices)
			} else {
				g.Count = int(n)
			}
		}
	} else {
		p.fail(join(path, "count"), "required")
	}
	for _, name := range []string{"tags", "desired", "reported"} {
		if v, ok := m[name]; ok {
			obj := p.jsonObject(join(path, name), v)
			switch name {
			case "tags":
				g.Tags = obj
			case "desired":
				g.Desired = obj
			case "reported":
				g.Reported = obj
			}
		}
	}
	if v, ok := m["modules"]; ok {
		list, ok := v.([]any)
		if !ok {
			p.fail(join(path, "modules"), "must be an array of module ids, not %s", kindOf(v))
		}
		for i, e := range list {
			if s, ok := p.str(index(join(path, "modules"), i), e); ok {
				g.Modules = append(g.Modules, s)
			}
		}
	}
	if v, ok := m["connection"]; ok {
		g.Connection = p.connection(join(path, "connection"), v)
	}
	if v, ok := m["methods"]; ok {
		mp := join(path, "methods")
		if mm, ok := p.object(mp, v); ok {
			g.Methods = map[string]MethodSpec{}
			for _, name := range sortedKeys(mm) {
				g.Methods[name] = p.method(join(mp, name), mm[name])
			}
		}
	}
	if v, ok := m["faults"]; ok {
		g.Faults = p.faults(join(path, "faults"), v, true)
	}
	if v, ok := m["authentication"]; ok {
		g.Authentication = p.authentication(join(path, "authentication"), v)
	}
	return g
}

func (p *parser) connection(path string, v any) Connection {
	var c Connection
	m, ok := p.object(path, v, "onlineShare", "flapping")
	if !ok {
		return c
	}
	if v, ok := m["onlineShare"]; ok {
		c.OnlineShare = p.share(join(path, "onlineShare"), v)
	}
	if v, ok := m["flapping"]; ok {
		fp := join(path, "flapping")
		if fm, ok := p.object(fp, v, "meanUp", "meanDown"); ok {
			f := &Flapping{}
			for _, k := range []string{"meanUp", "meanDown"} {
				fv, ok := fm[k]
				if !ok {
					p.fail(join(fp, k), "required")
					continue
				}
				d, _ := p.duration(join(fp, k), fv)
				if k == "meanUp" {
					f.MeanUp = d
				} else {
					f.MeanDown = d
				}
			}
			c.Flapping = f
		}
	}
	return c
}

func (p *parser) method(path string, v any) MethodSpec {
	var ms MethodSpec
	m, ok := p.object(path, v, "latency", "status", "payload", "downtime", "failureRate", "stepDuration")
	if !ok {
		return ms
	}
	if v, ok := m["latency"]; ok {
		ms.Latency = p.latency(join(path, "latency"), v)
	}
	if v, ok := m["status"]; ok {
		if n, ok := p.integer(join(path, "status"), v); ok {
			if n < math.MinInt32 || n > math.MaxInt32 {
				p.fail(join(path, "status"), "out of range")
			} else {
				s := int(n)
				ms.Status = &s
			}
		}
	}
	if v, ok := m["payload"]; ok {
		jv := p.jsonValue(join(path, "payload"), v)
		raw, err := json.Marshal(jv)
		if err != nil {
			p.fail(join(path, "payload"), "not representable as JSON: %v", err)
		} else {
			ms.Payload = raw
		}
	}
	if v, ok := m["downtime"]; ok {
		ms.Downtime = p.durationPtr(join(path, "downtime"), v)
	}
	if v, ok := m["failureRate"]; ok {
		ms.FailureRate = p.share(join(path, "failureRate"), v)
	}
	if v, ok := m["stepDuration"]; ok {
		ms.StepDuration = p.durationPtr(join(path, "stepDuration"), v)
	}
	return ms
}

func (p *parser) latency(path string, v any) *Latency {
	if _, ok := v.(string); ok { // shorthand: a fixed latency
		d, ok := p.duration(path, v)
		if !ok {
			return nil
		}
		return &Latency{Dist: "fixed", Value: d}
	}
	m, ok := p.object(path, v, "dist", "value", "min", "max", "mean", "stddev")
	if !ok {
		return nil
	}
	l := &Latency{}
	if v, ok := m["dist"]; ok {
		l.Dist, _ = p.str(join(path, "dist"), v)
	} else {
		p.fail(join(path, "dist"), "required (fixed, uniform or normal)")
	}
	if v, ok := m["value"]; ok {
		l.Value, _ = p.duration(join(path, "value"), v)
	}
	if v, ok := m["min"]; ok {
		l.Min = p.durationPtr(join(path, "min"), v)
	}
	if v, ok := m["max"]; ok {
		l.Max = p.durationPtr(join(path, "max"), v)
	}
	if v, ok := m["mean"]; ok {
		l.Mean = p.durationPtr(join(path, "mean"), v)
	}
	if v, ok := m["stddev"]; ok {
		l.StdDev = p.durationPtr(join(path, "stddev"), v)
	}
	if _, ok := m["value"]; ok && l.Dist != "fixed" && l.Dist != "" {
		p.fail(join(path, "value"), "only for dist fixed")
	}
	return l
}

func (p *parser) faults(path string, v any, top bool) *FaultSpec {
	allowed := []string{"throttle", "serverError", "unavailable", "gatewayTimeout", "drop"}
	if top {
		allowed = append(allowed, "methods")
	}
	m, ok := p.object(path, v, allowed...)
	if !ok {
		return nil
	}
	f := &FaultSpec{}
	for _, k := range allowed[:5] {
		if v, ok := m[k]; ok {
			s := p.share(join(path, k), v)
			switch k {
			case "throttle":
				f.Throttle = s
			case "serverError":
				f.ServerError = s
			case "unavailable":
				f.Unavailable = s
			case "gatewayTimeout":
				f.GatewayTimeout = s
			case "drop":
				f.Drop = s
			}
		}
	}
	if v, ok := m["methods"]; ok && top {
		mp := join(path, "methods")
		if mm, ok := p.object(mp, v); ok {
			f.Methods = map[string]*FaultSpec{}
			for _, name := range sortedKeys(mm) {
				f.Methods[name] = p.faults(join(mp, name), mm[name], false)
			}
		}
	}
	return f
}

// Validate checks a FleetSpec (built by hand or parsed) and returns errors
// naming the field paths.
func (s *FleetSpec) Validate() error {
	p := &parser{}
	if s == nil {
		return errors.New("fleet: no fleet")
	}
	if len(s.Groups) == 0 {
		p.fail("groups", "at least one group is required")
	}
	names := map[string]int{}
	total := 0
	for i := range s.Groups {
		g := &s.Groups[i]
		path := index("groups", i)
		name := g.Name
		if name == "" {
			name = fmt.Sprintf("group%d", i+1)
		}
		if j, dup := names[name]; dup {
			p.fail(join(path, "name"), "%q is also the name of groups[%d]", name, j)
		}
		names[name] = i
		if g.Count < 1 || g.Count > MaxFleetDevices {
			p.fail(join(path, "count"), "must be between 1 and %d", MaxFleetDevices)
		}
		total += g.Count
		if err := checkIDPattern(g.IDPattern, g.Count); err != nil {
			p.fail(join(path, "idPattern"), "%v", err)
		}
		p.checkProps(join(path, "tags"), g.Tags, MaxTagsBytes)
		p.checkProps(join(path, "desired"), g.Desired, MaxSectionBytes)
		p.checkProps(join(path, "reported"), g.Reported, MaxSectionBytes)
		seenMod := map[string]bool{}
		for j, m := range g.Modules {
			if err := CheckID(m); err != nil {
				p.fail(index(join(path, "modules"), j), "module id %v", err)
			}
			if seenMod[m] {
				p.fail(index(join(path, "modules"), j), "duplicate module id %q", m)
			}
			seenMod[m] = true
		}
		cp := join(path, "connection")
		if sh := g.Connection.OnlineShare; sh != nil {
			checkShare(p, join(cp, "onlineShare"), *sh)
		}
		if f := g.Connection.Flapping; f != nil {
			if f.MeanUp <= 0 {
				p.fail(join(join(cp, "flapping"), "meanUp"), "must be positive")
			}
			if f.MeanDown <= 0 {
				p.fail(join(join(cp, "flapping"), "meanDown"), "must be positive")
			}
		}
		for _, name := range sortedKeys(g.Methods) {
			p.checkMethod(join(join(path, "methods"), name), name, g.Methods[name])
		}
		if a := g.Authentication; a != nil {
			if err := a.Check(); err != nil {
				p.fail(join(path, "authentication"), "%v", err)
			}
		}
		if g.Faults != nil {
			fp := join(path, "faults")
			p.checkFaults(fp, g.Faults, nil)
			for _, name := range sortedKeys(g.Faults.Methods) {
				mp := join(join(fp, "methods"), name)
				if name != "*" {
					if err := checkMethodName(name); err != nil {
						p.fail(mp, "%v", err)
					}
				}
				if g.Faults.Methods[name] == nil {
					p.fail(mp, "must be an object")
					continue
				}
				if g.Faults.Methods[name].Methods != nil {
					p.fail(join(mp, "methods"), "unknown field")
				}
				p.checkFaults(mp, g.Faults.Methods[name], g.Faults)
			}
		}
	}
	if total > MaxFleetDevices {
		p.fail("groups", "%d devices in total; at most %d", total, MaxFleetDevices)
	}
	for i, f := range s.CACerts {
		if strings.TrimSpace(f) == "" {
			p.fail(index("caCerts", i), "must not be empty")
		}
	}
	return p.err()
}

func checkShare(p *parser, path string, v float64) bool {
	if math.IsNaN(v) || v < 0 || v > 1 {
		p.fail(path, "must be a share between 0 and 1, not %v", v)
		return false
	}
	return true
}

func (p *parser) checkMethod(path, name string, ms MethodSpec) {
	if name != "*" {
		if err := checkMethodName(name); err != nil {
			p.fail(path, "%v", err)
		}
	}
	if ms.Latency != nil {
		p.checkLatency(join(path, "latency"), ms.Latency)
	}
	if len(ms.Payload) > 0 && !json.Valid(ms.Payload) {
		p.fail(join(path, "payload"), "not valid JSON")
	}
	if len(ms.Payload) > MaxPayloadBytes {
		p.fail(join(path, "payload"), "larger than 128 KB")
	}
	if ms.Downtime != nil {
		if name != MethodReboot && name != MethodFactoryReset && name != "*" {
			p.fail(join(path, "downtime"), "only for reboot, factoryReset and \"*\"")
		} else if *ms.Downtime < 0 {
			p.fail(join(path, "downtime"), "must not be negative")
		}
	}
	if ms.FailureRate != nil {
		if name != MethodFirmwareUpdate && name != "*" {
			p.fail(join(path, "failureRate"), "only for firmwareUpdate and \"*\"")
		} else {
			checkShare(p, join(path, "failureRate"), *ms.FailureRate)
		}
	}
	if ms.StepDuration != nil {
		if name != MethodFirmwareUpdate && name != "*" {
			p.fail(join(path, "stepDuration"), "only for firmwareUpdate and \"*\"")
		} else if *ms.StepDuration < 0 {
			p.fail(join(path, "stepDuration"), "must not be negative")
		}
	}
}

func (p *parser) checkLatency(path string, l *Latency) {
	neg := func(field string, d *Duration) {
		if d != nil && *d < 0 {
			p.fail(join(path, field), "must not be negative")
		}
	}
	neg("min", l.Min)
	neg("max", l.Max)
	neg("mean", l.Mean)
	neg("stddev", l.StdDev)
	only := func(field string, d *Duration, dists string) {
		if d != nil {
			p.fail(join(path, field), "only for dist %s", dists)
		}
	}
	switch l.Dist {
	case "fixed":
		if l.Value < 0 {
			p.fail(join(path, "value"), "must not be negative")
		}
		only("min", l.Min, "uniform and normal")
		only("max", l.Max, "uniform and normal")
		only("mean", l.Mean, "normal")
		only("stddev", l.StdDev, "normal")
	case "uniform":
		if l.Min == nil {
			p.fail(join(path, "min"), "required for dist uniform")
		}
		if l.Max == nil {
			p.fail(join(path, "max"), "required for dist uniform")
		}
		if l.Min != nil && l.Max != nil && *l.Max < *l.Min {
			p.fail(join(path, "max"), "must not be less than min")
		}
		only("mean", l.Mean, "normal")
		only("stddev", l.StdDev, "normal")
	case "normal":
		if l.Mean == nil && (l.Min == nil || l.Max == nil) {
			p.fail(join(path, "mean"), "required for dist normal unless min and max are given")
		}
		if l.Min != nil && l.Max != nil && *l.Max < *l.Min {
			p.fail(join(path, "max"), "must not be less than min")
		}
	case "":
		p.fail(join(path, "dist"), "required (fixed, uniform or normal)")
	default:
		p.fail(join(path, "dist"), "%q: must be fixed, uniform or normal", l.Dist)
	}
}

func (p *parser) checkFaults(path string, f, parent *FaultSpec) {
	sum := 0.0
	ok := true
	for _, e := range []struct {
		name string
		v    *float64
		pv   *float64
	}{
		{"throttle", f.Throttle, parentShare(parent, func(x *FaultSpec) *float64 { return x.Throttle })},
		{"serverError", f.ServerError, parentShare(parent, func(x *FaultSpec) *float64 { return x.ServerError })},
		{"unavailable", f.Unavailable, parentShare(parent, func(x *FaultSpec) *float64 { return x.Unavailable })},
		{"gatewayTimeout", f.GatewayTimeout, parentShare(parent, func(x *FaultSpec) *float64 { return x.GatewayTimeout })},
		{"drop", f.Drop, parentShare(parent, func(x *FaultSpec) *float64 { return x.Drop })},
	} {
		v := e.v
		if v == nil {
			v = e.pv
		} else if !checkShare(p, join(path, e.name), *v) {
			ok = false
		}
		if v != nil {
			sum += *v
		}
	}
	if ok && sum > 1+1e-9 {
		p.fail(path, "fault shares add up to %v; at most 1", sum)
	}
}

func parentShare(parent *FaultSpec, get func(*FaultSpec) *float64) *float64 {
	if parent == nil {
		return nil
	}
	return get(parent)
}

// checkIDPattern verifies that pattern has exactly one integer verb (or is a
// literal id when count is 1) and yields valid device ids.
func checkIDPattern(pattern string, count int) error {
	if pattern == "" {
		return errors.New("required")
	}
	verbs := 0
	for i := 0; i < len(pattern); i++ {
		if pattern[i] != '%' {
			continue
		}
		if i+1 < len(pattern) && pattern[i+1] == '%' {
			i++
			continue
		}
		j := i + 1
		for j < len(pattern) && strings.IndexByte("+-# 0123456789", pattern[j]) >= 0 {
			j++
		}
		if j >= len(pattern) || strings.IndexByte("dxXob", pattern[j]) < 0 {
			return fmt.Errorf("%q: the only verb allowed is one integer verb such as %%d or %%04d", pattern)
		}
		verbs++
		i = j
	}
	switch {
	case verbs > 1:
		return fmt.Errorf("%q: more than one verb", pattern)
	case verbs == 0 && count > 1:
		return fmt.Errorf("%q: needs an integer verb such as %%04d for count %d", pattern, count)
	}
	for _, n := range []int{1, count} {
		if err := CheckID(expandID(pattern, n, verbs)); err != nil {
			return fmt.Errorf("%q: device id %v", pattern, err)
		}
	}
	return nil
}

// DeviceIDs returns the group's device ids: IDPattern expanded with
// 1..Count, or IDPattern itself (%% unescaped) when it has no verb.
func (g *Group) DeviceIDs() []string {
	verbs := strings.Count(strings.ReplaceAll(g.IDPattern, "%%", ""), "%")
	ids := make([]string, g.Count)
	for n := 1; n <= g.Count; n++ {
		ids[n-1] = expandID(g.IDPattern, n, verbs)
	}
	return ids
}

func expandID(pattern string, n, verbs int) string {
	if verbs == 0 {
		return strings.ReplaceAll(pattern, "%%", "%")
	}
	return fmt.Sprintf(pattern, n)
}

// checkProps validates a tags or properties object loaded from a fleet file.
func (p *parser) checkProps(path string, m map[string]any, limit int) {
	if m == nil {
		return
	}
	if err := validateProps(m, 1, false); err != nil {
		p.fail(path, "%v", err)
		return
	}
	if n := JSONSize(m); n > limit {
		p.fail(path, "%d bytes of JSON; at most %d", n, limit)
	}
}

// authentication reads a fleet group's authentication, shaped as the
// registry API's: {type, x509Thumbprint: {primaryThumbprint,
// secondaryThumbprint}}. Validate checks the values.
func (p *parser) authentication(path string, v any) *Auth {
	m, ok := p.object(path, v, "type", "x509Thumbprint")
	if !ok {
		return nil
	}
	a := &Auth{}
	if v, ok := m["type"]; ok {
		a.Type, _ = p.str(join(path, "type"), v)
	} else {
		p.fail(join(path, "type"), "required (%s, %s or %s)", AuthSAS, AuthSelfSigned, AuthCertificateAuthority)
	}
	if v, ok := m["x509Thumbprint"]; ok {
		tp := join(path, "x509Thumbprint")
		if tm, ok := p.object(tp, v, "primaryThumbprint", "secondaryThumbprint"); ok {
			for _, f := range []struct {
				k   string
				dst *string
			}{{"primaryThumbprint", &a.PrimaryThumbprint}, {"secondaryThumbprint", &a.SecondaryThumbprint}} {
				if tv, ok := tm[f.k]; ok && tv != nil {
					*f.dst, _ = p.str(join(tp, f.k), tv)
				}
			}
		}
	}
	return a
}

// caCerts reads the fleet file's list of CA certificate files.
func (p *parser) caCerts(path string, v any) []string {
	list, ok := v.([]any)
	if !ok {
		p.fail(path, "must be an array of PEM file paths, not %s", kindOf(v))
		return nil
	}
	var out []string
	for i, e := range list {
		if s, ok := p.str(index(path, i), e); ok {
			out = append(out, s)
		}
	}
	return out
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("not a duration: %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration: %q", s)
	}
	*d = Duration(v)
	return nil
}

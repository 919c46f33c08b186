package mqtt

import (
	"strconv"
	"strings"
)

// Topic filters a device subscribes to (iothub-contract.md §7.3–7.5).
const (
	FilterMethods   = "$iothub/methods/POST/#"
	FilterTwinRes   = "$iothub/twin/res/#"
	FilterDesired   = "$iothub/twin/PATCH/properties/desired/#"
	methodPostTopic = "$iothub/methods/POST/"
	methodResTopic  = "$iothub/methods/res/"
	twinGetTopic    = "$iothub/twin/GET/"
	twinReportTopic = "$iothub/twin/PATCH/properties/reported/"
	twinResTopic    = "$iothub/twin/res/"
	desiredTopic    = "$iothub/twin/PATCH/properties/desired/"
)

// subscription is what a granted topic filter means to the hub.
type subscription int

const (
	subNone subscription = iota
	subMethods
	subTwinRes
	subDesired
	subCloudToDevice // C2D messages (devices) or module inputs: accepted, nothing is ever sent
)

// classifyFilter says which of the identity's own topic filters f is, or
// subNone when the identity may not subscribe to it.
func classifyFilter(id Identity, f string) subscription {
	switch f {
	case FilterMethods:
		return subMethods
	case FilterTwinRes:
		return subTwinRes
	case FilterDesired:
		return subDesired
	}
	if id.ModuleID == "" {
		if f == "devices/"+id.DeviceID+"/messages/devicebound/#" {
			return subCloudToDevice
		}
	} else if f == "devices/"+id.DeviceID+"/modules/"+id.ModuleID+"/inputs/#" {
		return subCloudToDevice
	}
	return subNone
}

// publication is what a device's PUBLISH asks of the hub.
type publication int

const (
	pubForbidden publication = iota
	pubMethodResponse
	pubTwinGet
	pubReported
	pubTelemetry
)

// classifyTopic says what a PUBLISH from id to topic is, or pubForbidden
// when the identity may not publish there.
func classifyTopic(id Identity, topic string) publication {
	switch {
	case strings.HasPrefix(topic, methodResTopic):
		return pubMethodResponse
	case strings.HasPrefix(topic, twinGetTopic):
		return pubTwinGet
	case strings.HasPrefix(topic, twinReportTopic):
		return pubReported
	}
	events := "devices/" + id.DeviceID + "/messages/events"
	if id.ModuleID != "" {
		events = "devices/" + id.DeviceID + "/modules/" + id.ModuleID + "/messages/events"
	}
	if rest, ok := strings.CutPrefix(topic, events); ok && (rest == "" || rest[0] == '/') {
		return pubTelemetry
	}
	return pubForbidden
}

// queryParam returns the value of parameter name after the '?' of an IoT
// Hub topic ("$rid", "$version", ...) exactly as written (not URL-decoded:
// request ids are echoed verbatim); the first occurrence wins.
func queryParam(topic, name string) string {
	_, q, ok := strings.Cut(topic, "?")
	for ok {
		var kv string
		kv, q, ok = strings.Cut(q, "&")
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

// parseMethodResponse reads "$iothub/methods/res/{status}/?$rid={rid}".
func parseMethodResponse(topic string) (status int, rid string, ok bool) {
	rest := strings.TrimPrefix(topic, methodResTopic)
	s, q, found := strings.Cut(rest, "/")
	if !found || !strings.HasPrefix(q, "?") {
		return 0, "", false
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, "", false
	}
	rid = queryParam(topic, "$rid")
	if rid == "" {
		return 0, "", false
	}
	return n, rid, true
}

// requestID reads the $rid of a twin request topic ("...?$rid=x[&...]"),
// requiring that the topic is exactly prefix + "?" + query (the hub's twin
// request topics end with '/' before the query).
func requestID(topic, prefix string) (string, bool) {
	rest := strings.TrimPrefix(topic, prefix)
	if !strings.HasPrefix(rest, "?") {
		return "", false
	}
	rid := queryParam(topic, "$rid")
	return rid, rid != ""
}

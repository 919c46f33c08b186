package mqtt

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClassifyFilter(t *testing.T) {
	dev := Identity{DeviceID: "dev1"}
	mod := Identity{DeviceID: "dev1", ModuleID: "mod1"}
	for _, tc := range []struct {
		id     Identity
		filter string
		want   subscription
	}{
		{dev, "$iothub/methods/POST/#", subMethods},
		{mod, "$iothub/methods/POST/#", subMethods},
		{dev, "$iothub/twin/res/#", subTwinRes},
		{dev, "$iothub/twin/PATCH/properties/desired/#", subDesired},
		{dev, "devices/dev1/messages/devicebound/#", subCloudToDevice},
		{mod, "devices/dev1/modules/mod1/inputs/#", subCloudToDevice},
		{mod, "devices/dev1/messages/devicebound/#", subNone},
		{dev, "devices/dev2/messages/devicebound/#", subNone},
		{dev, "devices/dev1/modules/mod1/inputs/#", subNone},
		{dev, "#", subNone},
		{dev, "$iothub/#", subNone},
		{dev, "$iothub/methods/POST/+", subNone},
		{dev, "$iothub/methods/res/#", subNone},
		{dev, "$SYS/#", subNone},
		{dev, "devices/+/messages/devicebound/#", subNone},
	} {
		assert.Equal(t, tc.want, classifyFilter(tc.id, tc.filter), "%s subscribing %q", tc.id.ClientID(), tc.filter)
	}
}

func TestClassifyTopic(t *testing.T) {
	dev := Identity{DeviceID: "dev1"}
	mod := Identity{DeviceID: "dev1", ModuleID: "mod1"}
	for _, tc := range []struct {
		id    Identity
		topic string
		want  publication
	}{
		{dev, "$iothub/methods/res/200/?$rid=1", pubMethodResponse},
		{dev, "$iothub/twin/GET/?$rid=abc", pubTwinGet},
		{dev, "$iothub/twin/PATCH/properties/reported/?$rid=abc&$version=3", pubReported},
		{dev, "devices/dev1/messages/events/", pubTelemetry},
		{dev, "devices/dev1/messages/events", pubTelemetry},
		{dev, "devices/dev1/messages/events/prop=1&%24.ct=application%2Fjson", pubTelemetry},
		{mod, "devices/dev1/modules/mod1/messages/events/", pubTelemetry},
		{mod, "devices/dev1/messages/events/", pubForbidden},
		{dev, "devices/dev1/messages/eventsX", pubForbidden},
		{dev, "devices/dev2/messages/events/", pubForbidden},
		{dev, "devices/dev1/messages/devicebound/x", pubForbidden},
		{dev, "$iothub/methods/POST/reboot/?$rid=1", pubForbidden},
		{dev, "$iothub/twin/PATCH/properties/desired/?$version=2", pubForbidden},
		{dev, "$iothub/twin/res/200/?$rid=1", pubForbidden},
		{dev, "anything/else", pubForbidden},
	} {
		assert.Equal(t, tc.want, classifyTopic(tc.id, tc.topic), "%s publishing %q", tc.id.ClientID(), tc.topic)
	}
}

func TestParseMethodResponse(t *testing.T) {
	for _, tc := range []struct {
		topic  string
		status int
		rid    string
		ok     bool
	}{
		{"$iothub/methods/res/200/?$rid=1a", 200, "1a", true},
		{"$iothub/methods/res/-1/?$rid=x&other=y", -1, "x", true},
		{"$iothub/methods/res/500/?other=y&$rid=z", 500, "z", true},
		{"$iothub/methods/res/abc/?$rid=1", 0, "", false},
		{"$iothub/methods/res/200/?$rid=", 0, "", false},
		{"$iothub/methods/res/200/", 0, "", false},
		{"$iothub/methods/res/200?$rid=1", 0, "", false},
	} {
		status, rid, ok := parseMethodResponse(tc.topic)
		assert.Equal(t, tc.ok, ok, tc.topic)
		if tc.ok {
			assert.Equal(t, tc.status, status, tc.topic)
			assert.Equal(t, tc.rid, rid, tc.topic)
		}
	}
}

func TestRequestID(t *testing.T) {
	rid, ok := requestID("$iothub/twin/GET/?$rid=7f3e", twinGetTopic)
	assert.True(t, ok)
	assert.Equal(t, "7f3e", rid)
	rid, ok = requestID("$iothub/twin/PATCH/properties/reported/?$rid=a%20b&$version=4", twinReportTopic)
	assert.True(t, ok)
	assert.Equal(t, "a%20b", rid, "echoed verbatim, not decoded")
	_, ok = requestID("$iothub/twin/GET/", twinGetTopic)
	assert.False(t, ok, "no query")
	_, ok = requestID("$iothub/twin/GET/x?$rid=1", twinGetTopic)
	assert.False(t, ok, "something between the prefix and the query")
	_, ok = requestID("$iothub/twin/GET/?$version=1", twinGetTopic)
	assert.False(t, ok, "no $rid")
	assert.Equal(t, "1", queryParam("t/?$rid=1&a&b=x=y&$rid=2", "$rid"), "first value wins")
	assert.Equal(t, "x=y", queryParam("t/?$rid=1&a&b=x=y", "b"))
	assert.Equal(t, "", queryParam("t/?$rid=1&a", "a"))
	assert.Equal(t, "", queryParam("t/?$rid=1", "$version"))
	assert.Equal(t, "", queryParam("t/$rid=1", "$rid"), "no query")
}

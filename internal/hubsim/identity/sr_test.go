package identity

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCovers(t *testing.T) {
	hostOK := func(h string) bool {
		return strings.EqualFold(h, "hub.example.test") || strings.EqualFold(h, "hub.example.test:8443")
	}
	tests := []struct {
		sr, resource string
		want         bool
	}{
		{"hub.example.test/devices/d1", "devices/d1", true},
		{"HUB.example.test/Devices/D1/", "devices/d1", true},
		{"https://hub.example.test/devices/d1", "devices/d1", true},
		{"hub.example.test:8443/devices/d1", "devices/d1", true},
		{"hub.example.test", "devices/d1", true},                      // the bare host: the whole hub (the Go SDK signs this)
		{"hub.example.test/", "devices/d1/modules/m1", true},          // a trailing slash
		{"hub.example.test/devices", "devices/d1", true},              // a segment prefix
		{"hub.example.test/devices/d1", "devices/d1/modules/m", true}, // a device token covers its modules' paths
		{"hub.example.test/devices/d12", "devices/d1", false},         // not by characters
		{"hub.example.test/devices/d1", "devices/d12", false},
		{"hub.example.test/devices/d1/modules/m1", "devices/d1", false},
		{"other.example.test/devices/d1", "devices/d1", false},
		{"other.example.test", "devices/d1", false},
		{"", "devices/d1", false},
		{"/devices/d1", "devices/d1", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Covers(tt.sr, tt.resource, hostOK), "%q covers %q", tt.sr, tt.resource)
	}
}

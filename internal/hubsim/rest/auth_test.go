package rest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSrCovers(t *testing.T) {
	a := &authenticator{hosts: hostVariants("127.0.0.1:8443")}
	cases := []struct {
		sr, reqHost string
		res         resource
		want        bool
	}{
		{"127.0.0.1:8443", "", resource{"d", ""}, true},
		{"127.0.0.1", "", resource{"d", ""}, true},
		{"127.0.0.1/", "", resource{"d", ""}, true},
		{"https://127.0.0.1", "", resource{"d", ""}, true},
		{"127.0.0.1:9999", "", resource{"d", ""}, false},
		{"127.0.0.1/devices", "", resource{"d", ""}, true},
		{"127.0.0.1/DEVICES/d", "", resource{"d", ""}, true},
		{"127.0.0.1/devices/d/modules/m", "", resource{"d", ""}, false},
		{"127.0.0.1/devices/d", "", resource{"d", "m"}, true},
		{"127.0.0.1/devices/dx", "", resource{"d", ""}, false},
		{"127.0.0.1/devices/d", "", resource{"dx", ""}, false},
		{"myhub.azure-devices.net", "myhub.azure-devices.net", resource{"d", ""}, true},
		{"myhub.azure-devices.net", "myhub.azure-devices.net:443", resource{"d", ""}, true},
		{"myhub.azure-devices.net", "other", resource{"d", ""}, false},
		{"127.0.0.1/devices", "", resource{}, true},
		{"127.0.0.1/devices/query", "", resource{}, true},
		{"127.0.0.1/devices/d", "", resource{}, false},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, a.srCovers(c.sr, c.reqHost, c.res), "sr=%q host=%q resource=%v", c.sr, c.reqHost, c.res)
	}
}

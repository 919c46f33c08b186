package hubsim

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHostNameLeavesOutPort443(t *testing.T) {
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	assert.Equal(t, "127.0.0.1:8443", hostName("127.0.0.1:8443", tcp("127.0.0.1", 8443)))
	assert.Equal(t, "127.0.0.1", hostName("127.0.0.1:443", tcp("127.0.0.1", 443)), "a real hub's HostName has no :443")
	assert.Equal(t, "localhost", hostName("localhost:443", tcp("127.0.0.1", 443)))
	assert.Equal(t, "[::1]", hostName("[::1]:443", tcp("::1", 443)))
	assert.Equal(t, "127.0.0.1:40000", hostName("0.0.0.0:0", tcp("0.0.0.0", 40000)))
}

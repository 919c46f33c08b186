package e2e

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/test/testbin"
)

// TestDocsHubsimClients runs docs/hubsim-clients.md's shell blocks as one
// session: Microsoft's Node device SDK, the Go device SDK and mosquitto
// against one hubsim, each checked by what dmctl saw.
func TestDocsHubsimClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make build, hubsim, node, go build and mosquitto")
	}
	root, err := testbin.ModuleRoot()
	require.NoError(t, err)
	const rel = "docs/hubsim-clients.md"
	s := runSession(t, root, rel)
	checkSession(t, rel, s)

	node := blockOutput(t, s.out, blockWith(t, root, rel, "node examples/node-device.js"))
	assert.Regexp(t, `(?m)^node-1\s+succeeded\s+200\s`, node, "reboot --wait reboot: the Node device reported lastReboot")
	assert.Contains(t, node, "node-device: rebooted at")
	assert.Contains(t, node, "node-device: stopped")

	goDev := blockOutput(t, s.out, blockWith(t, root, rel, "go-device >"))
	assert.Regexp(t, `(?m)^go-1\s+succeeded\s+200\s`, goDev, "reboot --wait reboot: the Go SDK device reported lastReboot")
	assert.Contains(t, goDev, "go-device: rebooted at")
	assert.Contains(t, goDev, "go-device: stopped")

	pub := blockOutput(t, s.out, blockWith(t, root, rel, "mosquitto_pub"))
	assert.Contains(t, pub, `"1.2.3"`, "the property mosquitto_pub reported, read back by dmctl")
	sub := blockOutput(t, s.out, blockWith(t, root, rel, "mosquitto_sub"))
	assert.Contains(t, sub, `$iothub/methods/POST/ping/?$rid=`, "mosquitto_sub received the method")
	assert.Contains(t, sub, `{"n":1}`)
	assert.Contains(t, sub, "dmctl exit 4", "nobody answered: the target failed")
	assert.False(t, strings.Contains(s.out, "SharedAccessSignature sr="), "the token is never printed")

	cams := blockOutput(t, s.out, blockWith(t, root, rel, `--register "cam-1:x509=$TP`))
	assert.Regexp(t, `(?m)^cam-1\s+succeeded\s+200\s`, cams, "the self-signed device answered")
	assert.Regexp(t, `(?m)^cam-2\s+succeeded\s+200\s`, cams, "the CA-signed device answered")
	wrong := blockOutput(t, s.out, blockWith(t, root, rel, "--cert hub/cam-2.pem --key hub/cam-2-key.pem"))
	assert.Contains(t, wrong, "hubsim device exit 1", "cam-1 with cam-2's certificate is refused")
}

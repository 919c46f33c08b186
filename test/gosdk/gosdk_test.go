// Package gosdk runs the independent Go device SDK github.com/amenzhinsky/iothub
// against hubsim, unmodified, as users' own device code would (issue 13).
// It is a module of its own so that dmctl's go.mod does not depend on the
// SDK; `make test` runs it. It builds hubsim and dmctl from the repository.
package gosdk

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"
	iotmqtt "github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	mqttpaho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// build compiles one of the repository's commands into dir.
func build(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = "../.."
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build %s: %s", name, b)
	return out
}

type ready struct {
	HTTPSAddr               string            `json:"httpsAddr"`
	MQTTAddr                string            `json:"mqttAddr"`
	CAFile                  string            `json:"caFile"`
	HostName                string            `json:"hostName"`
	ServiceConnectionString string            `json:"serviceConnectionString"`
	DeviceConnectionStrings map[string]string `json:"deviceConnectionStrings"`
}

// startHubsim runs hubsim with args and returns its ready line.
func startHubsim(t *testing.T, bin string, args ...string) ready {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--dir", filepath.Join(t.TempDir(), "hub")}, args...)...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	require.True(t, sc.Scan(), "hubsim printed its ready line")
	var r ready
	require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
	go func() {
		for sc.Scan() {
		}
	}()
	return r
}

// TestGoSDKDeviceConnectsAndAnswersAMethod: the Go SDK signs its device
// token with sr = the bare hub host. hubsim reads sr as IoT Hub does (a URI
// prefix by segment), so the device connects, reads its twin, and answers
// a direct method that dmctl invokes.
func TestGoSDKDeviceConnectsAndAnswersAMethod(t *testing.T) {
	bins := t.TempDir()
	hubsim, dmctl := build(t, bins, "hubsim"), build(t, bins, "dmctl")
	r := startHubsim(t, hubsim, "--register", "gosdk-1")

	// The SDK takes HostName, DeviceId and SharedAccessKey; it signs the
	// token for HostName and dials HostName:8883, so the broker and the
	// trust store are pointed at hubsim (the SDK's own options allow it).
	var cs []string
	for _, part := range strings.Split(r.DeviceConnectionStrings["gosdk-1"], ";") {
		if !strings.HasPrefix(part, "GatewayHostName=") {
			cs = append(cs, part)
		}
	}
	pem, err := os.ReadFile(r.CAFile)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(pem))
	host, _, _ := strings.Cut(r.MQTTAddr, ":")
	tr := iotmqtt.New(iotmqtt.WithClientOptionsConfig(func(o *mqttpaho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("tls://" + r.MQTTAddr)
		o.SetTLSConfig(&tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
		o.SetAutoReconnect(false)
	}))
	c, err := iotdevice.NewFromConnectionString(tr, strings.Join(cs, ";"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, c.Connect(ctx), "the Go SDK's token (sr = the hub host) is accepted")
	defer func() { _ = c.Close() }()

	_, _, err = c.RetrieveTwinState(ctx)
	require.NoError(t, err, "twin read over MQTT")

	got := make(chan map[string]interface{}, 1)
	require.NoError(t, c.RegisterMethod(ctx, "ping", func(p map[string]interface{}) (int, map[string]interface{}, error) {
		got <- p
		return 200, map[string]interface{}{"pong": true}, nil
	}))

	cmd := exec.CommandContext(ctx, dmctl, "invoke", "ping", "--device", "gosdk-1", "--payload", `{"n":1}`, "--ca-file", r.CAFile, "-o", "json")
	cmd.Env = append(os.Environ(), "IOTHUB_CONNECTION_STRING="+r.ServiceConnectionString)
	out, err := cmd.Output()
	require.NoError(t, err, "dmctl invoke: %s", out)
	assert.Equal(t, map[string]interface{}{"n": float64(1)}, <-got, "the SDK's handler got the payload")
	assert.Contains(t, string(out), `"pong": true`)
	assert.Contains(t, string(out), `"outcome": "succeeded"`)
}

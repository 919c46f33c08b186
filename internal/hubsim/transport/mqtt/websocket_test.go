package mqtt

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWebSocket: MQTT over WebSocket at /$iothub/websocket on the same
// port, with an off-the-shelf client (paho).
func TestWebSocket(t *testing.T) {
	f := newFixture(t)
	opts := paho.NewClientOptions().
		AddBroker("wss://" + f.addr + WebSocketPath).
		SetClientID("dev1").
		SetUsername(username(dev1)).
		SetPassword(string(token(dev1, f.key(dev1), time.Hour))).
		SetTLSConfig(f.client).
		SetProtocolVersion(4).
		SetAutoReconnect(false)
	c := paho.NewClient(opts)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second), "connect timed out")
	require.NoError(t, tok.Error())
	defer c.Disconnect(100)
	assert.Equal(t, "Connected", connectionState(t, f.reg, dev1))

	sub := c.Subscribe(FilterMethods, 1, func(c paho.Client, m paho.Message) {
		rid := topicQuery(m.Topic())["$rid"]
		c.Publish("$iothub/methods/res/200/?$rid="+rid, 1, false, fmt.Sprintf(`{"echo":%s}`, m.Payload()))
	})
	require.True(t, sub.WaitTimeout(10*time.Second))
	require.NoError(t, sub.Error())
	assert.Equal(t, map[string]byte{FilterMethods: 1}, sub.(*paho.SubscribeToken).Result())

	r := waitResult(t, f.invokeAsync(dev1, "hi", json.RawMessage(`[1,"a"]`), 0, 5*time.Second))
	require.NoError(t, r.err)
	assert.Equal(t, 200, r.status)
	assert.JSONEq(t, `{"echo":[1,"a"]}`, string(r.payload))

	t.Run("other paths are not found", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: f.client}, Timeout: 5 * time.Second}
		resp, err := hc.Get("https://" + f.addr + "/mqtt")
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
	t.Run("a plain GET on the path is not an upgrade", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: f.client}, Timeout: 5 * time.Second}
		resp, err := hc.Get("https://" + f.addr + WebSocketPath)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
}

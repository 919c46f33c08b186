package hubsim

import (
	"context"
	"path/filepath"
	"testing"

	hubmqtt "github.com/dmctl/dmctl/internal/hubsim/transport/mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSessionStoreInUse: a second hubsim on a --dir whose MQTT session
// store another one holds fails to start with a message naming the file,
// and shuts down cleanly (no endpoint to close).
func TestSessionStoreInUse(t *testing.T) {
	dir := t.TempDir()
	first := startTestServer(t, Config{Dir: dir})
	assert.FileExists(t, filepath.Join(dir, hubmqtt.SessionsFile))

	second, err := New(Config{Dir: dir, Log: logWriter{t}})
	require.NoError(t, err)
	err = second.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, hubmqtt.SessionsFile))
	assert.Contains(t, err.Error(), "another hubsim")
	assert.NoError(t, second.Shutdown(context.Background()))
	assert.NotEmpty(t, first.HostName(), "the first one is unaffected")
}

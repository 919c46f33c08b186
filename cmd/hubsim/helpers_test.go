package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim"
	"github.com/dmctl/dmctl/internal/testkit"
)

// newTestServer builds a hub in a test directory (listeners bound, not
// serving); startTestServer also serves. Both stop at cleanup.
func newTestServer(t testing.TB, cfg hubsim.Config) *hubsim.Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Log == nil {
		cfg.Log = &testkit.SyncBuffer{}
	}
	s, err := hubsim.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func startTestServer(t testing.TB, cfg hubsim.Config) *hubsim.Server {
	t.Helper()
	s := newTestServer(t, cfg)
	require.NoError(t, s.Start())
	return s
}

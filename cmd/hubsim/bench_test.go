package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBenchRuns checks the load generator works end to end (it asserts
// counts, not speed).
func TestBenchRuns(t *testing.T) {
	r, err := Bench(context.Background(), BenchOptions{Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, Concurrency: 4, Devices: 50, PayloadBytes: 100})
	require.NoError(t, err)
	assert.Positive(t, r.Calls)
	assert.Zero(t, r.Errors, "%v", r.ByStatus)
	assert.Equal(t, r.Calls, r.ByStatus["200"])
	assert.Equal(t, 50, r.Devices)
	assert.LessOrEqual(t, r.P50Ms, r.P99Ms)
	assert.LessOrEqual(t, r.P99Ms, r.MaxMs)
	assert.Contains(t, r.Text(), "calls/s")
}

func TestBenchCommandJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"bench", "--duration", "200ms", "--warmup", "10ms", "--concurrency", "2", "--devices", "10", "--json"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	var r BenchResult
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &r), stdout.String())
	assert.Positive(t, r.Calls)
	assert.Positive(t, r.CallsPerSec)
}

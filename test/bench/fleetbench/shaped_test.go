package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// TestShapedFleetsLoad: every latency shape is a fleet file hubsim loads,
// and its ids file lists each device once.
func TestShapedFleetsLoad(t *testing.T) {
	for _, shape := range []string{"normal", "second", "mixed"} {
		t.Run(shape, func(t *testing.T) {
			fleet, ids, err := writeShapedFleet(t.TempDir(), shape, shape, 1000)
			require.NoError(t, err)
			spec, err := sim.LoadFleetFile(fleet)
			require.NoError(t, err)
			total := 0
			for _, g := range spec.Groups {
				total += g.Count
			}
			assert.Equal(t, 1000, total)
			b, err := os.ReadFile(ids)
			require.NoError(t, err)
			lines := strings.Fields(string(b))
			assert.Len(t, lines, 1000)
			seen := map[string]bool{}
			for _, l := range lines {
				assert.False(t, seen[l], l)
				seen[l] = true
			}
		})
	}
}

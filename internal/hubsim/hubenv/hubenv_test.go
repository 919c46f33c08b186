package hubenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadFileRoundTrip: ReadFile reads back what shellQuote writes.
func TestReadFileRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), File)
	require.NoError(t, os.WriteFile(p, []byte("# comment\nexport A="+shellQuote("it's")+"\nexport B=''\nnot a line\n"), 0o600))
	vars, err := Read(p)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"A": "it's", "B": ""}, vars)
}

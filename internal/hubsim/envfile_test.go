package hubsim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadEnvFileRoundTrip: ReadEnvFile reads back what shellQuote writes.
func TestReadEnvFileRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), EnvFile)
	require.NoError(t, os.WriteFile(p, []byte("# comment\nexport A="+shellQuote("it's")+"\nexport B=''\nnot a line\n"), 0o600))
	vars, err := ReadEnvFile(p)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"A": "it's", "B": ""}, vars)
}

package cli

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/cli/cmdutil/cmdtest"
)

// commandPaths lists every runnable command of the tree with its flags.
func commandPaths(root *cobra.Command) map[string]*cobra.Command {
	out := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && !c.Hidden {
			out[c.CommandPath()] = c
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return out
}

// TestEveryValueFlagRefusesEmptyAndRepeats walks the whole command tree:
// every flag that takes a value refuses an empty one, and every flag that
// takes one value refuses a second, naming the flag, before any command
// runs (the invoker is never called).
func TestEveryValueFlagRefusesEmptyAndRepeats(t *testing.T) {
	te := newTestEnv(t, nil)
	root := NewCmdRoot(te.F)
	checked := 0
	for path, c := range commandPaths(root) {
		words := strings.Fields(path)[1:]
		c.Flags().VisitAll(func(fl *pflag.Flag) {
			if fl.Name == "help" {
				return
			}
			typ := fl.Value.Type()
			if typ == "bool" {
				return
			}
			for _, empty := range []string{"", "  "} {
				args := append(append([]string{}, words...), "--"+fl.Name+"="+empty)
				te := newTestEnv(t, nil)
				code := te.Run(args...)
				assert.Equal(t, cmdutil.ExitUsage, code, "%s --%s=%q", path, fl.Name, empty)
				assert.Contains(t, te.ErrOut.String(), "--"+fl.Name+": the value is empty", "%s --%s=%q", path, fl.Name, empty)
				assert.Empty(t, te.Inv.Calls)
				checked++
			}
			v := validValue(t, path, fl)
			te := newTestEnv(t, nil)
			args := append(append([]string{}, words...), "--"+fl.Name, v, "--"+fl.Name, v)
			code := te.Run(args...)
			assert.Equal(t, cmdutil.ExitUsage, code, "%s --%s twice", path, fl.Name)
			if cmdutil.Repeatable(fl) {
				assert.NotContains(t, te.ErrOut.String(), "more than once", "%s --%s is repeatable", path, fl.Name)
			} else {
				assert.Contains(t, te.ErrOut.String(), "--"+fl.Name+" is given more than once", "%s --%s twice", path, fl.Name)
			}
			assert.NotContains(t, te.ErrOut.String(), `"`+v+`"`, "the value is never echoed")
			assert.Empty(t, te.Inv.Calls)
		})
	}
	assert.Greater(t, checked, 100, "the walk reached the commands' flags")
}

// validValue finds a value the flag takes (on a fresh tree, so the flag
// under test has not been set yet).
func validValue(t *testing.T, path string, fl *pflag.Flag) string {
	t.Helper()
	candidates := []string{}
	c := commandPaths(NewCmdRoot(newTestEnv(t, nil).F))[path]
	if complete, ok := c.GetFlagCompletionFunc(fl.Name); ok {
		opts, _ := complete(c, nil, "")
		candidates = append(candidates, opts...)
	}
	if fl.DefValue != "" && fl.DefValue != "[]" && fl.DefValue != "0" {
		candidates = append(candidates, fl.DefValue)
	}
	candidates = append(candidates, "30s", "1", "x1")
	for _, c := range candidates {
		fresh := newTestEnv(t, nil)
		f := NewCmdRoot(fresh.F)
		target := commandPaths(f)[path].Flags().Lookup(fl.Name)
		require.NotNil(t, target)
		if target.Value.Set(c) == nil { // the flag's first value on a fresh tree
			return c
		}
	}
	t.Fatalf("no valid value found for --%s", fl.Name)
	return ""
}

func TestSecretFlagValueNeverEchoed(t *testing.T) {
	te := newTestEnv(t, nil)
	code := te.Run("invoke", "reboot", "--device", "d", "--connection-string", "HostName=h;SharedAccessKeyName=s;SharedAccessKey="+cmdtest.TestKey,
		"--connection-string", "HostName=h;SharedAccessKeyName=s;SharedAccessKey="+cmdtest.TestKey)
	assert.Equal(t, cmdutil.ExitUsage, code)
	assert.Contains(t, te.ErrOut.String(), "--connection-string is given more than once")
	assert.NotContains(t, te.ErrOut.String(), cmdtest.TestKey[:8])
}

func TestEmptyEnvironmentDefaults(t *testing.T) {
	for _, tt := range []struct {
		env      string
		flagArgs []string // giving the flag makes the variable irrelevant
	}{
		{cmdutil.EnvHub, []string{"--hub", "h.example.test"}},
		{cmdutil.EnvAuth, []string{"--auth", "sas"}},
		{cmdutil.EnvOutput, []string{"-o", "json"}},
		{cmdutil.EnvProfile, nil},
		{cmdutil.EnvConfigDir, nil},
	} {
		t.Run(tt.env, func(t *testing.T) {
			te := newTestEnv(t, nil)
			te.Env[tt.env] = " "
			code := te.Run("invoke", "reboot", "--device", "d")
			assert.Equal(t, cmdutil.ExitUsage, code)
			assert.Contains(t, te.ErrOut.String(), tt.env+" is set but empty")
			assert.Empty(t, te.Inv.Calls)
			if tt.flagArgs != nil {
				te := newTestEnv(t, nil)
				te.Env[tt.env] = ""
				code := te.Run(append([]string{"invoke", "reboot", "--device", "d"}, tt.flagArgs...)...)
				assert.NotContains(t, te.ErrOut.String(), "set but empty", "exit %d", code)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	te := newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("--version"))
	a := te.Out.String()
	te = newTestEnv(t, nil)
	require.Equal(t, 0, te.Run("version"))
	assert.Equal(t, te.Out.String(), a)
	assert.True(t, strings.HasPrefix(a, "dmctl version "), a)
}

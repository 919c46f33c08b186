package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/dmctl/dmctl/internal/atomicfile"
)

// Environment variables for profiles.
const (
	EnvProfile   = "DMCTL_PROFILE"    // the profile to use when --profile is not given
	EnvConfigDir = "DMCTL_CONFIG_DIR" // where config.yaml lives (default: the user's config dir + /dmctl)
)

// configFileName is the profile store inside the config directory.
const configFileName = "config.yaml"

// Profile is a named hub setup saved by `dmctl config set-profile`. Empty
// fields are not set by the profile.
type Profile struct {
	Hub    string `yaml:"hub,omitempty" json:"hub,omitempty"`
	Auth   string `yaml:"auth,omitempty" json:"auth,omitempty"`
	CAFile string `yaml:"caFile,omitempty" json:"caFile,omitempty"`
	Output string `yaml:"output,omitempty" json:"output,omitempty"`
	// ConnectionString is stored only with --store-connection-string. It is
	// a secret: never printed, only shown redacted.
	ConnectionString string `yaml:"connectionString,omitempty" json:"-"`
}

// Config is the profile store (config.yaml, mode 0600).
type Config struct {
	// Current is the profile used when neither --profile nor DMCTL_PROFILE
	// names one; "" means none.
	Current  string              `yaml:"current,omitempty"`
	Profiles map[string]*Profile `yaml:"profiles,omitempty"`
}

var profileNameShape = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func checkProfileName(name string) error {
	if !profileNameShape.MatchString(name) {
		return FlagErrorf("profile name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// configPath is where the profile store lives: $DMCTL_CONFIG_DIR/config.yaml,
// else os.UserConfigDir()/dmctl/config.yaml.
func (f *Factory) configPath() (string, error) {
	if f.LookupEnv != nil {
		if v, ok := f.LookupEnv(EnvConfigDir); ok && v != "" {
			return filepath.Join(v, configFileName), nil
		}
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the user's config directory (set %s): %w", EnvConfigDir, err)
	}
	return filepath.Join(dir, "dmctl", configFileName), nil
}

// loadConfig reads the profile store; a missing file is an empty store.
func (f *Factory) loadConfig() (*Config, string, error) {
	path, err := f.configPath()
	if err != nil {
		return nil, "", err
	}
	c := &Config{Profiles: map[string]*Profile{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("read %s: %w", path, err)
	}
	if err := yaml.Unmarshal(b, c); err != nil {
		return nil, path, FlagErrorf("%s: not a dmctl config file: %v", path, err)
	}
	if c.Profiles == nil {
		c.Profiles = map[string]*Profile{}
	}
	for name, p := range c.Profiles {
		if p == nil {
			c.Profiles[name] = &Profile{}
		}
	}
	return c, path, nil
}

// saveConfig writes the profile store with mode 0600 (it may hold a
// connection string), creating its directory with mode 0700.
func saveConfig(path string, c *Config) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	head := []byte("# dmctl profiles: edit with `dmctl config`. This file may hold a connection string: keep it private (mode 0600).\n")
	return atomicfile.Write(path, append(head, b...), 0o600)
}

func (c *Config) names() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// profileRef names the profile in use and where that name came from.
type profileRef struct {
	name, source string
	profile      *Profile
}

// activeProfile finds the profile to apply: --profile, else DMCTL_PROFILE,
// else the store's current profile. A profile named by --profile or
// DMCTL_PROFILE that does not exist is a usage error; no store and no name
// mean no profile.
func (f *Factory) activeProfile() (*profileRef, error) {
	name, source := f.Global.Profile, "--profile"
	if name == "" && f.LookupEnv != nil {
		if v, ok := f.LookupEnv(EnvProfile); ok && v != "" {
			name, source = v, EnvProfile
		}
	}
	c, path, err := f.loadConfig()
	if err != nil {
		if name == "" {
			return nil, nil // no profile asked for: a broken store does not stop other commands
		}
		return nil, err
	}
	if name == "" {
		if c.Current == "" {
			return nil, nil
		}
		name, source = c.Current, "the current profile (dmctl config use)"
	}
	p, ok := c.Profiles[name]
	if !ok {
		return nil, FlagErrorf("%s: no profile %q in %s (dmctl config list shows them)", source, name, path)
	}
	return &profileRef{name: name, source: source, profile: p}, nil
}

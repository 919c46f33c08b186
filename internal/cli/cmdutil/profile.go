package cmdutil

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/dmctl/dmctl/internal/atomicfile"
	"github.com/dmctl/dmctl/internal/connstr"
)

// Environment variables for profiles.
const (
	EnvProfile   = "DMCTL_PROFILE"    // the profile to use when --profile is not given
	EnvConfigDir = "DMCTL_CONFIG_DIR" // where config.yaml lives (default: the user's config dir + /dmctl)
)

// ConfigFileName is the profile store inside the config directory.
const ConfigFileName = "config.yaml"

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

func CheckProfileName(name string) error {
	if !profileNameShape.MatchString(name) {
		return FlagErrorf("profile name %s: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", ShownProfileName(name))
	}
	return nil
}

// ShownProfileName quotes a profile name for a message unless it may be a
// secret pasted in the wrong place (a connection string in DMCTL_PROFILE):
// then it is described, not shown.
func ShownProfileName(name string) string {
	if profileNameShape.MatchString(name) {
		return strconv.Quote(name)
	}
	if name == "" || len(name) > 64 || strings.ContainsAny(name, "=;") || connstr.HasSecret(name) ||
		strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "(the name given)"
	}
	return strconv.Quote(name)
}

// ConfigPath is where the profile store lives: $DMCTL_CONFIG_DIR/config.yaml,
// else os.UserConfigDir()/dmctl/config.yaml.
func (f *Factory) ConfigPath() (string, error) {
	if f.LookupEnv != nil {
		if v, ok := f.LookupEnv(EnvConfigDir); ok && v != "" {
			return filepath.Join(v, ConfigFileName), nil
		}
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the user's config directory (set %s): %w", EnvConfigDir, err)
	}
	return filepath.Join(dir, "dmctl", ConfigFileName), nil
}

// LoadConfig reads the profile store; a missing file is an empty store.
func (f *Factory) LoadConfig() (*Config, string, error) {
	path, err := f.ConfigPath()
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
		return nil, path, FlagErrorf("%s: not a dmctl config file: %s", path, describeYAMLError(err, b))
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

// SaveConfig writes the profile store with mode 0600 (it may hold a
// connection string), creating its directory with mode 0700.
func SaveConfig(path string, c *Config) error {
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

func (c *Config) Names() []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ProfileAsked reports whether --profile or DMCTL_PROFILE names a profile.
func (f *Factory) ProfileAsked() bool {
	if f.Global.Profile != "" {
		return true
	}
	if f.LookupEnv == nil {
		return false
	}
	v, ok := f.LookupEnv(EnvProfile)
	return ok && v != ""
}

// ErrConfigFile marks an error reading the profile store (a zero-width
// prefix: the message is the store's own).
var ErrConfigFile = errors.New("")

// ProfileRef names the profile in use and where that name came from.
type ProfileRef struct {
	Name, Source string
	Profile      *Profile
}

// ActiveProfile finds the profile to apply: --profile, else DMCTL_PROFILE,
// else the store's current profile. A profile named by --profile or
// DMCTL_PROFILE that does not exist is a usage error; no store and no name
// mean no profile.
func (f *Factory) ActiveProfile() (*ProfileRef, error) {
	name, source := f.Global.Profile, "--profile"
	if name == "" && f.LookupEnv != nil {
		if v, ok := f.LookupEnv(EnvProfile); ok && v != "" {
			name, source = v, EnvProfile
		}
	}
	c, path, err := f.LoadConfig()
	if err != nil {
		// Even when no profile is named: the store's current profile may
		// name the hub, and running without it could send to another one.
		return nil, fmt.Errorf("%w%w", ErrConfigFile, err)
	}
	if name == "" {
		if c.Current == "" {
			return nil, nil
		}
		name, source = c.Current, "the current profile (dmctl config use)"
	}
	p, ok := c.Profiles[name]
	if !ok {
		return nil, FlagErrorf("%s: no profile %s in %s (dmctl config list shows them)", source, ShownProfileName(name), path)
	}
	return &ProfileRef{Name: name, Source: source, Profile: p}, nil
}

// describeYAMLError says where and how config.yaml is malformed: the line
// and the kind of mistake, never the file's text (yaml.v3 quotes values,
// anchors and tags in some of its messages, and a config file may hold a
// connection string). text is the file, to find the line of a syntax error
// yaml.v3 reports without one.
func describeYAMLError(err error, text []byte) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var parts []string
		for _, e := range te.Errors {
			parts = append(parts, describeTypeError(e))
			if len(parts) == 3 {
				break
			}
		}
		if len(te.Errors) > len(parts) {
			parts = append(parts, fmt.Sprintf("and %d more", len(te.Errors)-len(parts)))
		}
		return strings.Join(parts, "; ")
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := ""
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line = "line " + m[1] + ": "
		msg = msg[len(m[0]):]
	} else if n := yamlErrorLine(err, text); n > 0 {
		line = "line " + strconv.Itoa(n) + ": "
	}
	for _, phrase := range yamlSafePhrases {
		if strings.HasPrefix(msg, phrase) {
			return line + "not valid YAML (" + phrase + ")"
		}
	}
	switch {
	case strings.HasPrefix(msg, "unknown anchor"):
		return line + "not valid YAML (an alias names an anchor that is not defined)"
	case strings.Contains(msg, "!!binary"):
		return line + "not valid YAML (a !!binary value is not valid base64)"
	}
	return line + "not valid YAML"
}

var (
	yamlLine      = regexp.MustCompile(`^line (\d+): `)
	yamlTypeError = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `[^`]*`)? into (\\S+)")
)

// yamlErrorLine finds the line of a syntax error yaml.v3 reports without
// one (an unknown anchor, a bad escape): the first line whose end, parsed
// with what comes before it, gives the same error. It returns 0 when no
// prefix does.
func yamlErrorLine(err error, text []byte) int {
	lines := bytes.SplitAfter(text, []byte("\n"))
	if len(lines) > 2000 {
		return 0
	}
	for n := 1; n <= len(lines); n++ {
		var node yaml.Node
		if e := yaml.Unmarshal(bytes.Join(lines[:n], nil), &node); e != nil && e.Error() == err.Error() {
			return n
		}
	}
	return 0
}

// yamlSafePhrases are yaml.v3 syntax messages that hold no text of the
// file, so they can be shown as they are.
var yamlSafePhrases = []string{
	"did not find expected key", "did not find expected node content", "did not find expected '-' indicator",
	"did not find expected ',' or '}'", "did not find expected ',' or ']'", "did not find expected comment or line break",
	"could not find expected ':'", "found character that cannot start any token", "found unexpected end of stream",
	"found unknown escape character", "found unknown directive name", "found a tab character that violates indentation",
	"found a tab character where an indentation space is expected", "found undefined tag handle", "found unexpected ':'",
	"found incompatible YAML document", "mapping values are not allowed in this context",
	"block sequence entries are not allowed in this context", "control characters are not allowed",
	"invalid leading UTF-8 octet", "invalid trailing UTF-8 octet", "incomplete UTF-8 octet sequence",
}

// describeTypeError turns one of yaml.v3's "line N: cannot unmarshal !!str
// `value` into T" into "line N: a string where a profile belongs", without
// the value.
func describeTypeError(e string) string {
	m := yamlTypeError.FindStringSubmatch(e)
	if m == nil {
		if l := yamlLine.FindStringSubmatch(e); l != nil {
			return "line " + l[1] + ": a value of the wrong type"
		}
		return "a value of the wrong type"
	}
	found := map[string]string{"str": "a string", "seq": "a list", "map": "a mapping", "int": "a number", "float": "a number",
		"bool": "true or false", "null": "an empty value", "binary": "binary data", "timestamp": "a timestamp"}[m[2]]
	if found == "" {
		found = "a value"
	}
	want := "another type"
	switch t := m[3]; {
	case strings.HasSuffix(t, "]*cmdutil.Profile") || strings.HasPrefix(t, "map["):
		want = "the profiles (a mapping of NAME: profile)"
	case strings.HasSuffix(t, "cmdutil.Profile"):
		want = "a profile (a mapping of hub, auth, caFile, output and connectionString)"
	case strings.HasSuffix(t, "cmdutil.Config"):
		want = "the file's top level (a mapping of current and profiles)"
	case t == "string":
		want = "a string"
	}
	return fmt.Sprintf("line %s: %s where %s belongs", m[1], found, want)
}

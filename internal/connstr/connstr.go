// Package connstr parses, validates and redacts Azure IoT Hub connection
// strings: service (policy) strings and device or module strings.
package connstr

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Kind says which identity a connection string authenticates.
type Kind int

// The kinds of connection string.
const (
	KindService Kind = iota + 1 // HostName + SharedAccessKeyName + SharedAccessKey
	KindDevice                  // HostName + DeviceId + a credential
	KindModule                  // KindDevice + ModuleId
)

// String names the kind for messages.
func (k Kind) String() string {
	switch k {
	case KindService:
		return "service"
	case KindDevice:
		return "device"
	case KindModule:
		return "module"
	}
	return "unknown"
}

// Known keys, spelled as IoT Hub spells them.
const (
	keyHostName              = "HostName"
	keySharedAccessKeyName   = "SharedAccessKeyName"
	keySharedAccessKey       = "SharedAccessKey"
	keySharedAccessSignature = "SharedAccessSignature"
	keyDeviceID              = "DeviceId"
	keyModuleID              = "ModuleId"
	keyGatewayHostName       = "GatewayHostName"
	keyX509                  = "x509"
)

var knownKeys = []string{keyHostName, keySharedAccessKeyName, keySharedAccessKey, keySharedAccessSignature,
	keyDeviceID, keyModuleID, keyGatewayHostName, keyX509}

// ConnectionString is a parsed IoT Hub connection string. The zero value is
// not valid; build one with Parse, ParseService or ParseDevice.
type ConnectionString struct {
	Kind                  Kind
	HostName              string
	SharedAccessKeyName   string // service strings only
	SharedAccessKey       string // base64, as given; secret
	SharedAccessSignature string // a ready-made token instead of a key; secret
	DeviceID              string
	ModuleID              string
	GatewayHostName       string // where a device connects when it is not HostName (may carry :port)
	X509                  bool
}

// Error is returned for a connection string that cannot be used. Its message
// never contains the key or signature.
type Error struct {
	Reason string
}

func (e *Error) Error() string { return "invalid connection string: " + e.Reason }

func errorf(format string, args ...any) error { return &Error{Reason: fmt.Sprintf(format, args...)} }

// Parse reads any kind of IoT Hub connection string: `Key=Value` pairs joined
// by `;`, split on the first `=` (keys end in `=`), in any order. Unknown and
// duplicate keys are rejected, naming them.
func Parse(s string) (*ConnectionString, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errorf("it is empty")
	}
	fields := map[string]string{}
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, errorf("part %d has no '=' (expected Key=Value pairs separated by ';')", i+1)
		}
		canon := canonicalKey(k)
		if canon == "" {
			return nil, errorf("unknown key %q (known keys: %s)", k, strings.Join(knownKeys, ", "))
		}
		if _, dup := fields[canon]; dup {
			return nil, errorf("key %q appears more than once", canon)
		}
		if v == "" {
			return nil, errorf("key %q has an empty value", canon)
		}
		fields[canon] = v
	}
	c := &ConnectionString{
		HostName:              fields[keyHostName],
		SharedAccessKeyName:   fields[keySharedAccessKeyName],
		SharedAccessKey:       fields[keySharedAccessKey],
		SharedAccessSignature: fields[keySharedAccessSignature],
		DeviceID:              fields[keyDeviceID],
		ModuleID:              fields[keyModuleID],
		GatewayHostName:       fields[keyGatewayHostName],
	}
	if x, ok := fields[keyX509]; ok {
		if !strings.EqualFold(x, "true") {
			return nil, errorf("key %q must be \"true\" when present", keyX509)
		}
		c.X509 = true
	}
	if c.HostName == "" {
		return nil, errorf("missing key %q", keyHostName)
	}
	if err := checkHost(c.HostName, keyHostName); err != nil {
		return nil, err
	}
	if c.GatewayHostName != "" {
		if err := checkHost(c.GatewayHostName, keyGatewayHostName); err != nil {
			return nil, err
		}
	}
	if c.SharedAccessKey != "" {
		if _, err := base64.StdEncoding.DecodeString(c.SharedAccessKey); err != nil {
			return nil, errorf("key %q is not valid base64", keySharedAccessKey)
		}
	}
	switch {
	case c.DeviceID == "" && c.ModuleID != "":
		return nil, errorf("key %q needs %q", keyModuleID, keyDeviceID)
	case c.DeviceID == "":
		c.Kind = KindService
		if c.SharedAccessKeyName == "" {
			return nil, errorf("missing key %q (a service connection string names its shared access policy)", keySharedAccessKeyName)
		}
		if c.SharedAccessKey == "" && c.SharedAccessSignature == "" {
			return nil, errorf("missing key %q", keySharedAccessKey)
		}
		if c.SharedAccessKey != "" && c.SharedAccessSignature != "" {
			return nil, errorf("keys %q and %q cannot both be given", keySharedAccessKey, keySharedAccessSignature)
		}
		for _, k := range []string{keyGatewayHostName} {
			if fields[k] != "" {
				return nil, errorf("key %q belongs in a device connection string, not a service one", k)
			}
		}
		if c.X509 {
			return nil, errorf("key %q belongs in a device connection string, not a service one", keyX509)
		}
	default:
		c.Kind = KindDevice
		if c.ModuleID != "" {
			c.Kind = KindModule
		}
		if c.SharedAccessKeyName != "" {
			return nil, errorf("key %q belongs in a service connection string, not a %s one", keySharedAccessKeyName, c.Kind)
		}
		n := 0
		for _, set := range []bool{c.SharedAccessKey != "", c.SharedAccessSignature != "", c.X509} {
			if set {
				n++
			}
		}
		if n == 0 {
			return nil, errorf("missing a credential: give one of %q, %q or %q", keySharedAccessKey, keySharedAccessSignature, keyX509)
		}
		if n > 1 {
			return nil, errorf("give only one of %q, %q and %q", keySharedAccessKey, keySharedAccessSignature, keyX509)
		}
	}
	return c, nil
}

// ParseService parses s and requires a service (shared access policy) string.
func ParseService(s string) (*ConnectionString, error) {
	c, err := Parse(s)
	if err != nil {
		return nil, err
	}
	if c.Kind != KindService {
		return nil, errorf("this is a %s connection string; a service connection string (HostName, SharedAccessKeyName, SharedAccessKey) is needed", c.Kind)
	}
	return c, nil
}

// ParseDevice parses s and requires a device or module string.
func ParseDevice(s string) (*ConnectionString, error) {
	c, err := Parse(s)
	if err != nil {
		return nil, err
	}
	if c.Kind == KindService {
		return nil, errorf("this is a service connection string; a device connection string (HostName, DeviceId, SharedAccessKey) is needed")
	}
	return c, nil
}

// canonicalKey matches keys case-insensitively, as the SDKs' parsers are
// forgiving about case, and returns the canonical spelling or "".
func canonicalKey(k string) string {
	k = strings.TrimSpace(k)
	for _, known := range knownKeys {
		if strings.EqualFold(k, known) {
			return known
		}
	}
	return ""
}

func checkHost(h, key string) error {
	if strings.ContainsAny(h, "/ \t?#@") || strings.Contains(h, "://") {
		return errorf("key %q must be a host name (optionally with :port), got %q", key, h)
	}
	return nil
}

// String returns the connection string with its secrets redacted. It is safe
// to print. Use Secret to get the full string.
func (c *ConnectionString) String() string { return c.format(true) }

// Redacted is String, spelled out for call sites where the intent matters.
func (c *ConnectionString) Redacted() string { return c.format(true) }

// Secret returns the full connection string, secrets included. Never print it.
func (c *ConnectionString) Secret() string { return c.format(false) }

func (c *ConnectionString) format(redact bool) string {
	pairs := map[string]string{
		keyHostName:              c.HostName,
		keySharedAccessKeyName:   c.SharedAccessKeyName,
		keySharedAccessKey:       c.SharedAccessKey,
		keySharedAccessSignature: c.SharedAccessSignature,
		keyDeviceID:              c.DeviceID,
		keyModuleID:              c.ModuleID,
		keyGatewayHostName:       c.GatewayHostName,
	}
	if c.X509 {
		pairs[keyX509] = "true"
	}
	var parts []string
	for _, k := range knownKeys {
		v := pairs[k]
		if v == "" {
			continue
		}
		if redact && (k == keySharedAccessKey || k == keySharedAccessSignature) {
			v = "REDACTED"
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ";")
}

// Redact replaces every secret-looking value in free text (connection
// strings, SAS tokens, bearer tokens) with REDACTED. It is the one place that
// knows what a secret looks like, for logs and error messages.
func Redact(s string) string {
	for _, marker := range []string{"SharedAccessKey=", "sharedaccesskey=", "SharedAccessSignature=", "sig=", "Bearer "} {
		s = redactAfter(s, marker)
	}
	return s
}

func redactAfter(s, marker string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, marker)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len(marker)])
		rest := s[i+len(marker):]
		end := strings.IndexAny(rest, ";& \t\r\n\"'")
		if end < 0 {
			end = len(rest)
		}
		if end > 0 && !strings.HasPrefix(rest, "REDACTED") {
			b.WriteString("REDACTED")
		} else {
			b.WriteString(rest[:end])
		}
		s = rest[end:]
	}
}

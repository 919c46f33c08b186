// Package connstr parses, validates and redacts Azure IoT Hub connection
// strings: service (policy) strings and device or module strings.
package connstr

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
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
// duplicate keys are rejected, naming the part (its position) and the key.
//
// A message never holds the text of a value or of a part it could not read:
// a key pasted in the wrong place (`SharedAccessKey:...`, a bare key, a key
// in HostName) must not end up in a terminal, a CI log or an issue.
func Parse(s string) (*ConnectionString, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errorf("it is empty")
	}
	fields := map[string]string{}
	partOf := map[string]int{}
	for i, part := range strings.Split(s, ";") {
		n := i + 1
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		canon := ""
		if ok {
			canon = canonicalKey(k)
		}
		if canon == "" {
			if like := knownKeyPrefix(part); like != "" {
				return nil, errorf("part %d is not a known Key=Value pair (it starts like %s, but '=' must follow the key name)", n, like)
			}
			if !ok {
				return nil, errorf("part %d has no '=' (expected Key=Value pairs separated by ';')", n)
			}
			return nil, errorf("part %d has an unknown key (known keys: %s)", n, strings.Join(knownKeys, ", "))
		}
		if first, dup := partOf[canon]; dup {
			return nil, errorf("key %q appears more than once (parts %d and %d)", canon, first, n)
		}
		if strings.TrimSpace(v) == "" {
			return nil, errorf("key %q (part %d) has an empty value", canon, n)
		}
		fields[canon] = v
		partOf[canon] = n
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
			return nil, errorf("key %q (part %d) must be \"true\" when present", keyX509, partOf[keyX509])
		}
		c.X509 = true
	}
	if c.HostName == "" {
		return nil, errorf("missing key %q", keyHostName)
	}
	for _, k := range []string{keyHostName, keyGatewayHostName} {
		if v := fields[k]; v != "" {
			if err := CheckHost(v); err != nil {
				return nil, errorf("key %q (part %d) must be a host name with an optional :port: %v", k, partOf[k], err)
			}
		}
	}
	if c.SharedAccessKeyName != "" {
		if why := policyNameProblem(c.SharedAccessKeyName); why != "" {
			return nil, errorf("key %q (part %d) must be a shared access policy name: %s", keySharedAccessKeyName, partOf[keySharedAccessKeyName], why)
		}
	}
	if c.SharedAccessKey != "" {
		if _, err := base64.StdEncoding.DecodeString(c.SharedAccessKey); err != nil {
			return nil, errorf("key %q (part %d) is not valid base64 (is it truncated or mistyped?)", keySharedAccessKey, partOf[keySharedAccessKey])
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

// knownKeyPrefix returns the longest known key that part starts with (case
// insensitively) when the text right after it is not '=': a pair written
// with another separator (`SharedAccessKey:...`, `SharedAccessKey ...`).
// It returns "" otherwise, also for a part that is a known key followed by
// more letters or digits (`HostNames=...` is an unknown key, not a typo of
// HostName's separator).
func knownKeyPrefix(part string) string {
	best := ""
	for _, known := range knownKeys {
		if len(part) <= len(known) || !strings.EqualFold(part[:len(known)], known) || len(known) <= len(best) {
			continue
		}
		next := part[len(known)]
		if next == '=' || isAlnum(next) {
			continue
		}
		best = known
	}
	return best
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// CheckHost checks that h is a host with an optional port, as HostName,
// GatewayHostName and --hub take it: a host name (letters, digits, '-' and
// '.', in labels of at most 63 characters), an IPv4 address, or an IPv6
// address in brackets ([::1]), then optionally ':' and a port 1..65535. Its
// error says which rule h breaks and never quotes h (it may be a secret
// pasted in the wrong place).
func CheckHost(h string) error {
	if h == "" {
		return errors.New("it is empty")
	}
	if strings.Contains(h, "://") {
		return errors.New("it looks like a URL: give only the host name, without a scheme such as https://")
	}
	host, port := h, ""
	switch {
	case strings.HasPrefix(h, "["):
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return errors.New("an IPv6 address opened with '[' lacks its closing ']'")
		}
		host, port = h[1:end], h[end+1:]
		ip := net.ParseIP(host)
		if ip == nil || ip.To4() != nil && !strings.Contains(host, ":") {
			return errors.New("the text in brackets is not an IPv6 address")
		}
		if port != "" {
			p, ok := strings.CutPrefix(port, ":")
			if !ok {
				return errors.New("only ':' and a port may follow the ']' of an IPv6 address")
			}
			port = p
			if port == "" {
				return errors.New("the port after ':' is empty")
			}
		}
	case strings.Count(h, ":") > 1:
		return errors.New("it has more than one ':' (write an IPv6 address in brackets, e.g. [::1]:443)")
	default:
		if i := strings.IndexByte(h, ':'); i >= 0 {
			host, port = h[:i], h[i+1:]
			if port == "" {
				return errors.New("the port after ':' is empty")
			}
		}
		if err := checkHostName(host); err != nil {
			return err
		}
	}
	if port != "" {
		if len(port) > 5 || strings.IndexFunc(port, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return errors.New("the port is not a number from 1 to 65535")
		}
		if n, _ := strconv.Atoi(port); n < 1 || n > 65535 {
			return errors.New("the port is not a number from 1 to 65535")
		}
	}
	return nil
}

func checkHostName(host string) error {
	switch {
	case host == "":
		return errors.New("the host before ':' is empty")
	case len(host) > 253:
		return errors.New("it is longer than 253 characters")
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !isAlnum(c) && c != '-' && c != '.' {
			return errors.New("it contains a character other than letters, digits, '-' and '.' (and ':' before a port)")
		}
	}
	if strings.Trim(host, "0123456789.") == "" {
		if ip := net.ParseIP(host); ip == nil || ip.To4() == nil {
			return errors.New("it is not a valid IPv4 address (four numbers 0-255 separated by '.')")
		}
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		switch {
		case label == "":
			return errors.New("it has an empty label (a '.' at the start or end, or two in a row)")
		case len(label) > 63:
			return errors.New("a label (the text between dots) is longer than 63 characters")
		case label[0] == '-' || label[len(label)-1] == '-':
			return errors.New("a label (the text between dots) starts or ends with '-'")
		case LooksLikeSecret(label):
			return errors.New("it looks like a key (a long mix of upper case, lower case and digits), not a host name")
		}
	}
	return nil
}

// policyNameProblem says why s cannot be a shared access policy name (""
// when it can): such a name is part of the policy's resource path and of
// every token's skn, so it has no '/', '=', '+', ';', quotes or blanks.
func policyNameProblem(s string) string {
	if strings.ContainsAny(s, "/=+; \t") || strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "it contains '/', '=', '+', ';', a blank or a control character (is a key in its place?)"
	}
	if len(s) > 256 {
		return "it is longer than 256 characters"
	}
	if LooksLikeSecret(s) {
		return "it looks like a key (a long mix of upper case, lower case and digits), not a policy name"
	}
	return ""
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

// Redact replaces every secret-looking value in free text with REDACTED. It
// is the one place that knows what a secret looks like, for logs and error
// messages:
//   - the value after a secret's name: SharedAccessKey, SharedAccessSignature,
//     sig, AccountKey, client_secret, client_assertion, access_token,
//     refresh_token, id_token and password, matched case-insensitively and
//     written Name=value, Name: value, "Name": "value" or (SharedAccessKey
//     and SharedAccessSignature only, for a value that looks like a key)
//     Name value;
//   - the credentials after "Bearer " and "Basic ";
//   - as a last line of defence, any run of 40 or more base64 characters
//     that mixes upper case, lower case and digits (a SAS key is 44).
//
// IoT Hub tracking ids, device ids, GUIDs and hex digests are left alone.
func Redact(s string) string {
	s = redactNamed(s)
	s = redactScheme(s, "Bearer ")
	s = redactScheme(s, "Basic ")
	return redactLongRuns(s)
}

const redacted = "REDACTED"

// secretNames are the names whose value is a secret. loose marks those also
// recognised with a blank as separator (when the value looks like a key).
var secretNames = []struct {
	name  string
	loose bool
}{
	{"sharedaccesskey", true}, {"sharedaccesssignature", true}, {"sig", false}, {"accountkey", false},
	{"client_secret", false}, {"client_assertion", false}, {"access_token", false}, {"refresh_token", false},
	{"id_token", false}, {"password", false},
}

// terminators end an unquoted secret value.
const terminators = ";&, \t\r\n\"'<>()[]{}"

func isWordByte(c byte) bool { return isAlnum(c) || c == '_' }

// nameMayStart reports whether a secret's name may start at lower[i]: at a
// word boundary, or after "azure_" (AZURE_CLIENT_SECRET=...).
func nameMayStart(lower string, i int) bool {
	return i == 0 || !isWordByte(lower[i-1]) || strings.HasSuffix(lower[:i], "azure_")
}

func redactNamed(s string) string {
	lower := strings.ToLower(s)
	var b strings.Builder
	last := 0 // s[last:] is not written yet
	for i := 0; i < len(s); i++ {
		if !nameMayStart(lower, i) {
			continue
		}
		for _, n := range secretNames {
			if !strings.HasPrefix(lower[i:], n.name) {
				continue
			}
			end := i + len(n.name)
			if end < len(s) && isWordByte(s[end]) {
				continue
			}
			vStart, vEnd, ok := secretValue(s, end, n.loose, n.name == "sharedaccesssignature")
			if !ok {
				continue
			}
			b.WriteString(s[last:vStart])
			b.WriteString(redacted)
			last = vEnd
			i = vEnd - 1
			break
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// secretValue finds the value that follows a secret's name ending at
// s[end:]: the separator ('=' or ':' with optional blanks, maybe inside
// JSON quotes, or for loose names blanks alone) and the value up to its
// closing quote or a terminator. ok is false when there is no value, it is
// already REDACTED, or (loose, blank-separated) it does not look like a key.
func secretValue(s string, end int, loose, token bool) (start, stop int, ok bool) {
	j := end
	if j < len(s) && (s[j] == '"' || s[j] == '\'') {
		j++ // the closing quote of a JSON or YAML key
	}
	k := skipBlanks(s, j)
	explicit := k < len(s) && (s[k] == '=' || s[k] == ':')
	if explicit {
		k = skipBlanks(s, k+1)
	} else if !loose || k == j || j != end {
		return 0, 0, false
	}
	quote := byte(0)
	if k < len(s) && (s[k] == '"' || s[k] == '\'') {
		quote = s[k]
		k++
	}
	stop = k
	if quote != 0 {
		for stop < len(s) && s[stop] != quote && s[stop] != '\n' {
			stop++
		}
	} else {
		for stop < len(s) && !strings.ContainsRune(terminators, rune(s[stop])) {
			stop++
		}
	}
	v := s[k:stop]
	switch {
	case v == "", strings.HasPrefix(v, redacted):
		return 0, 0, false
	case token && hasTokenField(v):
		return 0, 0, false // "SharedAccessSignature sr=...": the sig rule redacts the signature
	case !explicit && !keyShaped(v):
		return 0, 0, false
	}
	return k, stop, true
}

func skipBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func hasTokenField(v string) bool {
	for _, f := range []string{"sr=", "sig=", "se=", "skn="} {
		if strings.HasPrefix(v, f) {
			return true
		}
	}
	return false
}

// keyShaped reports whether v, written after a secret's name with only a
// blank between, looks like a key rather than the next word of a sentence:
// 12 or more base64 characters of at least two classes (upper, lower,
// digits, + / =).
func keyShaped(v string) bool {
	if len(v) < 12 {
		return false
	}
	up, low, dig, sym, ok := charClasses(v, "+/=-_%")
	if !ok {
		return false
	}
	n := 0
	for _, b := range []bool{up, low, dig, sym} {
		if b {
			n++
		}
	}
	return n >= 2
}

// charClasses reports which classes of characters s uses (upper case, lower
// case, digits, one of symbols); ok is false when s holds any other byte.
func charClasses(s, symbols string) (up, low, dig, sym, ok bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z':
			up = true
		case c >= 'a' && c <= 'z':
			low = true
		case c >= '0' && c <= '9':
			dig = true
		case strings.IndexByte(symbols, c) >= 0:
			sym = true
		default:
			return up, low, dig, sym, false
		}
	}
	return up, low, dig, sym, true
}

// redactScheme masks the credentials after an HTTP auth scheme ("Bearer ",
// "Basic ") up to a terminator.
func redactScheme(s, scheme string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, scheme)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len(scheme)])
		rest := s[i+len(scheme):]
		end := strings.IndexAny(rest, ";& \t\r\n\"'")
		if end < 0 {
			end = len(rest)
		}
		v := rest[:end]
		if end > 0 && !strings.HasPrefix(rest, redacted) && (scheme == "Bearer " || keyShaped(v)) {
			b.WriteString(redacted)
		} else {
			b.WriteString(v)
		}
		s = rest[end:]
	}
}

// minSecretRun is the shortest base64 run LooksLikeSecret takes for a key.
const minSecretRun = 40

// LooksLikeSecret reports whether s is a run of 40 or more base64
// characters (A-Z a-z 0-9 + /, then up to two '=') that mixes upper case,
// lower case and digits, as keys and signatures do and host names, device
// ids, tracking ids, GUIDs and hex digests do not. A run that looks like a
// path ("/tmp/Abc...", "devices/Abc.../modules") is not taken for a key.
func LooksLikeSecret(s string) bool {
	body := strings.TrimRight(s, "=")
	if len(s)-len(body) > 2 || len(body) < minSecretRun {
		return false
	}
	up, low, dig, _, ok := charClasses(body, "+/")
	if !ok {
		return false
	}
	if !up || !low || !dig {
		return false
	}
	return !looksLikePath(body)
}

// looksLikePath reports whether a run with '/' in it is a file path or a
// URL path rather than a key: it starts or ends with '/', or one of its
// pieces is a lower-case word ("tmp", "devices", "twins").
func looksLikePath(run string) bool {
	if !strings.Contains(run, "/") {
		return false
	}
	if strings.HasPrefix(run, "/") || strings.HasSuffix(run, "/") {
		return true
	}
	for _, piece := range strings.Split(run, "/") {
		if len(piece) >= 3 && strings.Trim(piece, "abcdefghijklmnopqrstuvwxyz") == "" {
			return true
		}
	}
	return false
}

func isBase64Byte(c byte) bool { return isAlnum(c) || c == '+' || c == '/' }

// redactLongRuns masks every maximal run of base64 characters (with its
// '=' padding) that LooksLikeSecret.
func redactLongRuns(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isBase64Byte(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isBase64Byte(s[j]) {
			j++
		}
		k := j
		for k < len(s) && k-j < 2 && s[k] == '=' {
			k++
		}
		if j-i >= minSecretRun && LooksLikeSecret(s[i:k]) {
			b.WriteString(s[last:i])
			b.WriteString(redacted)
			last = k
		}
		i = k
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// HasSecret reports whether Redact would mask anything in s: for checks
// such as "is this value safe to show?" (the sinks redact; see Redact).
func HasSecret(s string) bool { return Redact(s) != s }

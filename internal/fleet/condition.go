package fleet

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Condition tests one twin property, as --wait-until and --fail-if write
// it (docs/fleets.md, "Waiting for outcomes"):
//
//	PATH == VALUE     PATH != VALUE     PATH in (VALUE, VALUE, ...)     PATH not in (...)
//
// PATH is a dotted twin path such as
// properties.reported.iothubDM.firmwareUpdate.status or connectionState.
// VALUE is a bare word or number, or text in single or double quotes. A
// string property compares with the value's text case-insensitively; a
// number compares numerically with a numeric value; true, false and null
// compare with those words. A property that is absent, or is an object or
// an array, matches no condition (neither == nor !=).
type Condition struct {
	Path   []string
	Negate bool     // != or not in
	Values []string // one for == and !=
	// Text is the condition as given, for messages.
	Text string
}

// twinTopLevel are the first steps a condition's path may start with
// (iothub-contract.md §4.2).
var twinTopLevel = map[string]bool{
	"deviceId": true, "moduleId": true, "etag": true, "deviceEtag": true, "version": true, "status": true,
	"statusReason": true, "statusUpdateTime": true, "connectionState": true, "lastActivityTime": true,
	"cloudToDeviceMessageCount": true, "authenticationType": true, "capabilities": true, "deviceScope": true,
	"tags": true, "properties": true, "modelId": true,
}

// ParseCondition reads a condition; the error says what is wrong with it.
func ParseCondition(s string) (Condition, error) {
	c := Condition{Text: strings.TrimSpace(s)}
	rest := c.Text
	if rest == "" {
		return c, fmt.Errorf("the condition is empty; write e.g. properties.reported.iothubDM.firmwareUpdate.status == applyComplete")
	}
	// The path runs to the first space or operator character.
	end := strings.IndexFunc(rest, func(r rune) bool { return r == ' ' || r == '\t' || r == '=' || r == '!' })
	if end <= 0 {
		return c, fmt.Errorf("%q: expected PATH == VALUE, PATH != VALUE or PATH in (VALUE, ...)", c.Text)
	}
	path := rest[:end]
	rest = strings.TrimSpace(rest[end:])
	for _, seg := range strings.Split(path, ".") {
		if seg == "" {
			return c, fmt.Errorf("%q: the path %q has an empty step (write steps separated by single dots)", c.Text, path)
		}
		if strings.ContainsAny(seg, "[]'\"()") {
			return c, fmt.Errorf("%q: the path %q may hold only names separated by dots", c.Text, path)
		}
		c.Path = append(c.Path, seg)
	}
	if !twinTopLevel[c.Path[0]] {
		return c, fmt.Errorf("%q: the path must start at the twin's top level, e.g. properties.reported.%s or connectionState", c.Text, path)
	}
	lower := strings.ToLower(rest)
	switch {
	case strings.HasPrefix(rest, "=="):
		rest = rest[2:]
	case strings.HasPrefix(rest, "!="):
		c.Negate, rest = true, rest[2:]
	case strings.HasPrefix(rest, "="):
		rest = rest[1:]
	case strings.HasPrefix(lower, "in ") || strings.HasPrefix(lower, "in("):
		return c.parseList(rest[2:])
	case strings.HasPrefix(lower, "not in ") || strings.HasPrefix(lower, "not in("):
		c.Negate = true
		return c.parseList(rest[6:])
	default:
		return c, fmt.Errorf("%q: after the path expected ==, !=, in or not in", c.Text)
	}
	v, tail, err := readValue(strings.TrimSpace(rest), true)
	if err != nil {
		return c, fmt.Errorf("%q: %v", c.Text, err)
	}
	if strings.TrimSpace(tail) != "" {
		return c, fmt.Errorf("%q: unexpected %q after the value (quote a value with spaces)", c.Text, strings.TrimSpace(tail))
	}
	c.Values = []string{v}
	return c, nil
}

func (c Condition) parseList(rest string) (Condition, error) {
	rest = strings.TrimSpace(rest)
	if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
		return c, fmt.Errorf("%q: write the values in parentheses: PATH in (a, b)", c.Text)
	}
	rest = strings.TrimSpace(rest[1 : len(rest)-1])
	for {
		v, tail, err := readValue(rest, false)
		if err != nil {
			return c, fmt.Errorf("%q: %v", c.Text, err)
		}
		c.Values = append(c.Values, v)
		tail = strings.TrimSpace(tail)
		if tail == "" {
			return c, nil
		}
		if tail[0] != ',' {
			return c, fmt.Errorf("%q: expected , between values, got %q", c.Text, tail)
		}
		rest = strings.TrimSpace(tail[1:])
	}
}

// readValue reads one value: quoted text, or a bare word (to the end of
// the text when toEnd, else to the next comma).
func readValue(s string, toEnd bool) (value, rest string, err error) {
	if s == "" {
		return "", "", fmt.Errorf("a value is missing")
	}
	if q := s[0]; q == '\'' || q == '"' {
		i := strings.IndexByte(s[1:], q)
		if i < 0 {
			return "", "", fmt.Errorf("the quote %c is not closed", q)
		}
		return s[1 : 1+i], s[2+i:], nil
	}
	if toEnd {
		return strings.TrimSpace(s), "", nil
	}
	i := strings.IndexByte(s, ',')
	if i < 0 {
		i = len(s)
	}
	v := strings.TrimSpace(s[:i])
	if v == "" {
		return "", "", fmt.Errorf("a value is missing")
	}
	return v, s[i:], nil
}

// String is the condition as given.
func (c Condition) String() string { return c.Text }

// PathText is the dotted path.
func (c Condition) PathText() string { return strings.Join(c.Path, ".") }

// Holds reports whether the condition holds on a twin document (decoded
// with json.Number or float64 numbers).
func (c Condition) Holds(doc map[string]any) bool {
	v, ok := Lookup(doc, c.Path)
	if !ok {
		return false
	}
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	for _, want := range c.Values {
		if valueEquals(v, want) {
			return !c.Negate
		}
	}
	return c.Negate
}

// Lookup follows path through nested objects.
func Lookup(doc map[string]any, path []string) (any, bool) {
	var v any = doc
	for _, step := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[step]; !ok {
			return nil, false
		}
	}
	return v, true
}

// valueEquals compares a primitive twin value with a condition's value.
func valueEquals(v any, want string) bool {
	switch x := v.(type) {
	case nil:
		return want == "null"
	case string:
		return strings.EqualFold(x, want)
	case bool:
		return strings.EqualFold(strconv.FormatBool(x), want)
	case json.Number:
		f, err := x.Float64()
		return err == nil && numberEquals(f, want)
	case float64:
		return numberEquals(x, want)
	}
	return false
}

func numberEquals(f float64, want string) bool {
	w, err := strconv.ParseFloat(want, 64)
	return err == nil && !math.IsNaN(w) && w == f
}

package fleet

import (
	"fmt"
	"strconv"
	"strings"
)

// StatusSet is the set of device statuses that count as success
// (--ok-status). The zero value means any 2xx.
type StatusSet struct {
	exact   map[int]bool
	classes map[int]bool // 2 for "2xx"
	text    string
}

// ParseStatusSet reads a comma-separated list of statuses and classes, such
// as "200,202", "2xx" or "2xx,404". Statuses are whole numbers 0..999 (a
// device may answer with any integer, but HTTP-like codes are the
// convention); classes are a digit followed by "xx".
func ParseStatusSet(s string) (StatusSet, error) {
	set := StatusSet{exact: map[int]bool{}, classes: map[int]bool{}}
	var parts []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		parts = append(parts, p)
		lower := strings.ToLower(p)
		if len(lower) == 3 && strings.HasSuffix(lower, "xx") {
			if lower[0] < '1' || lower[0] > '5' {
				return StatusSet{}, fmt.Errorf("%q is not a status class (classes are 1xx to 5xx; give other statuses as numbers)", p)
			}
			set.classes[int(lower[0]-'0')] = true
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return StatusSet{}, fmt.Errorf("%q is not a status (use numbers like 200 or classes like 2xx, separated by commas)", p)
		}
		set.exact[n] = true
	}
	if len(parts) == 0 {
		return StatusSet{}, fmt.Errorf("no status given (use numbers like 200 or classes like 2xx, separated by commas)")
	}
	set.text = strings.Join(parts, ",")
	return set, nil
}

// Contains reports whether a device status counts as success.
func (s StatusSet) Contains(status int) bool {
	if s.exact == nil && s.classes == nil {
		return status >= 200 && status <= 299
	}
	if s.exact[status] {
		return true
	}
	return status >= 100 && status <= 999 && s.classes[status/100]
}

// String is the set as it was given, or "2xx" for the zero value.
func (s StatusSet) String() string {
	if s.text == "" {
		return "2xx"
	}
	return s.text
}

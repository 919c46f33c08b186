package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// IoT Hub's rules for what a fleet description names and holds: device and
// module ids, method names, twin members and sizes. The registry applies the
// same rules to what its API writes.

// Twin limits (iothub-contract.md §4.2).
const (
	MaxTagsBytes    = 8 * 1024
	MaxSectionBytes = 32 * 1024
	maxDepth        = 10
	maxKeyBytes     = 1024
	// MaxPayloadBytes bounds a method payload.
	MaxPayloadBytes = 128 * 1024
)

// CheckID validates a device or module id (iothub-contract.md §1.1).
func CheckID(id string) error {
	if id == "" {
		return errors.New("must not be empty")
	}
	if len(id) > 128 {
		return fmt.Errorf("%q: longer than 128 characters", id[:32]+"...")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-:.+%_#*?!(),=@;$'", c) >= 0 {
			continue
		}
		return fmt.Errorf("%q: character %q is not allowed (ASCII letters, digits and - : . + %% _ # * ? ! ( ) , = @ ; $ ')", id, c)
	}
	return nil
}

// checkMethodName validates a method name (iothub-contract.md §1.4).
func checkMethodName(name string) error {
	if name == "" {
		return errors.New("method name must not be empty")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c > '~' || strings.IndexByte("$()<>@,;:\\\"/[]?={}", c) >= 0 {
			return fmt.Errorf("method name %q: character %q is not allowed", name, c)
		}
	}
	return nil
}

// CheckTwinProps checks member names, values and nesting of a twin object
// (tags, or desired or reported properties). In a patch, null members are
// allowed (they delete).
func CheckTwinProps(m map[string]any, patch bool) error {
	return validateProps(m, 1, patch)
}

// validateProps checks member names and nesting of a twin object. In a
// patch, null members are allowed (they delete).
func validateProps(m map[string]any, depth int, patch bool) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	for k, v := range m {
		if err := checkPropName(k); err != nil {
			return err
		}
		if err := validateValue(k, v, depth, patch); err != nil {
			return err
		}
	}
	return nil
}

func validateValue(k string, v any, depth int, patch bool) error {
	switch t := v.(type) {
	case nil:
		if !patch {
			return fmt.Errorf("member %q: null is only allowed in patches (it deletes)", k)
		}
	case bool, string, float64, json.Number, int, int64, int32, uint64, uint32, float32:
	case map[string]any:
		return validateProps(t, depth+1, patch)
	case []any:
		for _, e := range t {
			if e == nil {
				continue
			}
			if sub, ok := e.(map[string]any); ok {
				if err := validateProps(sub, depth+1, false); err != nil {
					return err
				}
				continue
			}
			if err := validateValue(k, e, depth+1, false); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("member %q: unsupported value of type %T", k, v)
	}
	return nil
}

func checkPropName(k string) error {
	if k == "" {
		return errors.New("empty member name")
	}
	if len(k) > maxKeyBytes {
		return fmt.Errorf("member name %q...: longer than %d bytes", k[:16], maxKeyBytes)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < ' ' || c == 0x7f || c == '.' || c == '$' || c == ' ' {
			return fmt.Errorf("member name %q: must not contain '.', '$', spaces or control characters", k)
		}
	}
	return nil
}

// JSONSize is the length of v as JSON (1<<30 when v does not marshal).
func JSONSize(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 1 << 30
	}
	return len(b)
}

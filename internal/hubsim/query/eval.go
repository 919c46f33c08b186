package query

import (
	"cmp"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// kind is the JSON type of a value. kUndef is "undefined": a path that does
// not exist, or the result of an operation on values of the wrong types.
type kind uint8

const (
	kUndef kind = iota
	kNull
	kBool
	kNum
	kStr
	kArr
	kObj
)

// value is an evaluated expression. It is passed by value so that
// evaluating a condition allocates nothing.
type value struct {
	k   kind
	b   bool
	n   float64
	s   string
	raw any // the document's own value for kArr and kObj
}

var (
	undef  = value{}
	vTrue  = value{k: kBool, b: true}
	vFalse = value{k: kBool}
)

func boolValue(b bool) value {
	if b {
		return vTrue
	}
	return vFalse
}

// numOf converts any Go number a decoded document may hold to float64.
func numOf(x any) (float64, bool) {
	switch t := x.(type) {
	case float64:
		return t, true
	case float32:
		return float64(t), true
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case int32:
		return float64(t), true
	case int16:
		return float64(t), true
	case int8:
		return float64(t), true
	case uint:
		return float64(t), true
	case uint64:
		return float64(t), true
	case uint32:
		return float64(t), true
	case uint16:
		return float64(t), true
	case uint8:
		return float64(t), true
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		return f, err == nil
	}
	return 0, false
}

// toValue classifies a document value. Types a JSON decoder never produces
// (structs, typed maps) are treated as opaque objects.
func toValue(x any) value {
	switch t := x.(type) {
	case nil:
		return value{k: kNull}
	case string:
		return value{k: kStr, s: t}
	case bool:
		return boolValue(t)
	case float64:
		return value{k: kNum, n: t}
	case map[string]any:
		return value{k: kObj, raw: t}
	case []any:
		return value{k: kArr, raw: t}
	}
	if f, ok := numOf(x); ok {
		return value{k: kNum, n: f}
	}
	return value{k: kObj, raw: x}
}

// toAny turns a value back into a JSON-encodable Go value. ok is false for
// undefined.
func (v value) toAny() (any, bool) {
	switch v.k {
	case kNull:
		return nil, true
	case kBool:
		return v.b, true
	case kNum:
		return v.n, true
	case kStr:
		return v.s, true
	case kArr, kObj:
		return v.raw, true
	}
	return nil, false
}

// expr is a compiled expression.
type expr interface {
	eval(doc map[string]any) value
}

// seg is one step of a property path: a key, or an index into an array.
type seg struct {
	key    string
	idx    int
	isIdx  bool
	quoted bool // written as ['key']: never rewritten
}

type pathExpr struct {
	segs []seg
	pos  int // byte offset, for messages
}

// lookup walks the path through the document. ok is false when the path
// does not exist.
func (p *pathExpr) lookup(doc map[string]any) (any, bool) {
	var cur any = doc
	for i := range p.segs {
		s := &p.segs[i]
		if s.isIdx {
			a, ok := cur.([]any)
			if !ok || s.idx < 0 || s.idx >= len(a) {
				return nil, false
			}
			cur = a[s.idx]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[s.key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func (p *pathExpr) eval(doc map[string]any) value {
	x, ok := p.lookup(doc)
	if !ok {
		return undef
	}
	return toValue(x)
}

// text is the canonical spelling of the path, used to compare SELECT items
// with GROUP BY items and in messages.
func (p *pathExpr) text() string {
	var b strings.Builder
	for i, s := range p.segs {
		switch {
		case s.isIdx:
			b.WriteString("[" + strconv.Itoa(s.idx) + "]")
		case s.quoted:
			b.WriteString("[" + strconv.Quote(s.key) + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		}
	}
	return b.String()
}

type litExpr struct{ v value }

func (l *litExpr) eval(map[string]any) value { return l.v }

type notExpr struct{ e expr }

// eval: NOT undefined is undefined, so NOT never turns a missing property
// into a match.
func (n *notExpr) eval(doc map[string]any) value {
	v := n.e.eval(doc)
	if v.k != kBool {
		return undef
	}
	return boolValue(!v.b)
}

type andExpr struct{ l, r expr }

// eval uses three-valued logic: false wins over undefined, undefined wins
// over true.
func (a *andExpr) eval(doc map[string]any) value {
	l := a.l.eval(doc)
	if l.k == kBool && !l.b {
		return vFalse
	}
	r := a.r.eval(doc)
	if r.k == kBool && !r.b {
		return vFalse
	}
	if l.k == kBool && r.k == kBool {
		return vTrue
	}
	return undef
}

type orExpr struct{ l, r expr }

// eval uses three-valued logic: true wins over undefined, undefined wins
// over false.
func (o *orExpr) eval(doc map[string]any) value {
	l := o.l.eval(doc)
	if l.k == kBool && l.b {
		return vTrue
	}
	r := o.r.eval(doc)
	if r.k == kBool && r.b {
		return vTrue
	}
	if l.k == kBool && r.k == kBool {
		return vFalse
	}
	return undef
}

type cmpExpr struct {
	op   tokKind
	l, r expr
}

func (c *cmpExpr) eval(doc map[string]any) value {
	return compare(c.op, c.l.eval(doc), c.r.eval(doc))
}

// compare applies a comparison operator. Values of different types, objects
// and arrays, and undefined operands give undefined (never a match, also
// under NOT), as in the Cosmos DB dialect IoT Hub's query language follows.
func compare(op tokKind, a, b value) value {
	if a.k != b.k || a.k == kUndef || a.k == kArr || a.k == kObj {
		return undef
	}
	var c int
	switch a.k {
	case kNull:
		c = 0
	case kBool:
		switch {
		case a.b == b.b:
			c = 0
		case b.b:
			c = -1
		default:
			c = 1
		}
	case kNum:
		if math.IsNaN(a.n) || math.IsNaN(b.n) {
			return undef
		}
		c = cmp.Compare(a.n, b.n)
	case kStr:
		c = strings.Compare(a.s, b.s)
	}
	switch op {
	case tEq:
		return boolValue(c == 0)
	case tNe:
		return boolValue(c != 0)
	case tLt:
		return boolValue(c < 0)
	case tLe:
		return boolValue(c <= 0)
	case tGt:
		return boolValue(c > 0)
	case tGe:
		return boolValue(c >= 0)
	}
	return undef
}

// inExpr is `e IN [...]` (or NIN / NOT IN when neg). The list holds
// constants only, indexed by type at parse time.
type inExpr struct {
	e                         expr
	strs                      map[string]struct{}
	nums                      map[float64]struct{}
	hasTrue, hasFalse, hasNil bool
	neg                       bool
}

func (in *inExpr) eval(doc map[string]any) value {
	v := in.e.eval(doc)
	var found bool
	switch v.k {
	case kStr:
		_, found = in.strs[v.s]
	case kNum:
		_, found = in.nums[v.n]
	case kBool:
		found = (v.b && in.hasTrue) || (!v.b && in.hasFalse)
	case kNull:
		found = in.hasNil
	default:
		return undef
	}
	return boolValue(found != in.neg)
}

type negExpr struct{ e expr }

func (n *negExpr) eval(doc map[string]any) value {
	v := n.e.eval(doc)
	if v.k != kNum {
		return undef
	}
	return value{k: kNum, n: -v.n}
}

type arithExpr struct {
	op   tokKind
	l, r expr
}

// eval: arithmetic is defined on numbers only; anything else, and division
// or modulo by zero, is undefined.
func (a *arithExpr) eval(doc map[string]any) value {
	l, r := a.l.eval(doc), a.r.eval(doc)
	if l.k != kNum || r.k != kNum {
		return undef
	}
	var n float64
	switch a.op {
	case tPlus:
		n = l.n + r.n
	case tMinus:
		n = l.n - r.n
	case tStar:
		n = l.n * r.n
	case tSlash:
		if r.n == 0 {
			return undef
		}
		n = l.n / r.n
	case tPercent:
		if r.n == 0 {
			return undef
		}
		n = math.Mod(l.n, r.n)
	}
	return value{k: kNum, n: n}
}

// maxArgs is the largest number of arguments any scalar function takes.
const maxArgs = 3

type fnSpec struct {
	min, max int
	fn       func(a [maxArgs]value, n int) value
}

type callExpr struct {
	spec *fnSpec
	args []expr
}

func (c *callExpr) eval(doc map[string]any) value {
	var a [maxArgs]value
	for i, e := range c.args {
		a[i] = e.eval(doc)
	}
	return c.spec.fn(a, len(c.args))
}

func isKind(k kind) *fnSpec {
	return &fnSpec{1, 1, func(a [maxArgs]value, _ int) value { return boolValue(a[0].k == k) }}
}

// stringTest builds STARTSWITH-like functions: (string, string[, ignoreCase]).
func stringTest(test func(s, sub string) bool) *fnSpec {
	return &fnSpec{2, 3, func(a [maxArgs]value, n int) value {
		if a[0].k != kStr || a[1].k != kStr {
			return undef
		}
		s, sub := a[0].s, a[1].s
		if n == 3 {
			if a[2].k != kBool {
				return undef
			}
			if a[2].b {
				s, sub = strings.ToLower(s), strings.ToLower(sub)
			}
		}
		return boolValue(test(s, sub))
	}}
}

func stringMap(f func(string) string) *fnSpec {
	return &fnSpec{1, 1, func(a [maxArgs]value, _ int) value {
		if a[0].k != kStr {
			return undef
		}
		return value{k: kStr, s: f(a[0].s)}
	}}
}

// functions are the scalar functions, by upper-case name.
var functions = map[string]*fnSpec{
	"IS_DEFINED": {1, 1, func(a [maxArgs]value, _ int) value { return boolValue(a[0].k != kUndef) }},
	"IS_NULL":    isKind(kNull),
	"IS_BOOL":    isKind(kBool),
	"IS_NUMBER":  isKind(kNum),
	"IS_STRING":  isKind(kStr),
	"IS_ARRAY":   isKind(kArr),
	"IS_OBJECT":  isKind(kObj),
	"IS_PRIMITIVE": {1, 1, func(a [maxArgs]value, _ int) value {
		k := a[0].k
		return boolValue(k == kNull || k == kBool || k == kNum || k == kStr)
	}},
	"STARTSWITH":  stringTest(strings.HasPrefix),
	"STARTS_WITH": stringTest(strings.HasPrefix),
	"ENDSWITH":    stringTest(strings.HasSuffix),
	"ENDS_WITH":   stringTest(strings.HasSuffix),
	"CONTAINS":    stringTest(strings.Contains),
	"LOWER":       stringMap(strings.ToLower),
	"UPPER":       stringMap(strings.ToUpper),
	"LENGTH": {1, 1, func(a [maxArgs]value, _ int) value {
		if a[0].k != kStr {
			return undef
		}
		return value{k: kNum, n: float64(utf8.RuneCountInString(a[0].s))}
	}},
	"AS_NUMBER": {1, 1, func(a [maxArgs]value, _ int) value {
		switch a[0].k {
		case kNum:
			return a[0]
		case kStr:
			f, err := strconv.ParseFloat(strings.TrimSpace(a[0].s), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return undef
			}
			return value{k: kNum, n: f}
		}
		return undef
	}},
}

// aggregates are the aggregate functions allowed as SELECT items.
var aggregates = map[string]bool{"COUNT": true, "SUM": true, "AVG": true, "MIN": true, "MAX": true}

// Package query is hubsim's engine for the IoT Hub query language: the
// SQL-like dialect of POST /devices/query (SELECT ... FROM devices |
// devices.modules | devices.jobs [WHERE ...] [GROUP BY ...]) and of a job's
// queryCondition (a bare WHERE clause, or "*" for every device).
//
// Documents are JSON-decoded values: map[string]any, []any, string, bool,
// nil, and numbers (float64, json.Number or any Go integer type).
//
// Semantics, following the Cosmos DB dialect the IoT Hub language derives
// from (iot-hub-devguide-query-language, "Expressions and conditions"):
//   - A path that does not exist is undefined. It never errors.
//   - A comparison involving undefined, values of two different types, or an
//     object or array is undefined. Strings compare by code point, numbers
//     numerically, false < true, null = null.
//   - AND, OR and NOT use three-valued logic (true, false, undefined), and a
//     document matches only when the condition is true. So on a twin without
//     x, `x = 1`, `x != 1` and `NOT (x = 1)` are all non-matches; write
//     `NOT IS_DEFINED(x) OR x != 1` to include it.
//   - x IN [...] is true when x equals one of the constants and false when x
//     is a defined primitive that equals none; NIN (and NOT IN) is its
//     negation; both are undefined when x is undefined, an object or an array.
//   - Keywords, function names and collection names are case-insensitive.
//     Property names are case-sensitive, except the first one or two steps
//     of a path when they name a field of the fixed twin (or device-job)
//     schema: `DeviceId` and `Properties.Reported.x` are rewritten to
//     `deviceId` and `properties.reported.x`, as the hub's own doc example
//     `SELECT DeviceId, LastActivityTime FROM devices` returns `deviceId` and
//     `lastActivityTime`. Inside tags and properties, case matters.
//
// Language:
//   - SELECT [TOP n] * | item [AS name], ... where an item is a path, an
//     expression, or one of COUNT(), COUNT(*), COUNT(expr), SUM, AVG, MIN,
//     MAX. An item without AS is named after its last path step
//     (tags.location → "location"); other unnamed items are "$1", "$2", ...
//     in order (so SELECT COUNT() FROM devices gives [{"$1": n}]).
//   - FROM devices | devices.modules | devices.jobs. A path may repeat the
//     collection name (devices.jobs.jobId is jobId). devices.jobs allows
//     only SELECT *, as the hub documents.
//   - WHERE: = != <> < > <= >=, AND OR NOT, parentheses, IN / NIN / NOT IN
//     with a list of constants ([...] or (...)), + - * / %, literals
//     ('single' or "double" quoted strings with doubled-quote or backslash
//     escapes, decimal and 0x numbers, true, false, null, undefined,
//     arrays), paths a.b.c, a['key'], a[0], and the functions IS_DEFINED,
//     IS_NULL, IS_BOOL, IS_NUMBER, IS_STRING, IS_ARRAY, IS_OBJECT,
//     IS_PRIMITIVE, STARTSWITH / STARTS_WITH, ENDSWITH / ENDS_WITH, CONTAINS
//     (with an optional third ignore-case argument), LOWER, UPPER, LENGTH,
//     AS_NUMBER.
//   - GROUP BY path, ...: every plain SELECT item must be one of the paths.
package query

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Collection is the document collection a query runs over.
type Collection string

// The collections of FROM.
const (
	Devices        Collection = "devices"
	DevicesModules Collection = "devices.modules"
	DevicesJobs    Collection = "devices.jobs"
)

// MaxLength is the longest query text accepted, in characters (IoT Hub
// documents a maximum query expression length of 8192 characters).
const MaxLength = 8192

// maxDepth bounds the nesting of parentheses, NOT and function calls.
const maxDepth = 100

// Error is a query the engine cannot run: a syntax error or a construct the
// hub does not support. Pos is the 1-based character position of the
// offending token; Msg says what is wrong. The REST layer answers 400 with
// Error().
type Error struct {
	Pos int
	Msg string
}

// Error formats the error as "syntax error at position N: Msg".
func (e *Error) Error() string {
	return fmt.Sprintf("syntax error at position %d: %s", e.Pos, e.Msg)
}

// errAt builds an *Error for the byte offset off of src.
func errAt(src string, off int, msg string) *Error {
	if off > len(src) {
		off = len(src)
	}
	return &Error{Pos: utf8.RuneCountInString(src[:off]) + 1, Msg: msg}
}

type aggKind uint8

const (
	aggNone aggKind = iota
	aggCount
	aggSum
	aggAvg
	aggMin
	aggMax
)

// item is one element of the SELECT list.
type item struct {
	e    expr    // the projected expression; for an aggregate, its argument (may be nil)
	agg  aggKind // aggNone for a plain expression
	name string  // output column name
	pos  int
	key  int // in an aggregate query, the index in GROUP BY of a plain item
}

// Query is a parsed SELECT statement. It is immutable and safe for
// concurrent use.
type Query struct {
	from    Collection
	star    bool
	items   []item
	where   expr // nil: every document
	groupBy []*pathExpr
	top     int // -1: no TOP
	agg     bool
}

// Condition is a parsed job queryCondition. It is immutable and safe for
// concurrent use.
type Condition struct {
	e expr // nil: "*", every device
}

// Parse parses a full query: SELECT [TOP n] <* | items> FROM <collection>
// [WHERE <condition>] [GROUP BY <paths>]. Errors are *Error.
func Parse(sql string) (*Query, error) {
	q, err := parseQuery(sql)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// ParseCondition parses a job's queryCondition: a WHERE clause without the
// WHERE keyword, evaluated against device twins, or "*" for every device.
// Errors are *Error.
func ParseCondition(where string) (*Condition, error) {
	c, err := parseCondition(where)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// From returns the collection named in FROM.
func (q *Query) From() Collection { return q.from }

// IsAggregate reports whether the query groups documents (aggregates in the
// SELECT list, or GROUP BY). Such a query yields rows only from Run.
func (q *Query) IsAggregate() bool { return q.agg }

// Top returns n for SELECT TOP n, and ok=false when there is no TOP.
func (q *Query) Top() (n int, ok bool) { return q.top, q.top >= 0 }

// Match reports whether the WHERE condition is true for doc (a twin, or a
// device-job record for devices.jobs). A query without WHERE matches every
// document.
func (q *Query) Match(doc map[string]any) bool {
	return q.where == nil || isTrue(q.where.eval(doc))
}

// Project applies the SELECT list to doc. SELECT * returns doc itself;
// otherwise a new map holds one entry per item whose value is defined
// (values are shared with doc, not copied). For an aggregate query it
// returns nil: use Run.
func (q *Query) Project(doc map[string]any) map[string]any {
	if q.star {
		return doc
	}
	if q.agg {
		return nil
	}
	row := make(map[string]any, len(q.items))
	for i := range q.items {
		if v, ok := q.items[i].valueOf(doc); ok {
			row[q.items[i].name] = v
		}
	}
	return row
}

func (it *item) valueOf(doc map[string]any) (any, bool) {
	if p, ok := it.e.(*pathExpr); ok {
		return p.lookup(doc)
	}
	return it.e.eval(doc).toAny()
}

// Run evaluates the whole query over the documents each yields (in a stable
// order) and returns the result rows, never nil. Plain queries return the
// projected matching documents, stopping early at TOP. Aggregate queries
// return one row per group (groups in order of first appearance; without
// GROUP BY one row, even over no documents).
func (q *Query) Run(each func(yield func(doc map[string]any) bool)) ([]map[string]any, error) {
	if each == nil {
		return nil, errors.New("query: Run needs a document source")
	}
	rows := []map[string]any{}
	if q.top == 0 {
		return rows, nil
	}
	if !q.agg {
		each(func(doc map[string]any) bool {
			if !q.Match(doc) {
				return true
			}
			rows = append(rows, q.Project(doc))
			return q.top < 0 || len(rows) < q.top
		})
		return rows, nil
	}
	return q.runAggregate(each), nil
}

// Match reports whether the condition is true for the twin doc; "*"
// matches every document.
func (c *Condition) Match(doc map[string]any) bool {
	return c.e == nil || isTrue(c.e.eval(doc))
}

// MatchesAll reports whether the condition was "*".
func (c *Condition) MatchesAll() bool { return c.e == nil }

func isTrue(v value) bool { return v.k == kBool && v.b }

// group accumulates the aggregates of one GROUP BY group.
type group struct {
	keys []value // GROUP BY values, in groupBy order
	accs []acc   // one per SELECT item
}

type acc struct {
	count int64
	sum   float64
	n     int64
	best  value // MIN / MAX so far
}

func (q *Query) runAggregate(each func(yield func(doc map[string]any) bool)) []map[string]any {
	groups := map[string]*group{}
	var order []*group
	var kb []byte
	cur := make([]value, len(q.groupBy))
	each(func(doc map[string]any) bool {
		if !q.Match(doc) {
			return true
		}
		kb = kb[:0]
		for i, p := range q.groupBy {
			cur[i] = p.eval(doc)
			kb = appendKey(kb, cur[i])
		}
		g, ok := groups[string(kb)]
		if !ok {
			g = &group{keys: append([]value(nil), cur...), accs: make([]acc, len(q.items))}
			groups[string(kb)] = g
			order = append(order, g)
		}
		for i := range q.items {
			it := &q.items[i]
			if it.agg == aggNone {
				continue
			}
			a := &g.accs[i]
			var v value
			if it.e != nil {
				v = it.e.eval(doc)
			}
			switch it.agg {
			case aggCount:
				if it.e == nil || v.k != kUndef {
					a.count++
				}
			case aggSum, aggAvg:
				if v.k == kNum {
					a.sum += v.n
					a.n++
				}
			case aggMin, aggMax:
				if rank(v) == 0 {
					break
				}
				if a.best.k == kUndef || better(v, a.best, it.agg == aggMin) {
					a.best = v
				}
			}
		}
		return true
	})
	if len(order) == 0 && len(q.groupBy) == 0 {
		order = append(order, &group{accs: make([]acc, len(q.items))})
	}
	rows := make([]map[string]any, 0, len(order))
	for _, g := range order {
		row := make(map[string]any, len(q.items))
		for i := range q.items {
			it := &q.items[i]
			a := &g.accs[i]
			switch it.agg {
			case aggNone:
				// A GROUP BY path (checked at parse time).
				if v, ok := g.keys[it.key].toAny(); ok {
					row[it.name] = v
				}
			case aggCount:
				row[it.name] = a.count
			case aggSum:
				row[it.name] = a.sum
			case aggAvg:
				if a.n > 0 {
					row[it.name] = a.sum / float64(a.n)
				}
			case aggMin, aggMax:
				if v, ok := a.best.toAny(); ok {
					row[it.name] = v
				}
			}
		}
		rows = append(rows, row)
		if q.top >= 0 && len(rows) >= q.top {
			break
		}
	}
	return rows
}

// appendKey appends a type-tagged encoding of v, so that 1 and "1" fall in
// different groups.
func appendKey(b []byte, v value) []byte {
	b = append(b, byte('0'+v.k))
	switch v.k {
	case kBool:
		b = strconv.AppendBool(b, v.b)
	case kNum:
		b = strconv.AppendFloat(b, v.n, 'g', -1, 64)
	case kStr:
		b = strconv.AppendQuote(b, v.s)
	case kArr, kObj:
		b = fmt.Appendf(b, "%v", v.raw)
	}
	return append(b, 0)
}

// rank orders types for MIN and MAX: null < bool < number < string; 0 means
// the value is not considered (undefined, object, array).
func rank(v value) int {
	switch v.k {
	case kNull:
		return 1
	case kBool:
		return 2
	case kNum:
		return 3
	case kStr:
		return 4
	}
	return 0
}

// better reports whether v should replace best for MIN (min=true) or MAX.
func better(v, best value, min bool) bool {
	rv, rb := rank(v), rank(best)
	less := rv < rb
	if rv == rb {
		less = isTrue(compare(tLt, v, best))
	}
	greater := rv > rb || (rv == rb && isTrue(compare(tGt, v, best)))
	if min {
		return less
	}
	return greater
}

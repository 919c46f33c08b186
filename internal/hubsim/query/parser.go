package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

type parser struct {
	src    string
	toks   []token
	i      int
	depth  int
	clause string      // "SELECT", "WHERE", "GROUP BY" or "condition", for messages
	paths  []*pathExpr // every path, normalised once the collection is known
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// prev is the token before the current one (for "after 'X'" messages).
func (p *parser) prev() (token, bool) {
	if p.i == 0 {
		return token{}, false
	}
	return p.toks[p.i-1], true
}

func (p *parser) errAt(t token, format string, args ...any) *Error {
	return errAt(p.src, t.pos, fmt.Sprintf(format, args...))
}

func (p *parser) checkLength() *Error {
	if n := utf8.RuneCountInString(p.src); n > MaxLength {
		return &Error{Pos: MaxLength + 1, Msg: fmt.Sprintf("the query is %d characters long; the maximum is %d", n, MaxLength)}
	}
	return nil
}

func newParser(src string) (*parser, *Error) {
	p := &parser{src: src}
	if err := p.checkLength(); err != nil {
		return nil, err
	}
	if !utf8.ValidString(src) {
		off := 0
		for off < len(src) {
			r, n := utf8.DecodeRuneInString(src[off:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			off += n
		}
		return nil, errAt(src, off, "the query is not valid UTF-8")
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p.toks = toks
	return p, nil
}

func parseQuery(src string) (*Query, *Error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Pos: 1, Msg: "the query is empty; expected SELECT ... FROM devices"}
	}
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	q := &Query{top: -1}

	t := p.next()
	if !t.is("SELECT") {
		return nil, p.errAt(t, "expected SELECT, got %s", t.display())
	}
	p.clause = "SELECT"
	if p.peek().is("TOP") {
		p.next()
		n := p.next()
		if n.kind != tNumber || n.num != math.Trunc(n.num) || n.num > math.MaxInt32 {
			return nil, p.errAt(n, "expected a whole number after 'TOP', got %s", n.display())
		}
		q.top = int(n.num)
	}
	if err := p.parseSelectList(q); err != nil {
		return nil, err
	}

	t = p.next()
	if !t.is("FROM") {
		return nil, p.errAt(t, "expected FROM, got %s", t.display())
	}
	from, err := p.parseCollection()
	if err != nil {
		return nil, err
	}
	q.from = from

	if p.peek().is("WHERE") {
		p.next()
		p.clause = "WHERE"
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		q.where = e
	}
	if p.peek().is("GROUP") {
		p.next()
		if t := p.next(); !t.is("BY") {
			return nil, p.errAt(t, "expected BY after 'GROUP', got %s", t.display())
		}
		p.clause = "GROUP BY"
		for {
			t := p.peek()
			if t.kind != tIdent || isReserved(t) {
				return nil, p.errAt(t, "expected a property path after '%s', got %s", p.toks[p.i-1].raw, t.display())
			}
			path, err := p.parsePath()
			if err != nil {
				return nil, err
			}
			q.groupBy = append(q.groupBy, path)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	if t := p.peek(); t.kind != tEOF {
		want := "WHERE, GROUP BY or end of query"
		switch {
		case q.groupBy != nil:
			want = "',' or end of query"
		case q.where != nil:
			want = "GROUP BY or end of query"
		}
		return nil, p.errAt(t, "expected %s, got %s", want, t.display())
	}

	p.normalisePaths(q.from)
	if err := p.check(q); err != nil {
		return nil, err
	}
	return q, nil
}

func parseCondition(src string) (*Condition, *Error) {
	trimmed := strings.TrimSpace(src)
	if trimmed == "" {
		return nil, &Error{Pos: 1, Msg: "the condition is empty; use '*' for all devices"}
	}
	if trimmed == "*" {
		return &Condition{}, nil
	}
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	p.clause = "condition"
	if t := p.peek(); t.is("WHERE") {
		return nil, p.errAt(t, "a queryCondition has no WHERE keyword; remove it")
	}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t, "unexpected %s after the condition", t.display())
	}
	p.normalisePaths(Devices)
	return &Condition{e: e}, nil
}

func (p *parser) parseCollection() (Collection, *Error) {
	t := p.next()
	if t.kind != tIdent || isReserved(t) {
		return "", p.errAt(t, "expected a collection after 'FROM' (devices, devices.modules or devices.jobs), got %s", t.display())
	}
	name := t.raw
	for p.peek().kind == tDot {
		p.next()
		n := p.next()
		if n.kind != tIdent {
			return "", p.errAt(n, "expected a name after '.', got %s", n.display())
		}
		name += "." + n.raw
	}
	switch c := Collection(strings.ToLower(name)); c {
	case Devices, DevicesModules, DevicesJobs:
		return c, nil
	}
	return "", p.errAt(t, "unknown collection '%s'; use devices, devices.modules or devices.jobs", shorten(name))
}

func (p *parser) parseSelectList(q *Query) *Error {
	if t := p.peek(); t.kind == tStar {
		p.next()
		q.star = true
		if c := p.peek(); c.kind == tComma {
			return p.errAt(c, "'*' cannot be combined with other SELECT items")
		}
		return nil
	}
	if t := p.peek(); t.kind == tEOF || t.is("FROM") {
		return p.errAt(t, "expected '*' or a list of properties after '%s', got %s", p.toks[p.i-1].raw, t.display())
	}
	for {
		it, err := p.parseItem()
		if err != nil {
			return err
		}
		if it.agg != aggNone {
			q.agg = true
		}
		q.items = append(q.items, it)
		if p.peek().kind != tComma {
			return nil
		}
		p.next()
		if t := p.peek(); t.kind == tStar {
			return p.errAt(t, "'*' cannot be combined with other SELECT items")
		}
	}
}

func (p *parser) parseItem() (item, *Error) {
	start := p.peek()
	it := item{pos: start.pos}
	if start.kind == tIdent && p.toks[p.i+1].kind == tLParen && aggregates[strings.ToUpper(start.raw)] {
		name := strings.ToUpper(start.raw)
		p.next()
		p.next() // (
		it.agg = map[string]aggKind{"COUNT": aggCount, "SUM": aggSum, "AVG": aggAvg, "MIN": aggMin, "MAX": aggMax}[name]
		switch t := p.peek(); {
		case t.kind == tRParen:
			if it.agg != aggCount {
				return it, p.errAt(t, "%s expects 1 argument, got 0", name)
			}
		case t.kind == tStar && it.agg == aggCount:
			p.next()
		default:
			e, err := p.parseExpr()
			if err != nil {
				return it, err
			}
			it.e = e
		}
		if t := p.next(); t.kind != tRParen {
			return it, p.errAt(t, "expected ')' to close %s(, got %s", name, t.display())
		}
	} else {
		if start.kind == tEOF || isReserved(start) {
			return it, p.errAt(start, "expected a property or an aggregate after '%s', got %s", p.toks[p.i-1].raw, start.display())
		}
		e, err := p.parseExpr()
		if err != nil {
			return it, err
		}
		it.e = e
	}
	if p.peek().is("AS") {
		p.next()
		t := p.next()
		if t.kind != tIdent || isReserved(t) {
			return it, p.errAt(t, "expected a name after 'AS', got %s", t.display())
		}
		it.name = t.raw
	}
	return it, nil
}

// normalisePaths strips the collection prefix (devices.jobs.jobId → jobId)
// and rewrites schema field names to their canonical case.
func (p *parser) normalisePaths(c Collection) {
	prefix := strings.Split(string(c), ".")
	for _, path := range p.paths {
		if len(path.segs) > len(prefix) {
			strip := true
			for i, name := range prefix {
				s := path.segs[i]
				if s.isIdx || s.quoted || !strings.EqualFold(s.key, name) {
					strip = false
					break
				}
			}
			if strip {
				path.segs = path.segs[len(prefix):]
			}
		}
		fields := twinFields
		if c == DevicesJobs {
			fields = jobFields
		}
		for i := 0; i < len(path.segs) && fields != nil; i++ {
			s := &path.segs[i]
			if s.isIdx || s.quoted {
				break
			}
			f, ok := fields[strings.ToLower(s.key)]
			if !ok {
				break
			}
			s.key = f.name
			fields = f.sub
		}
	}
}

type field struct {
	name string
	sub  map[string]field
}

func fieldSet(names ...string) map[string]field {
	m := make(map[string]field, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = field{name: n}
	}
	return m
}

// twinFields is the fixed part of the twin schema (iothub-contract.md §4.2),
// whose names are matched case-insensitively.
var twinFields = func() map[string]field {
	m := fieldSet("deviceId", "moduleId", "etag", "deviceEtag", "version", "status", "statusReason",
		"statusUpdateTime", "connectionState", "lastActivityTime", "cloudToDeviceMessageCount",
		"authenticationType", "deviceScope", "parentScopes", "modelId", "configurations", "tags")
	m["properties"] = field{name: "properties", sub: fieldSet("desired", "reported")}
	m["capabilities"] = field{name: "capabilities", sub: fieldSet("iotEdge")}
	m["x509thumbprint"] = field{name: "x509Thumbprint", sub: fieldSet("primaryThumbprint", "secondaryThumbprint")}
	return m
}()

// jobFields is the device-job record (iothub-contract.md §3.5). The doc's
// own example filters on createdTimeUtc while records carry
// createdDateTimeUtc; both are accepted.
var jobFields = func() map[string]field {
	m := fieldSet("deviceId", "moduleId", "jobId", "jobType", "status", "startTimeUtc", "endTimeUtc",
		"createdDateTimeUtc", "lastUpdatedDateTimeUtc")
	m["createdtimeutc"] = field{name: "createdDateTimeUtc"}
	m["outcome"] = field{name: "outcome", sub: fieldSet("deviceMethodResponse")}
	m["error"] = field{name: "error", sub: fieldSet("code", "description")}
	return m
}()

// check validates the statement as a whole once paths are normalised, and
// names the output columns.
func (p *parser) check(q *Query) *Error {
	if q.from == DevicesJobs && (!q.star || q.groupBy != nil) {
		pos := 0
		if len(q.items) > 0 {
			pos = q.items[0].pos
		} else if len(q.groupBy) > 0 {
			pos = q.groupBy[0].pos
		}
		return errAt(p.src, pos, "queries on devices.jobs support only SELECT * (no projections, aggregates or GROUP BY)")
	}
	if q.groupBy != nil {
		q.agg = true
	}
	if q.star {
		if q.groupBy != nil {
			return errAt(p.src, q.groupBy[0].pos, "SELECT * cannot be used with GROUP BY; select the grouped properties and aggregates")
		}
		return nil
	}
	if q.agg {
		grouped := map[string]int{}
		for i, g := range q.groupBy {
			grouped[g.text()] = i
		}
		for i := range q.items {
			it := &q.items[i]
			if it.agg != aggNone {
				continue
			}
			path, isPath := it.e.(*pathExpr)
			inGroup := false
			if isPath {
				it.key, inGroup = grouped[path.text()]
			}
			if !inGroup {
				what := "this expression"
				if isPath {
					what = "'" + path.text() + "'"
				}
				return errAt(p.src, it.pos, what+" must be in GROUP BY or inside an aggregate such as COUNT()")
			}
		}
	}
	unnamed := 0
	seen := map[string]bool{}
	for i := range q.items {
		it := &q.items[i]
		if it.name == "" {
			if path, ok := it.e.(*pathExpr); ok && it.agg == aggNone && !path.segs[len(path.segs)-1].isIdx {
				it.name = path.segs[len(path.segs)-1].key
			} else {
				unnamed++
				it.name = "$" + strconv.Itoa(unnamed)
			}
		}
		if seen[it.name] {
			return errAt(p.src, it.pos, fmt.Sprintf("duplicate column name '%s' in the SELECT list; rename one with AS", shorten(it.name)))
		}
		seen[it.name] = true
	}
	return nil
}

// Expressions, lowest precedence first: OR, AND, NOT, comparison / IN,
// + -, * / %, unary -, primary.

func (p *parser) parseExpr() (expr, *Error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.peek().is("OR") {
		p.next()
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = &orExpr{l, r}
	}
	return l, nil
}

func (p *parser) parseAnd() (expr, *Error) {
	l, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for p.peek().is("AND") {
		p.next()
		r, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		l = &andExpr{l, r}
	}
	return l, nil
}

// enter counts one level of nesting opened by t ('(', NOT, unary minus or
// a function call).
func (p *parser) enter(t token) *Error {
	p.depth++
	if p.depth > maxDepth {
		return p.errAt(t, "the expression is nested too deeply (more than %d levels)", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) parseNot() (expr, *Error) {
	if !p.peek().is("NOT") {
		return p.parseComparison()
	}
	if err := p.enter(p.next()); err != nil {
		return nil, err
	}
	defer p.leave()
	e, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	return &notExpr{e}, nil
}

func isCmp(k tokKind) bool {
	return k == tEq || k == tNe || k == tLt || k == tLe || k == tGt || k == tGe
}

func (p *parser) parseComparison() (expr, *Error) {
	l, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case isCmp(t.kind):
		p.next()
		r, err := p.parseAdditive()
		if err != nil {
			return nil, err
		}
		if n := p.peek(); isCmp(n.kind) {
			return nil, p.errAt(n, "comparisons cannot be chained; join them with AND")
		}
		return &cmpExpr{op: t.kind, l: l, r: r}, nil
	case t.is("IN"), t.is("NIN"):
		p.next()
		return p.parseIn(l, t.is("NIN"), t)
	case t.is("NOT") && p.toks[p.i+1].is("IN"):
		p.next()
		in := p.next()
		return p.parseIn(l, true, in)
	}
	return l, nil
}

// parseIn reads the constant list of IN / NIN: ['a', 'b', 1] (or with
// parentheses, as in other SQL dialects).
func (p *parser) parseIn(e expr, neg bool, op token) (expr, *Error) {
	open := p.next()
	closing := tRBrack
	switch open.kind {
	case tLBrack:
	case tLParen:
		closing = tRParen
	default:
		return nil, p.errAt(open, "expected '[' after '%s', got %s", strings.ToUpper(op.raw), open.display())
	}
	in := &inExpr{e: e, strs: map[string]struct{}{}, nums: map[float64]struct{}{}, neg: neg}
	if p.peek().kind == closing {
		p.next()
		return in, nil
	}
	for {
		t := p.peek()
		v, ok := p.constant()
		if !ok {
			return nil, p.errAt(t, "the list after %s may hold only constants (strings, numbers, true, false, null), got %s", strings.ToUpper(op.raw), t.display())
		}
		switch v.k {
		case kStr:
			in.strs[v.s] = struct{}{}
		case kNum:
			in.nums[v.n] = struct{}{}
		case kBool:
			if v.b {
				in.hasTrue = true
			} else {
				in.hasFalse = true
			}
		case kNull:
			in.hasNil = true
		}
		t = p.next()
		if t.kind == closing {
			return in, nil
		}
		if t.kind != tComma {
			return nil, p.errAt(t, "expected ',' or '%s' in the list after %s, got %s", map[tokKind]string{tRBrack: "]", tRParen: ")"}[closing], strings.ToUpper(op.raw), t.display())
		}
	}
}

// constant reads a literal string, number (optionally negative), true,
// false, null or undefined.
func (p *parser) constant() (value, bool) {
	t := p.peek()
	switch {
	case t.kind == tString:
		p.next()
		return value{k: kStr, s: t.str}, true
	case t.kind == tNumber:
		p.next()
		return value{k: kNum, n: t.num}, true
	case t.kind == tMinus && p.toks[p.i+1].kind == tNumber:
		p.next()
		n := p.next()
		return value{k: kNum, n: -n.num}, true
	case t.is("true"):
		p.next()
		return vTrue, true
	case t.is("false"):
		p.next()
		return vFalse, true
	case t.is("null"):
		p.next()
		return value{k: kNull}, true
	case t.is("undefined"):
		p.next()
		return undef, true
	}
	return value{}, false
}

func (p *parser) parseAdditive() (expr, *Error) {
	l, err := p.parseMultiplicative()
	if err != nil {
		return nil, err
	}
	for k := p.peek().kind; k == tPlus || k == tMinus; k = p.peek().kind {
		p.next()
		r, err := p.parseMultiplicative()
		if err != nil {
			return nil, err
		}
		l = &arithExpr{op: k, l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseMultiplicative() (expr, *Error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for k := p.peek().kind; k == tStar || k == tSlash || k == tPercent; k = p.peek().kind {
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = &arithExpr{op: k, l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseUnary() (expr, *Error) {
	t := p.peek()
	if t.kind != tMinus && t.kind != tPlus {
		return p.parsePrimary()
	}
	p.next()
	if err := p.enter(t); err != nil {
		return nil, err
	}
	defer p.leave()
	e, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if t.kind == tPlus {
		return e, nil
	}
	if l, ok := e.(*litExpr); ok && l.v.k == kNum {
		return &litExpr{value{k: kNum, n: -l.v.n}}, nil
	}
	return &negExpr{e}, nil
}

func (p *parser) parsePrimary() (expr, *Error) {
	if v, ok := p.constant(); ok {
		return &litExpr{v}, nil
	}
	t := p.peek()
	switch {
	case t.kind == tLParen:
		p.next()
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer p.leave()
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, p.errAt(c, "expected ')' to close the '(' at position %d, got %s", errAt(p.src, t.pos, "").Pos, c.display())
		}
		return e, nil
	case t.kind == tLBrack:
		// An array constant: valid, though comparing arrays is undefined.
		p.next()
		var arr []any
		for p.peek().kind != tRBrack {
			c := p.peek()
			v, ok := p.constant()
			if !ok {
				return nil, p.errAt(c, "an array may hold only constants, got %s", c.display())
			}
			x, _ := v.toAny()
			arr = append(arr, x)
			if n := p.peek(); n.kind == tComma {
				p.next()
			} else if n.kind != tRBrack {
				return nil, p.errAt(n, "expected ',' or ']' in the array, got %s", n.display())
			}
		}
		p.next()
		if arr == nil {
			arr = []any{}
		}
		return &litExpr{value{k: kArr, raw: arr}}, nil
	case t.kind == tIdent && !isReserved(t):
		if p.toks[p.i+1].kind == tLParen {
			return p.parseCall()
		}
		return p.parsePath()
	}
	if prev, ok := p.prev(); ok {
		what := "a value"
		if prev.is("WHERE") {
			what = "a condition"
		}
		return nil, p.errAt(t, "expected %s after '%s', got %s", what, prev.raw, t.display())
	}
	return nil, p.errAt(t, "expected a condition, got %s", t.display())
}

func (p *parser) parseCall() (expr, *Error) {
	nameTok := p.next()
	name := strings.ToUpper(nameTok.raw)
	if aggregates[name] {
		if p.clause == "SELECT" {
			return nil, p.errAt(nameTok, "aggregate %s() must be a whole SELECT item, not part of an expression", name)
		}
		return nil, p.errAt(nameTok, "aggregate %s() is allowed only in the SELECT list", name)
	}
	spec, ok := functions[name]
	if !ok {
		return nil, p.errAt(nameTok, "unknown function '%s'", shorten(nameTok.raw))
	}
	p.next() // (
	if err := p.enter(nameTok); err != nil {
		return nil, err
	}
	defer p.leave()
	var args []expr
	if p.peek().kind != tRParen {
		for {
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			args = append(args, e)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	if c := p.next(); c.kind != tRParen {
		return nil, p.errAt(c, "expected ',' or ')' in the arguments of %s, got %s", name, c.display())
	}
	if len(args) < spec.min || len(args) > spec.max {
		want := strconv.Itoa(spec.min)
		if spec.max != spec.min {
			want += " or " + strconv.Itoa(spec.max)
		}
		plural := "s"
		if want == "1" {
			plural = ""
		}
		return nil, p.errAt(nameTok, "%s expects %s argument%s, got %d", name, want, plural, len(args))
	}
	return &callExpr{spec: spec, args: args}, nil
}

// parsePath reads a.b.c, a['key'] and a[0] steps.
func (p *parser) parsePath() (*pathExpr, *Error) {
	first := p.next()
	path := &pathExpr{segs: []seg{{key: first.raw}}, pos: first.pos}
	for {
		switch p.peek().kind {
		case tDot:
			p.next()
			n := p.next()
			if n.kind != tIdent {
				return nil, p.errAt(n, "expected a property name after '.', got %s", n.display())
			}
			path.segs = append(path.segs, seg{key: n.raw})
		case tLBrack:
			p.next()
			n := p.next()
			switch {
			case n.kind == tString:
				path.segs = append(path.segs, seg{key: n.str, quoted: true})
			case n.kind == tNumber && n.num == math.Trunc(n.num) && n.num >= 0 && n.num <= math.MaxInt32:
				path.segs = append(path.segs, seg{idx: int(n.num), isIdx: true})
			default:
				return nil, p.errAt(n, "expected a quoted property name or an array index after '[', got %s", n.display())
			}
			if c := p.next(); c.kind != tRBrack {
				return nil, p.errAt(c, "expected ']', got %s", c.display())
			}
		default:
			p.paths = append(p.paths, path)
			return path, nil
		}
	}
}

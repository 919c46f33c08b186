package query

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tStar
	tComma
	tDot
	tLParen
	tRParen
	tLBrack
	tRBrack
	tEq
	tNe
	tLt
	tLe
	tGt
	tGe
	tPlus
	tMinus
	tSlash
	tPercent
)

// token is one lexical unit. pos is the byte offset of its first byte in the
// source; raw is the source text it was read from; str is the decoded value
// of a string literal; num the value of a number literal.
type token struct {
	kind tokKind
	pos  int
	raw  string
	str  string
	num  float64
}

// display renders a token for an error message: 'AND', string 'abc',
// end of query.
func (t token) display() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return "string " + shorten(t.raw)
	default:
		return "'" + shorten(t.raw) + "'"
	}
}

func shorten(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return s
	}
	r := []rune(s)
	return string(r[:40]) + "…"
}

// is reports whether t is the identifier kw, compared case-insensitively.
func (t token) is(kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.raw, kw)
}

// reserved words can never start a property path.
var reserved = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "GROUP": true, "BY": true,
	"AS": true, "AND": true, "OR": true, "NOT": true, "IN": true, "NIN": true,
	"TOP": true, "ORDER": true,
}

func isReserved(t token) bool {
	return t.kind == tIdent && reserved[strings.ToUpper(t.raw)]
}

func isIdentStart(r rune) bool {
	return r == '_' || r == '$' || unicode.IsLetter(r)
}

func isIdentPart(r rune) bool {
	return isIdentStart(r) || unicode.IsDigit(r)
}

// lex splits src into tokens, ending with a tEOF token.
func lex(src string) ([]token, *Error) {
	var toks []token
	i := 0
	for {
		for i < len(src) {
			r, n := utf8.DecodeRuneInString(src[i:])
			if !unicode.IsSpace(r) {
				break
			}
			i += n
		}
		if i >= len(src) {
			toks = append(toks, token{kind: tEOF, pos: len(src)})
			return toks, nil
		}
		start := i
		r, n := utf8.DecodeRuneInString(src[i:])
		if r == utf8.RuneError && n == 1 {
			return nil, errAt(src, start, "the query is not valid UTF-8")
		}
		single := func(k tokKind) {
			i += n
			toks = append(toks, token{kind: k, pos: start, raw: src[start:i]})
		}
		switch {
		case isIdentStart(r):
			i += n
			for i < len(src) {
				r2, n2 := utf8.DecodeRuneInString(src[i:])
				if !isIdentPart(r2) {
					break
				}
				i += n2
			}
			toks = append(toks, token{kind: tIdent, pos: start, raw: src[start:i]})
		case r >= '0' && r <= '9':
			t, err := lexNumber(src, start)
			if err != nil {
				return nil, err
			}
			i = start + len(t.raw)
			toks = append(toks, t)
		case r == '\'' || r == '"':
			t, err := lexString(src, start)
			if err != nil {
				return nil, err
			}
			i = start + len(t.raw)
			toks = append(toks, t)
		case r == '*':
			single(tStar)
		case r == ',':
			single(tComma)
		case r == '.':
			single(tDot)
		case r == '(':
			single(tLParen)
		case r == ')':
			single(tRParen)
		case r == '[':
			single(tLBrack)
		case r == ']':
			single(tRBrack)
		case r == '+':
			single(tPlus)
		case r == '-':
			single(tMinus)
		case r == '/':
			single(tSlash)
		case r == '%':
			single(tPercent)
		case r == '=':
			if strings.HasPrefix(src[i:], "==") {
				return nil, errAt(src, start, "use '=' for equality, not '=='")
			}
			single(tEq)
		case r == '!':
			if !strings.HasPrefix(src[i:], "!=") {
				return nil, errAt(src, start, "unexpected character '!'; use NOT or '!='")
			}
			i += 2
			toks = append(toks, token{kind: tNe, pos: start, raw: "!="})
		case r == '<':
			switch {
			case strings.HasPrefix(src[i:], "<="):
				i += 2
				toks = append(toks, token{kind: tLe, pos: start, raw: "<="})
			case strings.HasPrefix(src[i:], "<>"):
				i += 2
				toks = append(toks, token{kind: tNe, pos: start, raw: "<>"})
			default:
				single(tLt)
			}
		case r == '>':
			if strings.HasPrefix(src[i:], ">=") {
				i += 2
				toks = append(toks, token{kind: tGe, pos: start, raw: ">="})
			} else {
				single(tGt)
			}
		case r == '&' && strings.HasPrefix(src[i:], "&&"):
			return nil, errAt(src, start, "'&&' is not supported; use AND")
		case r == '|' && strings.HasPrefix(src[i:], "||"):
			return nil, errAt(src, start, "'||' is not supported; use OR")
		default:
			return nil, errAt(src, start, "unexpected character "+strconv.QuoteRune(r))
		}
	}
}

// lexNumber reads a decimal (12, 1.5, 2e3) or hexadecimal (0x1F) literal.
func lexNumber(src string, start int) (token, *Error) {
	i := start
	digits := func(ok func(byte) bool) int {
		j := i
		for i < len(src) && ok(src[i]) {
			i++
		}
		return i - j
	}
	isDec := func(c byte) bool { return c >= '0' && c <= '9' }
	isHex := func(c byte) bool { return isDec(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }
	var val float64
	if src[i] == '0' && i+1 < len(src) && src[i+1]|0x20 == 'x' {
		i += 2
		if digits(isHex) == 0 {
			return token{}, errAt(src, start, "invalid number "+quote(src[start:i]))
		}
		u, err := strconv.ParseUint(src[start+2:i], 16, 64)
		if err != nil {
			return token{}, errAt(src, start, "number "+quote(src[start:i])+" is too large")
		}
		val = float64(u)
	} else {
		digits(isDec)
		if i+1 < len(src) && src[i] == '.' && isDec(src[i+1]) {
			i++
			digits(isDec)
		}
		if i < len(src) && src[i]|0x20 == 'e' {
			j := i + 1
			if j < len(src) && (src[j] == '+' || src[j] == '-') {
				j++
			}
			if j < len(src) && isDec(src[j]) {
				i = j
				digits(isDec)
			}
		}
		f, err := strconv.ParseFloat(src[start:i], 64)
		if err != nil {
			return token{}, errAt(src, start, "number "+quote(src[start:i])+" is out of range")
		}
		val = f
	}
	if i < len(src) {
		r, _ := utf8.DecodeRuneInString(src[i:])
		if isIdentPart(r) {
			end := i
			for end < len(src) {
				r2, n2 := utf8.DecodeRuneInString(src[end:])
				if !isIdentPart(r2) {
					break
				}
				end += n2
			}
			return token{}, errAt(src, start, "invalid number "+quote(src[start:end]))
		}
	}
	return token{kind: tNumber, pos: start, raw: src[start:i], num: val}, nil
}

// lexString reads a string literal in single or double quotes. The quote
// character is escaped by writing it twice, or with a backslash; the other
// escapes are \\ \/ \b \f \n \r \t and \uXXXX.
func lexString(src string, start int) (token, *Error) {
	q := src[start]
	var b strings.Builder
	i := start + 1
	for {
		if i >= len(src) {
			return token{}, errAt(src, start, "unterminated string starting here")
		}
		c := src[i]
		switch c {
		case q:
			if i+1 < len(src) && src[i+1] == q {
				b.WriteByte(q)
				i += 2
				continue
			}
			i++
			return token{kind: tString, pos: start, raw: src[start:i], str: b.String()}, nil
		case '\\':
			if i+1 >= len(src) {
				return token{}, errAt(src, start, "unterminated string starting here")
			}
			e := src[i+1]
			switch e {
			case '\'', '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				if i+6 > len(src) {
					return token{}, errAt(src, i, `invalid escape in string: \u needs 4 hexadecimal digits`)
				}
				v, err := strconv.ParseUint(src[i+2:i+6], 16, 32)
				if err != nil {
					return token{}, errAt(src, i, `invalid escape in string: \u needs 4 hexadecimal digits`)
				}
				b.WriteRune(rune(v))
				i += 6
				continue
			default:
				r, _ := utf8.DecodeRuneInString(src[i+1:])
				return token{}, errAt(src, i, "invalid escape '\\"+string(r)+"' in string")
			}
			i += 2
		default:
			b.WriteByte(c)
			i++
		}
	}
}

func quote(s string) string { return "'" + shorten(s) + "'" }

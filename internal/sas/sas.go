// Package sas signs and verifies IoT Hub shared access signature tokens:
//
//	SharedAccessSignature sr={url-encoded resource}&sig={url-encoded base64 HMAC}&se={unix seconds}[&skn={policy}]
//
// The string to sign is the sr value exactly as it appears in the token (URL
// encoded), a newline, and se in decimal; the HMAC-SHA256 key is the
// base64-decoded shared access key.
package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Prefix starts every token.
const Prefix = "SharedAccessSignature "

// DecodeKey decodes a base64 shared access key (standard alphabet, padded).
func DecodeKey(b64 string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("shared access key is not valid base64")
	}
	if len(k) == 0 {
		return nil, errors.New("shared access key is empty")
	}
	return k, nil
}

// EncodeResource URL-encodes a resource URI as the Node SDK's strict
// encodeURIComponent does: everything but A-Z a-z 0-9 - _ . ~ is escaped.
func EncodeResource(resource string) string {
	return strings.ReplaceAll(url.QueryEscape(resource), "+", "%20")
}

// Sign computes the base64 signature (not URL-encoded) of stringToSign.
func Sign(key []byte, stringToSign string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// NewToken builds a token for resource (not yet encoded) that expires at
// expiry, signed with key (decoded). keyName is the policy name; empty for
// device and module keys.
func NewToken(resource, keyName string, key []byte, expiry time.Time) string {
	return newTokenEncoded(EncodeResource(resource), keyName, key, expiry.Unix())
}

func newTokenEncoded(sr, keyName string, key []byte, se int64) string {
	seStr := strconv.FormatInt(se, 10)
	sig := Sign(key, sr+"\n"+seStr)
	var b strings.Builder
	b.WriteString(Prefix)
	b.WriteString("sr=" + sr)
	b.WriteString("&sig=" + url.QueryEscape(sig))
	b.WriteString("&se=" + seStr)
	if keyName != "" {
		b.WriteString("&skn=" + url.QueryEscape(keyName))
	}
	return b.String()
}

// Token is a parsed token. Its fields are what the token carries; Parse does
// not check the signature (use Verify).
type Token struct {
	EncodedResource string    // sr as it appears in the token: the signed text
	Resource        string    // sr decoded
	Signature       string    // base64, decoded from the URL encoding
	Expiry          time.Time // se
	KeyName         string    // skn, decoded; empty for device tokens
}

// ParseError says why a token could not be read. It never quotes the token,
// its signature or a field it could not read: a message names the field (by
// its name when it is one of sr, sig, se and skn, else by its position).
type ParseError struct{ Reason string }

func (e *ParseError) Error() string { return "malformed shared access signature: " + e.Reason }

// knownFields are the fields a token may carry.
var knownFields = []string{"sr", "sig", "se", "skn"}

// Parse reads a token whose fields may come in any order.
func Parse(tok string) (*Token, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(tok), Prefix)
	if !ok {
		return nil, &ParseError{"it does not start with \"SharedAccessSignature \""}
	}
	t := &Token{}
	seen := map[string]bool{}
	for i, pair := range strings.Split(rest, "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, &ParseError{fmt.Sprintf("field %d has no '=' (expected name=value fields separated by '&')", i+1)}
		}
		if !slices.Contains(knownFields, k) {
			return nil, &ParseError{fmt.Sprintf("field %d is not one of %s", i+1, strings.Join(knownFields, ", "))}
		}
		if seen[k] {
			return nil, &ParseError{fmt.Sprintf("field %q appears more than once", k)}
		}
		seen[k] = true
		switch k {
		case "sr":
			d, err := url.QueryUnescape(v)
			if err != nil {
				return nil, &ParseError{"sr is not URL-encoded correctly"}
			}
			t.EncodedResource, t.Resource = v, d
		case "sig":
			d, err := url.QueryUnescape(v)
			if err != nil {
				return nil, &ParseError{"sig is not URL-encoded correctly"}
			}
			t.Signature = d
		case "se":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, &ParseError{"se is not a whole number of seconds"}
			}
			t.Expiry = time.Unix(n, 0)
		case "skn":
			d, err := url.QueryUnescape(v)
			if err != nil {
				return nil, &ParseError{"skn is not URL-encoded correctly"}
			}
			t.KeyName = d
		}
	}
	for _, f := range []string{"sr", "sig", "se"} {
		if !seen[f] {
			return nil, &ParseError{fmt.Sprintf("field %q is missing", f)}
		}
	}
	return t, nil
}

// Errors from Verify.
var (
	ErrExpired      = errors.New("shared access signature has expired")
	ErrBadSignature = errors.New("shared access signature does not match the key")
)

// Verify checks the signature against key (decoded) and the expiry against now.
func (t *Token) Verify(key []byte, now time.Time) error {
	want := Sign(key, t.EncodedResource+"\n"+strconv.FormatInt(t.Expiry.Unix(), 10))
	if !hmac.Equal([]byte(want), []byte(t.Signature)) {
		return ErrBadSignature
	}
	if !now.Before(t.Expiry) {
		return ErrExpired
	}
	return nil
}

// Signer hands out tokens for one resource and key, re-signing when the
// current token has less than a fifth of its lifetime left, so long runs never
// send an expired token. It is safe for concurrent use.
type Signer struct {
	resource string
	keyName  string
	key      []byte
	ttl      time.Duration
	now      func() time.Time

	mu     sync.Mutex
	token  string
	expiry time.Time
}

// DefaultTTL is the lifetime of tokens a Signer makes, as the Node and Python SDKs do.
const DefaultTTL = time.Hour

// NewSigner returns a Signer. ttl <= 0 means DefaultTTL; now nil means time.Now.
func NewSigner(resource, keyName string, key []byte, ttl time.Duration, now func() time.Time) *Signer {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{resource: resource, keyName: keyName, key: key, ttl: ttl, now: now}
}

// Token returns a valid token, signing a new one when needed.
func (s *Signer) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.token == "" || s.expiry.Sub(now) < s.ttl/5 {
		s.expiry = now.Add(s.ttl).Truncate(time.Second)
		s.token = NewToken(s.resource, s.keyName, s.key, s.expiry)
	}
	return s.token
}

// Expiry is the expiry of the last token handed out.
func (s *Signer) Expiry() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiry
}

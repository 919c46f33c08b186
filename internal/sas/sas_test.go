package sas

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Vector A from the Node SDK's own unit test (see iothub-contract.md §5.2).
func TestNodeSDKVector(t *testing.T) {
	key, err := DecodeKey("cGFzc3dvcmQ=")
	require.NoError(t, err)
	got := NewToken("uri", "encode('Me')", key, time.Unix(12345, 0))
	// Our field order is sr, sig, se, skn (as Python and C#); Node puts skn before se.
	assert.Equal(t, "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345&skn=encode%28%27Me%27%29", got)
	noName := NewToken("uri", "", key, time.Unix(12345, 0))
	assert.Equal(t, "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345", noName)
}

// Vector C: the signing primitive from the Python device SDK's tests.
func TestSignPrimitive(t *testing.T) {
	key, err := DecodeKey("NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=")
	require.NoError(t, err)
	assert.Equal(t, "8NJRMT83CcplGrAGaUVIUM/md5914KpWVNngSVoF9/M=", Sign(key, "sign this message"))
}

// Vector D (contract doc): service, device and module tokens.
func TestContractVectorD(t *testing.T) {
	key, _ := DecodeKey("NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=")
	se := time.Unix(1700000000, 0)
	assert.Equal(t, "SharedAccessSignature sr=myhub.azure-devices.net&sig=yolbXGrIiPqRxDLICmk8WAsg9fmQTukPby8F%2BWY0lDc%3D&se=1700000000&skn=iothubowner",
		NewToken("myhub.azure-devices.net", "iothubowner", key, se))
	assert.Equal(t, "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=YmIL%2FdTZAntV%2FlLZdg3E7re%2BiH8C6Gt9dG4E4I74ho0%3D&se=1700000000",
		NewToken("myhub.azure-devices.net/devices/device1", "", key, se))
	assert.Equal(t, "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1%2Fmodules%2Fmod1&sig=1a924jO1FO5JEI%2BK9t%2BS40sX89geQBbtWSq0paIYP4I%3D&se=1700000000",
		NewToken("myhub.azure-devices.net/devices/device1/modules/mod1", "", key, se))
}

func TestParseAndVerify(t *testing.T) {
	key, _ := DecodeKey("cGFzc3dvcmQ=")
	other, _ := DecodeKey("b3RoZXI=")
	tok := NewToken("hub.example/devices/d1", "service", key, time.Unix(2000, 0))
	p, err := Parse(tok)
	require.NoError(t, err)
	assert.Equal(t, "hub.example/devices/d1", p.Resource)
	assert.Equal(t, "service", p.KeyName)
	assert.Equal(t, int64(2000), p.Expiry.Unix())
	assert.NoError(t, p.Verify(key, time.Unix(1999, 0)))
	assert.ErrorIs(t, p.Verify(key, time.Unix(2000, 0)), ErrExpired)
	assert.ErrorIs(t, p.Verify(other, time.Unix(1000, 0)), ErrBadSignature)

	// Node's field order (skn before se) parses and verifies the same.
	node := "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&skn=encode%28%27Me%27%29&se=12345"
	p, err = Parse(node)
	require.NoError(t, err)
	assert.NoError(t, p.Verify(key, time.Unix(100, 0)))
	assert.Equal(t, "encode('Me')", p.KeyName)
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct{ tok, want string }{
		"no prefix":   {"sr=a&sig=b&se=1", `it does not start with "SharedAccessSignature "`},
		"missing sig": {"SharedAccessSignature sr=a&se=1", `field "sig" is missing`},
		"missing se":  {"SharedAccessSignature sr=a&sig=b", `field "se" is missing`},
		"bad se":      {"SharedAccessSignature sr=a&sig=b&se=soon", "se is not a whole number of seconds"},
		"unknown":     {"SharedAccessSignature sr=a&sig=b&se=1&x=y", "field 4 is not one of sr, sig, se, skn"},
		"dup":         {"SharedAccessSignature sr=a&sr=a&sig=b&se=1", `field "sr" appears more than once`},
		"no equals":   {"SharedAccessSignature sr", "field 1 has no '='"},
		"bad escape":  {"SharedAccessSignature sr=%zz&sig=b&se=1", "sr is not URL-encoded correctly"},
		"bad sig":     {"SharedAccessSignature sr=a&sig=%zz&se=1", "sig is not URL-encoded correctly"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.tok)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// A signature or a key pasted where a field name belongs never shows in the
// message.
func TestParseErrorsNeverEchoTheToken(t *testing.T) {
	const key = "8H02KG1w5GAu7YMgj0qgUaNsQP0RxSUkHDaDxLg14f4="
	const sig = "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D"
	for name, tok := range map[string]string{
		"key as a field":         "SharedAccessSignature sr=a&sig=" + sig + "&se=1&" + key,
		"key as a field name":    "SharedAccessSignature sr=a&" + key + "x=1&sig=" + sig + "&se=1",
		"duplicated key field":   "SharedAccessSignature " + key + "&" + key,
		"sig without equals":     "SharedAccessSignature sr=a&sig" + sig + "&se=1",
		"sig with a bad escape":  "SharedAccessSignature sr=a&sig=" + sig + "%zz&se=1",
		"missing prefix":         "sr=a&sig=" + sig + "&se=1",
		"key as the whole token": key,
		"bad se after sig":       "SharedAccessSignature sr=a&sig=" + sig + "&se=" + key,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tok)
			require.Error(t, err)
			for _, secret := range []string{key, sig} {
				for i := 0; i+8 <= len(secret); i++ {
					assert.NotContains(t, err.Error(), secret[i:i+8])
				}
			}
		})
	}
	k, _ := DecodeKey("cGFzc3dvcmQ=")
	p, err := Parse(NewToken("hub", "", k, time.Unix(10, 0)))
	require.NoError(t, err)
	for _, e := range []error{p.Verify([]byte("other"), time.Unix(1, 0)), p.Verify(k, time.Unix(20, 0))} {
		assert.NotContains(t, e.Error(), p.Signature)
	}
}

func TestSignerRenewsBeforeExpiry(t *testing.T) {
	key, _ := DecodeKey("cGFzc3dvcmQ=")
	now := time.Unix(1_000_000, 0)
	s := NewSigner("hub", "service", key, 10*time.Minute, func() time.Time { return now })
	first := s.Token()
	assert.Equal(t, first, s.Token(), "a fresh token is reused")
	now = now.Add(7 * time.Minute) // 3 of 10 minutes left: still more than a fifth
	assert.Equal(t, first, s.Token())
	now = now.Add(2 * time.Minute) // 1 minute left: re-sign
	second := s.Token()
	assert.NotEqual(t, first, second)
	p, err := Parse(second)
	require.NoError(t, err)
	assert.NoError(t, p.Verify(key, now))
	assert.Equal(t, now.Add(10*time.Minute).Unix(), p.Expiry.Unix())
}

func TestEncodeResource(t *testing.T) {
	assert.Equal(t, "h%2Fdevices%2Fa%23b%3Fc%25d%20e", EncodeResource("h/devices/a#b?c%d e"))
}

func FuzzParse(f *testing.F) {
	f.Add("SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345&skn=x")
	f.Add("SharedAccessSignature sr=&sig=&se=")
	f.Add("SharedAccessSignature sr=a&8H02KG1w5GAu7YMgj0qgUaNsQP0RxSUkHDaDxLg14f4=")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err == nil && tok.EncodedResource == "" && tok.Signature == "" && !tok.Expiry.IsZero() && tok.Expiry.Unix() < 0 {
			t.Fatalf("negative expiry accepted")
		}
		if err != nil {
			// The message is one of a fixed set: it quotes at most a known
			// field's name, never text of the token.
			msg := strings.TrimPrefix(err.Error(), "malformed shared access signature: ")
			for i := 0; i+6 <= len(s); i++ {
				w := s[i : i+6]
				if strings.ContainsAny(w, "0123456789") && strings.IndexFunc(w, func(r rune) bool { return r >= 'A' && r <= 'Z' }) >= 0 && strings.Contains(msg, w) {
					t.Fatalf("message quotes %q from the token: %s", w, msg)
				}
			}
		}
	})
}

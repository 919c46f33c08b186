package sim

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Thumbprints of the right lengths: SHA-1 (40 hex digits), SHA-256 (64).
var tpSHA1, tpSHA256 = strings.Repeat("0a", 20), strings.Repeat("B1", 32)

func TestAuthCheck(t *testing.T) {
	for _, ok := range []Auth{
		{}, {Type: AuthSAS}, {Type: AuthCertificateAuthority},
		{Type: AuthSelfSigned, PrimaryThumbprint: tpSHA1},
		{Type: AuthSelfSigned, PrimaryThumbprint: tpSHA256, SecondaryThumbprint: tpSHA1},
	} {
		assert.NoError(t, ok.Check(), "%+v", ok)
	}
	for want, bad := range map[string]Auth{
		`type: "x509" is not sas, selfSigned or certificateAuthority`:          {Type: "x509"},
		"x509Thumbprint.primaryThumbprint: required for type selfSigned":       {Type: AuthSelfSigned},
		"x509Thumbprint.primaryThumbprint: a thumbprint has 40":                {Type: AuthSelfSigned, PrimaryThumbprint: "abc"},
		"x509Thumbprint.secondaryThumbprint: a thumbprint has hex digits":      {Type: AuthSelfSigned, PrimaryThumbprint: tpSHA1, SecondaryThumbprint: strings.Repeat("g", 40)},
		"x509Thumbprint: only for type selfSigned, not certificateAuthority":   {Type: AuthCertificateAuthority, PrimaryThumbprint: tpSHA1},
		"x509Thumbprint: only for type selfSigned, not sas":                    {SecondaryThumbprint: tpSHA1},
		"x509Thumbprint.primaryThumbprint: a thumbprint is hex digits without": {Type: AuthSelfSigned, PrimaryThumbprint: "AB:CD"},
	} {
		err := bad.Check()
		require.Error(t, err, "%+v", bad)
		assert.Contains(t, err.Error(), want)
	}
}

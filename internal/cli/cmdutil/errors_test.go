package cmdutil

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/dmctl/dmctl/internal/auth"
)

// TestErrorLinesAreRedacted: every error line goes through the one stderr
// redaction, whatever made the error (here a credential's failure quoting
// a bearer token and a connection string).
func TestErrorLinesAreRedacted(t *testing.T) {
	err := &auth.CredentialError{Method: auth.MethodEnvironment,
		Err: errors.New("bad: Authorization: Bearer eyJabc.def.ghi and HostName=h;SharedAccessKeyName=s;SharedAccessKey=c2VjcmV0a2V5Cg==")}
	var b bytes.Buffer
	printError(&b, nil, err)
	assert.NotContains(t, b.String(), "eyJabc")
	assert.NotContains(t, b.String(), "c2VjcmV0a2V5Cg")
	assert.Contains(t, b.String(), "Error: environment credential could not get a token")
}

package certs

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCreateThenReuse(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	b1, err := LoadOrCreate(dir, nil, now)
	require.NoError(t, err)
	assert.False(t, b1.Reused)
	for name, mode := range map[string]os.FileMode{CAFile: 0o644, CAKeyFile: 0o600, ServerFile: 0o644, ServerKeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err, name)
		assert.Equal(t, mode, fi.Mode().Perm(), name)
	}
	assert.True(t, filepath.IsAbs(b1.CAFile))

	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		_, err := b1.ServerLeaf.Verify(x509.VerifyOptions{DNSName: host, Roots: b1.Pool, CurrentTime: now})
		assert.NoError(t, err, host)
	}
	_, err = b1.ServerLeaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: b1.Pool, CurrentTime: now})
	assert.Error(t, err, "only the loopback names are covered")
	assert.NotEmpty(t, b1.ServerLeaf.IPAddresses, "IP SANs, for clients that send no SNI")

	b2, err := LoadOrCreate(dir, nil, now.Add(time.Hour))
	require.NoError(t, err)
	assert.True(t, b2.Reused)
	assert.Equal(t, b1.CA.Raw, b2.CA.Raw)
	assert.Equal(t, b1.ServerLeaf.Raw, b2.ServerLeaf.Raw)
}

func TestExtraHostReissuesUnderTheSameCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	b1, err := LoadOrCreate(dir, nil, now)
	require.NoError(t, err)
	b2, err := LoadOrCreate(dir, []string{"hub.local", "10.1.2.3"}, now)
	require.NoError(t, err)
	assert.False(t, b2.Reused)
	assert.Equal(t, b1.CA.Raw, b2.CA.Raw, "the CA clients trust is kept")
	for _, host := range []string{"hub.local", "10.1.2.3", "localhost"} {
		_, err := b2.ServerLeaf.Verify(x509.VerifyOptions{DNSName: host, Roots: b1.Pool, CurrentTime: now})
		assert.NoError(t, err, host)
	}
}

func TestDamagedFilesAreReplaced(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	b1, err := LoadOrCreate(dir, nil, now)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ServerFile), []byte("junk"), 0o644))
	b2, err := LoadOrCreate(dir, nil, now)
	require.NoError(t, err)
	assert.False(t, b2.Reused)
	assert.Equal(t, b1.CA.Raw, b2.CA.Raw)

	require.NoError(t, os.WriteFile(filepath.Join(dir, CAFile), []byte("junk"), 0o644))
	b3, err := LoadOrCreate(dir, nil, now)
	require.NoError(t, err)
	assert.NotEqual(t, b1.CA.Raw, b3.CA.Raw, "an unusable CA is replaced")
	_, err = b3.ServerLeaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: b3.Pool, CurrentTime: now})
	assert.NoError(t, err, "the server certificate follows the new CA")
}

func TestExpiringServerCertificateIsRenewed(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	b1, err := LoadOrCreate(dir, nil, now)
	require.NoError(t, err)
	later := now.AddDate(1, 0, 0) // the server certificate lives one year
	b2, err := LoadOrCreate(dir, nil, later)
	require.NoError(t, err)
	assert.False(t, b2.Reused)
	assert.Equal(t, b1.CA.Raw, b2.CA.Raw)
	assert.True(t, b2.ServerLeaf.NotAfter.After(later.Add(300*24*time.Hour)))
}

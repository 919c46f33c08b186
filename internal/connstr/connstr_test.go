package connstr

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	key = "ZG1jdGwtdGVzdC1rZXktMDEyMzQ1Njc4OQ==" // base64("dmctl-test-key-0123456789")
	sig = "SharedAccessSignature sr=h.azure-devices.net&sig=c2VjcmV0c2ln%3D&se=1700000000"
)

func TestParseService(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"canonical", "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + key},
		{"any order", "SharedAccessKey=" + key + ";HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner"},
		{"key case and blanks", " hostname=h.azure-devices.net ; sharedaccesskeyname=iothubowner;SHAREDACCESSKEY=" + key + ";"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseService(tt.in)
			require.NoError(t, err)
			assert.Equal(t, KindService, c.Kind)
			assert.Equal(t, "h.azure-devices.net", c.HostName)
			assert.Equal(t, "iothubowner", c.SharedAccessKeyName)
			assert.Equal(t, key, c.SharedAccessKey, "the key keeps its trailing '=' (split on the first '=')")
		})
	}
}

func TestParseDeviceAndModule(t *testing.T) {
	c, err := ParseDevice("HostName=h.azure-devices.net;DeviceId=dev-1;SharedAccessKey=" + key + ";GatewayHostName=edge:8883")
	require.NoError(t, err)
	assert.Equal(t, KindDevice, c.Kind)
	assert.Equal(t, "dev-1", c.DeviceID)
	assert.Equal(t, "edge:8883", c.GatewayHostName)

	c, err = ParseDevice("HostName=h.azure-devices.net;DeviceId=dev-1;ModuleId=mod;SharedAccessSignature=" + sig)
	require.NoError(t, err)
	assert.Equal(t, KindModule, c.Kind)
	assert.Equal(t, "mod", c.ModuleID)
	assert.Equal(t, sig, c.SharedAccessSignature, "a signature value keeps its own '=' signs")

	c, err = ParseDevice("HostName=h;DeviceId=d;x509=true")
	require.NoError(t, err)
	assert.True(t, c.X509)
}

// Every error names the key (or part) that is wrong, and never carries the secret.
func TestParseErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		parse func(string) (*ConnectionString, error)
		want  string
	}{
		{"empty", "  ", Parse, "it is empty"},
		{"no equals", "HostName=h;garbage;SharedAccessKey=" + key, Parse, "part 2 has no '='"},
		{"unknown key", "HostName=h;Color=blue;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `unknown key "Color"`},
		{"duplicate key", "HostName=h;hostname=g;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `key "HostName" appears more than once`},
		{"empty value", "HostName=;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `key "HostName" has an empty value`},
		{"missing host", "SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `missing key "HostName"`},
		{"host is a URL", "HostName=https://h;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `key "HostName" must be a host name`},
		{"gateway is a path", "HostName=h;DeviceId=d;SharedAccessKey=" + key + ";GatewayHostName=g/x", Parse, `key "GatewayHostName" must be a host name`},
		{"key not base64", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=abc*def", Parse, `key "SharedAccessKey" is not valid base64`},
		{"x509 not true", "HostName=h;DeviceId=d;x509=yes", Parse, `key "x509" must be "true"`},
		{"module without device", "HostName=h;ModuleId=m;SharedAccessKey=" + key, Parse, `key "ModuleId" needs "DeviceId"`},
		{"service without policy", "HostName=h;SharedAccessKey=" + key, Parse, `missing key "SharedAccessKeyName"`},
		{"service without key", "HostName=h;SharedAccessKeyName=p", Parse, `missing key "SharedAccessKey"`},
		{"service key and signature", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key + ";SharedAccessSignature=" + sig, Parse, `keys "SharedAccessKey" and "SharedAccessSignature" cannot both be given`},
		{"service with gateway", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key + ";GatewayHostName=g", Parse, `key "GatewayHostName" belongs in a device connection string`},
		{"service with x509", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key + ";x509=true", Parse, `key "x509" belongs in a device connection string`},
		{"device with policy", "HostName=h;DeviceId=d;SharedAccessKeyName=p;SharedAccessKey=" + key, Parse, `key "SharedAccessKeyName" belongs in a service connection string, not a device one`},
		{"device without credential", "HostName=h;DeviceId=d", Parse, `missing a credential: give one of "SharedAccessKey", "SharedAccessSignature" or "x509"`},
		{"device two credentials", "HostName=h;DeviceId=d;SharedAccessKey=" + key + ";x509=true", Parse, `give only one of "SharedAccessKey", "SharedAccessSignature" and "x509"`},
		{"service wanted", "HostName=h;DeviceId=d;SharedAccessKey=" + key, ParseService, "this is a device connection string; a service connection string"},
		{"module not service", "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=" + key, ParseService, "this is a module connection string"},
		{"device wanted", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key, ParseDevice, "this is a service connection string; a device connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.parse(tt.in)
			require.Error(t, err)
			assert.Nil(t, c)
			var ce *Error
			require.True(t, errors.As(err, &ce), "want *Error, got %T", err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "invalid connection string: "), err.Error())
			assert.NotContains(t, err.Error(), key)
			assert.NotContains(t, err.Error(), "c2VjcmV0c2ln")
		})
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	svc, err := ParseService("SharedAccessKey=" + key + ";HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner")
	require.NoError(t, err)
	want := "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=REDACTED"
	assert.Equal(t, want, svc.Redacted())
	assert.Equal(t, want, svc.String())
	assert.Equal(t, want, fmtV(svc), "%v uses String, so accidental printing is safe")
	assert.Equal(t, "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey="+key, svc.Secret())

	mod, err := ParseDevice("HostName=h;DeviceId=d;ModuleId=m;SharedAccessSignature=" + sig)
	require.NoError(t, err)
	assert.Equal(t, "HostName=h;SharedAccessSignature=REDACTED;DeviceId=d;ModuleId=m", mod.Redacted())
	assert.NotContains(t, mod.Redacted(), "c2VjcmV0c2ln")

	round, err := Parse(svc.Secret())
	require.NoError(t, err)
	assert.Equal(t, svc, round, "Secret round-trips through Parse")
}

func fmtV(c *ConnectionString) string { return fmt.Sprintf("%v", c) }

func TestRedactFreeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key, "HostName=h;SharedAccessKeyName=p;SharedAccessKey=REDACTED"},
		{"sharedaccesskey=" + key + " trailing", "sharedaccesskey=REDACTED trailing"},
		{"Authorization: SharedAccessSignature sr=h&sig=abc%2B%3D&se=1&skn=p", "Authorization: SharedAccessSignature sr=h&sig=REDACTED&se=1&skn=p"},
		{"Authorization: Bearer eyJ0eXAi.payload.sig\nnext", "Authorization: Bearer REDACTED\nnext"},
		{`{"token":"Bearer abc"}`, `{"token":"Bearer REDACTED"}`},
		{"nothing secret here", "nothing secret here"},
		{"already SharedAccessKey=REDACTED", "already SharedAccessKey=REDACTED"},
		{"two: sig=aaa&x sig=bbb", "two: sig=REDACTED&x sig=REDACTED"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Redact(tt.in), tt.in)
	}
}

func TestKindString(t *testing.T) {
	assert.Equal(t, "service", KindService.String())
	assert.Equal(t, "device", KindDevice.String())
	assert.Equal(t, "module", KindModule.String())
	assert.Equal(t, "unknown", Kind(0).String())
}

func FuzzParse(f *testing.F) {
	f.Add("HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key)
	f.Add("HostName=h;DeviceId=d;ModuleId=m;SharedAccessSignature=" + sig)
	f.Add(";;=;==")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			assert.Nil(t, c)
			return
		}
		if c.SharedAccessKey != "" && c.SharedAccessKey != "REDACTED" {
			assert.NotContains(t, c.Redacted(), "SharedAccessKey="+c.SharedAccessKey+";")
		}
		again, err := Parse(c.Secret())
		require.NoError(t, err, "Secret of a parsed string must parse")
		assert.Equal(t, c, again)
	})
}

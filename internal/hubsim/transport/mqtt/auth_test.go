package mqtt

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/sas"
)

func TestParseClientID(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Identity
		wantErr string
	}{
		{in: "dev1", want: Identity{DeviceID: "dev1"}},
		{in: "dev1/mod1", want: Identity{DeviceID: "dev1", ModuleID: "mod1"}},
		{in: "dev:1.a+b%c#d*e?f!g(h)i,j=k@l;m$n'o", want: Identity{DeviceID: "dev:1.a+b%c#d*e?f!g(h)i,j=k@l;m$n'o"}},
		{in: "", wantErr: "client id is empty"},
		{in: "/mod", wantErr: "device id is empty"},
		{in: "dev/", wantErr: "module id is empty"},
		{in: "a/b/c", wantErr: "expected deviceId or deviceId/moduleId"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseClientID(tc.in)
			if tc.wantErr != "" {
				require.Error(t, err)
				var ae *AuthError
				assert.True(t, errors.As(err, &ae), "an *AuthError")
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.in, got.ClientID(), "ClientID round trip")
		})
	}
}

func TestAuthenticatorCheck(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	keys := map[string][]byte{
		"dev1":      []byte("key-of-dev1-0123456789abcdef0123"),
		"dev2":      []byte("key-of-dev2-0123456789abcdef0123"),
		"dev1/mod1": []byte("key-of-mod1-0123456789abcdef0123"),
	}
	secondary := map[string][]byte{"dev1": []byte("secondary-of-dev1-0123456789abcd")}
	a := newAuthenticator("Hub.Example:8443", func(d, m string) ([]byte, []byte, bool) {
		k, ok := keys[Identity{d, m}.ClientID()]
		return k, secondary[Identity{d, m}.ClientID()], ok
	})
	tok := func(resource string, key []byte, exp time.Time) []byte {
		return []byte(sas.NewToken(resource, "", key, exp))
	}
	later := now.Add(time.Hour)
	user := func(host, client string) string {
		return host + "/" + client + "/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4"
	}

	for _, tc := range []struct {
		name     string
		client   string
		username string
		password []byte
		want     Identity
		wantErr  string
	}{
		{name: "device, host with port", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], later), want: Identity{DeviceID: "dev1"}},
		{name: "device, host without port (GatewayHostName style)", client: "dev1", username: user("Hub.Example", "dev1"),
			password: tok("Hub.Example/devices/dev1", keys["dev1"], later), want: Identity{DeviceID: "dev1"}},
		{name: "host case and sr case differ", client: "dev1", username: user("hub.example:8443", "dev1"),
			password: tok("HUB.EXAMPLE:8443/DEVICES/DEV1", keys["dev1"], later), want: Identity{DeviceID: "dev1"}},
		{name: "extra query parameters, model-id unencoded", client: "dev1",
			username: "Hub.Example:8443/dev1/?api-version=2020-09-30&DeviceClientType=x&model-id=dtmi:com:example;1&auth-chain=a",
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], later), want: Identity{DeviceID: "dev1"}},
		{name: "old username form without ?", client: "dev1", username: "Hub.Example:8443/dev1/api-version=2016-11-14",
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], later), want: Identity{DeviceID: "dev1"}},
		{name: "sr with trailing slash", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443/devices/dev1/", keys["dev1"], later), want: Identity{DeviceID: "dev1"}},
		{name: "module", client: "dev1/mod1", username: user("Hub.Example:8443", "dev1/mod1"),
			password: tok("Hub.Example:8443/devices/dev1/modules/mod1", keys["dev1/mod1"], later),
			want:     Identity{DeviceID: "dev1", ModuleID: "mod1"}},

		{name: "signed with the secondary key", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443/devices/dev1", secondary["dev1"], later), want: Identity{DeviceID: "dev1"}},
		{name: "another device's secondary key", client: "dev2", username: user("Hub.Example:8443", "dev2"),
			password: tok("Hub.Example:8443/devices/dev2", secondary["dev1"], later), wantErr: "signature does not match"},
		{name: "wrong key", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443/devices/dev1", []byte("not-the-key-0123456789abcdef0123"), later),
			wantErr:  "signature does not match"},
		{name: "token of another device", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443/devices/dev2", keys["dev2"], later), wantErr: "sr) is not devices/dev1"},
		{name: "another device's sr signed with own key", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443/devices/dev2", keys["dev1"], later), wantErr: "sr) is not devices/dev1"},
		{name: "device token for its module", client: "dev1/mod1", username: user("Hub.Example:8443", "dev1/mod1"),
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], later), wantErr: "signature does not match the key of devices/dev1/modules/mod1"},
		{name: "device's sr prefix, signed with the module's key", client: "dev1/mod1", username: user("Hub.Example:8443", "dev1/mod1"),
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1/mod1"], later), want: Identity{DeviceID: "dev1", ModuleID: "mod1"}},
		{name: "hub-wide sr signed with the device's key (the Go SDK's token)", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443", keys["dev1"], later), want: Identity{DeviceID: "dev1"}},
		{name: "hub-wide sr signed with another device's key", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443", keys["dev2"], later), wantErr: "signature does not match the key of devices/dev1"},
		{name: "device id prefix is not a segment", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443/devices/dev", keys["dev1"], later), wantErr: "sr) is not devices/dev1"},
		{name: "other hub in sr", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("other.example/devices/dev1", keys["dev1"], later), wantErr: "sr) is not devices/dev1"},
		{name: "expired", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], now), wantErr: "expired"},
		{name: "policy token", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: []byte(sas.NewToken("Hub.Example:8443/devices/dev1", "device", keys["dev1"], later)), wantErr: "skn"},
		{name: "unknown device", client: "ghost", username: user("Hub.Example:8443", "ghost"),
			password: tok("Hub.Example:8443/devices/ghost", keys["dev1"], later), wantErr: `device "ghost" is not registered`},
		{name: "unknown module", client: "dev1/ghost", username: user("Hub.Example:8443", "dev1/ghost"),
			password: tok("Hub.Example:8443/devices/dev1/modules/ghost", keys["dev1"], later), wantErr: `module "ghost" of device "dev1"`},
		{name: "no password", client: "dev1", username: user("Hub.Example:8443", "dev1"), wantErr: "no password"},
		{name: "password is not a SAS", client: "dev1", username: user("Hub.Example:8443", "dev1"),
			password: []byte("hunter2"), wantErr: "not a SAS token"},
		{name: "no username", client: "dev1", password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], later), wantErr: "no username"},
		{name: "username of another hub", client: "dev1", username: user("other.example", "dev1"),
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], later), wantErr: "does not start with this hub's host name"},
		{name: "username host with another port", client: "dev1", username: user("Hub.Example:9999", "dev1"),
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], later), wantErr: "does not start with this hub's host name"},
		{name: "username names another client", client: "dev1", username: user("Hub.Example:8443", "dev2"),
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], later), wantErr: `does not name client id "dev1"`},
		{name: "username is a prefix of the client id", client: "dev1", username: user("Hub.Example:8443", "dev"),
			password: tok("Hub.Example:8443/devices/dev1", keys["dev1"], later), wantErr: `does not name client id "dev1"`},
		{name: "empty client id", client: "", username: user("Hub.Example:8443", ""), wantErr: "client id is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, exp, err := a.check(tc.client, tc.username, tc.password, nil, now)
			if tc.wantErr != "" {
				require.Error(t, err)
				var ae *AuthError
				require.True(t, errors.As(err, &ae), "an *AuthError, got %T", err)
				assert.Contains(t, err.Error(), tc.wantErr)
				if len(tc.password) > 0 {
					assert.NotContains(t, err.Error(), string(tc.password), "the password must not appear in the error")
					if _, sig, ok := strings.Cut(string(tc.password), "sig="); ok {
						sig, _, _ = strings.Cut(sig, "&")
						assert.NotContains(t, err.Error(), sig, "the signature must not appear in the error")
					}
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, id)
			assert.Equal(t, later, exp)
		})
	}
}

func TestAuthenticatorIPv6Host(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a := newAuthenticator("[::1]:8443", func(string, string) ([]byte, []byte, bool) { return key, nil, true })
	now := time.Unix(1_700_000_000, 0)
	for _, host := range []string{"[::1]:8443", "::1"} {
		_, _, err := a.check("d", host+"/d/?api-version=2021-04-12", []byte(sas.NewToken(host+"/devices/d", "", key, now.Add(time.Hour))), nil, now)
		assert.NoError(t, err, host)
	}
}

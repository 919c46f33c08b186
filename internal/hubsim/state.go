package hubsim

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dmctl/dmctl/internal/atomicfile"

	"github.com/dmctl/dmctl/internal/hubsim/entra"
	"github.com/dmctl/dmctl/internal/hubsim/identity"
)

// StateFile is the name of the file in --dir that keeps hubsim's secrets
// across restarts (mode 0600).
const StateFile = "state.json"

const stateVersion = 1

// state is what hubsim persists in DIR/state.json.
type state struct {
	Version int `json:"version"`
	// Policies maps a policy name to its base64 primary key.
	Policies map[string]string `json:"policies"`
	// DeviceKeySecret (base64) derives every device and module key:
	// HMAC-SHA256(secret, "device\x00" + deviceId + "\x00" + moduleId). So a
	// restart with the same DIR gives every identity the same key, whatever
	// the fleet, without storing one key per device.
	DeviceKeySecret string `json:"deviceKeySecret"`
	// Seed is the simulation seed used when --seed is not given.
	Seed  int64        `json:"seed"`
	Entra *entra.State `json:"entra"`

	deviceSecret []byte
	policyKeys   map[string][]byte
}

// loadState reads DIR/state.json, creating it, or completing it, as needed.
func loadState(dir string) (*state, error) {
	path := filepath.Join(dir, StateFile)
	st := &state{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	default:
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("%s is not valid JSON (%v); move it away to start with new keys", path, err)
		}
	}
	changed := err != nil
	if st.Policies == nil {
		st.Policies = map[string]string{}
	}
	st.policyKeys = map[string][]byte{}
	for _, pol := range identity.Policies {
		name := pol.Name
		k, err := base64.StdEncoding.DecodeString(st.Policies[name])
		if st.Policies[name] == "" || err != nil || len(k) == 0 {
			k = randomBytes(32)
			st.Policies[name] = base64.StdEncoding.EncodeToString(k)
			changed = true
		}
		st.policyKeys[name] = k
	}
	sec, err := base64.StdEncoding.DecodeString(st.DeviceKeySecret)
	if st.DeviceKeySecret == "" || err != nil || len(sec) < 16 {
		sec = randomBytes(32)
		st.DeviceKeySecret = base64.StdEncoding.EncodeToString(sec)
		changed = true
	}
	st.deviceSecret = sec
	if st.Seed == 0 {
		st.Seed = int64(binary.LittleEndian.Uint32(randomBytes(4)) >> 1)
		if st.Seed == 0 {
			st.Seed = 1
		}
		changed = true
	}
	if st.Entra == nil || st.Entra.TenantID == "" || st.Entra.SigningKey == "" || len(st.Entra.Principals) == 0 {
		es, err := entra.NewState()
		if err != nil {
			return nil, err
		}
		st.Entra = es
		changed = true
	}
	if st.Version != stateVersion {
		st.Version = stateVersion
		changed = true
	}
	if changed {
		out, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", path, err)
		}
		if err := atomicfile.Write(path, append(out, '\n'), 0o600); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// deviceKey derives the primary key of a device or module.
func (st *state) deviceKey(deviceID, moduleID string) []byte {
	return st.derivedKey("device\x00", deviceID, moduleID)
}

// deviceKey2 is an identity's secondary key, derived like the primary one
// under another label.
func (st *state) deviceKey2(deviceID, moduleID string) []byte {
	return st.derivedKey("device-secondary\x00", deviceID, moduleID)
}

func (st *state) derivedKey(label, deviceID, moduleID string) []byte {
	m := hmac.New(sha256.New, st.deviceSecret)
	m.Write([]byte(label))
	m.Write([]byte(deviceID))
	m.Write([]byte{0})
	m.Write([]byte(moduleID))
	return m.Sum(nil)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (Go 1.24+ crashes the process instead)
	return b
}

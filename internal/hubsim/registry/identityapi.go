package registry

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"time"
)

func encodeEtag(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// Keys returns the primary key and the secondary key (nil when none) of a
// device or module: a SAS token signed with either is valid.
func (r *Registry) Keys(deviceID, moduleID string) (primary, secondary []byte, ok bool) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return nil, nil, false
	}
	id.mu.Lock()
	primary = append([]byte(nil), id.key...)
	if id.meta != nil && id.meta.key2 != nil {
		secondary = append([]byte(nil), id.meta.key2...)
	}
	id.mu.Unlock()
	if secondary == nil {
		secondary = r.secondaryKey(deviceID, moduleID)
	}
	return primary, secondary, true
}

func (r *Registry) secondaryKey(deviceID, moduleID string) []byte {
	if r.opts.SecondaryKey == nil {
		return nil
	}
	return r.opts.SecondaryKey(deviceID, moduleID)
}

// Identity returns the registry's view of a device (moduleID "") or module,
// as IoT Hub's registry API answers it (GET /devices/{id}, api-version
// 2021-04-12: the Device and Module objects): ids, generationId, etag,
// connection state and times, status "enabled", the symmetric keys and the
// authentication type "sas" (for an X.509 identity its type and thumbprints
// and no keys, auth.go). A fresh map.
func (r *Registry) Identity(deviceID, moduleID string) (map[string]any, error) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixNano()
	id.mu.Lock()
	defer id.mu.Unlock()
	doc := map[string]any{"deviceId": id.deviceID}
	if id.moduleID != "" {
		doc["moduleId"] = id.moduleID
		doc["managedBy"] = nil
	}
	// The generation id tells identities apart that had the same id at
	// different times; a number of about 18 digits on a hub.
	doc["generationId"] = strconv.FormatInt(637000000000000000+int64(id.hkey%1_000_000_000_000), 10)
	doc["etag"] = id.identityEtag()
	state, since := "Disconnected", int64(0)
	if id.connectedLocked(now) {
		state = "Connected"
	}
	if id.lastActivity != 0 {
		since = id.lastActivity
	}
	doc["connectionState"] = state
	doc["connectionStateUpdatedTime"] = ts(since)
	if id.moduleID == "" {
		doc["status"], doc["statusReason"], doc["statusUpdatedTime"] = id.statusLocked()
		doc["capabilities"] = map[string]any{"iotEdge": false}
	}
	doc["lastActivityTime"] = ts(id.lastActivity)
	doc["cloudToDeviceMessageCount"] = 0
	keys := map[string]any{"primaryKey": base64.StdEncoding.EncodeToString(id.key), "secondaryKey": nil}
	k := r.secondaryKey(id.deviceID, id.moduleID)
	if id.meta != nil && id.meta.key2 != nil {
		k = id.meta.key2
	}
	if len(k) > 0 {
		keys["secondaryKey"] = base64.StdEncoding.EncodeToString(k)
	}
	doc["authentication"] = map[string]any{
		"symmetricKey":   keys,
		"x509Thumbprint": map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil},
		"type":           "sas",
	}
	id.x509DocsLocked(doc, nil)
	return doc, nil
}

// Modules returns the module ids of a device, sorted.
func (r *Registry) Modules(deviceID string) ([]string, error) {
	d := r.device(deviceID)
	if d == nil {
		return nil, fmt.Errorf("%w: %q", ErrDeviceNotFound, deviceID)
	}
	var out []string
	if p := d.modules.Load(); p != nil {
		for _, m := range *p {
			out = append(out, m.moduleID)
		}
	}
	return out, nil
}

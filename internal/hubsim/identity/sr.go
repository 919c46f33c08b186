// Package identity holds what hubsim's endpoints share about who a caller
// is: the one rule for a SAS token's resource (sr), used by the REST API and
// the MQTT device endpoint alike.
package identity

import "strings"

// Covers reports whether a SAS token whose resource is sr grants access to
// resource (a path such as "devices/d1" or "devices/d1/modules/m1") on a
// hub whose host names hostOK accepts. As IoT Hub does, sr is a URI prefix
// by whole segments: the hub host alone covers everything on the hub,
// "{host}/devices/d1" covers the device and its modules, and
// "{host}/devices/d12" does not cover "devices/d1". A leading https:// or
// http:// and a trailing '/' are ignored, and comparisons ignore case (SDKs
// differ in the case of their URL encoding, and the hub documents
// lower-casing). Microsoft's device SDKs sign "{host}/devices/{id}"; the
// independent Go SDK github.com/amenzhinsky/iothub signs the bare host.
func Covers(sr, resource string, hostOK func(host string) bool) bool {
	sr = strings.TrimSuffix(sr, "/")
	for _, p := range []string{"https://", "http://"} {
		if len(sr) > len(p) && strings.EqualFold(sr[:len(p)], p) {
			sr = sr[len(p):]
		}
	}
	host, path, _ := strings.Cut(sr, "/")
	if host == "" || !hostOK(host) {
		return false
	}
	path = strings.TrimSuffix(path, "/")
	if path == "" {
		return true
	}
	if len(path) > len(resource) || !strings.EqualFold(path, resource[:len(path)]) {
		return false
	}
	return len(path) == len(resource) || resource[len(path)] == '/'
}

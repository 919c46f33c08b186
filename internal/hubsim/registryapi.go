package hubsim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The registry identity API, read side (api-version 2021-04-12):
//
//	GET /devices/{id}                   the Device object
//	GET /devices/{id}/modules           the device's Module objects
//	GET /devices/{id}/modules/{mid}     one Module object
//	GET /devices[?top=N]                Device objects, at most top (default 1,000)
//	GET /statistics/devices             totalDeviceCount, enabledDeviceCount, disabledDeviceCount
//
// Each is a registry read (RegistryRead, or an Entra reader) and charges the
// tier's identity registry throttle. Creating, replacing and deleting
// identities at run time are not served yet: 405 with the allowed methods.
const (
	devicesPath         = "/devices"
	deviceStatisticsURL = "/statistics/devices"
	maxDevicesListTop   = 1000
	registryThrottle    = "identity registry operations" // throttle class named in 429001 messages
)

// routeRegistry serves paths under /devices other than /devices/query.
func (s *Server) routeRegistry(w http.ResponseWriter, r *http.Request, reqID, path string) (route, int) {
	var segs []string
	if rest := strings.TrimPrefix(strings.TrimPrefix(path, devicesPath), "/"); rest != "" {
		for _, seg := range strings.Split(rest, "/") {
			v, err := url.PathUnescape(seg)
			if err != nil || v == "" {
				return routeRegistry, s.fail(w, reqID, newError(codeArgumentInvalid, "The device or module id in the path is empty or not percent-encoded correctly."))
			}
			segs = append(segs, v)
		}
	}
	if (len(segs) >= 2 && segs[1] != "modules") || len(segs) > 3 {
		return routeUnknown, s.fail(w, reqID, newError(codeGenericNotFound, "The requested resource "+displayID(r.URL.Path)+" was not found."))
	}
	res := resource{}
	switch len(segs) {
	case 1, 2:
		res = resource{device: segs[0]}
	case 3:
		res = resource{device: segs[0], module: segs[2]}
	}
	if st, ok := s.hubRead(w, r, reqID, res, s.limiter.AllowRegistryOp, registryThrottle); !ok {
		return routeRegistry, st
	}
	switch len(segs) {
	case 0:
		return routeRegistry, s.listDevices(w, r, reqID)
	case 2:
		ids, err := s.reg.Modules(segs[0])
		if err != nil {
			return routeRegistry, s.fail(w, reqID, s.twinError(err, segs[0], ""))
		}
		out := make([]map[string]any, 0, len(ids))
		for _, m := range ids {
			doc, err := s.reg.Identity(segs[0], m)
			if err == nil {
				out = append(out, doc)
			}
		}
		return routeRegistry, s.writeJSON(w, reqID, out, nil)
	}
	doc, err := s.reg.Identity(res.device, res.module)
	if err != nil {
		return routeRegistry, s.fail(w, reqID, s.twinError(err, res.device, res.module))
	}
	hdr := http.Header{}
	hdr.Set("ETag", `"`+doc["etag"].(string)+`"`)
	return routeRegistry, s.writeJSON(w, reqID, doc, hdr)
}

// listDevices serves GET /devices?top=N: the first N devices by id.
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, reqID string) int {
	top := maxDevicesListTop
	if v, found := queryParam(r.URL.RawQuery, "top"); found {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDevicesListTop {
			return s.fail(w, reqID, newError(codeArgumentInvalid, "top must be a whole number from 1 to 1000."))
		}
		top = n
	}
	ids := s.reg.DeviceIDs(false)
	if len(ids) > top {
		ids = ids[:top]
	}
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		if doc, err := s.reg.Identity(id, ""); err == nil {
			out = append(out, doc)
		}
	}
	return s.writeJSON(w, reqID, out, nil)
}

// handleDeviceStatistics serves GET /statistics/devices. hubsim's devices
// are all enabled.
func (s *Server) handleDeviceStatistics(w http.ResponseWriter, r *http.Request, reqID string) int {
	if st, ok := s.hubRead(w, r, reqID, resource{}, s.limiter.AllowRegistryOp, registryThrottle); !ok {
		return st
	}
	n, _ := s.reg.Count()
	return s.writeJSON(w, reqID, map[string]int{"totalDeviceCount": n, "enabledDeviceCount": n, "disabledDeviceCount": 0}, nil)
}

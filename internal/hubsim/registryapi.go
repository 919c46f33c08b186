package hubsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dmctl/dmctl/internal/hubsim/devices"
)

// The registry identity API, read side (api-version 2021-04-12):
//
//	GET /devices/{id}                   the Device object
//	GET /devices/{id}/modules           the device's Module objects
//	GET /devices/{id}/modules/{mid}     one Module object
//	GET /devices[?top=N]                Device objects, at most top (default 1,000)
//	GET /statistics/devices             totalDeviceCount, enabledDeviceCount, disabledDeviceCount
//
//	PUT /devices/{id}[/modules/{mid}]    create (no If-Match) or replace (If-Match: etag or *)
//	DELETE /devices/{id}[/modules/{mid}] delete (If-Match: etag, or * or none: unconditional)
//
// A GET is a registry read (RegistryRead, or an Entra reader); a PUT or
// DELETE a registry write (RegistryWrite, or the Data or Registry
// Contributor role). Each charges the tier's identity registry throttle.
// What PUT and DELETE change is kept in DIR/identities.json.
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
	if (len(segs) == 1 || len(segs) == 3) && (r.Method == http.MethodPut || r.Method == http.MethodDelete) {
		return routeRegistry, s.writeIdentity(w, r, reqID, res)
	}
	if len(segs) == 1 || len(segs) == 3 {
		if r.Method != http.MethodGet {
			return routeRegistry, s.methodNotAllowed(w, reqID, "GET, PUT, DELETE")
		}
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
	return routeRegistry, s.writeIdentityDoc(w, reqID, res)
}

// writeIdentityDoc answers the Device or Module object with its ETag.
func (s *Server) writeIdentityDoc(w http.ResponseWriter, reqID string, res resource) int {
	doc, err := s.reg.Identity(res.device, res.module)
	if err != nil {
		return s.fail(w, reqID, s.registryError(err, res))
	}
	hdr := http.Header{}
	hdr.Set("ETag", `"`+doc["etag"].(string)+`"`)
	return s.writeJSON(w, reqID, doc, hdr)
}

// identityBody is the part of a Device or Module object a PUT may set.
type identityBody struct {
	DeviceID     *string `json:"deviceId"`
	ModuleID     *string `json:"moduleId"`
	Status       *string `json:"status"`
	StatusReason *string `json:"statusReason"`
	// Authentication is read twice: type and thumbprints by devices.Auth,
	// the symmetric keys here.
	Authentication json.RawMessage `json:"authentication"`
}

// symmetricKeys is the authentication object's symmetricKey.
type symmetricKeys struct {
	SymmetricKey *struct {
		PrimaryKey   *string `json:"primaryKey"`
		SecondaryKey *string `json:"secondaryKey"`
	} `json:"symmetricKey"`
}

// writeIdentity serves PUT and DELETE of a device or module identity.
func (s *Server) writeIdentity(w http.ResponseWriter, r *http.Request, reqID string, res resource) int {
	if herr := checkAPIVersion(r); herr != nil {
		return s.fail(w, reqID, herr)
	}
	if herr := s.auth.authorize(r, accessRegistryWrite, res); herr != nil {
		return s.fail(w, reqID, herr)
	}
	ifMatch := parseIfMatch(r.Header.Get("If-Match"))
	if r.Method == http.MethodDelete {
		if st, ok := s.throttleWait(r, reqID, w, s.limiter.AllowRegistryOp, registryThrottle); !ok {
			return st
		}
		if err := s.reg.DeleteIdentity(res.device, res.module, ifMatch); err != nil {
			return s.fail(w, reqID, s.registryError(err, res))
		}
		s.recordIdentity(res.device, res.module)
		w.Header().Set("x-ms-request-id", reqID)
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	spec, herr := parseIdentityBody(r, res)
	if herr != nil {
		return s.fail(w, reqID, herr)
	}
	spec.IfMatch = ifMatch
	if st, ok := s.throttleWait(r, reqID, w, s.limiter.AllowRegistryOp, registryThrottle); !ok {
		return st
	}
	if _, err := s.reg.PutIdentity(spec); err != nil {
		return s.fail(w, reqID, s.registryError(err, res))
	}
	s.recordIdentity(res.device, res.module)
	return s.writeIdentityDoc(w, reqID, res)
}

// parseIdentityBody reads a PUT's Device or Module object. Keys given
// empty (as the Node SDK's Registry.create sends them) are generated.
func parseIdentityBody(r *http.Request, res resource) (devices.IdentitySpec, *hubError) {
	spec := devices.IdentitySpec{DeviceID: res.device, ModuleID: res.module}
	what := "Device"
	if res.module != "" {
		what = "Module"
	}
	body, err := readBody(r)
	if err != nil {
		return spec, bodyError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return spec, newError(codeIotHubFormatError, "The request body is empty; expected a "+what+" JSON object.")
	}
	var b identityBody
	if err := json.Unmarshal(body, &b); err != nil {
		return spec, newError(codeIotHubFormatError, "The request body is not a valid "+what+" JSON object: "+jsonErrorText(err))
	}
	if b.DeviceID != nil && *b.DeviceID != res.device {
		return spec, newError(codeArgumentInvalid, fmt.Sprintf("The deviceId in the body (%q) is not the one in the path (%q).", *b.DeviceID, res.device))
	}
	if res.module != "" && b.ModuleID != nil && *b.ModuleID != res.module {
		return spec, newError(codeArgumentInvalid, fmt.Sprintf("The moduleId in the body (%q) is not the one in the path (%q).", *b.ModuleID, res.module))
	}
	if res.module == "" {
		if b.Status != nil {
			spec.Status = *b.Status
		}
		if b.StatusReason != nil {
			spec.StatusReason = *b.StatusReason
		}
	}
	if len(b.Authentication) > 0 && string(b.Authentication) != "null" {
		var auth devices.Auth
		var keys symmetricKeys
		if err := json.Unmarshal(b.Authentication, &auth); err != nil {
			return spec, newError(codeIotHubFormatError, "The authentication object is not valid: "+jsonErrorText(err))
		}
		if err := json.Unmarshal(b.Authentication, &keys); err != nil {
			return spec, newError(codeIotHubFormatError, "The authentication object is not valid: "+jsonErrorText(err))
		}
		if auth.Type == "" {
			// As Microsoft's SDKs normalise it: a thumbprint makes it selfSigned.
			auth.Type = devices.AuthSAS
			if auth.PrimaryThumbprint != "" {
				auth.Type = devices.AuthSelfSigned
			}
		}
		if auth.Type == devices.AuthSAS {
			auth.PrimaryThumbprint, auth.SecondaryThumbprint = "", "" // the SDKs send them null or empty
		}
		if err := auth.Check(); err != nil {
			return spec, newError(codeArgumentInvalid, "Authentication: "+err.Error()+".")
		}
		spec.Auth = &auth
		if k := keys.SymmetricKey; k != nil {
			for _, f := range []struct {
				name string
				v    *string
				dst  *[]byte
			}{{"primaryKey", k.PrimaryKey, &spec.PrimaryKey}, {"secondaryKey", k.SecondaryKey, &spec.SecondaryKey}} {
				if f.v == nil || *f.v == "" {
					continue
				}
				key, err := base64.StdEncoding.DecodeString(*f.v)
				if err != nil {
					return spec, newError(codeArgumentInvalid, "The symmetric key "+f.name+" is not base64.")
				}
				*f.dst = key // its length is the registry's to check
			}
		}
	}
	return spec, nil
}

// registryError maps a registry error to the hub's.
func (s *Server) registryError(err error, res resource) *hubError {
	switch {
	case errors.Is(err, devices.ErrAlreadyExists):
		return newError(codeDeviceAlreadyExists, "A device with ID '"+res.device+"' is already registered.")
	case errors.Is(err, devices.ErrModuleAlreadyExists):
		return newError(codeModuleAlreadyExists, "A module with ID '"+res.module+"' already exists on device '"+res.device+"'.")
	case errors.Is(err, devices.ErrPreconditionFailed):
		return newError(codePreconditionFailed, "Precondition failed: the If-Match etag does not match the identity's current etag.")
	case errors.Is(err, devices.ErrInvalidIdentity):
		return newError(codeArgumentInvalid, capitalize(strings.TrimPrefix(err.Error(), devices.ErrInvalidIdentity.Error()+": "))+".")
	}
	return s.twinError(err, res.device, res.module)
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

// handleDeviceStatistics serves GET /statistics/devices.
func (s *Server) handleDeviceStatistics(w http.ResponseWriter, r *http.Request, reqID string) int {
	if st, ok := s.hubRead(w, r, reqID, resource{}, s.limiter.AllowRegistryOp, registryThrottle); !ok {
		return st
	}
	n, _ := s.reg.Count()
	off := s.reg.Disabled()
	return s.writeJSON(w, reqID, map[string]int{"totalDeviceCount": n, "enabledDeviceCount": n - off, "disabledDeviceCount": off}, nil)
}

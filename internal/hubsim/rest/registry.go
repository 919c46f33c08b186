package rest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/dmctl/dmctl/internal/hubsim/registry"
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
const maxDevicesListTop = 1000

// serveModulesList serves GET /devices/{id}/modules.
func (h *Handler) serveModulesList(c *call) int {
	ids, err := h.reg.Modules(c.res.device)
	if err != nil {
		return h.fail(c, h.twinError(err, c.res.device, ""))
	}
	out := make([]map[string]any, 0, len(ids))
	for _, m := range ids {
		doc, err := h.reg.Identity(c.res.device, m)
		if err == nil {
			out = append(out, doc)
		}
	}
	return h.writeJSON(c, out, nil)
}

// serveIdentity answers the Device or Module object with its ETag.
func (h *Handler) serveIdentity(c *call) int {
	doc, err := h.reg.Identity(c.res.device, c.res.module)
	if err != nil {
		return h.fail(c, h.registryError(err, c.res))
	}
	return h.writeJSON(c, doc, http.Header{"Etag": {`"` + doc["etag"].(string) + `"`}})
}

// identityBody is the part of a Device or Module object a PUT may set.
type identityBody struct {
	DeviceID     *string `json:"deviceId"`
	ModuleID     *string `json:"moduleId"`
	Status       *string `json:"status"`
	StatusReason *string `json:"statusReason"`
	// Authentication is read twice: type and thumbprints by registry.Auth,
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

// serveIdentityDelete serves DELETE /devices/{id}[/modules/{mid}].
func (h *Handler) serveIdentityDelete(c *call) int {
	if err := h.reg.DeleteIdentity(c.res.device, c.res.module, parseIfMatch(c.r.Header.Get("If-Match"))); err != nil {
		return h.fail(c, h.registryError(err, c.res))
	}
	h.identityChanged(c.res)
	c.w.Header().Set("x-ms-request-id", c.id)
	c.w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// serveIdentityPut serves PUT /devices/{id}[/modules/{mid}]: create, or
// replace with If-Match.
func (h *Handler) serveIdentityPut(c *call) int {
	spec := c.in.(registry.IdentitySpec)
	spec.IfMatch = parseIfMatch(c.r.Header.Get("If-Match"))
	if _, err := h.reg.PutIdentity(spec); err != nil {
		return h.fail(c, h.registryError(err, c.res))
	}
	h.identityChanged(c.res)
	return h.serveIdentity(c)
}

func (h *Handler) identityChanged(res resource) {
	if h.cfg.IdentityChanged != nil {
		h.cfg.IdentityChanged(res.device, res.module)
	}
}

// decodeIdentity reads a PUT's Device or Module object.
func decodeIdentity(_ *Handler, c *call) *hubError {
	spec, herr := parseIdentityBody(c.r, c.res)
	if herr != nil {
		return herr
	}
	c.in = spec
	return nil
}

// parseIdentityBody reads a PUT's Device or Module object. Keys given
// empty (as the Node SDK's Registry.create sends them) are generated.
func parseIdentityBody(r *http.Request, res resource) (registry.IdentitySpec, *hubError) {
	spec := registry.IdentitySpec{DeviceID: res.device, ModuleID: res.module}
	what := "Device"
	if res.module != "" {
		what = "Module"
	}
	body, err := readBody(r)
	if err != nil {
		return spec, bodyError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return spec, newError(CodeIotHubFormatError, "The request body is empty; expected a "+what+" JSON object.")
	}
	var b identityBody
	if err := json.Unmarshal(body, &b); err != nil {
		return spec, newError(CodeIotHubFormatError, "The request body is not a valid "+what+" JSON object: "+jsonErrorText(err))
	}
	if b.DeviceID != nil && *b.DeviceID != res.device {
		return spec, newError(CodeArgumentInvalid, fmt.Sprintf("The deviceId in the body (%q) is not the one in the path (%q).", *b.DeviceID, res.device))
	}
	if res.module != "" && b.ModuleID != nil && *b.ModuleID != res.module {
		return spec, newError(CodeArgumentInvalid, fmt.Sprintf("The moduleId in the body (%q) is not the one in the path (%q).", *b.ModuleID, res.module))
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
		var auth registry.Auth
		var keys symmetricKeys
		if err := json.Unmarshal(b.Authentication, &auth); err != nil {
			return spec, newError(CodeIotHubFormatError, "The authentication object is not valid: "+jsonErrorText(err))
		}
		if err := json.Unmarshal(b.Authentication, &keys); err != nil {
			return spec, newError(CodeIotHubFormatError, "The authentication object is not valid: "+jsonErrorText(err))
		}
		if auth.Type == "" {
			// As Microsoft's SDKs normalise it: a thumbprint makes it selfSigned.
			auth.Type = registry.AuthSAS
			if auth.PrimaryThumbprint != "" {
				auth.Type = registry.AuthSelfSigned
			}
		}
		if auth.Type == registry.AuthSAS {
			auth.PrimaryThumbprint, auth.SecondaryThumbprint = "", "" // the SDKs send them null or empty
		}
		if err := auth.Check(); err != nil {
			return spec, newError(CodeArgumentInvalid, "Authentication: "+err.Error()+".")
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
					return spec, newError(CodeArgumentInvalid, "The symmetric key "+f.name+" is not base64.")
				}
				*f.dst = key // its length is the registry's to check
			}
		}
	}
	return spec, nil
}

// registryError maps a registry error to the hub's.
func (h *Handler) registryError(err error, res resource) *hubError {
	switch {
	case errors.Is(err, registry.ErrAlreadyExists):
		return newError(CodeDeviceAlreadyExists, "A device with ID '"+res.device+"' is already registered.")
	case errors.Is(err, registry.ErrModuleAlreadyExists):
		return newError(CodeModuleAlreadyExists, "A module with ID '"+res.module+"' already exists on device '"+res.device+"'.")
	case errors.Is(err, registry.ErrPreconditionFailed):
		return newError(CodePreconditionFailed, "Precondition failed: the If-Match etag does not match the identity's current etag.")
	case errors.Is(err, registry.ErrInvalidIdentity):
		return newError(CodeArgumentInvalid, capitalize(strings.TrimPrefix(err.Error(), registry.ErrInvalidIdentity.Error()+": "))+".")
	}
	return h.twinError(err, res.device, res.module)
}

// decodeDevicesList reads GET /devices?top=N.
func decodeDevicesList(_ *Handler, c *call) *hubError {
	top := maxDevicesListTop
	if v, found := queryParam(c.r.URL.RawQuery, "top"); found {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDevicesListTop {
			return newError(CodeArgumentInvalid, "top must be a whole number from 1 to 1000.")
		}
		top = n
	}
	c.in = top
	return nil
}

// serveDevicesList serves GET /devices?top=N: the first N devices by id.
func (h *Handler) serveDevicesList(c *call) int {
	ids := h.reg.DeviceIDs(false)
	if top := c.in.(int); len(ids) > top {
		ids = ids[:top]
	}
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		if doc, err := h.reg.Identity(id, ""); err == nil {
			out = append(out, doc)
		}
	}
	return h.writeJSON(c, out, nil)
}

// serveDeviceStatistics serves GET /statistics/devices.
func (h *Handler) serveDeviceStatistics(c *call) int {
	n, _ := h.reg.Count()
	off := h.reg.Disabled()
	return h.writeJSON(c, map[string]int{"totalDeviceCount": n, "enabledDeviceCount": n - off, "disabledDeviceCount": off}, nil)
}

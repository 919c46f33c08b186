package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/dmctl/dmctl/internal/hubsim/registry"
)

// serveTwinGet serves GET /twins/{id} and GET /twins/{id}/modules/{mid}.
func (h *Handler) serveTwinGet(c *call) int {
	twin, err := h.reg.Twin(c.res.device, c.res.module)
	if err != nil {
		return h.fail(c, h.twinError(err, c.res.device, c.res.module))
	}
	return h.writeTwin(c, twin)
}

// decodeTwin reads the twin document of a PATCH (merge) or PUT (replace).
func decodeTwin(_ *Handler, c *call) *hubError {
	body, err := readBody(c.r)
	if err != nil {
		return bodyError(err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	if len(bytes.TrimSpace(body)) == 0 {
		return newError(CodeIotHubFormatError, "The request body is empty; expected a twin JSON object.")
	}
	if err := dec.Decode(&doc); err != nil || dec.More() {
		msg := "The request body is not a valid twin JSON object"
		if err != nil {
			msg += ": " + jsonErrorText(err)
		} else {
			msg += ": it has content after the object."
		}
		return newError(CodeIotHubFormatError, msg)
	}
	if doc == nil {
		return newError(CodeArgumentInvalid, "The twin must be a JSON object, not null.")
	}
	c.in = doc
	return nil
}

// serveTwinPatch merges into a device or module twin; If-Match "" or "*"
// is unconditional.
func (h *Handler) serveTwinPatch(c *call) int {
	twin, err := h.reg.PatchTwin(c.res.device, c.res.module, c.in.(map[string]any), parseIfMatch(c.r.Header.Get("If-Match")))
	if err != nil {
		return h.fail(c, h.twinError(err, c.res.device, c.res.module))
	}
	return h.writeTwin(c, twin)
}

// serveTwinPut replaces a device or module twin's tags and desired
// properties.
func (h *Handler) serveTwinPut(c *call) int {
	twin, err := h.reg.ReplaceTwin(c.res.device, c.res.module, c.in.(map[string]any), parseIfMatch(c.r.Header.Get("If-Match")))
	if err != nil {
		return h.fail(c, h.twinError(err, c.res.device, c.res.module))
	}
	return h.writeTwin(c, twin)
}

func (h *Handler) writeTwin(c *call, twin map[string]any) int {
	var extra http.Header
	if etag, ok := twin["etag"].(string); ok && etag != "" {
		extra = http.Header{"Etag": {strconv.Quote(etag)}}
	}
	return h.writeJSON(c, twin, extra)
}

func (h *Handler) twinError(err error, deviceID, moduleID string) *hubError {
	switch {
	case errors.Is(err, registry.ErrDeviceNotFound):
		return deviceNotFound(deviceID)
	case errors.Is(err, registry.ErrModuleNotFound):
		return moduleNotFound(deviceID, moduleID)
	case errors.Is(err, registry.ErrPreconditionFailed):
		return newError(CodePreconditionFailed, "Precondition failed: the If-Match etag does not match the twin's current etag.")
	case errors.Is(err, registry.ErrInvalidPatch):
		return newError(CodeArgumentInvalid, capitalize(err.Error())+".")
	}
	h.log.Printf("twin %q/%q: %v", deviceID, moduleID, err)
	return newError(CodeServerError, "An internal server error occurred.")
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

package hubsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/devices"
)

// handleTwinGet serves GET /twins/{id} and GET /twins/{id}/modules/{mid}.
func (s *Server) handleTwinGet(w http.ResponseWriter, r *http.Request, reqID, deviceID, moduleID string) int {
	if herr := s.auth.authorize(r, accessRead, resource{deviceID, moduleID}); herr != nil {
		return s.fail(w, reqID, herr)
	}
	if st, ok := s.throttleWait(r, reqID, w, s.limiter.AllowTwinRead, "twin reads"); !ok {
		return st
	}
	twin, err := s.reg.Twin(deviceID, moduleID)
	if err != nil {
		return s.fail(w, reqID, s.twinError(err, deviceID, moduleID))
	}
	return s.writeTwin(w, reqID, twin)
}

// handleTwinWrite serves PATCH (merge) and PUT (replace) on device and
// module twins. If-Match "" or "*" is unconditional.
func (s *Server) handleTwinWrite(w http.ResponseWriter, r *http.Request, reqID, deviceID, moduleID string, replace bool) int {
	if herr := s.auth.authorize(r, accessTwinWrite, resource{deviceID, moduleID}); herr != nil {
		return s.fail(w, reqID, herr)
	}
	body, err := readBody(r)
	if err != nil {
		return s.fail(w, reqID, bodyError(err))
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	if len(bytes.TrimSpace(body)) == 0 {
		return s.fail(w, reqID, newError(codeIotHubFormatError, "The request body is empty; expected a twin JSON object."))
	}
	if err := dec.Decode(&doc); err != nil || dec.More() {
		msg := "The request body is not a valid twin JSON object"
		if err != nil {
			msg += ": " + jsonErrorText(err)
		} else {
			msg += ": it has content after the object."
		}
		return s.fail(w, reqID, newError(codeIotHubFormatError, msg))
	}
	if doc == nil {
		return s.fail(w, reqID, newError(codeArgumentInvalid, "The twin must be a JSON object, not null."))
	}
	if st, ok := s.throttleWait(r, reqID, w, s.limiter.AllowTwinUpdate, "twin updates"); !ok {
		return st
	}
	ifMatch := parseIfMatch(r.Header.Get("If-Match"))
	var twin map[string]any
	if replace {
		twin, err = s.reg.ReplaceTwin(deviceID, moduleID, doc, ifMatch)
	} else {
		twin, err = s.reg.PatchTwin(deviceID, moduleID, doc, ifMatch)
	}
	if err != nil {
		return s.fail(w, reqID, s.twinError(err, deviceID, moduleID))
	}
	return s.writeTwin(w, reqID, twin)
}

// throttleWait applies a throttle class; ok=false means the answer
// (429001, or a client gone while shaped) is already decided.
func (s *Server) throttleWait(r *http.Request, reqID string, w http.ResponseWriter, allow func() (time.Duration, bool), what string) (int, bool) {
	wait, ok := allow()
	if !ok {
		s.counters.throttled.Add(1)
		return s.fail(w, reqID, throttleError(what, s.tierDesc)), false
	}
	if wait > 0 {
		s.counters.shaped.Add(1)
		if !s.sleep(r.Context(), wait) {
			return statusClientClosed, false
		}
	}
	return 0, true
}

func (s *Server) writeTwin(w http.ResponseWriter, reqID string, twin map[string]any) int {
	b, err := json.Marshal(twin)
	if err != nil {
		s.log.Printf("encode twin: %v", err)
		return s.fail(w, reqID, newError(codeServerError, "An internal server error occurred."))
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSONValue
	h["X-Ms-Request-Id"] = []string{reqID}
	if etag, ok := twin["etag"].(string); ok && etag != "" {
		h["Etag"] = []string{strconv.Quote(etag)}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return http.StatusOK
}

func (s *Server) twinError(err error, deviceID, moduleID string) *hubError {
	switch {
	case errors.Is(err, devices.ErrDeviceNotFound):
		return deviceNotFound(deviceID)
	case errors.Is(err, devices.ErrModuleNotFound):
		return moduleNotFound(deviceID, moduleID)
	case errors.Is(err, devices.ErrPreconditionFailed):
		return newError(codePreconditionFailed, "Precondition failed: the If-Match etag does not match the twin's current etag.")
	case errors.Is(err, devices.ErrInvalidPatch):
		return newError(codeArgumentInvalid, capitalize(err.Error())+".")
	}
	s.log.Printf("twin %q/%q: %v", deviceID, moduleID, err)
	return newError(codeServerError, "An internal server error occurred.")
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

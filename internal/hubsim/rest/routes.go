package rest

import (
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/entra"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
)

// endpoint is one operation of the API: what the chain checks before it
// serves, declared once in the route table.
type endpoint struct {
	route  route  // the request counters' name
	access access // the permission authorize checks; accessNone: no api-version, no authentication
	class  class  // the throttle class, counted once the request is valid
	faults bool   // injected faults apply (direct methods)
	// decode reads and checks the body and parameters (400) into the call;
	// nil: nothing to decode.
	decode func(h *Handler, c *call) *hubError
	serve  func(h *Handler, c *call) int
}

// call is one request on its way through the chain.
type call struct {
	w   http.ResponseWriter
	r   *http.Request
	id  string   // the request id (x-ms-request-id)
	res resource // the device or module of the path; device "" = the hub
	job string   // the job id of the path
	// Set by decode: the request's own data.
	cost   int           // bytes the methods throttle counts (a method's payload)
	method string        // the direct method's name (faults are drawn per method)
	invoke invokeRequest // the decoded direct method call (kept out of in: the hot path)
	in     any           // the decoded request of other endpoints, for serve
	fault  registry.Fault
}

// pattern is a route: path segments ("{device}", "{module}" and "{job}"
// capture a percent-decoded id) and the endpoint of each method allowed.
type pattern struct {
	segs    []string
	slashOK bool // a trailing "/" is the same resource
	methods []methodEndpoint
	allow   string // the Allow header of a 405
}

type methodEndpoint struct {
	method string
	ep     *endpoint
}

func on(path string, methods ...methodEndpoint) pattern {
	p := pattern{segs: strings.Split(path, "/"), methods: methods}
	var allow []string
	for _, m := range methods {
		allow = append(allow, m.method)
	}
	p.allow = strings.Join(allow, ", ")
	return p
}

func (p pattern) orSlash() pattern { p.slashOK = true; return p }

func get(ep *endpoint) methodEndpoint    { return methodEndpoint{http.MethodGet, ep} }
func head(ep *endpoint) methodEndpoint   { return methodEndpoint{http.MethodHead, ep} }
func post(ep *endpoint) methodEndpoint   { return methodEndpoint{http.MethodPost, ep} }
func put(ep *endpoint) methodEndpoint    { return methodEndpoint{http.MethodPut, ep} }
func patch(ep *endpoint) methodEndpoint  { return methodEndpoint{http.MethodPatch, ep} }
func remove(ep *endpoint) methodEndpoint { return methodEndpoint{http.MethodDelete, ep} }

// The endpoints. Access and throttle classes follow contract §1.5 and §5.4
// (what a hub's policies and roles allow, what each operation counts against).
var (
	epInvokeDevice = &endpoint{route: routeInvokeDevice, access: accessInvoke, class: classMethods, faults: true, decode: decodeInvoke, serve: (*Handler).serveInvoke}
	epInvokeModule = &endpoint{route: routeInvokeModule, access: accessInvoke, class: classMethods, faults: true, decode: decodeInvoke, serve: (*Handler).serveInvoke}

	epTwinGet         = &endpoint{route: routeTwinGet, access: accessRead, class: classTwinRead, serve: (*Handler).serveTwinGet}
	epTwinPatch       = &endpoint{route: routeTwinPatch, access: accessTwinWrite, class: classTwinUpdate, decode: decodeTwin, serve: (*Handler).serveTwinPatch}
	epTwinPut         = &endpoint{route: routeTwinPut, access: accessTwinWrite, class: classTwinUpdate, decode: decodeTwin, serve: (*Handler).serveTwinPut}
	epModuleTwinGet   = &endpoint{route: routeModuleTwinGet, access: accessRead, class: classTwinRead, serve: (*Handler).serveTwinGet}
	epModuleTwinPatch = &endpoint{route: routeModuleTwinPatch, access: accessTwinWrite, class: classTwinUpdate, decode: decodeTwin, serve: (*Handler).serveTwinPatch}
	epModuleTwinPut   = &endpoint{route: routeModuleTwinPut, access: accessTwinWrite, class: classTwinUpdate, decode: decodeTwin, serve: (*Handler).serveTwinPut}

	epQuery = &endpoint{route: routeQuery, access: accessRead, class: classQuery, decode: decodeQuery, serve: (*Handler).serveQuery}

	epDevices          = &endpoint{route: routeRegistry, access: accessRead, class: classRegistry, decode: decodeDevicesList, serve: (*Handler).serveDevicesList}
	epIdentityGet      = &endpoint{route: routeRegistry, access: accessRead, class: classRegistry, serve: (*Handler).serveIdentity}
	epIdentityPut      = &endpoint{route: routeRegistry, access: accessRegistryWrite, class: classRegistry, decode: decodeIdentity, serve: (*Handler).serveIdentityPut}
	epIdentityDelete   = &endpoint{route: routeRegistry, access: accessRegistryWrite, class: classRegistry, serve: (*Handler).serveIdentityDelete}
	epModules          = &endpoint{route: routeRegistry, access: accessRead, class: classRegistry, serve: (*Handler).serveModulesList}
	epDeviceStatistics = &endpoint{route: routeRegistry, access: accessRead, class: classRegistry, serve: (*Handler).serveDeviceStatistics}

	epImportExportJobs = &endpoint{route: routeImportExportJobs, access: accessRead, class: classJobs, serve: (*Handler).serveImportExportJobs}
	epJobsQuery        = &endpoint{route: routeJobsQuery, access: accessRead, class: classJobs, decode: decodeJobsQuery, serve: (*Handler).serveJobsQuery}
	epJobGet           = &endpoint{route: routeJobGet, access: accessRead, class: classJobs, serve: (*Handler).serveJobGet}
	// Writing jobs needs ServiceConnect (Entra: Data Contributor), as invoking does.
	epJobPut    = &endpoint{route: routeJobPut, access: accessInvoke, class: classJobs, decode: decodeJob, serve: (*Handler).serveJobCreate}
	epJobCancel = &endpoint{route: routeJobCancel, access: accessInvoke, class: classJobs, serve: (*Handler).serveJobCancel}

	epStats = &endpoint{route: routeStats, access: accessNone, serve: (*Handler).serveStats}
	epEntra = &endpoint{route: routeEntra, access: accessNone, serve: (*Handler).serveEntra}
)

// routes is the route table, tried in order (literal segments before ids).
var routes = []pattern{
	on("twins/{device}", get(epTwinGet), patch(epTwinPatch), put(epTwinPut)),
	on("twins/{device}/methods", post(epInvokeDevice)),
	on("twins/{device}/modules/{module}", get(epModuleTwinGet), patch(epModuleTwinPatch), put(epModuleTwinPut)),
	on("twins/{device}/modules/{module}/methods", post(epInvokeModule)),
	on("devices/query", post(epQuery)),
	on("devices", get(epDevices)).orSlash(),
	on("devices/{device}", get(epIdentityGet), put(epIdentityPut), remove(epIdentityDelete)),
	on("devices/{device}/modules", get(epModules)),
	on("devices/{device}/modules/{module}", get(epIdentityGet), put(epIdentityPut), remove(epIdentityDelete)),
	on("statistics/devices", get(epDeviceStatistics)),
	on("jobs", get(epImportExportJobs)).orSlash(),
	on("jobs/v2/query", get(epJobsQuery)),
	on("jobs/v2/{job}", get(epJobGet), put(epJobPut)),
	on("jobs/v2/{job}/cancel", post(epJobCancel)),
	on("hubsim/stats", get(epStats), head(epStats)),
}

// callPool recycles calls: one per request on the hot path otherwise.
var callPool = sync.Pool{New: func() any { return new(call) }}

// statusClientClosed counts requests whose client went away before the answer.
const statusClientClosed = 499

// ServeHTTP routes hub requests. Paths are matched on the escaped path and
// each id segment is percent-decoded on its own, so ids holding '/', '#',
// '?' or '%' work when clients encode them.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var start time.Time
	if h.cfg.Verbose {
		start = time.Now()
	}
	c := callPool.Get().(*call)
	*c = call{w: w, r: r, id: h.requestID(r)}
	rt := routeUnknown
	status := 0
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler { //nolint:errorlint // sentinel compared by identity, as net/http does
				h.counters.count(rt, statusClientClosed)
				panic(rec)
			}
			h.log.Printf("panic serving %s %s: %v\n%s", r.Method, r.URL.Path, rec, debug.Stack())
			status = CodeServerError / 1000
			writeError(w, c.id, h.now(), newError(CodeServerError, "An internal server error occurred."))
		}
		h.counters.count(rt, status)
		if h.cfg.Verbose {
			h.log.Printf("%s %s %d %s rid=%s", r.Method, r.URL.Path, status, time.Since(start).Round(time.Microsecond), c.id)
		}
		*c = call{} // nothing keeps a call once served
		callPool.Put(c)
	}()
	ep, herr := match(c)
	if ep != nil {
		rt = ep.route
	}
	if herr != nil {
		status = h.fail(c, herr)
		return
	}
	status = h.chain(ep, c)
}

// match finds the endpoint of c's path and method and decodes the path's
// ids into c. A 405 or a bad id comes with the endpoint (for the counters).
func match(c *call) (*endpoint, *hubError) {
	path := c.r.URL.EscapedPath()
	var buf [maxSegs]string
	n, ok := splitPath(path, &buf)
	segs := buf[:n]
	if !ok {
		segs = nil // deeper than any route
	}
	for i := range routes {
		p := &routes[i]
		if !p.match(segs) {
			continue
		}
		var ep *endpoint
		for _, m := range p.methods {
			if m.method == c.r.Method {
				ep = m.ep
				break
			}
		}
		if ep == nil {
			c.w.Header().Set("Allow", p.allow)
			return p.methods[0].ep, newError(CodeGenericMethodNotAllowed, "The HTTP method is not allowed on this resource; allowed: "+p.allow+".")
		}
		for i, s := range p.segs {
			name, isID := idName(s)
			if !isID {
				continue
			}
			v, err := url.PathUnescape(segs[i])
			if err != nil || v == "" {
				return ep, newError(CodeArgumentInvalid, "The "+name+" id in the path is empty or not percent-encoded correctly.")
			}
			switch name {
			case "device":
				c.res.device = v
			case "module":
				c.res.module = v
			case "job":
				c.job = v
			}
		}
		return ep, nil
	}
	if entra.Match(path) { // the local tenant's discovery and token endpoints
		return epEntra, nil
	}
	return nil, newError(CodeGenericNotFound, "The requested resource "+displayID(c.r.URL.Path)+" was not found.")
}

// maxSegs is more segments than any route has.
const maxSegs = 6

// splitPath splits an escaped path into its segments without allocating
// and returns how many; false when it has more than any route.
func splitPath(path string, segs *[maxSegs]string) (int, bool) {
	rest := strings.TrimPrefix(path, "/")
	for n := 0; n < maxSegs; n++ {
		seg, after, more := strings.Cut(rest, "/")
		segs[n] = seg
		if !more {
			return n + 1, true
		}
		rest = after
	}
	return 0, false
}

// idName says whether a pattern segment captures an id, and which.
func idName(seg string) (string, bool) {
	if len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

// match reports whether segs is p's path.
func (p *pattern) match(segs []string) bool {
	if p.slashOK && len(segs) == len(p.segs)+1 && segs[len(segs)-1] == "" {
		segs = segs[:len(p.segs)]
	}
	if len(segs) != len(p.segs) {
		return false
	}
	for i, s := range p.segs {
		if _, isID := idName(s); !isID && segs[i] != s {
			return false
		}
	}
	return true
}

// chain applies the endpoint's policy in the one order every request
// takes: api-version, authorization, decoding, throttle, faults; then serves.
func (h *Handler) chain(ep *endpoint, c *call) int {
	if ep.access != accessNone {
		if herr := checkAPIVersion(c.r); herr != nil {
			return h.fail(c, herr)
		}
		if herr := h.auth.authorize(c.r, ep.access, c.res); herr != nil {
			return h.fail(c, herr)
		}
	}
	if ep.decode != nil {
		if herr := ep.decode(h, c); herr != nil {
			return h.fail(c, herr)
		}
	}
	if st, ok := h.throttle(c, ep.class); !ok {
		return st
	}
	if ep.faults && h.cfg.Faulty {
		if st, ok := h.inject(c); !ok {
			return st
		}
	}
	return ep.serve(h, c)
}

// class is a throttle class: what a request counts against.
type class int

const (
	classNone class = iota
	classMethods
	classQuery
	classTwinRead
	classTwinUpdate
	classJobs
	classRegistry
)

// classNames name the classes in 429001 messages.
var classNames = [...]string{
	classMethods:    "direct methods",
	classQuery:      "queries",
	classTwinRead:   "twin reads",
	classTwinUpdate: "twin updates",
	classJobs:       "jobs operations",
	classRegistry:   "identity registry operations",
}

// throttle counts c against cl; ok=false means the answer (429001, or a
// client gone while shaped) is already decided.
func (h *Handler) throttle(c *call, cl class) (int, bool) {
	var wait time.Duration
	var ok bool
	switch cl {
	case classNone:
		return 0, true
	case classMethods:
		wait, ok = h.limiter.AllowMethod(c.cost)
	case classQuery:
		wait, ok = h.limiter.AllowQuery()
	case classTwinRead:
		wait, ok = h.limiter.AllowTwinRead()
	case classTwinUpdate:
		wait, ok = h.limiter.AllowTwinUpdate()
	case classJobs:
		wait, ok = h.limiter.AllowJobOp()
	case classRegistry:
		wait, ok = h.limiter.AllowRegistryOp()
	}
	if !ok {
		h.counters.throttled.Add(1)
		return h.fail(c, throttleError(classNames[cl], h.cfg.Tier)), false
	}
	if wait > 0 {
		h.counters.shaped.Add(1)
		if !h.cfg.Sleep(c.r.Context(), wait) {
			return statusClientClosed, false
		}
	}
	return 0, true
}

// inject draws the fault for c's method; ok=false means the fault answered.
// Unknown devices and modules are never hit (the registry answers them).
func (h *Handler) inject(c *call) (int, bool) {
	f := h.reg.Fault(c.res.device, c.res.module, c.method)
	c.fault = f
	if f != registry.FaultNone && int(f) < len(h.counters.faults) {
		h.counters.faults[f].Add(1)
	}
	var e *hubError
	switch f {
	case registry.FaultThrottle:
		e = throttleError(classNames[classMethods], h.cfg.Tier)
	case registry.FaultServerError:
		e = newError(CodeServerError, "An internal server error occurred.")
	case registry.FaultUnavailable:
		e = newError(CodeServiceUnavailable, "The service is temporarily unavailable. Retry the request later.")
	case registry.FaultGatewayTimeout:
		e = newError(CodeGatewayTimeout, "Timed out waiting for the response from device.")
	default:
		return 0, true
	}
	e.fault = f.String()
	return h.fail(c, e), false
}

func (h *Handler) serveEntra(c *call) int {
	h.cfg.Authority.Handler().ServeHTTP(c.w, c.r)
	return http.StatusOK
}

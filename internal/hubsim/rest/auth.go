package rest

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/entra"
	"github.com/dmctl/dmctl/internal/hubsim/identity"
	"github.com/dmctl/dmctl/internal/sas"
)

// access is what a request asks to do, for the permission check.
type access int

const (
	accessNone          access = iota // open: no api-version, no authentication (hubsim's stats, the Entra endpoints)
	accessInvoke                      // direct methods: ServiceConnect; Entra: directMethods/invoke
	accessRead                        // query, twin GET: RegistryRead or ServiceConnect; Entra: */read
	accessTwinWrite                   // twin PATCH/PUT: ServiceConnect or RegistryWrite; Entra: twins/write
	accessRegistryWrite               // identity PUT/DELETE: RegistryWrite; Entra: devices/write, devices/delete
)

func (a access) String() string {
	switch a {
	case accessInvoke:
		return "ServiceConnect"
	case accessRead:
		return "RegistryRead"
	case accessRegistryWrite:
		return "RegistryWrite"
	default:
		return "ServiceConnect or RegistryWrite"
	}
}

// sasAllows says whether a policy's permissions allow a.
func sasAllows(p identity.Perm, a access) bool {
	switch a {
	case accessInvoke:
		return p&identity.PermServiceConnect != 0
	case accessRead:
		return p&(identity.PermRegistryRead|identity.PermServiceConnect) != 0
	case accessTwinWrite:
		return p&(identity.PermServiceConnect|identity.PermRegistryWrite) != 0
	case accessRegistryWrite:
		return p&identity.PermRegistryWrite != 0
	}
	return false
}

// roleAllows says whether an Azure RBAC data-plane role allows a (built-in
// role definitions, contract §5.4).
func roleAllows(role string, a access) bool {
	switch {
	case strings.EqualFold(role, entra.RoleDataContributor):
		return true
	case strings.EqualFold(role, entra.RoleDataReader):
		return a == accessRead
	case strings.EqualFold(role, entra.RoleTwinContributor):
		return a == accessRead || a == accessTwinWrite
	case strings.EqualFold(role, entra.RoleRegistryContributor):
		return a == accessRegistryWrite // devices/*: not the twin reads accessRead also covers
	}
	return false
}

// sasEntry is a verified SAS token.
type sasEntry struct {
	token    string // the whole Authorization header
	policy   string
	perms    identity.Perm
	resource string // sr, decoded
	expiry   time.Time
}

// maxCachedSAS bounds the verified-token cache; it is cleared when full.
const maxCachedSAS = 8192

// authenticator checks Authorization headers. Verified SAS tokens are cached
// by their exact text until they expire, so a client that reuses a token
// costs one map lookup per request instead of an HMAC.
type authenticator struct {
	policies  map[string]identity.Perm
	keys      map[string][]byte
	authority *entra.Authority
	hosts     []string // the hub host with and without port
	now       func() time.Time

	mu    sync.RWMutex
	cache map[string]*sasEntry
	last  atomic.Pointer[sasEntry] // the last token verified or found: a lock-free hit for the usual single client
}

// resource names what a request touches, for the sr check: a device, a
// module, or (device "") the device query.
type resource struct{ device, module string }

func (r resource) path() string {
	switch {
	case r.device == "":
		return "devices/query"
	case r.module == "":
		return "devices/" + r.device
	}
	return "devices/" + r.device + "/modules/" + r.module
}

func newAuthenticator(keys map[string][]byte, authority *entra.Authority, hostName string, now func() time.Time) *authenticator {
	a := &authenticator{
		policies:  map[string]identity.Perm{},
		keys:      map[string][]byte{},
		authority: authority,
		hosts:     hostVariants(hostName),
		now:       now,
		cache:     map[string]*sasEntry{},
	}
	for _, p := range identity.Policies {
		a.policies[p.Name] = p.Perms
		a.keys[p.Name] = keys[p.Name]
	}
	return a
}

// hostVariants returns host and, when it carries a port, host without it.
func hostVariants(host string) []string {
	out := []string{host}
	if h, ok := stripPort(host); ok {
		out = append(out, h)
	}
	return out
}

func stripPort(host string) (string, bool) {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.HasSuffix(host, "]") {
		return host, false
	}
	if strings.Count(host, ":") > 1 && !strings.HasPrefix(host, "[") {
		return host, false // a bare IPv6 literal
	}
	return host[:i], true
}

// authorize checks r's Authorization for want on res. It returns nil when allowed.
func (a *authenticator) authorize(r *http.Request, want access, res resource) *hubError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return newError(CodeUnauthorized, "Authorization header missing.")
	}
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return a.authorizeBearer(r, strings.TrimSpace(tok), want)
	}
	e, herr := a.verifySAS(h)
	if herr != nil {
		return herr
	}
	if !a.srCovers(e.resource, r.Host, res) {
		return newError(CodeUnauthorizedAccess, "Unauthorized: the token's resource (sr) does not cover this hub or this request's resource.")
	}
	if !sasAllows(e.perms, want) {
		return newError(CodeUnauthorized, "Authorization rule '"+e.policy+"' does not allow access for '"+want.String()+"'.")
	}
	return nil
}

func (a *authenticator) verifySAS(h string) (*sasEntry, *hubError) {
	now := a.now()
	e := a.last.Load()
	if e == nil || e.token != h {
		a.mu.RLock()
		e = a.cache[h]
		a.mu.RUnlock()
		if e != nil {
			a.last.Store(e)
		}
	}
	if e != nil {
		if now.Before(e.expiry) {
			return e, nil
		}
		return nil, newError(CodeUnauthorizedAccess, "Unauthorized: the shared access signature has expired.")
	}
	if !strings.HasPrefix(strings.TrimSpace(h), sas.Prefix) {
		return nil, newError(CodeUnauthorizedAccess, "Unauthorized: the Authorization header is neither a SharedAccessSignature nor a Bearer token.")
	}
	tok, err := sas.Parse(h)
	if err != nil {
		return nil, newError(CodeUnauthorizedAccess, "Unauthorized: "+err.Error()+".")
	}
	if tok.KeyName == "" {
		return nil, newError(CodeUnauthorizedAccess, "Unauthorized: the token has no shared access policy name (skn); device credentials cannot call service APIs.")
	}
	policy := tok.KeyName
	key, ok := a.keys[policy]
	if !ok {
		for name, k := range a.keys { // policy names are matched case-insensitively
			if strings.EqualFold(name, policy) {
				policy, key, ok = name, k, true
				break
			}
		}
	}
	if !ok {
		return nil, newError(CodeUnauthorizedAccess, "Unauthorized: unknown shared access policy '"+displayID(tok.KeyName)+"'.")
	}
	perms := a.policies[policy]
	if perms&(identity.PermRegistryRead|identity.PermRegistryWrite|identity.PermServiceConnect) == 0 {
		return nil, newError(CodeUnauthorized, "Authorization rule '"+policy+"' does not allow access to service APIs.")
	}
	switch err := tok.Verify(key, now); {
	case errors.Is(err, sas.ErrExpired):
		return nil, newError(CodeUnauthorizedAccess, "Unauthorized: the shared access signature has expired.")
	case err != nil:
		return nil, newError(CodeUnauthorizedAccess, "Unauthorized: the shared access signature does not match the key of policy '"+policy+"'.")
	}
	e = &sasEntry{token: h, policy: policy, perms: perms, resource: tok.Resource, expiry: tok.Expiry}
	a.mu.Lock()
	if len(a.cache) >= maxCachedSAS {
		clear(a.cache)
	}
	a.cache[h] = e
	a.mu.Unlock()
	a.last.Store(e)
	return e, nil
}

// srCovers reports whether a token for sr grants access to res on this
// hub (identity.Covers): its host is the hub host, with or without port, as
// configured or as the client addressed the hub in Host.
func (a *authenticator) srCovers(sr, requestHost string, res resource) bool {
	return identity.Covers(sr, res.path(), func(host string) bool { return a.hostMatches(host, requestHost) })
}

func (a *authenticator) hostMatches(host, requestHost string) bool {
	for _, h := range a.hosts {
		if strings.EqualFold(host, h) {
			return true
		}
	}
	if requestHost == "" {
		return false
	}
	if strings.EqualFold(host, requestHost) {
		return true
	}
	h, ok := stripPort(requestHost)
	return ok && strings.EqualFold(host, h)
}

func (a *authenticator) authorizeBearer(r *http.Request, tok string, want access) *hubError {
	if a.authority == nil || tok == "" {
		return newError(CodeUnauthorizedAccess, "Unauthorized: the bearer token is not valid.")
	}
	id, err := a.authority.Verify(tok)
	if err != nil {
		return newError(CodeUnauthorizedAccess, "Unauthorized: "+err.Error()+".")
	}
	if !roleAllows(id.Principal.Role, want) {
		// A real hub answers 401 IotHubUnauthorized here, not 403.
		return newError(CodeUnauthorized, "Principal "+id.Principal.ObjectID+" is not authorized for "+r.Method+" on "+displayID(r.URL.Path)+" due to no assigned permissions")
	}
	return nil
}

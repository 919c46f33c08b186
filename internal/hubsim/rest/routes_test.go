package rest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryRouteGoesThroughTheChain: each endpoint of the table but the
// open ones (stats, Entra) asks for an api-version and then for
// authorization before it reads anything, so no handler can be reached
// around the chain.
func TestEveryRouteGoesThroughTheChain(t *testing.T) {
	h := New(Config{HostName: "hub.local"}) // no registry, jobs or limiter: reaching them would panic
	n := 0
	for _, p := range routes {
		path := "/" + strings.NewReplacer("{device}", "d", "{module}", "m", "{job}", "j").Replace(strings.Join(p.segs, "/"))
		for _, m := range p.methods {
			if m.ep.access == accessNone {
				continue
			}
			n++
			serve := func(query string, hdr map[string]string) *httptest.ResponseRecorder {
				req := httptest.NewRequest(m.method, "https://hub.local"+path+query, strings.NewReader(`{}`))
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec
			}
			rec := serve("", nil)
			assert.Equal(t, "InvalidProtocolVersion", rec.Header().Get("iothub-errorcode"), "%s %s without api-version", m.method, path)
			rec = serve("?api-version=2021-04-12", nil)
			assert.Equal(t, http.StatusUnauthorized, rec.Code, "%s %s without Authorization", m.method, path)
			rec = serve("?api-version=2021-04-12", map[string]string{"Authorization": "SharedAccessSignature sr=hub.local&sig=x&se=1&skn=nope"})
			assert.Equal(t, "IotHubUnauthorizedAccess", rec.Header().Get("iothub-errorcode"), "%s %s with a bad token", m.method, path)
		}
	}
	require.Greater(t, n, 20, "the table's authenticated endpoints")
}

// TestRouteTable: literal routes win over ids, a method a route does not
// serve is 405 with the route's Allow, ids are percent-decoded one by one.
func TestRouteTable(t *testing.T) {
	cases := []struct {
		method, path string
		want         *endpoint
		allow        string
		res          resource
		job          string
	}{
		{"POST", "/devices/query", epQuery, "", resource{}, ""},
		{"GET", "/devices/query", epQuery, "POST", resource{}, ""},
		{"GET", "/devices/q%2Fx", epIdentityGet, "", resource{device: "q/x"}, ""},
		{"DELETE", "/devices/d/modules/m%23", epIdentityDelete, "", resource{"d", "m#"}, ""},
		{"GET", "/devices/", epDevices, "", resource{}, ""},
		{"GET", "/jobs/", epImportExportJobs, "", resource{}, ""},
		{"GET", "/jobs/v2/query", epJobsQuery, "", resource{}, ""},
		{"PUT", "/jobs/v2/query", epJobsQuery, "GET", resource{}, ""},
		{"POST", "/jobs/v2/a%20b/cancel", epJobCancel, "", resource{}, "a b"},
		{"DELETE", "/twins/d", epTwinGet, "GET, PATCH, PUT", resource{}, ""},
		{"HEAD", "/hubsim/stats", epStats, "", resource{}, ""},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "https://hub.local"+c.path, nil)
		rec := httptest.NewRecorder()
		cl := &call{w: rec, r: req}
		ep, herr := match(cl)
		assert.Same(t, c.want, ep, "%s %s", c.method, c.path)
		if c.allow != "" {
			require.NotNil(t, herr, "%s %s", c.method, c.path)
			assert.Equal(t, CodeGenericMethodNotAllowed, herr.code)
			assert.Equal(t, c.allow, rec.Header().Get("Allow"))
			continue
		}
		require.Nil(t, herr, "%s %s", c.method, c.path)
		assert.Equal(t, c.res, cl.res, "%s %s", c.method, c.path)
		assert.Equal(t, c.job, cl.job, "%s %s", c.method, c.path)
	}
	for _, path := range []string{"/", "/twins", "/twins/a/methods/", "/devices/a/b", "/jobs/v2/a/b"} {
		ep, herr := match(&call{w: httptest.NewRecorder(), r: httptest.NewRequest("GET", "https://hub.local"+path, nil)})
		assert.Nil(t, ep, path)
		require.NotNil(t, herr, path)
		assert.Equal(t, CodeGenericNotFound, herr.code, path)
	}
}

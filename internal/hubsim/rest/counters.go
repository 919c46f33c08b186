package rest

import (
	"strconv"
	"sync/atomic"
	"time"
)

// route identifies a REST endpoint for the request counters.
type route int

const (
	routeUnknown route = iota
	routeInvokeDevice
	routeInvokeModule
	routeQuery
	routeTwinGet
	routeTwinPatch
	routeTwinPut
	routeModuleTwinGet
	routeModuleTwinPatch
	routeModuleTwinPut
	routeEntra
	routeStats
	routeJobPut
	routeJobGet
	routeJobCancel
	routeJobsQuery
	routeImportExportJobs
	routeRegistry
	numRoutes
)

var routeNames = [numRoutes]string{
	routeUnknown:          "other",
	routeInvokeDevice:     "POST /twins/{id}/methods",
	routeInvokeModule:     "POST /twins/{id}/modules/{mid}/methods",
	routeQuery:            "POST /devices/query",
	routeTwinGet:          "GET /twins/{id}",
	routeTwinPatch:        "PATCH /twins/{id}",
	routeTwinPut:          "PUT /twins/{id}",
	routeModuleTwinGet:    "GET /twins/{id}/modules/{mid}",
	routeModuleTwinPatch:  "PATCH /twins/{id}/modules/{mid}",
	routeModuleTwinPut:    "PUT /twins/{id}/modules/{mid}",
	routeEntra:            "entra (discovery, token)",
	routeStats:            "GET /hubsim/stats",
	routeJobPut:           "PUT /jobs/v2/{id}",
	routeJobGet:           "GET /jobs/v2/{id}",
	routeJobCancel:        "POST /jobs/v2/{id}/cancel",
	routeJobsQuery:        "GET /jobs/v2/query",
	routeImportExportJobs: "GET /jobs",
	routeRegistry:         "GET, PUT, DELETE /devices/{id}[/modules/{mid}]; GET /devices, /statistics/devices",
}

// counters are the server's own counters; lock-free on the hot path.
type counters struct {
	started   time.Time
	byStatus  [numRoutes][600]atomic.Int64
	delivered atomic.Int64 // methods delivered to devices (OnDelivered)
	throttled atomic.Int64 // calls refused by the throttle (429001)
	shaped    atomic.Int64 // calls delayed by traffic shaping
	faults    [6]atomic.Int64
	dropped   atomic.Int64 // connections closed by FaultDrop
}

func (c *counters) count(r route, status int) {
	if status < 100 || status >= 600 {
		status = 599
	}
	c.byStatus[r][status].Add(1)
}

// routeCounts is one route's counters in /hubsim/stats.
type routeCounts struct {
	Total    int64            `json:"total"`
	ByStatus map[string]int64 `json:"byStatus"`
}

func (c *counters) requests() map[string]routeCounts {
	out := map[string]routeCounts{}
	for r := range numRoutes {
		rs := routeCounts{ByStatus: map[string]int64{}}
		for st := range c.byStatus[r] {
			if n := c.byStatus[r][st].Load(); n > 0 {
				rs.ByStatus[strconv.Itoa(st)] = n
				rs.Total += n
			}
		}
		if rs.Total > 0 {
			out[routeNames[r]] = rs
		}
	}
	return out
}

package registry

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// Firmware-update states reported in iothubDM.firmwareUpdate.status
// (iothub-contract.md §4.3, tutorial spelling).
const (
	FwWaiting          = "waiting"
	FwDownloading      = "downloading"
	FwDownloadComplete = "downloadComplete"
	FwDownloadFailed   = "downloadFailed"
	FwApplying         = "applying"
	FwApplyComplete    = "applyComplete"
	FwApplyFailed      = "applyFailed"
)

// Factory-reset states reported in iothubDM.factoryReset.status.
const (
	ResetResetting = "resetting"
	ResetComplete  = "resetComplete"
)

const (
	lcReboot = iota
	lcFirmware
	lcReset
)

// dmState is the compact form of a simulated device's iothubDM reported
// properties (so a fleet-wide reboot does not cost a map tree per device).
// Times are unix ns (Options.Now); 0 = not set.
type dmState struct {
	rebootStarted, lastReboot int64
	fw                        *fwState
	resetStatus               string
	resetStatusT              int64
	resetStarted, lastReset   int64
	updated                   int64
}

type fwState struct {
	status  string
	statusT int64
	uri     string
	uriT    int64
	errCode string
	errMsg  string
	errT    int64
	// startedWaitingTime, startedDownloadingTime, downloadCompleteTime,
	// startedApplyingImage, lastFirmwareUpdate
	times [5]int64
}

var fwTimeNames = [5]string{"startedWaitingTime", "startedDownloadingTime", "downloadCompleteTime", "startedApplyingImage", "lastFirmwareUpdate"}

func (id *identity) dmLocked() *dmState {
	if id.dm == nil {
		id.dm = &dmState{}
	}
	return id.dm
}

// bumpReportedLocked records a reported change made by the simulation.
func (r *Registry) bumpReportedLocked(id *identity, t int64) {
	id.reportedVersion++
	id.reportedUpdated = t
	id.version++
	if id.dm != nil && t > id.dm.updated {
		id.dm.updated = t
	}
	r.stats.reportedUpdates.Add(1)
}

// render merges the life-cycle state into owned reported props and meta.
func (dm *dmState) render(props map[string]any, meta *metaNode) (map[string]any, *metaNode) {
	if props == nil {
		props = map[string]any{}
	}
	if meta == nil {
		meta = &metaNode{}
	}
	iot, ok := props["iothubDM"].(map[string]any)
	if !ok {
		iot = map[string]any{}
		props["iothubDM"] = iot
		meta.kid("iothubDM")
		meta.kids["iothubDM"] = &metaNode{}
	}
	im := meta.kid("iothubDM")
	setLeaf := func(obj map[string]any, node *metaNode, k string, v any, t int64) {
		obj[k] = v
		node.kid(k)
		node.kids[k] = &metaNode{t: t}
		if t > node.t {
			node.t = t
		}
	}
	object := func(name string, replace bool) (map[string]any, *metaNode) {
		o, ok := iot[name].(map[string]any)
		if !ok || replace {
			o = map[string]any{}
			iot[name] = o
			im.kid(name)
			im.kids[name] = &metaNode{}
		}
		return o, im.kid(name)
	}
	if dm.rebootStarted != 0 || dm.lastReboot != 0 {
		o, n := object("reboot", false)
		if dm.rebootStarted != 0 {
			setLeaf(o, n, "startedRebootTime", ts(dm.rebootStarted), dm.rebootStarted)
		}
		if dm.lastReboot != 0 {
			setLeaf(o, n, "lastReboot", ts(dm.lastReboot), dm.lastReboot)
		}
	}
	if f := dm.fw; f != nil {
		o, n := object("firmwareUpdate", true)
		setLeaf(o, n, "status", f.status, f.statusT)
		setLeaf(o, n, "fwPackageUri", f.uri, f.uriT)
		if f.errCode != "" {
			setLeaf(o, n, "error", map[string]any{"code": f.errCode, "message": f.errMsg}, f.errT)
			n.kids["error"].kids = map[string]*metaNode{"code": {t: f.errT}, "message": {t: f.errT}}
		}
		for i, t := range f.times {
			if t != 0 {
				setLeaf(o, n, fwTimeNames[i], ts(t), t)
			}
		}
	}
	if dm.resetStatus != "" || dm.lastReset != 0 {
		o, n := object("factoryReset", false)
		if dm.resetStatus != "" {
			setLeaf(o, n, "status", dm.resetStatus, dm.resetStatusT)
		}
		if dm.resetStarted != 0 {
			setLeaf(o, n, "startedFactoryResetTime", ts(dm.resetStarted), dm.resetStarted)
		}
		if dm.lastReset != 0 {
			setLeaf(o, n, "lastFactoryReset", ts(dm.lastReset), dm.lastReset)
		}
	}
	for _, kid := range im.kids {
		if kid.t > im.t {
			im.t = kid.t
		}
	}
	if im.t > meta.t {
		meta.t = im.t
	}
	return props, meta
}

// simAnswer is what a simulated device answers and the life cycle it starts.
type simAnswer struct {
	status int
	resp   json.RawMessage
	start  func() // starts the life cycle when the device answers; may be nil
}

var (
	payloadRebootStarted = json.RawMessage(`{"message":"Reboot started"}`)
	payloadFwStarted     = json.RawMessage(`{"message":"Firmware update started"}`)
	payloadResetStarted  = json.RawMessage(`{"message":"Factory reset started"}`)
	payloadBadURI        = json.RawMessage(`{"message":"Invalid URL format. Must use https:// protocol."}`)
)

// answerLocked decides a simulated device's answer to a known method; n is
// the identity's draw counter for this call. Caller holds id.mu.
func (r *Registry) answerLocked(id *identity, method string, b *behavior, payload json.RawMessage, n uint64) simAnswer {
	a := simAnswer{status: b.status, resp: b.payload}
	ok2xx := b.status >= 200 && b.status < 300
	switch method {
	case sim.MethodReboot:
		if a.resp == nil {
			a.resp = payloadRebootStarted
		}
		if ok2xx {
			a.start = func() { r.startReboot(id, b.downtime) }
		}
	case sim.MethodFactoryReset:
		if a.resp == nil {
			a.resp = payloadResetStarted
		}
		if ok2xx {
			a.start = func() { r.startFactoryReset(id, b.downtime) }
		}
	case sim.MethodFirmwareUpdate:
		uri, valid := fwPackageURI(payload)
		if !valid {
			return simAnswer{status: 400, resp: payloadBadURI}
		}
		if a.resp == nil {
			a.resp = payloadFwStarted
		}
		if ok2xx {
			fail := b.failureRate > 0 && sim.Uniform(id.hkey, streamFailure, n) < b.failureRate
			inDownload := sim.Uniform(id.hkey, streamFailPhase, n) < 0.5
			a.start = func() { r.startFirmwareUpdate(id, uri, b.step, fail, inDownload) }
		}
	default:
		if a.resp == nil {
			a.resp = echoPayload(method, payload)
		}
	}
	return a
}

// fwPackageURI extracts an https fwPackageUri from a firmwareUpdate payload.
func fwPackageURI(payload json.RawMessage) (string, bool) {
	var body struct {
		URI any `json:"fwPackageUri"`
	}
	if json.Unmarshal(payload, &body) != nil {
		return "", false
	}
	s, ok := body.URI.(string)
	if !ok {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" {
		return "", false
	}
	return s, true
}

// maxEcho is the largest request payload echoed back (the hub limits a
// response payload to 128 KB).
const maxEcho = 64 * 1024

// echoPayload is the default answer of a method without a configured
// payload: {"method":"<name>","received":<request payload>}; payloads over
// 64 KB are not echoed: {"method":"<name>","receivedBytes":<n>}.
func echoPayload(method string, payload json.RawMessage) json.RawMessage {
	name, _ := json.Marshal(method)
	if len(payload) > maxEcho {
		return json.RawMessage(`{"method":` + string(name) + `,"receivedBytes":` + strconv.Itoa(len(payload)) + `}`)
	}
	if len(payload) == 0 || !json.Valid(payload) {
		payload = json.RawMessage("null")
	}
	out := make([]byte, 0, len(name)+len(payload)+24)
	out = append(out, `{"method":`...)
	out = append(out, name...)
	out = append(out, `,"received":`...)
	out = append(out, payload...)
	out = append(out, '}')
	return out
}

// notImplemented is the device's 404 answer to an unknown method.
func notImplemented(method string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"message": "Method '" + method + "' is not implemented by this device"})
	return b
}

// startReboot: report startedRebootTime, stay offline for downtime, then
// report lastReboot and come back.
func (r *Registry) startReboot(id *identity, downtime time.Duration) {
	t := r.nowNano()
	id.mu.Lock()
	id.lcGen[lcReboot]++
	gen := id.lcGen[lcReboot]
	id.dmLocked().rebootStarted = t
	r.bumpReportedLocked(id, t)
	until := time.Now().Add(downtime).UnixNano()
	id.downUntil.Store(until)
	id.mu.Unlock()
	time.AfterFunc(downtime, func() {
		t := r.nowNano()
		id.mu.Lock()
		if id.lcGen[lcReboot] == gen {
			id.dmLocked().lastReboot = t
			id.lastActivity = t
			r.bumpReportedLocked(id, t)
		}
		id.downUntil.CompareAndSwap(until, 0) // unless another life cycle took it down since
		id.wakeLocked()
		id.mu.Unlock()
		id.wakeModules()
	})
}

// startFactoryReset: status resetting (offline for downtime), then
// resetComplete with lastFactoryReset.
func (r *Registry) startFactoryReset(id *identity, downtime time.Duration) {
	t := r.nowNano()
	id.mu.Lock()
	id.lcGen[lcReset]++
	gen := id.lcGen[lcReset]
	dm := id.dmLocked()
	dm.resetStatus, dm.resetStatusT, dm.resetStarted = ResetResetting, t, t
	r.bumpReportedLocked(id, t)
	until := time.Now().Add(downtime).UnixNano()
	id.downUntil.Store(until)
	id.mu.Unlock()
	time.AfterFunc(downtime, func() {
		t := r.nowNano()
		id.mu.Lock()
		if id.lcGen[lcReset] == gen {
			dm := id.dmLocked()
			dm.resetStatus, dm.resetStatusT, dm.lastReset = ResetComplete, t, t
			if dm.resetStarted == 0 { // folded into the maps meanwhile
				dm.resetStarted = t
			}
			id.lastActivity = t
			r.bumpReportedLocked(id, t)
		}
		id.downUntil.CompareAndSwap(until, 0)
		id.wakeLocked()
		id.mu.Unlock()
		id.wakeModules()
	})
}

// startFirmwareUpdate walks waiting, downloading, downloadComplete,
// applying, applyComplete one step apart, or stops at downloadFailed or
// applyFailed. The walk keeps its own state so that a reported patch from a
// device in between cannot lose it.
func (r *Registry) startFirmwareUpdate(id *identity, uri string, step time.Duration, fail, inDownload bool) {
	t := r.nowNano()
	id.mu.Lock()
	id.lcGen[lcFirmware]++
	gen := id.lcGen[lcFirmware]
	st := &fwState{status: FwWaiting, statusT: t, uri: uri, uriT: t}
	st.times[0] = t
	if prev := id.dmLocked().fw; prev != nil {
		st.times[4] = prev.times[4] // keep lastFirmwareUpdate
	} else if p, _ := id.reportedLocked(); p != nil {
		st.times[4] = lastFirmwareUpdateOf(p)
	}
	id.dm.fw = st
	r.bumpReportedLocked(id, t)
	id.mu.Unlock()

	type stepFn func(st *fwState, t int64) (done bool)
	steps := []stepFn{
		func(st *fwState, t int64) bool { st.status = FwDownloading; st.times[1] = t; return false },
		func(st *fwState, t int64) bool {
			if fail && inDownload {
				st.status, st.errCode, st.errMsg, st.errT = FwDownloadFailed, "DownloadFailed", "simulated download failure", t
				return true
			}
			st.status = FwDownloadComplete
			st.times[2] = t
			return false
		},
		func(st *fwState, t int64) bool { st.status = FwApplying; st.times[3] = t; return false },
		func(st *fwState, t int64) bool {
			if fail {
				st.status, st.errCode, st.errMsg, st.errT = FwApplyFailed, "ApplyFailed", "simulated apply failure", t
				return true
			}
			st.status = FwApplyComplete
			st.times[4] = t
			return true
		},
	}
	var next func(i int)
	next = func(i int) {
		time.AfterFunc(step, func() {
			t := r.nowNano()
			id.mu.Lock()
			if id.lcGen[lcFirmware] != gen {
				id.mu.Unlock()
				return
			}
			done := steps[i](st, t)
			st.statusT = t
			id.dmLocked().fw = st
			id.lastActivity = t
			r.bumpReportedLocked(id, t)
			id.mu.Unlock()
			if !done {
				next(i + 1)
			}
		})
	}
	next(0)
}

func lastFirmwareUpdateOf(reported map[string]any) int64 {
	iot, _ := reported["iothubDM"].(map[string]any)
	fw, _ := iot["firmwareUpdate"].(map[string]any)
	s, _ := fw["lastFirmwareUpdate"].(string)
	if s == "" {
		return 0
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0
	}
	return t.UnixNano()
}

// wakeModules wakes calls waiting for a device's modules (they follow the
// device's connection). Called without id.mu held.
func (id *identity) wakeModules() {
	p := id.modules.Load()
	if p == nil {
		return
	}
	for _, m := range *p {
		m.mu.Lock()
		m.wakeLocked()
		m.mu.Unlock()
	}
}

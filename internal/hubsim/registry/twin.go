package registry

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

var errNilHandler = errors.New("nil method handler")

// timeFormat is the hub's ISO-8601 form (7 fractional digits, UTC).
const timeFormat = "2006-01-02T15:04:05.0000000Z"

func ts(ns int64) string {
	if ns == 0 {
		return "0001-01-01T00:00:00Z"
	}
	return time.Unix(0, ns).UTC().Format(timeFormat)
}

// Etag returns the etag of a twin at a version: the standard base64 of the
// 8-byte big-endian version, e.g. "AAAAAAAAAAE=" for 1, as a
// hub's etags look. It changes whenever the twin version does.
func Etag(version int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(version))
	return base64.StdEncoding.EncodeToString(b[:])
}

// section is an owned twin properties section (desired or reported).
type section struct {
	props map[string]any
	meta  *metaNode
}

// metaNode is the compact form of a section's $metadata: when a node was
// last updated and, for desired, at which version.
type metaNode struct {
	t    int64
	v    int64
	kids map[string]*metaNode
}

func (m *metaNode) kid(k string) *metaNode {
	if m.kids == nil {
		m.kids = map[string]*metaNode{}
	}
	n := m.kids[k]
	if n == nil {
		n = &metaNode{}
		m.kids[k] = n
	}
	return n
}

func (m *metaNode) clone() *metaNode {
	if m == nil {
		return nil
	}
	c := &metaNode{t: m.t, v: m.v}
	if m.kids != nil {
		c.kids = make(map[string]*metaNode, len(m.kids))
		for k, v := range m.kids {
			c.kids[k] = v.clone()
		}
	}
	return c
}

// metaFor builds metadata for props all updated at t (version v, 0 = none).
func metaFor(props map[string]any, t, v int64) *metaNode {
	n := &metaNode{t: t, v: v}
	for k, val := range props {
		if sub, ok := val.(map[string]any); ok {
			n.kid(k)
			n.kids[k] = metaFor(sub, t, v)
		} else {
			n.kid(k).t, n.kids[k].v = t, v
		}
	}
	return n
}

// render writes the $metadata JSON form of m.
func (m *metaNode) render(withVersion bool) map[string]any {
	out := make(map[string]any, len(m.kids)+2)
	out["$lastUpdated"] = ts(m.t)
	if withVersion && m.v > 0 {
		out["$lastUpdatedVersion"] = m.v
	}
	for k, kid := range m.kids {
		out[k] = kid.render(withVersion)
	}
	return out
}

// mergePatch applies a JSON merge patch (null deletes) to owned props and
// their metadata, at time t and version v.
func mergePatch(props map[string]any, meta *metaNode, patch map[string]any, t, v int64) {
	meta.t = t
	if v > 0 {
		meta.v = v
	}
	for k, pv := range patch {
		if pv == nil {
			delete(props, k)
			if meta.kids != nil {
				delete(meta.kids, k)
			}
			continue
		}
		if pm, ok := pv.(map[string]any); ok {
			cur, isMap := props[k].(map[string]any)
			if !isMap {
				cur = map[string]any{}
				props[k] = cur
				meta.kid(k)
				meta.kids[k] = &metaNode{}
			}
			mergePatch(cur, meta.kid(k), pm, t, v)
			continue
		}
		props[k] = deepCopy(pv)
		n := &metaNode{t: t, v: v}
		meta.kid(k)
		meta.kids[k] = n
	}
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return deepCopyMap(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

func deepCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopy(v)
	}
	return out
}

func invalidPatch(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPatch, fmt.Sprintf(format, args...))
}

// Twin returns the twin document of a device (moduleID "") or module, a
// fresh map the caller may keep or change (iothub-contract.md §4.2).
//
// Shape: deviceId, moduleId (modules), etag, deviceEtag, version, status
// "enabled", statusUpdateTime, connectionState "Connected"|"Disconnected",
// lastActivityTime, cloudToDeviceMessageCount, authenticationType ("sas",
// or the X.509 type, auth.go), x509Thumbprint, modelId, capabilities {iotEdge:false} (devices), tags,
// properties {desired, reported} each with $metadata and $version. statusReason
// is absent (as on a hub, it only appears once set). etag is described on
// Etag; version increments on every change to tags, desired or reported.
func (r *Registry) Twin(deviceID, moduleID string) (map[string]any, error) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	r.stats.twinReads.Add(1)
	return r.twinDoc(id), nil
}

func (r *Registry) twinDoc(id *identity) map[string]any {
	now := time.Now().UnixNano()
	id.mu.Lock()
	defer id.mu.Unlock()
	return r.renderLocked(id, now)
}

func (id *identity) tagsLocked() map[string]any {
	if id.tags != nil || id.tagsOwned || id.grp == nil {
		return id.tags
	}
	return id.grp.tags
}

// desiredLocked returns the desired props and metadata (maybe the group's
// read-only templates).
func (id *identity) desiredLocked() (map[string]any, *metaNode) {
	if id.desired != nil {
		return id.desired.props, id.desired.meta
	}
	if id.grp != nil {
		return id.grp.desired, id.grp.desiredMeta
	}
	return nil, nil
}

func (id *identity) reportedLocked() (map[string]any, *metaNode) {
	if id.reported != nil {
		return id.reported.props, id.reported.meta
	}
	if id.grp != nil {
		return id.grp.reported, id.grp.reportMeta
	}
	return nil, nil
}

func (id *identity) ownReportedLocked() *section {
	if id.reported == nil {
		p, m := id.reportedLocked()
		id.reported = &section{props: deepCopyMap(p), meta: m.clone()}
		if id.reported.props == nil {
			id.reported.props = map[string]any{}
		}
		if id.reported.meta == nil {
			id.reported.meta = &metaNode{t: id.created}
		}
	}
	if id.dm != nil { // fold the compact life-cycle state into the maps
		props, meta := id.dm.render(id.reported.props, id.reported.meta)
		id.reported.props, id.reported.meta = props, meta
		id.dm = nil
	}
	return id.reported
}

func (r *Registry) renderLocked(id *identity, now int64) map[string]any {
	doc := make(map[string]any, 18)
	doc["deviceId"] = id.deviceID
	if id.moduleID != "" {
		doc["moduleId"] = id.moduleID
	}
	doc["etag"] = Etag(id.version)
	doc["deviceEtag"] = id.identityEtag()
	doc["version"] = id.version
	dev := id
	if id.parent != nil {
		dev = id.parent // a module's twin shows its device's status
	}
	if dev == id {
		doc["status"], _, doc["statusUpdateTime"] = id.statusLocked()
	} else {
		dev.mu.Lock()
		doc["status"], _, doc["statusUpdateTime"] = dev.statusLocked()
		dev.mu.Unlock()
	}
	if id.connectedLocked(now) {
		doc["connectionState"] = "Connected"
	} else {
		doc["connectionState"] = "Disconnected"
	}
	last := id.lastActivity
	if last == 0 && id.grp != nil && !id.permOffline && (id.parent == nil || !id.parent.permOffline) {
		last = id.created // simulated devices connected when the fleet was created
	}
	doc["lastActivityTime"] = ts(last)
	doc["cloudToDeviceMessageCount"] = 0
	doc["authenticationType"] = "sas"
	doc["x509Thumbprint"] = map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil}
	id.x509DocsLocked(nil, doc)
	doc["modelId"] = ""
	if id.moduleID == "" {
		doc["capabilities"] = map[string]any{"iotEdge": false}
	}
	tags := deepCopyMap(id.tagsLocked())
	if tags == nil {
		tags = map[string]any{}
	}
	doc["tags"] = tags

	dp, dm := id.desiredLocked()
	desired := deepCopyMap(dp)
	if desired == nil {
		desired = map[string]any{}
	}
	if dm == nil {
		dm = &metaNode{t: id.created, v: 1}
	}
	desired["$metadata"] = dm.render(true)
	desired["$version"] = id.desiredVersion

	rp, rm := id.reportedLocked()
	reported := deepCopyMap(rp)
	if reported == nil {
		reported = map[string]any{}
	}
	if rm == nil {
		rm = &metaNode{t: id.created}
	}
	if id.dm != nil {
		reported, rm = id.dm.render(reported, rm.clone())
	}
	reported["$metadata"] = rm.render(false)
	reported["$version"] = id.reportedVersion
	doc["properties"] = map[string]any{"desired": desired, "reported": reported}
	return doc
}

// parseIfMatch strips quotes and a weak prefix from an If-Match value.
func etagMatches(ifMatch string, version int64) bool {
	m := strings.TrimSpace(ifMatch)
	if m == "" || m == "*" || m == `"*"` {
		return true
	}
	m = strings.TrimPrefix(m, "W/")
	m = strings.Trim(m, `"`)
	return m == Etag(version)
}

// PatchTwin merges tags and properties.desired into a twin (a member set to
// null is deleted) and returns the new twin. ifMatch "" or "*" is
// unconditional; otherwise it must equal the current etag (quoted or not)
// or ErrPreconditionFailed is returned. Writing properties.reported, bad
// member names, nesting deeper than 10 or sections over the hub's size
// limits (tags 8 KB, desired 32 KB) give ErrInvalidPatch. Read-only
// top-level fields (deviceId, etag, version, ...) are ignored.
func (r *Registry) PatchTwin(deviceID, moduleID string, patch map[string]any, ifMatch string) (map[string]any, error) {
	return r.writeTwin(deviceID, moduleID, patch, ifMatch, false)
}

// ReplaceTwin replaces a twin's tags and desired properties (PUT): what the
// document does not contain is removed. properties.reported in the
// document is ignored (it is device-owned). ifMatch as for PatchTwin.
func (r *Registry) ReplaceTwin(deviceID, moduleID string, twin map[string]any, ifMatch string) (map[string]any, error) {
	return r.writeTwin(deviceID, moduleID, twin, ifMatch, true)
}

func (r *Registry) writeTwin(deviceID, moduleID string, doc map[string]any, ifMatch string, replace bool) (map[string]any, error) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	if doc == nil {
		doc = map[string]any{}
	}
	var tagsPatch, desiredPatch map[string]any
	hasTags, hasDesired := false, false
	if v, ok := doc["tags"]; ok && v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, invalidPatch("tags must be an object")
		}
		tagsPatch, hasTags = m, true
	} else if ok && !replace { // "tags": null clears the tags
		tagsPatch, hasTags = nil, true
	}
	if v, ok := doc["properties"]; ok && v != nil {
		props, ok := v.(map[string]any)
		if !ok {
			return nil, invalidPatch("properties must be an object")
		}
		for k, sv := range props {
			switch k {
			case "desired":
				if sv == nil {
					continue
				}
				m, ok := sv.(map[string]any)
				if !ok {
					return nil, invalidPatch("properties.desired must be an object")
				}
				desiredPatch, hasDesired = stripDollar(m), true
			case "reported":
				if replace {
					continue
				}
				if EmptyReported(sv) {
					continue
				}
				return nil, invalidPatch("properties.reported cannot be written by the service")
			default:
				return nil, invalidPatch("properties.%s: unknown section", k)
			}
		}
	}
	if hasTags && tagsPatch != nil {
		if err := sim.CheckTwinProps(tagsPatch, !replace); err != nil {
			return nil, invalidPatch("tags: %v", err)
		}
	}
	if hasDesired {
		if err := sim.CheckTwinProps(desiredPatch, !replace); err != nil {
			return nil, invalidPatch("properties.desired: %v", err)
		}
	}
	if replace {
		hasTags, hasDesired = true, true
	}

	t := r.nowNano()
	now := time.Now().UnixNano()
	id.mu.Lock()
	if !etagMatches(ifMatch, id.version) {
		id.mu.Unlock()
		return nil, fmt.Errorf("%w: If-Match %s, current etag %q", ErrPreconditionFailed, ifMatch, Etag(id.version))
	}
	if !hasTags && !hasDesired {
		doc := r.renderLocked(id, now)
		id.mu.Unlock()
		return doc, nil
	}
	// Compute the new sections on copies, check limits, then commit.
	var newTags map[string]any
	if hasTags {
		switch {
		case replace:
			newTags = deepCopyMap(tagsPatch)
		case tagsPatch == nil:
			newTags = nil
		default:
			newTags = deepCopyMap(id.tagsLocked())
			if newTags == nil {
				newTags = map[string]any{}
			}
			mergePatch(newTags, &metaNode{}, tagsPatch, 0, 0)
		}
		if n := sim.JSONSize(newTags); newTags != nil && n > sim.MaxTagsBytes {
			id.mu.Unlock()
			return nil, invalidPatch("tags would be %d bytes; at most %d", n, sim.MaxTagsBytes)
		}
	}
	var newDesired *section
	var notify map[string]any
	newDV := id.desiredVersion
	if hasDesired {
		newDV++
		if replace {
			old, _ := id.desiredLocked()
			newDesired = &section{props: deepCopyMap(desiredPatch), meta: metaFor(desiredPatch, t, newDV)}
			if newDesired.props == nil {
				newDesired.props = map[string]any{}
			}
			notify = deepCopyMap(desiredPatch)
			if notify == nil {
				notify = map[string]any{}
			}
			for k := range old {
				if _, ok := desiredPatch[k]; !ok {
					notify[k] = nil
				}
			}
		} else {
			p, m := id.desiredLocked()
			newDesired = &section{props: deepCopyMap(p), meta: m.clone()}
			if newDesired.props == nil {
				newDesired.props = map[string]any{}
			}
			if newDesired.meta == nil {
				newDesired.meta = &metaNode{t: id.created, v: 1}
			}
			mergePatch(newDesired.props, newDesired.meta, desiredPatch, t, newDV)
			notify = deepCopyMap(desiredPatch)
		}
		if n := sim.JSONSize(newDesired.props); n > sim.MaxSectionBytes {
			id.mu.Unlock()
			return nil, invalidPatch("properties.desired would be %d bytes; at most %d", n, sim.MaxSectionBytes)
		}
		notify["$version"] = newDV
	}
	if hasTags {
		id.tags, id.tagsOwned = newTags, true
	}
	if hasDesired {
		id.desired = newDesired
		id.desiredVersion = newDV
		id.desiredUpdated = t
	}
	id.version++
	out := r.renderLocked(id, now)
	var subs []*desiredSub
	if hasDesired {
		subs = append(subs, id.subs...)
	}
	id.mu.Unlock()
	r.stats.twinUpdates.Add(1)
	for i, s := range subs {
		p := notify
		if i < len(subs)-1 {
			p = deepCopyMap(notify)
		}
		s.fn(p)
	}
	return out, nil
}

// stripDollar drops the read-only "$version" and "$metadata" members SDKs
// send back from a twin they read.
// EmptyReported says whether a service's twin patch (or a twin-update job)
// may carry v as properties.reported: null, {} or only $version and
// $metadata are ignored, as IoT Hub does (Microsoft's schedule_job.js sample
// and its end-to-end test send "reported": {}); anything else is refused,
// since only the device writes reported properties.
func EmptyReported(v any) bool {
	if v == nil {
		return true
	}
	m, ok := v.(map[string]any)
	return ok && len(stripDollar(m)) == 0
}

func stripDollar(m map[string]any) map[string]any {
	if _, a := m["$version"]; !a {
		if _, b := m["$metadata"]; !b {
			return m
		}
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "$version" && k != "$metadata" {
			out[k] = v
		}
	}
	return out
}

// UpdateReported merges a reported-properties patch from the device (a
// member set to null is deleted) and returns the new reported $version.
// Bad member names, nesting deeper than 10 or more than 32 KB give
// ErrInvalidPatch.
func (r *Registry) UpdateReported(deviceID, moduleID string, patch map[string]any) (version int64, err error) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return 0, err
	}
	patch = stripDollar(patch)
	if err := sim.CheckTwinProps(patch, true); err != nil {
		return 0, invalidPatch("reported: %v", err)
	}
	t := r.nowNano()
	id.mu.Lock()
	defer id.mu.Unlock()
	// Check the size on a copy first so a refused patch changes nothing.
	p, _ := id.reportedLocked()
	trial := deepCopyMap(p)
	if trial == nil {
		trial = map[string]any{}
	}
	if id.dm != nil {
		trial, _ = id.dm.render(trial, &metaNode{})
	}
	mergePatch(trial, &metaNode{}, patch, 0, 0)
	if n := sim.JSONSize(trial); n > sim.MaxSectionBytes {
		return 0, invalidPatch("reported properties would be %d bytes; at most %d", n, sim.MaxSectionBytes)
	}
	s := id.ownReportedLocked()
	mergePatch(s.props, s.meta, patch, t, 0)
	id.reportedVersion++
	id.reportedUpdated = t
	id.version++
	id.lastActivity = t
	r.stats.reportedUpdates.Add(1)
	return id.reportedVersion, nil
}

// Each visits the twins of collection "devices" or "devices.modules" sorted
// by deviceId (then moduleId), starting after cursor ("" = from the start).
// fn gets each document's cursor (the deviceId, or "deviceId/moduleId" for
// modules; "/" cannot occur in ids) and the document; it returns false to
// stop. Paging costs a binary search in the sorted id list, not a copy of
// the fleet. Devices added while Each runs may or may not be visited.
func (r *Registry) Each(collection, cursor string, fn func(cursor string, doc map[string]any) bool) {
	ids := *r.ids.Load()
	switch collection {
	case "devices":
		i := sort.SearchStrings(ids, cursor)
		if i < len(ids) && ids[i] == cursor && cursor != "" {
			i++
		}
		for ; i < len(ids); i++ {
			d := r.device(ids[i])
			if d == nil {
				continue
			}
			if !fn(ids[i], r.twinDoc(d)) {
				return
			}
		}
	case "devices.modules":
		curDev, curMod, hasMod := strings.Cut(cursor, "/")
		i := sort.SearchStrings(ids, curDev)
		for ; i < len(ids); i++ {
			d := r.device(ids[i])
			if d == nil {
				continue
			}
			p := d.modules.Load()
			if p == nil {
				continue
			}
			for _, m := range *p {
				if cursor != "" && (ids[i] < curDev || ids[i] == curDev && (!hasMod || m.moduleID <= curMod)) {
					continue
				}
				if !fn(ids[i]+"/"+m.moduleID, r.twinDoc(m)) {
					return
				}
			}
		}
	}
}

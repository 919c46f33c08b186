package registry

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/dmctl/dmctl/internal/hubsim/sim"
)

// Device status values (the Device object's status).
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// ErrModuleAlreadyExists: 409 / 409301 (a module created twice).
var ErrModuleAlreadyExists = errors.New("module already exists on device")

// identityMeta is what an identity carries once the registry API has
// written it: most identities (a generated fleet) never have one, so it
// costs them one pointer.
type identityMeta struct {
	disabled      bool
	statusReason  string
	statusUpdated int64  // unix ns
	revision      uint64 // bumped by every replace: part of the etag
	key2          []byte // a secondary key given or generated here (nil: Options.SecondaryKey)
	runtime       bool   // created through the registry API, not by --register or a fleet
}

// IdentitySpec is a create or replace of one device (ModuleID "") or module:
// PUT /devices/{id}[/modules/{mid}].
type IdentitySpec struct {
	DeviceID, ModuleID string
	// PrimaryKey and SecondaryKey: nil generates keys for a new identity
	// and keeps the keys of an existing one.
	PrimaryKey, SecondaryKey []byte
	// Status is StatusEnabled or StatusDisabled ("" = enabled); devices
	// only, a module has no status of its own.
	Status       string
	StatusReason string
	// Auth, when set, is how the identity authenticates (nil: SAS for a
	// new identity, unchanged for an existing one).
	Auth *Auth
	// IfMatch is the request's If-Match etag (quotes removed): "" creates
	// only (an existing identity is ErrAlreadyExists or
	// ErrModuleAlreadyExists), "*" replaces any version and an etag only
	// that version (ErrPreconditionFailed otherwise); both replace only
	// (a missing identity is not found).
	IfMatch string
}

// IdentityRecord is a change the registry API made, as the server persists
// it so that a restart with the same --dir has the same identities: a
// created or replaced identity, or a deleted one (Deleted). Keys are the
// identity's own (a server keeps them in --dir with its other keys).
type IdentityRecord struct {
	DeviceID     string `json:"deviceId"`
	ModuleID     string `json:"moduleId,omitempty"`
	Deleted      bool   `json:"deleted,omitempty"`
	Created      bool   `json:"created,omitempty"` // created at run time
	PrimaryKey   []byte `json:"primaryKey,omitempty"`
	SecondaryKey []byte `json:"secondaryKey,omitempty"`
	Status       string `json:"status,omitempty"`
	StatusReason string `json:"statusReason,omitempty"`
	Revision     uint64 `json:"revision,omitempty"`
	Generation   uint64 `json:"generation,omitempty"`
	Auth         *Auth  `json:"authentication,omitempty"` // set when not SAS
}

// revocations are the listeners told when an identity may no longer be
// connected (deleted or disabled): a device endpoint closes its connection.
type revocations struct {
	mu  sync.Mutex
	fns []func(deviceID, moduleID, reason string)
}

// OnRevoked registers fn, called (outside registry locks) for every
// identity deleted or disabled, its modules included.
func (r *Registry) OnRevoked(fn func(deviceID, moduleID, reason string)) {
	r.revoked.mu.Lock()
	r.revoked.fns = append(r.revoked.fns, fn)
	r.revoked.mu.Unlock()
}

func (r *Registry) revoke(ids [][2]string, reason string) {
	r.revoked.mu.Lock()
	fns := append([]func(deviceID, moduleID, reason string){}, r.revoked.fns...)
	r.revoked.mu.Unlock()
	for _, id := range ids {
		for _, fn := range fns {
			fn(id[0], id[1], reason)
		}
	}
}

// withModules lists a device and its modules as (device, module) pairs.
func withModules(d *identity) [][2]string {
	out := [][2]string{{d.deviceID, ""}}
	if p := d.modules.Load(); p != nil {
		for _, m := range *p {
			out = append(out, [2]string{m.deviceID, m.moduleID})
		}
	}
	return out
}

// Enabled reports whether an identity exists and may connect: a device
// whose status is enabled, or a module of one.
func (r *Registry) Enabled(deviceID, moduleID string) bool {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return false
	}
	dev := id
	if id.parent != nil {
		dev = id.parent
	}
	dev.mu.Lock()
	defer dev.mu.Unlock()
	return !dev.disabledLocked()
}

func (id *identity) disabledLocked() bool { return id.meta != nil && id.meta.disabled }

// checkEtag applies an If-Match to an existing identity (caller holds id.mu).
func (id *identity) checkEtagLocked(ifMatch string) error {
	if ifMatch == "*" || ifMatch == id.identityEtag() {
		return nil
	}
	return fmt.Errorf("%w: If-Match %q is not the identity's etag %q", ErrPreconditionFailed, ifMatch, id.identityEtag())
}

func newGeneration() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

func validStatus(s string) error {
	switch s {
	case "", StatusEnabled, StatusDisabled:
		return nil
	}
	return fmt.Errorf("%w: status %q is not enabled or disabled", ErrInvalidIdentity, s)
}

// ErrInvalidIdentity: 400 / 400004 (an identity the registry refuses; the
// wrapped message says why).
var ErrInvalidIdentity = errors.New("invalid identity")

// PutIdentity creates or replaces a device or module as spec says and
// reports whether it was created. A created identity behaves like one
// added by Register: offline until a real client connects with its keys.
// Disabling a device revokes its connections (OnRevoked).
func (r *Registry) PutIdentity(spec IdentitySpec) (created bool, err error) {
	var revoked [][2]string
	created, revoked, err = r.putIdentity(spec, false, 0, 0)
	r.revoke(revoked, "the device was disabled")
	return created, err
}

func (r *Registry) putIdentity(spec IdentitySpec, restoring bool, revision, generation uint64) (bool, [][2]string, error) {
	if err := sim.CheckID(spec.DeviceID); err != nil {
		return false, nil, fmt.Errorf("%w: device id %v", ErrInvalidIdentity, err)
	}
	if spec.ModuleID != "" {
		if err := sim.CheckID(spec.ModuleID); err != nil {
			return false, nil, fmt.Errorf("%w: module id %v", ErrInvalidIdentity, err)
		}
		if spec.Status != "" || spec.StatusReason != "" {
			return false, nil, fmt.Errorf("%w: a module has no status of its own", ErrInvalidIdentity)
		}
	}
	if err := validStatus(spec.Status); err != nil {
		return false, nil, err
	}
	if a := spec.Auth; a != nil {
		if err := a.Check(); err != nil {
			return false, nil, fmt.Errorf("%w: authentication.%v", ErrInvalidIdentity, err)
		}
		if spec.ModuleID != "" && a.X509() {
			return false, nil, fmt.Errorf("%w: %v", ErrInvalidIdentity, ErrModuleX509)
		}
	}
	for i, k := range [][]byte{spec.PrimaryKey, spec.SecondaryKey} {
		if k != nil && (len(k) < 16 || len(k) > 64) {
			return false, nil, fmt.Errorf("%w: the %s symmetric key must be 16 to 64 bytes (base64), not %d", ErrInvalidIdentity, [2]string{"primary", "secondary"}[i], len(k))
		}
	}
	r.structMu.Lock()
	defer r.structMu.Unlock()
	now := r.nowNano()
	d := r.device(spec.DeviceID)
	var id *identity
	if d != nil && spec.ModuleID == "" {
		id = d
	} else if d != nil {
		id = d.module(spec.ModuleID)
	}
	if id == nil {
		if spec.IfMatch != "" && !restoring {
			if d == nil {
				return false, nil, fmt.Errorf("%w: %q", ErrDeviceNotFound, spec.DeviceID)
			}
			return false, nil, fmt.Errorf("%w: %q on device %q", ErrModuleNotFound, spec.ModuleID, spec.DeviceID)
		}
		if spec.ModuleID != "" && d == nil {
			return false, nil, fmt.Errorf("%w: %q", ErrDeviceNotFound, spec.DeviceID)
		}
		if int(r.nDevices.Load()+r.nModules.Load()) >= sim.MaxFleetDevices {
			return false, nil, fmt.Errorf("%w: a hub holds at most %d devices and modules", ErrInvalidIdentity, sim.MaxFleetDevices)
		}
		keys, err := randomKeys(2)
		if err != nil {
			return false, nil, err
		}
		if generation == 0 {
			generation = newGeneration()
		}
		id = &identity{deviceID: spec.DeviceID, moduleID: spec.ModuleID, parent: d, registered: true, created: now,
			key: keys[:32:32], hkey: sim.IdentityHash(r.opts.Seed, spec.DeviceID, spec.ModuleID) ^ generation,
			meta: &identityMeta{runtime: true, statusUpdated: now, key2: keys[32:64:64]}}
		id.initVersions()
		applySpec(id, spec, now)
		if id.meta.disabled {
			r.nOff.Add(1)
		}
		id.meta.revision = revision
		if spec.ModuleID == "" {
			r.insert(id)
			r.nReg.Add(1)
			r.addIDs([]string{spec.DeviceID})
		} else {
			r.addModuleLocked(d, id)
		}
		return true, nil, nil
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	if spec.IfMatch == "" && !restoring {
		if spec.ModuleID != "" {
			return false, nil, fmt.Errorf("%w: %q on device %q", ErrModuleAlreadyExists, spec.ModuleID, spec.DeviceID)
		}
		return false, nil, fmt.Errorf("%w: %q", ErrAlreadyExists, spec.DeviceID)
	}
	if !restoring {
		if err := id.checkEtagLocked(spec.IfMatch); err != nil {
			return false, nil, err
		}
	}
	if id.meta == nil {
		id.meta = &identityMeta{}
	}
	wasDisabled := id.meta.disabled
	applySpec(id, spec, now)
	if restoring {
		id.meta.revision = revision
	} else {
		id.meta.revision++
	}
	var revoked [][2]string
	switch {
	case id.meta.disabled && !wasDisabled:
		r.nOff.Add(1)
		revoked = withModules(id)
	case !id.meta.disabled && wasDisabled:
		r.nOff.Add(-1)
	}
	id.wakeLocked()
	return false, revoked, nil
}

// applySpec writes keys and status (caller holds id.mu or owns id).
func applySpec(id *identity, spec IdentitySpec, now int64) {
	if a := spec.Auth; a != nil {
		cp := *a
		if cp.Type == "" {
			cp.Type = AuthSAS
		}
		id.auth = &cp
	}
	if spec.PrimaryKey != nil {
		id.key = append([]byte(nil), spec.PrimaryKey...)
	}
	if spec.SecondaryKey != nil {
		id.meta.key2 = append([]byte(nil), spec.SecondaryKey...)
	}
	if spec.ModuleID != "" {
		return
	}
	disabled := spec.Status == StatusDisabled
	if disabled != id.meta.disabled {
		id.meta.statusUpdated = now
	}
	id.meta.disabled = disabled
	id.meta.statusReason = spec.StatusReason
}

// addModuleLocked adds module m to device d (caller holds structMu).
func (r *Registry) addModuleLocked(d, m *identity) {
	var mods []*identity
	if p := d.modules.Load(); p != nil {
		mods = append(mods, *p...)
	}
	mods = append(mods, m)
	sort.Slice(mods, func(i, j int) bool { return mods[i].moduleID < mods[j].moduleID })
	d.modules.Store(&mods)
	r.nModules.Add(1)
}

// DeleteIdentity removes a device (with its modules and twins) or a module.
// ifMatch is the request's If-Match ("" or "*": unconditional). Its
// connections are revoked (OnRevoked).
func (r *Registry) DeleteIdentity(deviceID, moduleID, ifMatch string) error {
	revoked, err := r.deleteIdentity(deviceID, moduleID, ifMatch)
	r.revoke(revoked, "the identity was deleted")
	return err
}

func (r *Registry) deleteIdentity(deviceID, moduleID, ifMatch string) ([][2]string, error) {
	r.structMu.Lock()
	defer r.structMu.Unlock()
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	id.mu.Lock()
	if ifMatch != "" {
		if err := id.checkEtagLocked(ifMatch); err != nil {
			id.mu.Unlock()
			return nil, err
		}
	}
	id.wakeLocked()
	if moduleID == "" && id.disabledLocked() {
		r.nOff.Add(-1)
	}
	id.mu.Unlock()
	if moduleID != "" {
		d := id.parent
		var mods []*identity
		for _, m := range *d.modules.Load() {
			if m != id {
				mods = append(mods, m)
			}
		}
		d.modules.Store(&mods)
		r.nModules.Add(-1)
		return [][2]string{{deviceID, moduleID}}, nil
	}
	revoked := withModules(id)
	s := &r.shards[shardOf(deviceID)]
	s.mu.Lock()
	delete(s.m, deviceID)
	s.mu.Unlock()
	r.nDevices.Add(-1)
	r.nModules.Add(-int64(len(revoked) - 1))
	if id.grp != nil {
		r.nSim.Add(-1)
	} else {
		r.nReg.Add(-1)
	}
	old := *r.ids.Load()
	i := sort.SearchStrings(old, deviceID)
	if i < len(old) && old[i] == deviceID {
		ids := make([]string, 0, len(old)-1)
		ids = append(append(ids, old[:i]...), old[i+1:]...)
		r.ids.Store(&ids)
	}
	return revoked, nil
}

// Record returns the persistent form of an identity after the registry API
// wrote it (ok false: no such identity).
func (r *Registry) Record(deviceID, moduleID string) (IdentityRecord, bool) {
	id, err := r.lookup(deviceID, moduleID)
	if err != nil {
		return IdentityRecord{}, false
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	rec := IdentityRecord{DeviceID: deviceID, ModuleID: moduleID, PrimaryKey: append([]byte(nil), id.key...)}
	if m := id.meta; m != nil {
		rec.Created = m.runtime
		rec.SecondaryKey = append([]byte(nil), m.key2...)
		rec.StatusReason = m.statusReason
		rec.Revision = m.revision
		if m.disabled {
			rec.Status = StatusDisabled
		}
	}
	if rec.Created {
		rec.Generation = id.hkey ^ sim.IdentityHash(r.opts.Seed, deviceID, moduleID)
	}
	if a := id.authLocked(); a.X509() {
		rec.Auth = &a
	}
	return rec, true
}

// Restore replays a persisted record: it deletes, creates or rewrites the
// identity without etag checks, keeping its revision and generation.
func (r *Registry) Restore(rec IdentityRecord) error {
	if rec.Deleted {
		_, err := r.deleteIdentity(rec.DeviceID, rec.ModuleID, "")
		if errors.Is(err, ErrDeviceNotFound) || errors.Is(err, ErrModuleNotFound) {
			return nil
		}
		return err
	}
	id, err := r.lookup(rec.DeviceID, rec.ModuleID)
	switch {
	case !rec.Created && err != nil:
		return nil // changed an identity the fleet no longer has
	case rec.Created && err == nil && (id.meta == nil || !id.meta.runtime):
		// created at run time after the fleet's identity of that id was
		// deleted: the fleet made it again, the record replaces it
		if _, err := r.deleteIdentity(rec.DeviceID, rec.ModuleID, ""); err != nil {
			return err
		}
	}
	spec := IdentitySpec{DeviceID: rec.DeviceID, ModuleID: rec.ModuleID, PrimaryKey: rec.PrimaryKey,
		SecondaryKey: rec.SecondaryKey, Status: rec.Status, StatusReason: rec.StatusReason, Auth: rec.Auth}
	if len(spec.SecondaryKey) == 0 {
		spec.SecondaryKey = nil
	}
	_, _, err = r.putIdentity(spec, true, rec.Revision, rec.Generation)
	return err
}

// identityEtag is the etag of an identity (the twin's deviceEtag): it
// changes when the identity is replaced or created again.
func (id *identity) identityEtag() string {
	v := id.hkey % 1_000_000_000
	if id.meta != nil {
		v += id.meta.revision * 1_000_000_000
	}
	return encodeEtag(strconv.FormatUint(v, 10))
}

// statusLocked is a device's status, statusReason (nil when none) and the
// time the status last changed (caller holds id.mu).
func (id *identity) statusLocked() (status string, reason any, updated string) {
	status, reason, updated = StatusEnabled, nil, ts(0)
	if m := id.meta; m != nil {
		if m.disabled {
			status = StatusDisabled
		}
		if m.statusReason != "" {
			reason = m.statusReason
		}
		updated = ts(m.statusUpdated)
	}
	return status, reason, updated
}

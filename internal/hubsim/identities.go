package hubsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/dmctl/dmctl/internal/atomicfile"
	"github.com/dmctl/dmctl/internal/hubsim/registry"
	"github.com/dmctl/dmctl/internal/hubsim/transport/mqtt"
)

// IdentitiesFile keeps in --dir what the registry API changed (identities
// created, replaced or deleted at run time), so a restart with the same
// directory has the same identities with the same keys. Mode 0600: it
// holds keys, as state.json does.
const IdentitiesFile = "identities.json"

type identitiesDoc struct {
	Version    int                       `json:"version"`
	Identities []registry.IdentityRecord `json:"identities"`
}

// loadIdentities replays DIR/identities.json on the registry (after the
// fleet, --register and the derived keys).
func (s *Server) loadIdentities() error {
	path := filepath.Join(s.dir, IdentitiesFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var doc identitiesDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s is not valid JSON (%v); move it away to drop the identities created at run time", path, err)
	}
	s.identities = map[string]registry.IdentityRecord{}
	for _, rec := range doc.Identities {
		if err := s.reg.Restore(rec); err != nil {
			return fmt.Errorf("%s: identity %q: %w", path, clientID(rec.DeviceID, rec.ModuleID), err)
		}
		s.identities[clientID(rec.DeviceID, rec.ModuleID)] = rec
	}
	return nil
}

// recordIdentity keeps what the registry API changed about one identity
// and rewrites the file. The record is read from the registry under the
// file's lock, so whichever of two racing requests records last writes
// the registry's state, never a stale one. A gone identity is kept as a
// deletion (also one created here: its id may be a fleet identity's that
// it replaced). A failure to write is logged: the change itself has been
// made.
func (s *Server) recordIdentity(deviceID, moduleID string) {
	s.identitiesMu.Lock()
	defer s.identitiesMu.Unlock()
	if s.identities == nil {
		s.identities = map[string]registry.IdentityRecord{}
	}
	key := clientID(deviceID, moduleID)
	rec, ok := s.reg.Record(deviceID, moduleID)
	if !ok {
		rec = registry.IdentityRecord{DeviceID: deviceID, ModuleID: moduleID, Deleted: true}
		if moduleID == "" { // a device's modules went with it
			for k, r := range s.identities {
				if r.DeviceID == deviceID && r.ModuleID != "" {
					delete(s.identities, k)
				}
			}
		}
	}
	s.identities[key] = rec
	doc := identitiesDoc{Version: 1, Identities: make([]registry.IdentityRecord, 0, len(s.identities))}
	for _, r := range s.identities {
		doc.Identities = append(doc.Identities, r)
	}
	// devices before their modules: "dev" sorts before "dev/mod"
	sort.Slice(doc.Identities, func(i, j int) bool {
		a, b := doc.Identities[i], doc.Identities[j]
		if a.DeviceID != b.DeviceID {
			return a.DeviceID < b.DeviceID
		}
		return a.ModuleID < b.ModuleID
	})
	out, err := json.MarshalIndent(doc, "", "  ")
	if err == nil {
		err = atomicfile.Write(filepath.Join(s.dir, IdentitiesFile), append(out, '\n'), 0o600)
	}
	if err != nil {
		s.log.Printf("registry: could not keep identity %q in %s: %v", key, IdentitiesFile, err)
	}
}

func clientID(deviceID, moduleID string) string {
	return mqtt.Identity{DeviceID: deviceID, ModuleID: moduleID}.ClientID()
}

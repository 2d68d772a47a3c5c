package catalog

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/stewardhq/steward/platform/qlog"
)

type snapshot struct {
	LastChange int64             `json:"lastChange"`
	Services   []snapshotService `json:"services"`
	Leases     []Lease           `json:"leases"`
	Deadlines  []qlog.Deadline   `json:"deadlines"`
}

type snapshotService struct {
	Name      string          `json:"name"`
	ModRev    int64           `json:"modRev"`
	Protected bool            `json:"protected"`
	Guard     Guard           `json:"guard"`
	Flips     map[string]flip `json:"flips"` // encoding/json sorts keys
	Instances []Instance      `json:"instances"`
}

// Snapshot implements qlog.StateMachine: one JSON document, every list
// sorted.
func (s *Machine) Snapshot(w io.Writer) error {
	snap := snapshot{LastChange: s.lastChange, Services: []snapshotService{}, Leases: []Lease{}, Deadlines: s.deadlines.Deadlines()}
	for _, name := range slices.Sorted(maps.Keys(s.services)) {
		svc := s.services[name]
		ss := snapshotService{Name: name, ModRev: svc.modRev, Protected: svc.protected, Guard: svc.guard, Flips: svc.flips}
		for _, id := range slices.Sorted(maps.Keys(svc.instances)) {
			ss.Instances = append(ss.Instances, *svc.instances[id])
		}
		snap.Services = append(snap.Services, ss)
	}
	for _, id := range slices.Sorted(maps.Keys(s.leases)) {
		snap.Leases = append(snap.Leases, *s.leases[id].view())
	}
	return json.NewEncoder(w).Encode(snap)
}

// Restore implements qlog.StateMachine.
func (s *Machine) Restore(r io.Reader) error {
	var snap snapshot
	if err := json.NewDecoder(r).Decode(&snap); err != nil {
		return fmt.Errorf("catalog snapshot: %w", err)
	}
	n := New()
	n.lastChange = snap.LastChange
	for _, ss := range snap.Services {
		svc := &service{name: ss.Name, modRev: ss.ModRev, protected: ss.Protected, guard: ss.Guard,
			flips: ss.Flips, instances: map[string]*Instance{}}
		if svc.flips == nil {
			svc.flips = map[string]flip{}
		}
		for i := range ss.Instances {
			inst := ss.Instances[i]
			svc.instances[inst.ID] = &inst
		}
		n.services[ss.Name] = svc
	}
	for _, sl := range snap.Leases {
		l := &lease{ID: sl.ID, TTL: sl.TTL, ExpiresAt: sl.ExpiresAt, Instances: map[string]struct{}{}}
		for _, k := range sl.Instances {
			l.Instances[k] = struct{}{}
		}
		n.leases[l.ID] = l
	}
	n.deadlines.Load(snap.Deadlines)
	*s = *n
	return nil
}

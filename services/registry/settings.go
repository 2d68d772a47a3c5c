// Package registry is Steward's service registry: instances announce
// themselves with TTL heartbeats or are probed over HTTP and TCP, and
// clients find the healthy ones by query, blocking query or event stream.
// The state machine is in catalog, the probing in health; this package is
// the HTTP API and its declaration to the service skeleton.
package registry

import (
	"time"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// Settings are the service's STEWARD_* environment variables: the
// settings every replicated service shares, its address and its own.
type Settings struct {
	Addr envconf.Addr `envconfig:"REGISTRY_ADDR" default:":8082" desc:"listen address of the registry"`
	// AllowLocal accepts loopback, link-local and metadata addresses for
	// instances and check targets; dev mode sets it.
	AllowLocal bool `envconfig:"REGISTRY_ALLOW_LOCAL" default:"false" desc:"accept loopback, link-local and cloud-metadata addresses for instances and checks"`
	// The guard against mass deregistration (catalog.Guard); a share of
	// 1 turns it off.
	GuardMinInstances int     `envconfig:"REGISTRY_GUARD_MIN_INSTANCES" default:"3" desc:"the guard holds failures only in services with at least this many instances"`
	GuardShare        float64 `envconfig:"REGISTRY_GUARD_SHARE" default:"0.5" desc:"share of a service's instances turning critical at once that the guard holds (1: guard off)"`
	// CheckConcurrency bounds the probes one replica runs at once.
	CheckConcurrency int `envconfig:"REGISTRY_CHECK_CONCURRENCY" default:"64" desc:"active checks one replica runs at once"`
	// PresenceInterval is how often a replica announces it runs checks;
	// one missing for three intervals is presumed dead and its checks move.
	PresenceInterval time.Duration `envconfig:"REGISTRY_PRESENCE_INTERVAL" default:"1s" desc:"how often a replica announces it runs checks"`

	service.Replicated
}

// guard returns the guard policy, nil when turned off.
func (s Settings) guard() *catalog.Guard {
	if s.GuardShare >= 1 || s.GuardMinInstances <= 0 {
		return nil
	}
	return &catalog.Guard{MinInstances: s.GuardMinInstances, Share: s.GuardShare}
}

// ListenAddr is where the service listens (service.Settings).
func (s Settings) ListenAddr() string { return string(s.Addr) }

// Package registry is Steward's service registry: instances announce
// themselves with TTL heartbeats or are probed over HTTP and TCP, and
// clients find the healthy ones by query, blocking query or event stream.
// The state machine is in catalog, the probing in health; this package is
// the HTTP API and the process wiring.
package registry

import (
	"log/slog"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// Settings are the service's STEWARD_* environment variables.
type Settings struct {
	Addr           envconf.Addr `envconfig:"REGISTRY_ADDR" default:":8082"`
	NATSURL        string       `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	ReplicaID      string       `envconfig:"REPLICA_ID" default:"registry-0"`
	Voters         []string     `envconfig:"VOTERS"`
	StreamReplicas int          `envconfig:"STREAM_REPLICAS" default:"1"`
	DatabaseURL    string       `envconfig:"DATABASE_URL"`
	SnapshotEvery  int64        `envconfig:"SNAPSHOT_EVERY" default:"50000"`
	// AllowLocal accepts loopback, link-local and metadata addresses for
	// instances and check targets; dev mode sets it.
	AllowLocal bool `envconfig:"REGISTRY_ALLOW_LOCAL" default:"false"`
	// The guard against mass deregistration (catalog.Guard); a share of
	// 1 turns it off.
	GuardMinInstances int     `envconfig:"REGISTRY_GUARD_MIN_INSTANCES" default:"3"`
	GuardShare        float64 `envconfig:"REGISTRY_GUARD_SHARE" default:"0.5"`
	// CheckConcurrency bounds the probes one replica runs at once.
	CheckConcurrency int `envconfig:"REGISTRY_CHECK_CONCURRENCY" default:"64"`
	// PresenceInterval is how often a replica announces it runs checks;
	// one missing for three intervals is presumed dead and its checks move.
	PresenceInterval time.Duration `envconfig:"REGISTRY_PRESENCE_INTERVAL" default:"1s"`
	// AdvertiseAddr is the host:port this replica registers itself under
	// as steward-registry; empty derives it from the listener.
	AdvertiseAddr   string         `envconfig:"ADVERTISE_ADDR"`
	ShutdownTimeout time.Duration  `envconfig:"SHUTDOWN_TIMEOUT" default:"10s"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info"`

	// Limits bound what clients can make the server hold: watches and
	// blocking queries per client, time to send headers, idle keep-alive.
	web.Limits
}

// voters returns the voter set, defaulting to this replica alone.
func (s Settings) voters() []string {
	var out []string
	for _, v := range s.Voters {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return []string{s.ReplicaID}
	}
	return out
}

// guard returns the guard policy, nil when turned off.
func (s Settings) guard() *catalog.Guard {
	if s.GuardShare >= 1 || s.GuardMinInstances <= 0 {
		return nil
	}
	return &catalog.Guard{MinInstances: s.GuardMinInstances, Share: s.GuardShare}
}

// Logging says how the process logs (launch.Settings).
func (s Settings) Logging() (logging.Format, slog.Level) { return s.LogFormat, s.LogLevel }

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
	Addr           envconf.Addr `envconfig:"REGISTRY_ADDR" default:":8082" desc:"listen address of the registry"`
	NATSURL        string       `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server(s) with JetStream, comma-separated"`
	ReplicaID      string       `envconfig:"REPLICA_ID" default:"registry-0" desc:"this replica's id, unique among the service's replicas"`
	Voters         []string     `envconfig:"VOTERS" desc:"replica ids of the voters, comma-separated (empty: this replica alone)"`
	StreamReplicas int          `envconfig:"STREAM_REPLICAS" default:"1" desc:"JetStream replicas of the service's stream"`
	DatabaseURL    string       `envconfig:"DATABASE_URL" desc:"PostgreSQL for snapshots and history (empty: snapshots in JetStream object storage, no long-term history)"`
	SnapshotEvery  int64        `envconfig:"SNAPSHOT_EVERY" default:"50000" desc:"log entries between snapshots"`
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
	// AdvertiseAddr is the host:port this replica registers itself under
	// as steward-registry; empty derives it from the listener.
	AdvertiseAddr   string         `envconfig:"ADVERTISE_ADDR" desc:"host:port registered in the registry (empty: from the listener)"`
	ShutdownTimeout time.Duration  `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"how long in-flight requests may drain at shutdown"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto" desc:"log format: json, text or auto (text on a terminal)"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info" desc:"lowest level logged: debug, info, warn, error"`

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

// Package config is Steward's configuration service: an HTTP/JSON key/value
// store with compare-and-set, transactions, MVCC history, watches, leases
// and fencing, replicated through platform/qlog. The state machine is in
// kv; this package is the HTTP API and the process wiring.
package config

import (
	"log/slog"
	"time"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/web"
)

// Settings are the service's STEWARD_* environment variables.
type Settings struct {
	Addr            envconf.Addr `envconfig:"CONFIG_ADDR" default:":8081"`
	NATSURL         string       `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	ReplicaID       string       `envconfig:"REPLICA_ID" default:"config-0"`
	Voters          []string     `envconfig:"VOTERS"`
	StreamReplicas  int          `envconfig:"STREAM_REPLICAS" default:"1"`
	DatabaseURL     string       `envconfig:"DATABASE_URL"`
	SnapshotEvery   int64        `envconfig:"SNAPSHOT_EVERY" default:"50000"`
	RetainRevisions int64        `envconfig:"CONFIG_RETAIN_REVISIONS" default:"10000"`
	// RegistryURL is where the replica registers itself as
	// steward-config (empty: it does not); AdvertiseAddr is the host:port
	// it registers (empty: derived from the listener).
	RegistryURL     string         `envconfig:"REGISTRY_URL"`
	AdvertiseAddr   string         `envconfig:"ADVERTISE_ADDR"`
	ShutdownTimeout time.Duration  `envconfig:"SHUTDOWN_TIMEOUT" default:"10s"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info"`

	// Limits bound what clients can make the server hold: watches and
	// blocking queries per client, time to send headers, idle keep-alive.
	web.Limits
}

// Logging says how the process logs (launch.Settings).
func (s Settings) Logging() (logging.Format, slog.Level) { return s.LogFormat, s.LogLevel }

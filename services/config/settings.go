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
	Addr            envconf.Addr `envconfig:"CONFIG_ADDR" default:":8081" desc:"listen address of the config service"`
	NATSURL         string       `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server(s) with JetStream, comma-separated"`
	ReplicaID       string       `envconfig:"REPLICA_ID" default:"config-0" desc:"this replica's id, unique among the service's replicas"`
	Voters          []string     `envconfig:"VOTERS" desc:"replica ids of the voters, comma-separated (empty: this replica alone)"`
	StreamReplicas  int          `envconfig:"STREAM_REPLICAS" default:"1" desc:"JetStream replicas of the service's stream"`
	DatabaseURL     string       `envconfig:"DATABASE_URL" desc:"PostgreSQL for snapshots and history (empty: snapshots in JetStream object storage, no long-term history)"`
	SnapshotEvery   int64        `envconfig:"SNAPSHOT_EVERY" default:"50000" desc:"log entries between snapshots"`
	RetainRevisions int64        `envconfig:"CONFIG_RETAIN_REVISIONS" default:"10000" desc:"revisions of history kept in memory for ?revision= reads"`
	// RegistryURL is where the replica registers itself as
	// steward-config (empty: it does not); AdvertiseAddr is the host:port
	// it registers (empty: derived from the listener).
	RegistryURL     string         `envconfig:"REGISTRY_URL" desc:"registry this process registers itself in (empty: it does not)"`
	AdvertiseAddr   string         `envconfig:"ADVERTISE_ADDR" desc:"host:port registered in the registry (empty: from the listener)"`
	ShutdownTimeout time.Duration  `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"how long in-flight requests may drain at shutdown"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto" desc:"log format: json, text or auto (text on a terminal)"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info" desc:"lowest level logged: debug, info, warn, error"`

	// Limits bound what clients can make the server hold: watches and
	// blocking queries per client, time to send headers, idle keep-alive.
	web.Limits
}

// Logging says how the process logs (launch.Settings).
func (s Settings) Logging() (logging.Format, slog.Level) { return s.LogFormat, s.LogLevel }

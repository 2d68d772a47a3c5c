package service

import (
	"log/slog"
	"time"

	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogsvc"
	"github.com/stewardhq/steward/platform/web"
)

// Process are the settings every Steward process has, replicated or not
// (the gateway embeds this alone).
type Process struct {
	AdvertiseAddr   string         `envconfig:"ADVERTISE_ADDR" desc:"host:port registered in the registry (empty: from the listener)"`
	ShutdownTimeout time.Duration  `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"how long in-flight requests may drain at shutdown"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto" desc:"log format: json, text or auto (text on a terminal)"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info" desc:"lowest level logged: debug, info, warn, error"`

	// Limits bound what clients can make the server hold: watches and
	// blocking queries per client, time to send headers, idle keep-alive.
	web.Limits
	// TLS makes every listener serve HTTPS (and can require client
	// certificates); its CA bundle is for Steward's own clients.
	web.TLS

	// Settings of auth: STEWARD_AUTH and the tokens.
	authhttp.Settings
}

// Logging says how the process logs (launch.Settings).
func (p Process) Logging() (logging.Format, slog.Level) { return p.LogFormat, p.LogLevel }

// Replicated are the settings of every service replicated through
// platform/qlog. A service's Settings embed them beside its listen
// address and its own settings.
type Replicated struct {
	NATSURL   string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server(s) with JetStream, comma-separated"`
	ReplicaID string `envconfig:"REPLICA_ID" desc:"this replica's id, unique among the service's replicas (empty: <service>-0)"`
	// Voters are the replica ids whose majority confirms every write and
	// linearizable read; empty means this replica alone.
	Voters         []string `envconfig:"VOTERS" desc:"replica ids of the voters, comma-separated (empty: this replica alone)"`
	StreamReplicas int      `envconfig:"STREAM_REPLICAS" default:"1" desc:"JetStream replicas of the service's stream"`
	// BatchEncoding is how the replica writes its log batches. Binary
	// frames apply about 10x faster but are read only by replicas of
	// this version or later; JSON is read by all, so it is the default
	// while a cluster may still run older replicas (an upgrade sets
	// binary once every replica runs this version).
	BatchEncoding qlog.BatchEncoding `envconfig:"BATCH_ENCODING" default:"json" desc:"how this replica writes its log batches: json (read by every version) or binary (faster; set it only once every replica of the service runs a version that reads it)"`
	DatabaseURL   string             `envconfig:"DATABASE_URL" desc:"PostgreSQL for snapshots and history (empty: snapshots in JetStream object storage, no long-term history)"`
	SnapshotEvery int64              `envconfig:"SNAPSHOT_EVERY" default:"50000" desc:"log entries between snapshots"`
	// RetainEntries bounds the stream: each snapshot trims the messages
	// more than this many below it, so the stream holds at most about
	// SnapshotEvery + RetainEntries messages.
	RetainEntries uint64 `envconfig:"RETAIN_ENTRIES" default:"10000" desc:"log entries kept in the stream below the newest snapshot (watches may resume from them)"`
	// RegistryURL is where the replica registers itself as
	// steward-<service>: one registry replica's base URL or a
	// comma-separated list of them, failed over in turn
	// (sdk/replicas); empty: it does not register (the registry
	// registers in itself, the scaler defaults to http://127.0.0.1:8082).
	RegistryURL string `envconfig:"REGISTRY_URL" desc:"registry replicas this process registers itself in, comma-separated; a call that one cannot answer goes to the next (empty: none; the registry registers in itself, the scaler uses and registers in http://127.0.0.1:8082)"`

	// NATSAuth are the credentials and TLS a replica connects to NATS
	// with.
	qlogsvc.NATSAuth

	Process
}

// Shared returns the shared settings (service.Settings).
func (s Replicated) Shared() Replicated { return s }

// replica returns the replica id, <service>-0 when none is set.
func (s Replicated) replica(service string) string {
	if s.ReplicaID != "" {
		return s.ReplicaID
	}
	return service + "-0"
}

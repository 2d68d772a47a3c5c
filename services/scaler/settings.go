package scaler

import (
	"log/slog"
	"time"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/web"
)

// Settings are the service's STEWARD_* environment variables.
type Settings struct {
	Addr           envconf.Addr `envconfig:"SCALER_ADDR" default:":8084" desc:"listen address of the scaler"`
	NATSURL        string       `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server(s) with JetStream, comma-separated"`
	ReplicaID      string       `envconfig:"REPLICA_ID" default:"scaler-0" desc:"this replica's id, unique among the service's replicas"`
	Voters         []string     `envconfig:"VOTERS" desc:"replica ids of the voters, comma-separated (empty: this replica alone)"`
	StreamReplicas int          `envconfig:"STREAM_REPLICAS" default:"1" desc:"JetStream replicas of the service's stream"`
	DatabaseURL    string       `envconfig:"DATABASE_URL" desc:"PostgreSQL for snapshots and history (empty: snapshots in JetStream object storage, no long-term history)"`
	SnapshotEvery  int64        `envconfig:"SNAPSHOT_EVERY" default:"50000" desc:"log entries between snapshots"`
	// RegistryURL is the registry the loop reads instances from and the
	// replica registers itself in as steward-scaler.
	RegistryURL   string `envconfig:"REGISTRY_URL" default:"http://127.0.0.1:8082" desc:"registry the scaler reads instances from and registers itself in"`
	AdvertiseAddr string `envconfig:"ADVERTISE_ADDR" desc:"host:port registered in the registry (empty: from the listener)"`
	// ElectionURLs are the election service's replicas; Election is the
	// election the scaler replicas campaign in, LeaseTTL its lease.
	ElectionURLs []string      `envconfig:"ELECTION_URLS" default:"http://127.0.0.1:8083" desc:"election service replicas, comma-separated"`
	Election     string        `envconfig:"SCALER_ELECTION" default:"steward-scaler" desc:"election the scaler replicas campaign in"`
	LeaseTTL     time.Duration `envconfig:"SCALER_LEASE_TTL" default:"10s" desc:"lease TTL of the scaler leader"`
	// KeepDecisions is how many decisions of each scaler the replicas
	// hold in memory; older ones are read from PostgreSQL.
	KeepDecisions int `envconfig:"SCALER_KEEP_DECISIONS" default:"100" desc:"decisions per scaler kept in memory"`
	// SampleTTL is how long a metric sample counts after it was taken.
	SampleTTL       time.Duration  `envconfig:"SCALER_SAMPLE_TTL" default:"30s" desc:"how long a metric sample counts after it was taken"`
	ShutdownTimeout time.Duration  `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"how long in-flight requests may drain at shutdown"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto" desc:"log format: json, text or auto (text on a terminal)"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info" desc:"lowest level logged: debug, info, warn, error"`

	// Limits bound what clients can make the server hold: watches and
	// blocking queries per client, time to send headers, idle keep-alive.
	web.Limits
}

// Logging says how the process logs (launch.Settings).
func (s Settings) Logging() (logging.Format, slog.Level) { return s.LogFormat, s.LogLevel }

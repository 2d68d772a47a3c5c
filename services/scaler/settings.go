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
	Addr           envconf.Addr `envconfig:"SCALER_ADDR" default:":8084"`
	NATSURL        string       `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	ReplicaID      string       `envconfig:"REPLICA_ID" default:"scaler-0"`
	Voters         []string     `envconfig:"VOTERS"`
	StreamReplicas int          `envconfig:"STREAM_REPLICAS" default:"1"`
	DatabaseURL    string       `envconfig:"DATABASE_URL"`
	SnapshotEvery  int64        `envconfig:"SNAPSHOT_EVERY" default:"50000"`
	// RegistryURL is the registry the loop reads instances from and the
	// replica registers itself in as steward-scaler.
	RegistryURL   string `envconfig:"REGISTRY_URL" default:"http://127.0.0.1:8082"`
	AdvertiseAddr string `envconfig:"ADVERTISE_ADDR"`
	// ElectionURLs are the election service's replicas; Election is the
	// election the scaler replicas campaign in, LeaseTTL its lease.
	ElectionURLs []string      `envconfig:"ELECTION_URLS" default:"http://127.0.0.1:8083"`
	Election     string        `envconfig:"SCALER_ELECTION" default:"steward-scaler"`
	LeaseTTL     time.Duration `envconfig:"SCALER_LEASE_TTL" default:"10s"`
	// KeepDecisions is how many decisions of each scaler the replicas
	// hold in memory; older ones are read from PostgreSQL.
	KeepDecisions int `envconfig:"SCALER_KEEP_DECISIONS" default:"100"`
	// SampleTTL is how long a metric sample counts after it was taken.
	SampleTTL       time.Duration  `envconfig:"SCALER_SAMPLE_TTL" default:"30s"`
	ShutdownTimeout time.Duration  `envconfig:"SHUTDOWN_TIMEOUT" default:"10s"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info"`

	// Limits bound what clients can make the server hold: watches and
	// blocking queries per client, time to send headers, idle keep-alive.
	web.Limits
}

// Logging says how the process logs (launch.Settings).
func (s Settings) Logging() (logging.Format, slog.Level) { return s.LogFormat, s.LogLevel }

package scaler

import (
	"time"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/service"
)

// Settings are the service's STEWARD_* environment variables: the
// settings every replicated service shares (its STEWARD_REGISTRY_URL,
// the registry the loop reads instances from, defaults to
// http://127.0.0.1:8082), its address and its own.
type Settings struct {
	Addr envconf.Addr `envconfig:"SCALER_ADDR" default:":8084" desc:"listen address of the scaler"`
	// ElectionURLs are the election service's replicas; Election is the
	// election the scaler replicas campaign in, LeaseTTL its lease.
	ElectionURLs []string      `envconfig:"ELECTION_URLS" default:"http://127.0.0.1:8083" desc:"election service replicas, comma-separated"`
	Election     string        `envconfig:"SCALER_ELECTION" default:"steward-scaler" desc:"election the scaler replicas campaign in"`
	LeaseTTL     time.Duration `envconfig:"SCALER_LEASE_TTL" default:"10s" desc:"lease TTL of the scaler leader"`
	// ConfigURLs are the config service's replicas, where a canary's
	// traffic weights are written as a gateway route document.
	ConfigURLs []string `envconfig:"CONFIG_URL" default:"http://127.0.0.1:8081" desc:"config service replicas a canary writes its traffic weights to, comma-separated"`
	// KeepDecisions is how many decisions of each scaler the replicas
	// hold in memory; older ones are read from PostgreSQL.
	KeepDecisions int `envconfig:"SCALER_KEEP_DECISIONS" default:"100" desc:"decisions per scaler kept in memory"`
	// SampleTTL is how long a metric sample counts after it was taken.
	SampleTTL time.Duration `envconfig:"SCALER_SAMPLE_TTL" default:"30s" desc:"how long a metric sample counts after it was taken"`
	// Drain is how long a rollout leaves an old instance out of the
	// registry, for the gateway to stop sending to it, before stopping it.
	Drain time.Duration `envconfig:"SCALER_DRAIN" default:"2s" desc:"how long a rollout drains an instance (out of the registry) before stopping it"`

	service.Replicated
}

// ListenAddr is where the service listens (service.Settings).
func (s Settings) ListenAddr() string { return string(s.Addr) }

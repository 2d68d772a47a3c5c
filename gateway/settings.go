// Package gateway is Steward's front door: a reverse proxy that learns
// instances from the registry, balances across the passing ones, survives
// their failures, and fronts Steward's own API. proxy is the request
// path, balancer the choice of instance, discovery the registry watches,
// route and routesource the routing table; this package wires them.
package gateway

import (
	"time"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/service"
)

// Settings are the gateway's STEWARD_* environment variables.
type Settings struct {
	Addr envconf.Addr `envconfig:"GATEWAY_ADDR" default:":8080" desc:"listen address of the gateway"`
	// ID names this gateway (Via headers, its registry instance).
	ID string `envconfig:"GATEWAY_ID" default:"gateway-0" desc:"this gateway's name (Via header, registry instance)"`
	// RegistryURL is where instances are learnt; ConfigURL is where the
	// route documents are read and tokens checked (empty: steward-config
	// found through the registry). Each is a comma-separated list of
	// replicas' base URLs, failed over in turn (sdk/replicas).
	RegistryURL string `envconfig:"REGISTRY_URL" default:"http://127.0.0.1:8082" desc:"registry replicas instances are learnt from and the gateway registers itself in, comma-separated; a call or watch that one cannot answer goes to the next"`
	ConfigURL   string `envconfig:"CONFIG_URL" desc:"config replicas read for route documents and tokens, comma-separated, failed over in turn (empty: steward-config from the registry)"`
	Zone        string `envconfig:"GATEWAY_ZONE" desc:"zone preferred while it has instances"`
	// Circuit breaking per service.
	MaxRequests int64 `envconfig:"GATEWAY_MAX_REQUESTS" default:"1024" desc:"requests in flight per service; one more is 503"`
	MaxPending  int64 `envconfig:"GATEWAY_MAX_PENDING" default:"1024" desc:"requests waiting for headers per service; one more is 503"`
	// Outlier detection.
	EjectAfter      int           `envconfig:"GATEWAY_EJECT_AFTER" default:"5" desc:"consecutive 5xx or connection failures that eject an instance"`
	BaseEjection    time.Duration `envconfig:"GATEWAY_BASE_EJECTION" default:"30s" desc:"first ejection time, longer each time"`
	MaxEjectedShare float64       `envconfig:"GATEWAY_MAX_EJECTED_SHARE" default:"0.5" desc:"most of a service's instances ejected at once"`
	// SignalsEvery is how often per-service load signals go to the
	// scaler (POST /v1/metrics on steward-scaler); 0 turns them off.
	SignalsEvery time.Duration `envconfig:"GATEWAY_SIGNALS_EVERY" default:"5s" desc:"how often load signals go to the scaler (0: off)"`
	// PprofAddr, if set, serves net/http/pprof on its own listener there
	// (profiling under load, as make bench does); keep it on loopback.
	PprofAddr string `envconfig:"GATEWAY_PPROF_ADDR" desc:"serve net/http/pprof on this address (keep it on loopback)"`

	service.Process
}

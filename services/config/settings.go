// Package config is Steward's configuration service: an HTTP/JSON key/value
// store with compare-and-set, transactions, MVCC history, watches, leases
// and fencing, replicated through platform/qlog. The state machine is in
// kv; this package is the HTTP API and its declaration to the service
// skeleton (platform/service).
package config

import (
	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/service"
)

// Settings are the service's STEWARD_* environment variables: the
// settings every replicated service shares, its address and its own.
type Settings struct {
	Addr            envconf.Addr `envconfig:"CONFIG_ADDR" default:":8081" desc:"listen address of the config service"`
	RetainRevisions int64        `envconfig:"CONFIG_RETAIN_REVISIONS" default:"10000" desc:"revisions of history kept in memory for ?revision= reads"`

	service.Replicated
}

// ListenAddr is where the service listens (service.Settings).
func (s Settings) ListenAddr() string { return string(s.Addr) }

// Package election is Steward's leader-election service: named elections
// with leases, queued candidates and fencing tokens, over HTTP/JSON,
// replicated through platform/qlog. The state machine is in lease; this
// package is the HTTP API and its declaration to the service skeleton;
// campaign is the Go client.
package election

import (
	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/service"
)

// Settings are the service's STEWARD_* environment variables: the
// settings every replicated service shares and its address.
type Settings struct {
	Addr envconf.Addr `envconfig:"ELECTION_ADDR" default:":8083" desc:"listen address of the election service"`

	service.Replicated
}

// ListenAddr is where the service listens (service.Settings).
func (s Settings) ListenAddr() string { return string(s.Addr) }

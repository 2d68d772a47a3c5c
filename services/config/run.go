package config

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/config/kv"
	"github.com/stewardhq/steward/services/registry/client"
)

// ServiceName names the log: stream STEWARD_CONFIG; replicas register
// themselves as steward-config.
const ServiceName = "config"

// expiryEvery is how often a replica looks for lapsed leases.
const expiryEvery = 500 * time.Millisecond

// Replica is one running replica of the service: its log, its key/value
// machine and its HTTP handler.
type Replica = service.Replica[*kv.Machine]

// Spec declares the service to the skeleton: the key/value machine
// keeping s.RetainRevisions revisions, lease expiry, the history archive
// and the API.
func Spec(s Settings) service.Spec[*kv.Machine] {
	store := kv.New(s.RetainRevisions)
	return service.Spec[*kv.Machine]{
		Name:          ServiceName,
		Machine:       store,
		MaxBatchBytes: maxBatchBytes,
		History:       true,
		Expiry:        service.Expiry{Every: expiryEvery, Due: store.DueExpiries},
		Announcer:     client.SelfAnnouncer,
		Handler: func(r *Replica) (http.Handler, error) {
			// A nil *pgstore.History in the interface would not be a nil archive.
			var archive historyArchive
			if r.History != nil {
				archive = r.History
			}
			return newServer(r.Log, r.Machine, archive, r.Logger), nil
		},
	}
}

// Open opens a replica on nc (service.Open).
func Open(ctx context.Context, s Settings, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) (*Replica, error) {
	return service.Open(ctx, Spec(s), s.Replicated, nc, pool, logger)
}

// Serve opens a replica and serves its API on ln until ctx ends
// (service.Serve): main and `steward dev` both call it.
func Serve(ctx context.Context, s Settings, ln net.Listener, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) error {
	return service.Serve(ctx, Spec(s), s.Replicated, ln, nc, pool, logger)
}

// Run is the standalone process (service.Run).
func Run(ctx context.Context, s Settings, logger *slog.Logger) error {
	return service.Run(ctx, Spec(s), string(s.Addr), s.Replicated, logger)
}

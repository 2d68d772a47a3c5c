// Package qlogsvc is the process side every service built on qlog shares,
// as qloghttp is the HTTP side: the voter set from STEWARD_VOTERS, the
// snapshot store a replica keeps, and a standalone process's connections
// (NATS, PostgreSQL when configured) and listener.
package qlogsvc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/qlog"
)

// Voters returns the voter set of a STEWARD_VOTERS list (blank entries
// dropped), defaulting to the replica self alone.
func Voters(list []string, self string) []string {
	var out []string
	for _, v := range list {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return []string{self}
	}
	return out
}

// snapshotsKept is how many snapshots a store keeps per service.
const snapshotsKept = 3

// Snapshots returns where a replica of service keeps its snapshots:
// PostgreSQL when pool is set, else the JetStream object store (dev mode's
// zero-dependency choice), with streamReplicas replicas.
func Snapshots(ctx context.Context, nc *nats.Conn, pool *pgxpool.Pool, service string, streamReplicas int) (qlog.SnapshotStore, error) {
	if pool != nil {
		return pgstore.NewSnapshots(pool, snapshotsKept), nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return qlog.NewObjectStoreSnapshots(js, service, streamReplicas, snapshotsKept), nil
}

// Process is what a standalone replica runs on.
type Process struct {
	NC       *nats.Conn
	Pool     *pgxpool.Pool // nil without a database URL
	Listener net.Listener
}

// Connect dials NATS at natsURL (comma-separated servers) as a replica
// should: reconnecting forever, so that a NATS restart is a pause and not
// a crash, and pinging every second, so that a server that stopped
// answering without closing the connection (paused, cut off by a
// partition) is left for another within about two seconds instead of
// NATS's default of minutes.
func Connect(natsURL, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(natsURL, nats.Name(name),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", natsURL, err)
	}
	return nc, nil
}

// Start connects to NATS at natsURL, to PostgreSQL when databaseURL is set
// (applying migrations; retried with backoff while the database cannot be
// reached, until ctx ends), and listens on addr. name names the NATS
// connection, e.g. steward-config-config-0.
func Start(ctx context.Context, name, natsURL, databaseURL, addr string, logger *slog.Logger) (*Process, error) {
	nc, err := Connect(natsURL, name)
	if err != nil {
		return nil, err
	}
	p := &Process{NC: nc}
	if databaseURL != "" {
		backoff := 250 * time.Millisecond
		for attempt := 1; ; attempt++ {
			if p.Pool, err = pgstore.Open(ctx, databaseURL, logger); err == nil {
				break
			}
			if ctx.Err() != nil {
				p.Close()
				return nil, err
			}
			logger.Warn("waiting for PostgreSQL", "attempt", attempt, "retry_in", backoff, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
	var lc net.ListenConfig
	if p.Listener, err = lc.Listen(ctx, "tcp", addr); err != nil {
		p.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return p, nil
}

// Close closes the connections and the listener (which a server may have
// closed already).
func (p *Process) Close() {
	if p.Listener != nil {
		_ = p.Listener.Close()
	}
	if p.Pool != nil {
		p.Pool.Close()
	}
	p.NC.Close()
}

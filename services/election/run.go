package election

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogsvc"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/election/lease"
	"github.com/stewardhq/steward/services/registry/client"
)

// ServiceName names the log: stream STEWARD_ELECTION.
const ServiceName = "election"

// SelfService is the name replicas register under in the registry.
const SelfService = "steward-election"

// ExpiryInterval is how often a replica looks for lapsed leases and
// places in line and proposes their expiry. A lapsed lease ends at the
// first command on its election after the deadline anyway; the interval
// bounds how long a lapsed lease with nobody else touching the election
// (a crashed leader and its waiting successor) lingers: failover takes
// the TTL plus at most this plus one commit.
const ExpiryInterval = 100 * time.Millisecond

// Replica is one running replica of the service: its log, its state and
// its HTTP handler.
type Replica struct {
	Log     *qlog.Log
	Machine *lease.Machine
	Handler http.Handler
}

// Open opens a replica on nc. Snapshots go to PostgreSQL when pool is set,
// else to the JetStream object store.
func Open(ctx context.Context, s Settings, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) (*Replica, error) {
	snaps, err := qlogsvc.Snapshots(ctx, nc, pool, ServiceName, s.StreamReplicas)
	if err != nil {
		return nil, err
	}
	m := lease.New()
	l, err := qlog.Open(ctx, qlog.Config{
		Service:        ServiceName,
		ReplicaID:      s.ReplicaID,
		Voters:         qlogsvc.Voters(s.Voters, s.ReplicaID),
		Conn:           nc,
		StreamReplicas: s.StreamReplicas,
		Snapshots:      snaps,
		SnapshotEvery:  s.SnapshotEvery,
		RetainEntries:  10_000,
		MaxBatchBytes:  maxBatchBytes,
		Logger:         logger,
	}, m)
	if err != nil {
		return nil, err
	}
	return &Replica{Log: l, Machine: m, Handler: NewServer(l, m, logger)}, nil
}

// Close closes the replica's log.
func (r *Replica) Close() error { return r.Log.Close() }

// RunExpiry proposes the expiry of lapsed leases and places in line until
// ctx ends; Serve runs it.
func (r *Replica) RunExpiry(ctx context.Context) {
	r.Log.RunExpiry(ctx, ExpiryInterval, r.Machine.Due)
}

// Serve opens a replica and serves its API on ln until ctx ends, proposing
// expiries meanwhile and, with a registry URL, keeping itself registered
// as steward-election. It is the whole service: main and `steward dev`
// both call it.
func Serve(ctx context.Context, s Settings, ln net.Listener, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) error {
	r, err := Open(ctx, s, nc, pool, logger)
	if err != nil {
		return err
	}
	defer r.Close()
	var wg sync.WaitGroup
	ectx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.RunExpiry(ectx)
	}()
	if s.RegistryURL != "" {
		self, err := client.NewReplica(s.RegistryURL, s.AdvertiseAddr, ln.Addr(), SelfService, s.ReplicaID)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			self.Announce(ectx, logger)
		}()
	}
	return web.Serve(ctx, ln, r.Handler, logger, s.ShutdownTimeout, s.Limits)
}

// Run is the standalone process: it connects to NATS and, if configured,
// PostgreSQL, then serves.
func Run(ctx context.Context, s Settings, logger *slog.Logger) error {
	p, err := qlogsvc.Start(ctx, "steward-election-"+s.ReplicaID, s.NATSURL, s.DatabaseURL, string(s.Addr), logger)
	if err != nil {
		return err
	}
	defer p.Close()
	logger.Info("election service listening", "addr", p.Listener.Addr().String(), "replica", s.ReplicaID)
	return Serve(ctx, s, p.Listener, p.NC, p.Pool, logger)
}

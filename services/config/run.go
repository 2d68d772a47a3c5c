package config

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogsvc"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/config/kv"
	"github.com/stewardhq/steward/services/registry/client"
)

// ServiceName names the log: stream STEWARD_CONFIG.
const ServiceName = "config"

// SelfService is the name the service registers itself under.
const SelfService = "steward-config"

// Replica is one running replica of the service: its log, its state and
// its HTTP handler.
type Replica struct {
	Log     *qlog.Log
	Store   *kv.Store
	Handler http.Handler
	logger  *slog.Logger
	history *pgstore.History // nil without PostgreSQL
}

// Open opens a replica on nc. Snapshots go to PostgreSQL when pool is set,
// else to the JetStream object store.
func Open(ctx context.Context, s Settings, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) (*Replica, error) {
	snaps, err := qlogsvc.Snapshots(ctx, nc, pool, ServiceName, s.StreamReplicas)
	if err != nil {
		return nil, err
	}
	store := kv.New(s.RetainRevisions)
	l, err := qlog.Open(ctx, qlog.Config{
		Service:        ServiceName,
		ReplicaID:      s.ReplicaID,
		Voters:         qlogsvc.Voters(s.Voters, s.ReplicaID),
		Conn:           nc,
		StreamReplicas: s.StreamReplicas,
		Snapshots:      snaps,
		SnapshotEvery:  s.SnapshotEvery,
		RetainEntries:  uint64(max(s.RetainRevisions, 1000)),
		MaxBatchBytes:  maxBatchBytes,
		Logger:         logger,
	}, store)
	if err != nil {
		return nil, err
	}
	r := &Replica{Log: l, Store: store, logger: logger}
	// A nil *pgstore.History in the interface would not be a nil archive.
	var archive historyArchive
	if pool != nil {
		r.history = pgstore.NewHistory(pool, ServiceName)
		archive = r.history
	}
	r.Handler = newServer(l, store, archive, logger)
	return r, nil
}

// Close closes the replica's log.
func (r *Replica) Close() error { return r.Log.Close() }

// Serve opens a replica and serves its API on ln until ctx ends, proposing
// lease expiries meanwhile and, with a registry URL, keeping itself
// registered as steward-config. It is the whole service: main and `steward dev`
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
		r.Log.RunExpiry(ectx, 500*time.Millisecond, r.Store.DueExpiries)
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
	if r.history != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.history.Archive(ectx, r.Log, logger)
		}()
	}
	return web.Serve(ctx, ln, r.Handler, logger, s.ShutdownTimeout, s.Limits)
}

// Run is the standalone process: it connects to NATS and, if configured,
// PostgreSQL, then serves.
func Run(ctx context.Context, s Settings, logger *slog.Logger) error {
	p, err := qlogsvc.Start(ctx, "steward-config-"+s.ReplicaID, s.NATSURL, s.DatabaseURL, string(s.Addr), logger)
	if err != nil {
		return err
	}
	defer p.Close()
	logger.Info("config service listening", "addr", p.Listener.Addr().String(), "replica", s.ReplicaID)
	return Serve(ctx, s, p.Listener, p.NC, p.Pool, logger)
}

package config

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/config/kv"
	"github.com/stewardhq/steward/services/registry/catalog"
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
	var snaps qlog.SnapshotStore
	if pool != nil {
		snaps = pgstore.NewSnapshots(pool, 3)
	} else {
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		if snaps, err = qlog.NewObjectStoreSnapshots(ctx, js, ServiceName, s.StreamReplicas, 3); err != nil {
			return nil, err
		}
	}
	store := kv.New(s.RetainRevisions)
	l, err := qlog.Open(ctx, qlog.Config{
		Service:        ServiceName,
		ReplicaID:      s.ReplicaID,
		Voters:         s.voters(),
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
		host, port, err := client.Advertised(s.AdvertiseAddr, ln.Addr())
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			reg := &client.Client{BaseURL: s.RegistryURL}
			reg.Announce(ectx, SelfService, s.ReplicaID, catalog.Registration{Address: host, Port: port,
				Metadata: map[string]string{"replica": s.ReplicaID}}, logger)
		}()
	}
	if r.history != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.history.Archive(ectx, r.Log, logger)
		}()
	}
	return web.Serve(ctx, ln, r.Handler, logger, s.ShutdownTimeout)
}

// Run is the standalone process: it connects to NATS and, if configured,
// PostgreSQL, then serves.
func Run(ctx context.Context, s Settings, logger *slog.Logger) error {
	nc, err := nats.Connect(s.NATSURL, nats.Name("steward-config-"+s.ReplicaID),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", s.NATSURL, err)
	}
	defer nc.Close()
	var pool *pgxpool.Pool
	if s.DatabaseURL != "" {
		if pool, err = pgstore.Open(ctx, s.DatabaseURL, logger); err != nil {
			return err
		}
		defer pool.Close()
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", string(s.Addr))
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	logger.Info("config service listening", "addr", ln.Addr().String(), "replica", s.ReplicaID)
	return Serve(ctx, s, ln, nc, pool, logger)
}

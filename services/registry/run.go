package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogsvc"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/registry/client"
	"github.com/stewardhq/steward/services/registry/health"
)

// ServiceName names the log (stream STEWARD_REGISTRY).
const ServiceName = "registry"

// SelfService is the name Steward's registry registers itself under.
const SelfService = "steward-registry"

// expiryEvery is how often a replica looks for due deadlines: with the
// TTL grace (catalog.Grace, at most 500 ms) a missed TTL turns critical
// within TTL + 1 s.
const expiryEvery = 250 * time.Millisecond

// maxBatchBytes is the log's group-commit bound.
const maxBatchBytes = 1 << 20

// Replica is one running replica: its log, its catalog and its handler.
type Replica struct {
	Log      *qlog.Log
	Store    *catalog.Store
	Handler  http.Handler
	Registry *prometheus.Registry
}

// Open opens a replica on nc. Snapshots go to PostgreSQL when pool is set,
// else to the JetStream object store.
func Open(ctx context.Context, s Settings, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) (*Replica, error) {
	snaps, err := qlogsvc.Snapshots(ctx, nc, pool, ServiceName, s.StreamReplicas)
	if err != nil {
		return nil, err
	}
	store := catalog.New()
	l, err := qlog.Open(ctx, qlog.Config{
		Service:        ServiceName,
		ReplicaID:      s.ReplicaID,
		Voters:         s.voters(),
		Conn:           nc,
		StreamReplicas: s.StreamReplicas,
		Snapshots:      snaps,
		SnapshotEvery:  s.SnapshotEvery,
		// Without it the stream was never trimmed: about 35 GB a day at
		// the 2,000 heartbeats a second of the registry's benchmark.
		RetainEntries: 10_000,
		MaxBatchBytes: maxBatchBytes,
		Logger:        logger,
	}, store)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Replica{Log: l, Store: store, Registry: reg,
		Handler: NewServer(l, store, s.AllowLocal, reg, logger)}, nil
}

// Close closes the replica's log.
func (r *Replica) Close() error { return r.Log.Close() }

// Serve opens a replica and serves its API on ln until ctx ends. Meanwhile
// it proposes due expiries, runs its share of the active checks, logs the
// guard engaging and lifting, and registers itself as steward-registry.
// It is the whole service: main and `steward dev` both call it.
func Serve(ctx context.Context, s Settings, ln net.Listener, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) error {
	r, err := Open(ctx, s, nc, pool, logger)
	if err != nil {
		return err
	}
	defer r.Close()
	// The registry announces itself to itself, over its own API.
	self, err := client.NewReplica(client.LocalURL(ln.Addr()), s.AdvertiseAddr, ln.Addr(), SelfService, s.ReplicaID)
	if err != nil {
		return err
	}
	bctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	presence, left, err := health.StartPresence(bctx, nc, "steward.registry.checkers", s.ReplicaID, s.PresenceInterval, logger)
	if err != nil {
		return fmt.Errorf("join the checkers: %w", err)
	}
	guard := s.guard()
	checker := &health.Checker{Log: r.Log, Store: r.Store, ReplicaID: s.ReplicaID, Presence: presence,
		Prober: health.NewProber(s.AllowLocal, s.ReplicaID), Guard: guard, Concurrency: s.CheckConcurrency,
		Logger: logger, Registerer: r.Registry}
	for _, run := range []func(){
		func() { <-left },
		func() {
			r.Log.RunExpiry(bctx, expiryEvery, func(now time.Time) [][]byte { return r.Store.DueExpiries(now, guard) })
		},
		func() { checker.Run(bctx) },
		func() { logGuard(bctx, r.Log, logger) },
		func() { self.Announce(bctx, logger) },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	return web.Serve(ctx, ln, r.Handler, logger, s.ShutdownTimeout, s.Limits)
}

// logGuard logs every service the guard protects or releases, so that an
// operator sees self-preservation engage.
func logGuard(ctx context.Context, l *qlog.Log, logger *slog.Logger) {
	if l.WaitReady(ctx) != nil {
		return
	}
	watch, err := l.Watch(l.Revision()+1, func(ev qlog.Event) bool { return ev.Type == catalog.EventService })
	if err != nil {
		return
	}
	for {
		ev, err := watch.Next(ctx)
		if err != nil {
			return
		}
		var st catalog.ServiceState
		if json.Unmarshal(ev.Data, &st) != nil {
			continue
		}
		if st.Protected {
			logger.Warn("guard engaged: holding back critical results for a service, as too many of its instances failed at once",
				"service", st.Service, "held", st.Held, "instances", st.Instances, "revision", ev.Revision)
		} else {
			logger.Info("guard lifted", "service", st.Service, "instances", st.Instances, "revision", ev.Revision)
		}
	}
}

// Run is the standalone process: it connects to NATS and, if configured,
// PostgreSQL, then serves.
func Run(ctx context.Context, s Settings, logger *slog.Logger) error {
	p, err := qlogsvc.Start(ctx, "steward-registry-"+s.ReplicaID, s.NATSURL, s.DatabaseURL, string(s.Addr), logger)
	if err != nil {
		return err
	}
	defer p.Close()
	logger.Info("registry service listening", "addr", p.Listener.Addr().String(), "replica", s.ReplicaID)
	return Serve(ctx, s, p.Listener, p.NC, p.Pool, logger)
}

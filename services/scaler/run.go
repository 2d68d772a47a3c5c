package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	elections "github.com/stewardhq/steward/services/election/client"
	registry "github.com/stewardhq/steward/services/registry/client"
	"github.com/stewardhq/steward/services/scaler/control"
	"github.com/stewardhq/steward/services/scaler/metrics"
	"github.com/stewardhq/steward/services/scaler/scalers"
)

// ServiceName names the log: stream STEWARD_SCALER.
const ServiceName = "scaler"

// SelfService is the name replicas register under in the registry.
const SelfService = "steward-scaler"

// SamplesSubject is the NATS subject a replica hands pushed samples to
// every replica on: whichever replica a push reaches, the leader's store
// gets it. Samples are a stream of readings, not state: one lost is
// replaced by the next.
const SamplesSubject = "steward.scaler.samples"

// Replica is one running replica of the service.
type Replica struct {
	Log     *qlog.Log
	Machine *scalers.Machine
	Metrics *metrics.Store
	Handler http.Handler
	Loop    *control.Loop

	nc      *nats.Conn
	history *pgstore.History
}

// Open opens a replica on nc. Snapshots go to PostgreSQL when pool is set,
// else to the JetStream object store; decisions are archived to
// PostgreSQL when pool is set.
func Open(ctx context.Context, s Settings, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) (*Replica, error) {
	snaps, err := qlogsvc.Snapshots(ctx, nc, pool, ServiceName, s.StreamReplicas)
	if err != nil {
		return nil, err
	}
	m := scalers.New(s.KeepDecisions)
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
	r := &Replica{Log: l, Machine: m, Metrics: metrics.NewStore(s.SampleTTL), nc: nc}
	// A nil *pgstore.History in the interface would not be a nil archive.
	var archive DecisionArchive
	if pool != nil {
		r.history = pgstore.NewHistory(pool, ServiceName)
		archive = r.history
	}
	r.Handler = NewServer(l, m, archive, r.publish, logger)
	r.Loop = &control.Loop{
		Log:       l,
		Machine:   m,
		Elections: elections.New(s.ElectionURLs, nil),
		Election:  s.Election,
		Replica:   s.ReplicaID,
		TTL:       s.LeaseTTL,
		Registry:  &registry.Client{BaseURL: s.RegistryURL, HTTP: &http.Client{Timeout: 10 * time.Second}},
		Metrics:   r.Metrics,
		Logger:    logger,
	}
	return r, nil
}

// Archive copies the replica's events (decisions and actuations among
// them) to PostgreSQL until ctx ends; without PostgreSQL it returns at
// once. Serve runs it.
func (r *Replica) Archive(ctx context.Context, logger *slog.Logger) error {
	if r.history == nil {
		return nil
	}
	return r.history.Archive(ctx, r.Log, logger)
}

// Close closes the replica's log.
func (r *Replica) Close() error { return r.Log.Close() }

// publish hands samples to every replica through NATS, in as many
// messages as the server's payload limit needs (1 MiB by default; a push
// may be 4 MiB).
func (r *Replica) publish(samples []metrics.Sample) error {
	b, err := json.Marshal(metrics.Push{Samples: samples})
	if err != nil {
		return err
	}
	if int64(len(b)) <= r.nc.MaxPayload() || len(samples) == 1 {
		return r.nc.Publish(SamplesSubject, b)
	}
	half := len(samples) / 2
	return errors.Join(r.publish(samples[:half]), r.publish(samples[half:]))
}

// Subscribe adds the samples any replica publishes to this replica's
// store until the subscription ends.
func (r *Replica) Subscribe(logger *slog.Logger) (*nats.Subscription, error) {
	sub, err := r.nc.Subscribe(SamplesSubject, func(msg *nats.Msg) {
		var p metrics.Push
		if err := json.Unmarshal(msg.Data, &p); err != nil {
			logger.Warn("undecodable samples on "+SamplesSubject, "err", err)
			return
		}
		r.Metrics.Add(time.Now(), p.Samples...)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", SamplesSubject, err)
	}
	// The push answers 202 after publishing; flushing the subscription
	// here means a replica's own pushes are never published before it
	// listens.
	return sub, r.nc.Flush()
}

// Serve opens a replica and serves its API on ln until ctx ends, running
// the control loop (which leads only when elected), the sample
// subscription, the decision archive and, with a registry URL, the
// self-registration as steward-scaler. It is the whole service: main and
// `steward dev` both call it.
func Serve(ctx context.Context, s Settings, ln net.Listener, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) error {
	r, err := Open(ctx, s, nc, pool, logger)
	if err != nil {
		return err
	}
	defer r.Close()
	sub, err := r.Subscribe(logger)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	var wg sync.WaitGroup
	bctx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	run := func(fn func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); fn(bctx) }()
	}
	run(func(ctx context.Context) {
		if err := r.Log.WaitReady(ctx); err != nil {
			return
		}
		r.Loop.Run(ctx)
	})
	run(func(ctx context.Context) {
		t := time.NewTicker(s.SampleTTL)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				r.Metrics.Prune(now)
			}
		}
	})
	run(func(ctx context.Context) { _ = r.Archive(ctx, logger) })
	if s.RegistryURL != "" {
		self, err := registry.NewReplica(s.RegistryURL, s.AdvertiseAddr, ln.Addr(), SelfService, s.ReplicaID)
		if err != nil {
			return err
		}
		run(func(ctx context.Context) { self.Announce(ctx, logger) })
	}
	return web.Serve(ctx, ln, r.Handler, logger, s.ShutdownTimeout, s.Limits)
}

// Run is the standalone process: it connects to NATS and, if configured,
// PostgreSQL, then serves.
func Run(ctx context.Context, s Settings, logger *slog.Logger) error {
	p, err := qlogsvc.Start(ctx, "steward-scaler-"+s.ReplicaID, s.NATSURL, s.DatabaseURL, string(s.Addr), logger)
	if err != nil {
		return err
	}
	defer p.Close()
	logger.Info("scaler service listening", "addr", p.Listener.Addr().String(), "replica", s.ReplicaID,
		"registry", s.RegistryURL, "election", s.ElectionURLs)
	return Serve(ctx, s, p.Listener, p.NC, p.Pool, logger)
}

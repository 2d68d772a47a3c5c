// Package service is the skeleton every replicated Steward service is
// built on: the settings they share (Replicated, Process) and Open, Serve
// and Run, written once. A service declares only its state machine, its
// routes, its own background work and its own settings, in a Spec; the
// skeleton opens the replicated log with its snapshot store, proposes the
// machine's due expiries, archives history to PostgreSQL, keeps the
// replica registered in the registry and serves HTTP until its context
// ends.
package service

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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogsvc"
	"github.com/stewardhq/steward/platform/web"
)

// Spec is what a service declares.
type Spec[M qlog.StateMachine] struct {
	// Name names the service: its stream is STEWARD_<NAME>, it registers
	// itself as steward-<name>, its replicas default to <name>-0.
	Name string
	// Machine is the replica's state machine, new and empty.
	Machine M
	// MaxBatchBytes is the log's group-commit bound (0: 1 MiB).
	MaxBatchBytes int
	// History archives the log's events to PostgreSQL when a database is
	// configured (Replica.History).
	History bool
	// Expiry, if Due is set, proposes what the machine says is due every
	// Every (qlog.Log.RunExpiry): lease and TTL deadlines.
	Expiry Expiry
	// Handler builds the service's HTTP API on the open replica.
	Handler func(*Replica[M]) (http.Handler, error)
	// Tasks, if set, is the service's own work beside the API (checks, a
	// control loop); ctx is the tasks' context, and each task runs until
	// it ends.
	// The commands a task proposes carry Replica.Own's id as their By.
	Tasks func(ctx context.Context, r *Replica[M], ln net.Listener) ([]Task, error)
	// Announcer keeps the replica registered in the registry at
	// Settings.RegistryURL (platform/advertise.SelfAnnouncer); nil
	// or an empty URL: the replica does not register itself. SelfURL, if
	// set, is the registry to use when RegistryURL is empty (the registry
	// registers in itself).
	Announcer NewAnnouncer
	SelfURL   func(ln net.Listener) string
}

// Expiry is a machine's deadline sweep. Its commands carry no By: a
// deadline is the log's own, due by the log's clock whichever replica
// proposes it, and no token's doing (the events show an empty by, as
// the expiries of a TTL or a lease always did).
type Expiry struct {
	Every time.Duration
	Due   func(now time.Time) [][]byte
}

// Task is work a service runs while it serves; it returns when ctx ends.
type Task func(ctx context.Context)

// Announcer keeps one replica registered until ctx ends.
type Announcer interface {
	Announce(ctx context.Context, logger *slog.Logger)
}

// Announcement is what keeps one replica registered: where, as what,
// and the client its calls go through.
type Announcement struct {
	// RegistryURL is the registry's base URL, or a comma-separated list
	// of its replicas.
	RegistryURL string
	// Advertise is the host:port registered (empty: from Addr), Addr the
	// replica's listener, Scheme what it serves ("http" or "https").
	Advertise string
	Addr      net.Addr
	Scheme    string
	// Service and ID name the instance: steward-<name>, the replica id.
	Service, ID string
	// Token is sent with every call (STEWARD_AUTH_TOKEN; empty: none).
	Token string
	// HTTP is the process's client (Replica.Client).
	HTTP *http.Client
}

// NewAnnouncer returns the Announcer of a.
type NewAnnouncer func(a Announcement) (Announcer, error)

// defaultMaxBatchBytes is the log's group-commit bound unless a service
// says otherwise.
const defaultMaxBatchBytes = 1 << 20

// Replica is one open replica of a service.
type Replica[M qlog.StateMachine] struct {
	Log     *qlog.Log
	Machine M
	Handler http.Handler
	// History is the PostgreSQL archive of the log's events; nil without
	// a database or when the service keeps none.
	History *pgstore.History
	// Conn is the replica's NATS connection.
	Conn *nats.Conn
	// Settings are the settings it was opened with, ReplicaID filled in.
	Settings Replicated
	Logger   *slog.Logger
	// Client is the process's client of Steward's services (web.TLS.
	// HTTPClient): it trusts STEWARD_TLS_CA_FILE and presents the
	// process's certificate to listeners that require one. It has no
	// timeout; each call bounds its own.
	Client *http.Client
	// Auth is the replica's follower of the auth log (stream
	// STEWARD_AUTH) and Guard what checks requests against it; both nil
	// with STEWARD_AUTH off.
	Auth  *qlog.Log
	Guard *authhttp.Guard
	// Own resolves the id of the token this process runs with
	// (STEWARD_AUTH_TOKEN) on the auth replica: the By of the commands
	// its own tasks propose. Nil, and an empty id, with STEWARD_AUTH off.
	Own   *authhttp.Own
	admin *authhttp.Admin
	spec  Spec[M]
	// registry is the one the replica's /metrics serves, as Secure
	// found or made it; Serve registers the listener's metrics on it.
	// Nil when the Handler did not go through Secure.
	registry *prometheus.Registry
}

// Secure puts the Guard in front of o's routes and mounts /v1/auth (a
// service's Handler calls it on its web options); with auth off the
// admin API answers that auth is off. It also keeps o's Registry (a new
// one, web.NewRegistry, when o has none), the one /metrics serves, for
// Serve to register the listener's HTTP/1.1 metrics on: Secure is where
// the skeleton sees every service's options.
func (r *Replica[M]) Secure(o web.Options) web.Options {
	if o.Registry == nil {
		o.Registry = web.NewRegistry()
	}
	r.registry = o.Registry
	return r.Guard.Secure(o, r.admin)
}

// Open opens a replica of spec on nc. Snapshots go to PostgreSQL when pool
// is set, else to the JetStream object store.
func Open[M qlog.StateMachine](ctx context.Context, spec Spec[M], s Replicated, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) (*Replica[M], error) {
	s.ReplicaID = s.replica(spec.Name)
	if s.Auth && s.BootstrapToken != "" {
		if err := auth.ValidateBootstrapSecret(s.BootstrapToken); err != nil {
			return nil, fmt.Errorf("STEWARD_AUTH_BOOTSTRAP_TOKEN: %w", err)
		}
	}
	batch := spec.MaxBatchBytes
	if batch == 0 {
		batch = defaultMaxBatchBytes
	}
	l, err := s.openLog(ctx, spec.Name, qlogsvc.Voters(s.Voters, s.ReplicaID), batch, spec.Machine, nc, pool, logger)
	if err != nil {
		return nil, err
	}
	r := &Replica[M]{Log: l, Machine: spec.Machine, Conn: nc, Settings: s, Logger: logger, spec: spec}
	if r.Client, err = s.TLS.HTTPClient(0, logger); err != nil {
		_ = l.Close()
		return nil, err
	}
	if s.Auth {
		if err := r.openAuth(ctx, nc, pool); err != nil {
			_ = l.Close()
			return nil, err
		}
	}
	if spec.History && pool != nil {
		r.History = pgstore.NewHistory(pool, spec.Name)
	}
	if r.Handler, err = spec.Handler(r); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// openLog opens this replica's copy of the log of service, over sm, with
// its snapshot store: PostgreSQL when pool is set, else the JetStream
// object store.
func (s Replicated) openLog(ctx context.Context, service string, voters []string, maxBatchBytes int, sm qlog.StateMachine,
	nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) (*qlog.Log, error) {
	snaps, err := qlogsvc.Snapshots(ctx, nc, pool, service, s.StreamReplicas)
	if err != nil {
		return nil, err
	}
	return qlog.Open(ctx, qlog.Config{
		Service:        service,
		ReplicaID:      s.ReplicaID,
		Voters:         voters,
		Conn:           nc,
		StreamReplicas: s.StreamReplicas,
		BatchEncoding:  s.BatchEncoding,
		Snapshots:      snaps,
		SnapshotEvery:  s.SnapshotEvery,
		RetainEntries:  s.RetainEntries,
		MaxBatchBytes:  maxBatchBytes,
		Logger:         logger,
	}, sm)
}

// openAuth opens the replica's follower of the auth log: a voter when
// its id is among STEWARD_AUTH_VOTERS, else an observer that applies
// every change as it is made.
func (r *Replica[M]) openAuth(ctx context.Context, nc *nats.Conn, pool *pgxpool.Pool) error {
	m := auth.New()
	l, err := r.Settings.openLog(ctx, auth.Service, r.Settings.AuthVoterIDs(), defaultMaxBatchBytes, m, nc, pool, r.Logger.With("log", auth.Service))
	if err != nil {
		return fmt.Errorf("auth log: %w", err)
	}
	r.Auth = l
	r.Guard = authhttp.NewGuard(l, m, r.Settings.MetricsPublic, r.Logger)
	r.Own = r.Guard.Own(r.Settings.Token)
	r.admin = authhttp.NewAdmin(l, m, r.Logger)
	return nil
}

// bootstrap proposes the root token of STEWARD_AUTH_BOOTSTRAP_TOKEN once
// the auth log is ready; the machine skips it when a token was ever
// issued, so every replica of every service may propose it.
func (r *Replica[M]) bootstrap(ctx context.Context) {
	secret := r.Settings.BootstrapToken
	if r.Auth == nil || secret == "" || r.Auth.WaitReady(ctx) != nil {
		return
	}
	cmd, _ := json.Marshal(auth.Bootstrap(secret))
	for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 5*time.Second) {
		_, err := r.Auth.Propose(ctx, cmd, qlog.ProposeOptions{IdempotencyKey: "bootstrap"})
		if err == nil {
			return
		}
		r.Logger.Warn("auth bootstrap not proposed yet", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
}

// Close closes the replica's logs.
func (r *Replica[M]) Close() error {
	err := r.Log.Close()
	if r.Auth != nil {
		err = errors.Join(err, r.Auth.Close())
	}
	return err
}

// RunExpiry proposes the machine's due expiries until ctx ends; Serve
// runs it. Without an Expiry in the Spec it waits for ctx.
func (r *Replica[M]) RunExpiry(ctx context.Context) {
	if e := r.spec.Expiry; e.Due != nil {
		r.Log.RunExpiry(ctx, e.Every, e.Due)
		return
	}
	<-ctx.Done()
}

// Archive copies the log's events to PostgreSQL until ctx ends; without
// a History it returns at once. Serve runs it.
func (r *Replica[M]) Archive(ctx context.Context) error {
	if r.History == nil {
		return nil
	}
	return r.History.Archive(ctx, r.Log, r.Logger)
}

// Serve opens a replica of spec and serves its API on ln until ctx ends,
// running meanwhile the expiry sweep, the history archive, the
// self-registration and the service's own tasks. It is the whole
// service: Run and `steward dev` both call it.
func Serve[M qlog.StateMachine](ctx context.Context, spec Spec[M], s Replicated, ln net.Listener, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) error {
	r, err := Open(ctx, spec, s, nc, pool, logger)
	if err != nil {
		return err
	}
	defer r.Close()
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	tasks := []Task{r.RunExpiry, func(ctx context.Context) { _ = r.Archive(ctx) }}
	if r.Guard != nil {
		tasks = append(tasks, r.Guard.Run, r.bootstrap)
	}
	if announce, err := r.announcer(ln); err != nil {
		return err
	} else if announce != nil {
		tasks = append(tasks, func(ctx context.Context) { announce.Announce(ctx, logger) })
	}
	if spec.Tasks != nil {
		own, err := spec.Tasks(tctx, r, ln)
		if err != nil {
			return err
		}
		tasks = append(tasks, own...)
	}
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for _, task := range tasks {
		wg.Go(func() { task(tctx) })
	}
	var opts []web.ServeOption
	if r.registry != nil {
		opts = append(opts, web.WithMetrics(r.registry))
	}
	return web.ServeTLS(ctx, ln, r.Handler, logger, s.ShutdownTimeout, s.Limits, s.TLS, opts...)
}

// announcer returns what keeps the replica registered, nil if nothing.
func (r *Replica[M]) announcer(ln net.Listener) (Announcer, error) {
	url := r.Settings.RegistryURL
	if url == "" && r.spec.SelfURL != nil {
		url = r.spec.SelfURL(ln)
	}
	if url == "" || r.spec.Announcer == nil {
		return nil, nil
	}
	return r.spec.Announcer(Announcement{RegistryURL: url, Advertise: r.Settings.AdvertiseAddr, Addr: ln.Addr(),
		Scheme: r.Settings.Scheme(), Service: "steward-" + r.spec.Name, ID: r.Settings.ReplicaID,
		Token: r.Settings.Token, HTTP: r.Client})
}

// Run is the standalone process: it connects to NATS and, if configured,
// PostgreSQL, listens on addr, then serves.
func Run[M qlog.StateMachine](ctx context.Context, spec Spec[M], addr string, s Replicated, logger *slog.Logger) error {
	s.ReplicaID = s.replica(spec.Name)
	p, err := qlogsvc.Start(ctx, fmt.Sprintf("steward-%s-%s", spec.Name, s.ReplicaID), s.NATSURL, s.NATSAuth, s.DatabaseURL, addr, logger)
	if err != nil {
		return err
	}
	defer p.Close()
	logger.Info(spec.Name+" service listening", "addr", p.Listener.Addr().String(), "replica", s.ReplicaID)
	return Serve(ctx, spec, s, p.Listener, p.NC, p.Pool, logger)
}

// Settings is what the skeleton needs of a service's settings: the
// shared ones (Replicated provides Shared to the Settings that embed it)
// and where the service listens.
type Settings interface {
	Shared() Replicated
	ListenAddr() string
}

// Opener returns a service's Open: Open of the Spec that spec declares
// for the settings.
func Opener[S Settings, M qlog.StateMachine](spec func(S) Spec[M]) func(context.Context, S, *nats.Conn, *pgxpool.Pool, *slog.Logger) (*Replica[M], error) {
	return func(ctx context.Context, s S, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) (*Replica[M], error) {
		return Open(ctx, spec(s), s.Shared(), nc, pool, logger)
	}
}

// Server returns a service's Serve: main and `steward dev` both call it.
func Server[S Settings, M qlog.StateMachine](spec func(S) Spec[M]) func(context.Context, S, net.Listener, *nats.Conn, *pgxpool.Pool, *slog.Logger) error {
	return func(ctx context.Context, s S, ln net.Listener, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) error {
		return Serve(ctx, spec(s), s.Shared(), ln, nc, pool, logger)
	}
}

// Runner returns a service's Run, the standalone process.
func Runner[S Settings, M qlog.StateMachine](spec func(S) Spec[M]) func(context.Context, S, *slog.Logger) error {
	return func(ctx context.Context, s S, logger *slog.Logger) error {
		return Run(ctx, spec(s), s.ListenAddr(), s.Shared(), logger)
	}
}

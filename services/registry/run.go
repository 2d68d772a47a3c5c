package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stewardhq/steward/platform/advertise"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/registry/health"
)

// ServiceName names the log: stream STEWARD_REGISTRY; replicas register
// themselves, in themselves, as steward-registry.
const ServiceName = "registry"

// SelfService is the name replicas register under: steward-registry.
const SelfService = "steward-" + ServiceName

// expiryEvery is how often a replica looks for due deadlines: with the
// TTL grace (catalog.Grace, at most 500 ms) a missed TTL turns critical
// within TTL + 1 s.
const expiryEvery = 250 * time.Millisecond

// Replica is one running replica: its log, its catalog and its handler.
type Replica = service.Replica[*catalog.Machine]

// Spec declares the service to the skeleton: the catalog, the expiry of
// missed TTLs (held back by the guard), the API, and beside it the
// replica's share of the active checks and the log of the guard engaging
// and lifting.
func Spec(s Settings) service.Spec[*catalog.Machine] {
	store := catalog.New()
	guard := s.guard()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return service.Spec[*catalog.Machine]{
		Name:      ServiceName,
		Machine:   store,
		Expiry:    service.Expiry{Every: expiryEvery, Due: func(now time.Time) [][]byte { return store.DueExpiries(now, guard) }},
		Announcer: advertise.SelfAnnouncer,
		SelfURL:   func(ln net.Listener) string { return advertise.LocalURL(s.Scheme(), ln.Addr()) },
		Handler: func(r *Replica) (http.Handler, error) {
			return newServer(r.Log, r.Machine, s.AllowLocal, reg, r.Logger, r.Secure), nil
		},
		Tasks: func(ctx context.Context, r *Replica, _ net.Listener) ([]service.Task, error) {
			check, err := s.checks(ctx, r, guard, reg)
			if err != nil {
				return nil, err
			}
			return []service.Task{check, func(ctx context.Context) { logGuard(ctx, r.Log, r.Logger) }}, nil
		},
	}
}

// checks joins this replica to the checkers (until ctx ends) and returns
// the task that runs its share of the active checks, which moves between
// replicas as they join and leave.
func (s Settings) checks(ctx context.Context, r *Replica, guard *catalog.Guard, reg prometheus.Registerer) (service.Task, error) {
	id := r.Settings.ReplicaID
	presence, left, err := health.StartPresence(ctx, r.Conn, "steward.registry.checkers", id, s.PresenceInterval, r.Logger)
	if err != nil {
		return nil, fmt.Errorf("join the checkers: %w", err)
	}
	checker := &health.Checker{Log: r.Log, Machine: r.Machine, ReplicaID: id, Presence: presence,
		Prober: health.NewProber(s.AllowLocal, id), Guard: guard, Concurrency: s.CheckConcurrency,
		Logger: r.Logger, Registerer: reg, By: r.Own.ID}
	return func(ctx context.Context) { checker.Run(ctx); <-left }, nil
}

// Open opens a replica on nc (service.Open); Serve opens one and serves
// its API on a listener until the context ends (service.Serve): main and
// `steward dev` both call it; Run is the standalone process (service.Run).
var (
	Open  = service.Opener(Spec)
	Serve = service.Server(Spec)
	Run   = service.Runner(Spec)
)

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

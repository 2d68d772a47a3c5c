package scaler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/advertise"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/scaler/control"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

// ServiceName names the log: stream STEWARD_SCALER; replicas register
// themselves as steward-scaler.
const ServiceName = "scaler"

// SamplesSubject is the NATS subject a replica hands pushed samples to
// every replica on: whichever replica a push reaches, the leader's store
// gets it. Samples are a stream of readings, not state: one lost is
// replaced by the next.
const SamplesSubject = "steward.scaler.samples"

// Replica is one running replica of the service: the skeleton's replica
// of the ledger machine, the pushed and scraped samples, and the
// control loop.
type Replica struct {
	*service.Replica[*ledger.Machine]
	Metrics *metrics.Store
	Loop    *control.Loop
}

// defaultRegistryURL is the registry the loop reads instances from when
// STEWARD_REGISTRY_URL is empty.
const defaultRegistryURL = "http://127.0.0.1:8082"

// defaultElectionURL is the election service the loop campaigns in when
// ElectionURLs is empty, as the setting's default says.
const defaultElectionURL = "http://127.0.0.1:8083"

// defaultConfigURL is the config service a canary writes its weights to
// when ConfigURLs is empty, as the setting's default says.
const defaultConfigURL = "http://127.0.0.1:8081"

// Shared returns the shared settings, the registry defaulted
// (service.Settings).
func (s Settings) Shared() service.Replicated {
	if s.RegistryURL == "" {
		s.RegistryURL = defaultRegistryURL
	}
	return s.Replicated
}

// Spec declares the service to the skeleton (Serve, Run); spec also
// returns the Replica that opening it fills in (Open).
func Spec(s Settings) service.Spec[*ledger.Machine] {
	spec, _ := spec(s)
	return spec
}

// spec declares the service to the skeleton and returns the Replica that
// opening it fills in: the ledger machine, the decision archive, the
// API, and beside it the control loop (which leads only when elected),
// the sample subscription and the pruning of old samples.
func spec(s Settings) (service.Spec[*ledger.Machine], *Replica) {
	rep := &Replica{Metrics: metrics.NewStore(s.SampleTTL)}
	registryURL := s.Shared().RegistryURL
	return service.Spec[*ledger.Machine]{
		Name:          ServiceName,
		Machine:       ledger.New(s.KeepDecisions),
		MaxBatchBytes: maxBatchBytes,
		History:       true,
		Announcer:     advertise.SelfAnnouncer,
		Handler: func(r *service.Replica[*ledger.Machine]) (http.Handler, error) {
			rep.Replica = r
			// Every call to Steward's services goes through the
			// replica's client: it trusts STEWARD_TLS_CA_FILE.
			calls := r.Client.Transport
			elections, err := advertise.Client(cmp.Or(strings.Join(s.ElectionURLs, ","), defaultElectionURL), r.Client, s.Token)
			if err != nil {
				return nil, fmt.Errorf("the election service: %w", err)
			}
			registry, err := advertise.Client(registryURL, r.Client, s.Token)
			if err != nil {
				return nil, fmt.Errorf("the registry: %w", err)
			}
			config, err := advertise.Client(cmp.Or(strings.Join(s.ConfigURLs, ","), defaultConfigURL), r.Client, s.Token)
			if err != nil {
				return nil, fmt.Errorf("the config service: %w", err)
			}
			rep.Loop = &control.Loop{
				// Scrapes and webhooks may reach Steward's services too.
				ScrapeClient: metrics.NewScrapeClient(calls),
				DriverClient: r.Client,

				Log:       r.Log,
				Machine:   r.Machine,
				Elections: elections.Elections(),
				Election:  s.Election,
				Replica:   r.Settings.ReplicaID,
				TTL:       s.LeaseTTL,
				Registry:  registry.Services(),
				Metrics:   rep.Metrics,
				Logger:    r.Logger,
				By:        r.Own.ID,
				Drain:     s.Drain,
				Routes:    config,
			}
			// A nil *pgstore.History in the interface would not be a nil archive.
			var archive DecisionArchive
			if r.History != nil {
				archive = r.History
			}
			return newServer(r.Log, r.Machine, archive, rep.publish, r.Logger, r.Secure), nil
		},
		Tasks: func(_ context.Context, r *service.Replica[*ledger.Machine], _ net.Listener) ([]service.Task, error) {
			sub, err := rep.Subscribe(r.Logger)
			if err != nil {
				return nil, err
			}
			return []service.Task{
				func(ctx context.Context) {
					<-ctx.Done()
					_ = sub.Unsubscribe()
				},
				func(ctx context.Context) {
					if r.Log.WaitReady(ctx) == nil {
						rep.Loop.Run(ctx)
					}
				},
				func(ctx context.Context) { rep.pruneSamples(ctx, s.SampleTTL) },
			}, nil
		},
	}, rep
}

// Open opens a replica on nc (service.Open); decisions are archived to
// PostgreSQL when pool is set.
func Open(ctx context.Context, s Settings, nc *nats.Conn, pool *pgxpool.Pool, logger *slog.Logger) (*Replica, error) {
	spec, rep := spec(s)
	if _, err := service.Open(ctx, spec, s.Shared(), nc, pool, logger); err != nil {
		return nil, err
	}
	return rep, nil
}

// pruneSamples drops samples older than ttl, every ttl, until ctx ends.
func (r *Replica) pruneSamples(ctx context.Context, ttl time.Duration) {
	t := time.NewTicker(ttl)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.Metrics.Prune(now)
		}
	}
}

// publish hands samples to every replica through NATS, in as many
// messages as the server's payload limit needs (1 MiB by default; a push
// may be 4 MiB).
func (r *Replica) publish(samples []metrics.Sample) error {
	b, err := json.Marshal(metrics.Push{Samples: samples})
	if err != nil {
		return err
	}
	if int64(len(b)) <= r.Conn.MaxPayload() || len(samples) == 1 {
		return r.Conn.Publish(SamplesSubject, b)
	}
	half := len(samples) / 2
	return errors.Join(r.publish(samples[:half]), r.publish(samples[half:]))
}

// Subscribe adds the samples any replica publishes to this replica's
// store until the subscription ends.
func (r *Replica) Subscribe(logger *slog.Logger) (*nats.Subscription, error) {
	sub, err := r.Conn.Subscribe(SamplesSubject, func(msg *nats.Msg) {
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
	return sub, r.Conn.Flush()
}

// Serve opens a replica and serves its API on a listener until the
// context ends (service.Serve): main and `steward dev` both call it; Run
// is the standalone process (service.Run).
var (
	Serve = service.Server(Spec)
	Run   = service.Runner(Spec)
)

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/stewardhq/steward/services/election"
	electionclient "github.com/stewardhq/steward/services/election/client"
)

// The election section measures how soon a waiting candidate leads:
//
//   - failover: the leader crashes (every request it would send fails, as
//     from a dead process; it neither renews nor resigns) at a random
//     point of its renewal cycle, and the time runs from the crash until
//     the waiting candidate's Campaign returns;
//   - handoff: the leader resigns, and the time runs from the call to
//     Resign until the waiting candidate's Campaign returns.
//
// Steward: the election service (election.Serve, one voter, fsync on every
// write, as steward dev runs) over HTTP on loopback, both candidates
// through services/election/client. etcd: one embedded node (fsync on),
// both candidates through concurrency.Election with a session of the same
// TTL, each on its own clientv3 connection. Both renew every TTL/3. One
// server runs at a time.

// electionFlags adds the section's flags.
func electionFlags(fs interface {
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}, c *config) {
	fs.IntVar(&c.electionTrials, "election-trials", 30, "election: trials of failover and of handoff, per system")
	fs.DurationVar(&c.electionTTL, "election-ttl", 2*time.Second, "election: the lease TTL (whole seconds: etcd's sessions take seconds)")
}

func checkElectionFlags(c config) error {
	if c.electionTrials < 1 || c.electionTTL < 2*time.Second || c.electionTTL%time.Second != 0 {
		return errors.New("-election-trials must be positive and -election-ttl whole seconds, at least 2s (etcd's shortest lease is 1.5s)")
	}
	return nil
}

// electionSamples is one system's measurements.
type electionSamples struct {
	failover, handoff []time.Duration
	err               error
}

type electionReport struct {
	steward, etcd electionSamples
}

func runElection(ctx context.Context, log *slog.Logger, cfg config) *electionReport {
	rep := &electionReport{}
	log.Info("election: Steward", "trials", cfg.electionTrials, "ttl", cfg.electionTTL)
	rep.steward.err = withNATS(cfg, "election", true, func(ns *natsServer) error {
		return measureSteward(ctx, log, ns, cfg, &rep.steward)
	})
	log.Info("election: etcd", "trials", cfg.electionTrials, "ttl", cfg.electionTTL)
	rep.etcd.err = withEtcd(ctx, log, cfg, "election-etcd", modeByID["A"], func(e *etcdPeer) error {
		return measureEtcd(ctx, log, e, cfg, &rep.etcd)
	})
	return rep
}

// crashable is a candidate's transport; once crashed, every request fails
// at once, as to and from a process that is gone.
type crashable struct {
	base    http.RoundTripper
	mu      sync.Mutex
	crashed bool
}

var errCrashed = errors.New("the candidate crashed")

func (c *crashable) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	crashed := c.crashed
	c.mu.Unlock()
	if crashed {
		return nil, errCrashed
	}
	return c.base.RoundTrip(req)
}

func (c *crashable) crash() {
	c.mu.Lock()
	c.crashed = true
	c.mu.Unlock()
}

func measureSteward(ctx context.Context, log *slog.Logger, ns *natsServer, cfg config, out *electionSamples) error {
	s := election.Settings{ReplicaID: "election-0", StreamReplicas: 1, SnapshotEvery: 50_000, ShutdownTimeout: 4 * time.Second}
	r, err := serveOn(ctx, ns, func(ctx context.Context, ln net.Listener, nc *nats.Conn) error {
		return election.Serve(ctx, s, ln, nc, nil, serviceLogger(os.Stderr))
	})
	if err != nil {
		return fmt.Errorf("election replica: %w", err)
	}
	defer r.close()
	url := r.url
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	opts := electionclient.Options{TTL: cfg.electionTTL}

	// trial runs one leader and one waiter for election name; act crashes
	// or resigns the leader and returns the moment it did so.
	trial := func(name string, act func(l *electionclient.Leadership, tr *crashable) time.Time) (time.Duration, error) {
		leaderTr := &crashable{base: tr}
		lctx, cancelLeader := context.WithCancel(ctx)
		defer cancelLeader()
		leader, err := electionclient.New([]string{url}, &http.Client{Transport: leaderTr}).Campaign(lctx, name, "a", opts)
		if err != nil {
			return 0, fmt.Errorf("leader's campaign: %w", err)
		}
		won := make(chan time.Time, 1)
		wctx, cancelWaiter := context.WithCancel(ctx)
		defer cancelWaiter()
		var waiter *electionclient.Leadership
		var werr error
		go func() {
			waiter, werr = electionclient.New([]string{url}, &http.Client{Transport: tr}).Campaign(wctx, name, "b", opts)
			won <- time.Now()
		}()
		if err := waitQueued(ctx, tr, url, name); err != nil {
			return 0, err
		}
		start := act(leader, leaderTr)
		var end time.Time
		select {
		case end = <-won:
		case <-time.After(cfg.electionTTL + 10*time.Second):
			return 0, errors.New("the waiting candidate did not lead within TTL + 10s")
		}
		if werr != nil {
			return 0, fmt.Errorf("waiter's campaign: %w", werr)
		}
		if waiter.Token() <= leader.Token() {
			return 0, fmt.Errorf("waiter's token %d is not above the leader's %d", waiter.Token(), leader.Token())
		}
		if err := waiter.Resign(ctx); err != nil {
			return 0, err
		}
		return end.Sub(start), nil
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range cfg.electionTrials {
		d, err := trial(fmt.Sprintf("failover-%d", i), func(_ *electionclient.Leadership, c *crashable) time.Time {
			// Crash anywhere in the renewal cycle.
			time.Sleep(time.Duration(rng.Int64N(int64(cfg.electionTTL / 3))))
			c.crash()
			return time.Now()
		})
		if err != nil {
			return fmt.Errorf("failover trial %d: %w", i+1, err)
		}
		log.Info("election trial", "system", "Steward", "kind", "failover", "took", d)
		out.failover = append(out.failover, d)
	}
	for i := range cfg.electionTrials {
		d, err := trial(fmt.Sprintf("handoff-%d", i), func(l *electionclient.Leadership, _ *crashable) time.Time {
			start := time.Now()
			_ = l.Resign(ctx)
			return start
		})
		if err != nil {
			return fmt.Errorf("handoff trial %d: %w", i+1, err)
		}
		log.Info("election trial", "system", "Steward", "kind", "handoff", "took", d)
		out.handoff = append(out.handoff, d)
	}
	log.Info("election: Steward done", "failover_p50", dur(pct(out.failover, 0.5)), "handoff_p50", dur(pct(out.handoff, 0.5)))
	return nil
}

// waitQueued waits until a candidate waits in line for name.
func waitQueued(ctx context.Context, tr http.RoundTripper, url, name string) error {
	hc := &http.Client{Transport: tr}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var l struct{ Queue int }
		if err := getJSON(ctx, hc, url+"/v1/elections/"+name, &l); err == nil && l.Queue > 0 {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("no candidate waits in line for %s after 10s", name)
}

func measureEtcd(ctx context.Context, log *slog.Logger, e *etcdPeer, cfg config, out *electionSamples) error {
	endpoints := e.cli.Endpoints()
	newClient := func() (*clientv3.Client, error) {
		return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	}
	ttl := int(cfg.electionTTL / time.Second)
	trial := func(name string, crash bool, rng *rand.Rand) (time.Duration, error) {
		lcli, err := newClient()
		if err != nil {
			return 0, err
		}
		defer lcli.Close()
		lsess, err := concurrency.NewSession(lcli, concurrency.WithTTL(ttl))
		if err != nil {
			return 0, err
		}
		leader := concurrency.NewElection(lsess, "/"+name)
		if err := leader.Campaign(ctx, "a"); err != nil {
			return 0, fmt.Errorf("leader's campaign: %w", err)
		}
		wcli, err := newClient()
		if err != nil {
			return 0, err
		}
		defer wcli.Close()
		wsess, err := concurrency.NewSession(wcli, concurrency.WithTTL(ttl))
		if err != nil {
			return 0, err
		}
		defer wsess.Close()
		waiter := concurrency.NewElection(wsess, "/"+name)
		won := make(chan error, 1)
		var end time.Time
		go func() {
			err := waiter.Campaign(ctx, "b")
			end = time.Now()
			won <- err
		}()
		// The waiter waits once its key is under the prefix.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := e.cli.Get(ctx, "/"+name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err == nil && resp.Count == 2 {
				break
			}
			if time.Now().After(deadline) {
				return 0, errors.New("the waiter did not campaign within 10s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		var start time.Time
		if crash {
			time.Sleep(time.Duration(rng.Int64N(int64(cfg.electionTTL / 3))))
			// Closing the client stops its keep-alives without revoking
			// the lease, as a process that died.
			lcli.Close()
			start = time.Now()
		} else {
			start = time.Now()
			if err := leader.Resign(ctx); err != nil {
				return 0, err
			}
		}
		select {
		case err := <-won:
			if err != nil {
				return 0, fmt.Errorf("waiter's campaign: %w", err)
			}
		case <-time.After(cfg.electionTTL + 10*time.Second):
			return 0, errors.New("the waiting candidate did not lead within TTL + 10s")
		}
		return end.Sub(start), waiter.Resign(ctx)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range cfg.electionTrials {
		d, err := trial(fmt.Sprintf("failover-%d", i), true, rng)
		if err != nil {
			return fmt.Errorf("failover trial %d: %w", i+1, err)
		}
		log.Info("election trial", "system", "etcd", "kind", "failover", "took", d)
		out.failover = append(out.failover, d)
	}
	for i := range cfg.electionTrials {
		d, err := trial(fmt.Sprintf("handoff-%d", i), false, rng)
		if err != nil {
			return fmt.Errorf("handoff trial %d: %w", i+1, err)
		}
		log.Info("election trial", "system", "etcd", "kind", "handoff", "took", d)
		out.handoff = append(out.handoff, d)
	}
	log.Info("election: etcd done", "failover_p50", dur(pct(out.failover, 0.5)), "handoff_p50", dur(pct(out.handoff, 0.5)))
	return nil
}

// pct is the nearest-rank percentile of unsorted samples.
func pct(samples []time.Duration, q float64) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	return percentile(s, q)
}

func printElection(out io.Writer, cfg config, rep *electionReport) {
	ttl := cfg.electionTTL
	fmt.Fprintf(out, "\n== Election: failover and handoff, TTL %s ==\n\n", ttl)
	fmt.Fprintf(out, "  Steward: election.Serve, 1 voter, NATS fsync on every write, HTTP on loopback, services/election/client.\n"+
		"  etcd: 1 embedded node (fsync on), concurrency.Election, a session per candidate on its own connection.\n"+
		"  Both renew every TTL/3. failover: from the leader's crash (at a random point of its renewal cycle) until the\n"+
		"  waiting candidate's Campaign returns; handoff: from the leader's Resign call until it returns. %d trials each;\n"+
		"  p99 of %d samples is the nearest rank, i.e. the largest.\n\n", cfg.electionTrials, cfg.electionTrials)
	t := newTable("l rrr rrr")
	t.add("", "Steward p50", "p99", "max", "etcd p50", "p99", "max")
	cells := func(s electionSamples, f func(electionSamples) []time.Duration) []string {
		x := f(s)
		if len(x) == 0 {
			return []string{"—", "—", "—"}
		}
		return []string{dur(pct(x, 0.5)), dur(pct(x, 0.99)), dur(pct(x, 1))}
	}
	fail := func(s electionSamples) []time.Duration { return s.failover }
	hand := func(s electionSamples) []time.Duration { return s.handoff }
	t.add(append(append([]string{fmt.Sprintf("failover after a crash (%d trials)", len(rep.steward.failover))}, cells(rep.steward, fail)...), cells(rep.etcd, fail)...)...)
	t.add(append(append([]string{fmt.Sprintf("handoff after resign (%d trials)", len(rep.steward.handoff))}, cells(rep.steward, hand)...), cells(rep.etcd, hand)...)...)
	t.write(out)
	for _, f := range []struct {
		who string
		err error
	}{{"Steward", rep.steward.err}, {"etcd", rep.etcd.err}} {
		if f.err != nil {
			fmt.Fprintf(out, "  %s: FAILED: %v\n", f.who, f.err)
		}
	}

	fmt.Fprintf(out, "\ngoals\n")
	g := newTable("l r l l")
	goal := func(name string, ours, theirs []time.Duration, bound time.Duration) {
		if len(ours) == 0 {
			g.add(name, "—", "", "not measured")
			return
		}
		p99 := pct(ours, 0.99)
		g.add(name, dur(p99), fmt.Sprintf("target ≤ %s", dur(bound)), verdict(p99 <= bound))
		if len(theirs) > 0 {
			e := pct(theirs, 0.99)
			g.add("  and at least as good as etcd's p99", dur(e), "", verdict(p99 <= e))
		}
	}
	goal("failover p99", rep.steward.failover, rep.etcd.failover, ttl+500*time.Millisecond)
	goal("handoff p99", rep.steward.handoff, rep.etcd.handoff, 50*time.Millisecond)
	g.write(out)
}

// getJSON GETs url and decodes a 200 answer into out.
func getJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

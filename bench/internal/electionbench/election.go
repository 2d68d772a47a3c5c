package electionbench

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
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/services/election"
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
// through the Go SDK (sdk.Elections.Campaign). etcd: one embedded node
// (fsync on), both candidates through concurrency.Election with a session
// of the same TTL, each on its own clientv3 connection. Both renew every
// TTL/3. One server runs at a time.

// Flags adds the section's flags.
func Flags(fs interface {
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}, c *harness.Config) {
	fs.IntVar(&c.ElectionTrials, "election-trials", 30, "election: trials of failover and of handoff, per system")
	fs.DurationVar(&c.ElectionTTL, "election-ttl", 2*time.Second, "election: the lease TTL (whole seconds: etcd's sessions take seconds)")
}

func CheckFlags(c harness.Config) error {
	if c.ElectionTrials < 1 || c.ElectionTTL < 2*time.Second || c.ElectionTTL%time.Second != 0 {
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

func Run(ctx context.Context, log *slog.Logger, cfg harness.Config) *electionReport {
	rep := &electionReport{}
	log.Info("election: Steward", "trials", cfg.ElectionTrials, "ttl", cfg.ElectionTTL)
	rep.steward.err = harness.WithNATS(cfg, "election", true, func(ns *harness.NATSServer) error {
		return measureSteward(ctx, log, ns, cfg, &rep.steward)
	})
	log.Info("election: etcd", "trials", cfg.ElectionTrials, "ttl", cfg.ElectionTTL)
	rep.etcd.err = harness.WithEtcd(ctx, log, cfg, "election-etcd", harness.ModeByID["A"], func(e *harness.EtcdPeer) error {
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

func measureSteward(ctx context.Context, log *slog.Logger, ns *harness.NATSServer, cfg harness.Config, out *electionSamples) error {
	s := election.Settings{Replicated: service.Replicated{ReplicaID: "election-0", StreamReplicas: 1, SnapshotEvery: 50_000, Process: service.Process{ShutdownTimeout: 4 * time.Second}}}
	r, err := harness.ServeOn(ctx, ns, func(ctx context.Context, ln net.Listener, nc *nats.Conn) error {
		return election.Serve(ctx, s, ln, nc, nil, harness.ServiceLogger(os.Stderr))
	})
	if err != nil {
		return fmt.Errorf("election replica: %w", err)
	}
	defer r.Close()
	url := r.URL
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	opts := sdk.CampaignOptions{TTL: cfg.ElectionTTL}
	// campaign campaigns for name as candidate through rt, as a process
	// of its own would.
	campaign := func(ctx context.Context, rt http.RoundTripper, name, candidate string) (*sdk.Leadership, error) {
		c, err := sdk.New(url, sdk.WithHTTPClient(&http.Client{Transport: rt}))
		if err != nil {
			return nil, err
		}
		return c.Elections().Campaign(ctx, name, candidate, opts)
	}

	// trial runs one leader and one waiter for election name; act crashes
	// or resigns the leader and returns the moment it did so.
	trial := func(name string, act func(l *sdk.Leadership, tr *crashable) time.Time) (time.Duration, error) {
		leaderTr := &crashable{base: tr}
		lctx, cancelLeader := context.WithCancel(ctx)
		defer cancelLeader()
		leader, err := campaign(lctx, leaderTr, name, "a")
		if err != nil {
			return 0, fmt.Errorf("leader's campaign: %w", err)
		}
		won := make(chan time.Time, 1)
		wctx, cancelWaiter := context.WithCancel(ctx)
		defer cancelWaiter()
		var waiter *sdk.Leadership
		var werr error
		go func() {
			waiter, werr = campaign(wctx, tr, name, "b")
			won <- time.Now()
		}()
		if err := waitQueued(ctx, tr, url, name); err != nil {
			return 0, err
		}
		start := act(leader, leaderTr)
		var end time.Time
		select {
		case end = <-won:
		case <-time.After(cfg.ElectionTTL + 10*time.Second):
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
	for i := range cfg.ElectionTrials {
		d, err := trial(fmt.Sprintf("failover-%d", i), func(_ *sdk.Leadership, c *crashable) time.Time {
			// Crash anywhere in the renewal cycle.
			time.Sleep(time.Duration(rng.Int64N(int64(cfg.ElectionTTL / 3))))
			c.crash()
			return time.Now()
		})
		if err != nil {
			return fmt.Errorf("failover trial %d: %w", i+1, err)
		}
		log.Info("election trial", "system", "Steward", "kind", "failover", "took", d)
		out.failover = append(out.failover, d)
	}
	for i := range cfg.ElectionTrials {
		d, err := trial(fmt.Sprintf("handoff-%d", i), func(l *sdk.Leadership, _ *crashable) time.Time {
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
	log.Info("election: Steward done", "failover_p50", harness.Dur(harness.Pct(out.failover, 0.5)), "handoff_p50", harness.Dur(harness.Pct(out.handoff, 0.5)))
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

func measureEtcd(ctx context.Context, log *slog.Logger, e *harness.EtcdPeer, cfg harness.Config, out *electionSamples) error {
	endpoints := e.Cli.Endpoints()
	newClient := func() (*clientv3.Client, error) {
		return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	}
	ttl := int(cfg.ElectionTTL / time.Second)
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
			resp, err := e.Cli.Get(ctx, "/"+name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
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
			time.Sleep(time.Duration(rng.Int64N(int64(cfg.ElectionTTL / 3))))
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
		case <-time.After(cfg.ElectionTTL + 10*time.Second):
			return 0, errors.New("the waiting candidate did not lead within TTL + 10s")
		}
		return end.Sub(start), waiter.Resign(ctx)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range cfg.ElectionTrials {
		d, err := trial(fmt.Sprintf("failover-%d", i), true, rng)
		if err != nil {
			return fmt.Errorf("failover trial %d: %w", i+1, err)
		}
		log.Info("election trial", "system", "etcd", "kind", "failover", "took", d)
		out.failover = append(out.failover, d)
	}
	for i := range cfg.ElectionTrials {
		d, err := trial(fmt.Sprintf("handoff-%d", i), false, rng)
		if err != nil {
			return fmt.Errorf("handoff trial %d: %w", i+1, err)
		}
		log.Info("election trial", "system", "etcd", "kind", "handoff", "took", d)
		out.handoff = append(out.handoff, d)
	}
	log.Info("election: etcd done", "failover_p50", harness.Dur(harness.Pct(out.failover, 0.5)), "handoff_p50", harness.Dur(harness.Pct(out.handoff, 0.5)))
	return nil
}

func Print(out io.Writer, cfg harness.Config, rep *electionReport) {
	ttl := cfg.ElectionTTL
	fmt.Fprintf(out, "\n== Election: failover and handoff, TTL %s ==\n\n", ttl)
	fmt.Fprintf(out, "  Steward: election.Serve, 1 voter, NATS fsync on every write, HTTP on loopback, the Go SDK (sdk.Elections.Campaign).\n"+
		"  etcd: 1 embedded node (fsync on), concurrency.Election, a session per candidate on its own connection.\n"+
		"  Both renew every TTL/3. failover: from the leader's crash (at a random point of its renewal cycle) until the\n"+
		"  waiting candidate's Campaign returns; handoff: from the leader's Resign call until it returns. %d trials each;\n"+
		"  p99 of %d samples is the nearest rank, i.e. the largest.\n\n", cfg.ElectionTrials, cfg.ElectionTrials)
	t := harness.NewTable("l rrr rrr")
	t.Add("", "Steward p50", "p99", "max", "etcd p50", "p99", "max")
	cells := func(s electionSamples, f func(electionSamples) []time.Duration) []string {
		x := f(s)
		if len(x) == 0 {
			return []string{"—", "—", "—"}
		}
		return []string{harness.Dur(harness.Pct(x, 0.5)), harness.Dur(harness.Pct(x, 0.99)), harness.Dur(harness.Pct(x, 1))}
	}
	fail := func(s electionSamples) []time.Duration { return s.failover }
	hand := func(s electionSamples) []time.Duration { return s.handoff }
	t.Add(append(append([]string{fmt.Sprintf("failover after a crash (%d trials)", len(rep.steward.failover))}, cells(rep.steward, fail)...), cells(rep.etcd, fail)...)...)
	t.Add(append(append([]string{fmt.Sprintf("handoff after resign (%d trials)", len(rep.steward.handoff))}, cells(rep.steward, hand)...), cells(rep.etcd, hand)...)...)
	t.Write(out)
	for _, f := range []struct {
		who string
		err error
	}{{"Steward", rep.steward.err}, {"etcd", rep.etcd.err}} {
		if f.err != nil {
			fmt.Fprintf(out, "  %s: FAILED: %v\n", f.who, f.err)
		}
	}

	fmt.Fprintf(out, "\ngoals\n")
	g := harness.NewTable("l r l l")
	goal := func(name string, ours, theirs []time.Duration, bound time.Duration) {
		if len(ours) == 0 {
			g.Add(name, "—", "", "not measured")
			return
		}
		p99 := harness.Pct(ours, 0.99)
		g.Add(name, harness.Dur(p99), fmt.Sprintf("target ≤ %s", harness.Dur(bound)), harness.Verdict(p99 <= bound))
		if len(theirs) > 0 {
			e := harness.Pct(theirs, 0.99)
			g.Add("  and at least as good as etcd's p99", harness.Dur(e), "", harness.Verdict(p99 <= e))
		}
	}
	goal("failover p99", rep.steward.failover, rep.etcd.failover, ttl+500*time.Millisecond)
	goal("handoff p99", rep.steward.handoff, rep.etcd.handoff, 50*time.Millisecond)
	g.Write(out)
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

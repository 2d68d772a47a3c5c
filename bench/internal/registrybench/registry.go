package registrybench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/bench/internal/harness"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The registry section measures the service registry (services/registry)
// with three voters, each replica in its own child process (registry.Serve,
// the whole service) on an embedded NATS server in this process:
//
//   - registry-load: instances heartbeating their TTL checks for a
//     sustained window (none may turn critical; heartbeat latency; the
//     replicas' CPU and memory), then how long a stopped heartbeat takes
//     to show as critical to a watcher;
//   - registry-reg: registration throughput beside Consul-style etcd use
//     (a lease grant and a put with that lease per registration).

// Row keys of the registration rows.
const (
	rowRReg1  = "r-reg1"
	rowRRegN  = "r-regN"
	rowREReg1 = "re-reg1"
	rowRERegN = "re-regN"
)

// regRowTTL is the TTL of the registration rows' checks and leases: longer
// than the rows run, so that what is measured is registering, not expiry.
const regRowTTL = time.Minute

// regRowServices is how many services the registration rows spread their
// instances (and etcd keys) over.
const regRowServices = 100

// registrationBody is a registration with a TTL check, as an instance
// sends it; n picks its address.
func registrationBody(n int64, ttl time.Duration) []byte {
	return fmt.Appendf(nil, `{"address":"10.%d.%d.%d","port":8080,"check":{"ttl":%q}}`, n>>16&255, n>>8&255, n&255, ttl)
}

// regService names the service of the registration rows' n-th instance.
func regService(n int64) string { return fmt.Sprintf("reg-%02d", n%regRowServices) }

// register is PUT /v1/services/reg-<n mod 100>/instances/i<n> with a TTL
// check, on the replicas round-robin: a new instance per operation.
func register(h *harness.HTTPTarget, ttl time.Duration) harness.Op {
	return func(ctx context.Context, seq int64) error {
		url := h.URL(seq) + "/v1/services/" + regService(seq) + "/instances/i" + strconv.FormatInt(seq, 10)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(registrationBody(seq, ttl)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		return h.Do(req)
	}
}

// registerWithLease is how a Consul-style registry is built on etcd: grant
// a lease with the check's TTL, then put the registration under it (the
// instance then keeps the lease alive).
func registerWithLease(p *harness.EtcdPeer, ttl time.Duration) harness.Op {
	return func(ctx context.Context, seq int64) error {
		l, err := p.Cli.Grant(ctx, int64(ttl/time.Second))
		if err != nil {
			return fmt.Errorf("grant: %w", err)
		}
		key := "/services/" + regService(seq) + "/i" + strconv.FormatInt(seq, 10)
		if _, err := p.Cli.Put(ctx, key, string(registrationBody(seq, ttl)), clientv3.WithLease(l.ID)); err != nil {
			return fmt.Errorf("put: %w", err)
		}
		return nil
	}
}

// RunLoad runs the heartbeat load on three fresh voters on a NATS
// server of mode m.
func RunLoad(ctx context.Context, log *slog.Logger, cfg harness.Config, m harness.Mode) (*hbReport, error) {
	var rep *hbReport
	err := harness.WithNATS(cfg, "registry-load-"+m.ID, m.NATSSync, func(ns *harness.NATSServer) error {
		cluster, err := startRegistryCluster(ctx, ns, harness.ChildProfile(cfg, "registry-load"))
		if err != nil {
			return err
		}
		defer cluster.stop()
		log.Info("registry: 3 voters started", "mode", m.ID, "urls", cluster.urls)
		rep, err = runHeartbeats(ctx, log, cfg, m, cluster)
		return err
	})
	return rep, err
}

// RunRegistration measures registration throughput in mode m: the
// registry's three voters, then a single-node etcd, one at a time.
func RunRegistration(ctx context.Context, log *slog.Logger, cfg harness.Config, m harness.Mode) (*harness.ModeReport, error) {
	rep := &harness.ModeReport{Mode: m}
	before := harness.SampleCPU()
	defer func() { rep.Load = harness.Load(before, harness.SampleCPU()) }()
	n := cfg.Clients
	measureRow := func(key, group, name string, workers int, fn harness.Op) {
		if !cfg.Rows.MatchString(group + " " + name) {
			return
		}
		log.Info("measuring", "mode", m.ID, "row", group+" "+name)
		rep.Add(log, harness.Row{Key: key, Group: group, Name: name, Res: harness.Measure(ctx, cfg.Settings, workers, fn)})
	}
	ours := []string{"PUT register (TTL check), 3 voters, 1 client", fmt.Sprintf("PUT register (TTL check), 3 voters, %d clients spread", n)}
	if cfg.Rows.MatchString("registry "+ours[0]) || cfg.Rows.MatchString("registry "+ours[1]) {
		err := harness.WithNATS(cfg, "registry-reg-"+m.ID, m.NATSSync, func(ns *harness.NATSServer) error {
			cluster, err := startRegistryCluster(ctx, ns, harness.ChildProfile(cfg, "registry-reg-"+m.ID))
			if err != nil {
				return err
			}
			defer cluster.stop()
			log.Info("registry: 3 voters started", "mode", m.ID, "urls", cluster.urls)
			h := harness.NewHTTPTarget(cfg.HTTPClient, cluster.urls, n)
			defer h.Close()
			measureRow(rowRReg1, "registry", ours[0], 1, register(h, regRowTTL))
			measureRow(rowRRegN, "registry", ours[1], n, register(h, regRowTTL))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("registry, 3 voters: %w", err)
		}
	}
	theirs := []string{"Grant + Put with lease, 1 node, 1 client", fmt.Sprintf("Grant + Put with lease, 1 node, %d clients", n)}
	if cfg.Rows.MatchString("etcd "+theirs[0]) || cfg.Rows.MatchString("etcd "+theirs[1]) {
		err := harness.WithEtcd(ctx, log, cfg, "registry-etcd", m, func(e *harness.EtcdPeer) error {
			measureRow(rowREReg1, "etcd", theirs[0], 1, registerWithLease(e, regRowTTL))
			measureRow(rowRERegN, "etcd", theirs[1], n, registerWithLease(e, regRowTTL))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return rep, ctx.Err()
}

// PrintLoad prints the heartbeat load and the detection phase.
func PrintLoad(out io.Writer, cfg harness.Config, rep *hbReport, err error) {
	title := fmt.Sprintf("Service registry: %s instances heartbeating, 3 voters", harness.Count(cfg.RegInstances))
	if !harness.PrintHeading(out, title, rep != nil, err) {
		return
	}
	fmt.Fprintf(out, "  3 voters (registry.Serve, the documented defaults: expiry every 250ms, TTL grace TTL/20 (100–500ms), self-registration, access log off),\n"+
		"  each in its own child process, on one NATS server in this process (mode %s: %s).\n"+
		"  %s instances in %d services, each with a %s TTL check, heartbeating (PUT .../heartbeat) every %s on its own\n"+
		"  schedule, the schedules spread evenly (%s heartbeats/s); instance i talks to replica i mod 3, through one\n"+
		"  http.Client per process (keep-alive, at most 256 connections per replica). The instances register during\n"+
		"  the first %s (unmeasured); then a window of %s (one run, not a median). One SSE watcher per service\n"+
		"  (GET /v1/services/{service}/watch?status=critical, spread over the replicas) notes every instance entering\n"+
		"  the critical set.\n",
		rep.mode.ID, rep.mode.Title, harness.Count(rep.instances), rep.services, rep.ttl, rep.every,
		harness.Rate(float64(rep.instances)/rep.every.Seconds()), rep.every, rep.window.Round(time.Millisecond))
	if err != nil {
		fmt.Fprintf(out, "  FAILED: %v\n", err)
	}
	t := harness.NewTable("l r l l")
	beats := len(rep.beats)
	errNote := "errors: none"
	if rep.errs > 0 {
		errNote = fmt.Sprintf("errors: %d, the first: %v", rep.errs, rep.firstErr)
	}
	t.Add("heartbeats sent in the window", fmt.Sprintf("%s (%s/s)", harness.Count(beats), harness.Rate(float64(beats)/rep.window.Seconds())), errNote, "")
	if beats > 0 {
		t.Add("heartbeat latency p50 / p99 / max (client side)",
			fmt.Sprintf("%s / %s / %s", harness.Dur(harness.Percentile(rep.beats, 0.50)), harness.Dur(harness.Percentile(rep.beats, 0.99)), harness.Dur(rep.beats[beats-1])), "", "")
	}
	t.Add("instances that left passing while heartbeating", harness.Count(rep.wrong), "target 0", harness.Verdict(rep.wrong == 0))
	t.Add("  seen critical by the watchers", harness.Count(rep.wrongWatch), "", "")
	t.Add("  a heartbeat's answer: statusSince moved (or not passing, or held)", harness.Count(rep.wrongAnswer), "", "")
	if rep.listErr != nil {
		t.Add("  the final listing: statusSince moved, not passing, held or gone", "—", fmt.Sprintf("FAILED: %v", rep.listErr), "")
	} else {
		t.Add("  the final listing: statusSince moved, not passing, held or gone", harness.Count(rep.wrongList), "", "")
	}
	t.Add("services the guard protected", harness.Count(len(rep.protected)), strings.Join(rep.protected, " "), "")
	t.Write(out)
	fmt.Fprintf(out, "  (a watch stream is level-based: a flip undone within milliseconds may be coalesced away before the stream\n"+
		"  writes, so the watchers can see fewer than the heartbeat answers and the final listing show; %s events received)\n",
		harness.Count(rep.watchEvents))
	if len(rep.flips) > 0 {
		printFlips(out, rep)
	}

	fmt.Fprintf(out, "\n  CPU and memory over the window\n")
	t = harness.NewTable("l r r r r")
	t.Add("", "CPU-s/s", "VmRSS", "VmHWM", "Go heap")
	var cpu float64
	var rss, hwm int64
	for i := range rep.cpuAfter {
		c := (rep.cpuAfter[i].CPU - rep.cpuBefore[i].CPU).Seconds() / rep.window.Seconds()
		cpu += c
		rss += rep.cpuAfter[i].RSS
		hwm += rep.cpuAfter[i].HWM
		t.Add(registryVoters[i]+" (child process)", fmt.Sprintf("%.2f", c), harness.Mib(rep.cpuAfter[i].RSS), harness.Mib(rep.cpuAfter[i].HWM), harness.Mib(rep.cpuAfter[i].HeapInuse))
	}
	t.Add("the 3 replicas", fmt.Sprintf("%.2f", cpu), harness.Mib(rss), harness.Mib(hwm), "")
	t.Add("this process: NATS server, load generator, watchers", fmt.Sprintf("%.2f", rep.parentCPU), "", "", "")
	t.Write(out)
	fmt.Fprintf(out, "  %s\n", rep.parentLoad)

	fmt.Fprintf(out, "\n  stopped heartbeat → critical: %d instances (spread over the services and the schedule) each send one\n"+
		"  more heartbeat and stop, while the rest go on; measured from when that last heartbeat was answered to\n"+
		"  when a watcher received the set with the instance critical. The registry's deadline runs from the\n"+
		"  heartbeat's log time, which lies between its send and its answer.\n", rep.stop)
	t = harness.NewTable("l rrr l l")
	t.Add("", "p50", "p99", "max", "", "")
	if len(rep.delay) > 0 {
		t.Add(fmt.Sprintf("delay past the TTL (seen − answered − %s)", rep.ttl), harness.Dur(harness.Percentile(rep.delay, 0.5)), harness.Dur(harness.Percentile(rep.delay, 0.99)), harness.SignedDur(rep.delay[len(rep.delay)-1]), "", "")
		p99 := harness.Percentile(rep.absolute, 0.99)
		t.Add("absolute (seen − answered)", harness.Dur(harness.Percentile(rep.absolute, 0.5)), harness.Dur(p99), harness.Dur(rep.absolute[len(rep.absolute)-1]),
			fmt.Sprintf("target p99 < TTL + 1s = %s", harness.Dur(rep.ttl+time.Second)), harness.Verdict(p99 < rep.ttl+time.Second && rep.undetected == 0))
	}
	t.Write(out)
	fmt.Fprintf(out, "  detected %d of %d; not seen critical within TTL + interval + %s: %d; last heartbeat failed: %d\n",
		rep.stopped, rep.stop, 5*time.Second+rep.ttl, rep.undetected, rep.stopFailed)
	if len(rep.delay) > 0 && rep.delay[0] < 0 {
		fmt.Fprintf(out, "  (the smallest delay is %s: the expiry came after the deadline but before the last heartbeat's answer reached\n"+
			"  the client)\n", harness.SignedDur(rep.delay[0]))
	}
}

// printFlips describes, for the instances a heartbeat answer showed had
// turned critical, how late that heartbeat was by the client's clock.
func printFlips(out io.Writer, rep *hbReport) {
	var late, sinceAck []time.Duration
	for _, f := range rep.flips {
		if f.prevSent.IsZero() {
			continue // the first heartbeat after registering
		}
		late = append(late, f.sent.Sub(f.prevSent)-rep.every)
		sinceAck = append(sinceAck, f.sent.Sub(f.prevAck))
	}
	fmt.Fprintf(out, "  the %d heartbeats whose answer showed the instance had been critical, by the client's clock:\n", len(rep.flips))
	if len(late) == 0 {
		fmt.Fprintf(out, "    all were the first heartbeat after registering\n")
		return
	}
	slices.Sort(late)
	slices.Sort(sinceAck)
	fmt.Fprintf(out, "    sent after the previous one's send + %s by p50 %s, max %s; after the previous one's answer by p50 %s, min %s\n",
		rep.every, harness.SignedDur(harness.Percentile(late, 0.5)), harness.SignedDur(late[len(late)-1]), harness.Dur(harness.Percentile(sinceAck, 0.5)), harness.Dur(sinceAck[0]))
}

// PrintRegistration prints the registration rows of one mode and
// the ratios.
func PrintRegistration(out io.Writer, cfg harness.Config, rep *harness.ModeReport) {
	n := cfg.Clients
	fmt.Fprintf(out, "\n== Service registry: registration throughput vs Consul-style etcd, mode %s: %s ==\n\n", rep.Mode.ID, rep.Mode.Title)
	harness.PrintRows(out, rep)
	fmt.Fprintf(out, "  registry: 3 voters, each in its own child process, NATS in this process; PUT /v1/services/reg-<n mod %d>/instances/i<n>\n"+
		"  with {\"address\",\"port\",\"check\":{\"ttl\":\"%s\"}}, a new instance each, one http.Client (keep-alive) for all clients,\n"+
		"  round-robin over the replicas. etcd: ONE node (the bench's etcd helper starts a single member), in this process,\n"+
		"  one clientv3 connection shared by all clients; per registration Grant(TTL %s) then Put of the same JSON under\n"+
		"  /services/reg-<n mod %d>/i<n> with that lease. Each registration is one client operation on both sides.\n",
		regRowServices, regRowTTL, regRowTTL, regRowServices)
	t := harness.NewTable("l rrr rrr r")
	t.Add("", "registry reg/s", "p50", "p99", "etcd reg/s", "p50", "p99", "registry/etcd")
	rep.AddPair(t, "1 client", rowRReg1, rowREReg1)
	rep.AddPair(t, fmt.Sprintf("%d clients", n), rowRRegN, rowRERegN)
	t.Write(out)
}

// Command bench measures Steward's replicated quorum log (platform/qlog)
// side by side with its floor, raw JetStream publishes on the same embedded
// NATS server, and with its closest peer, a single-node embedded etcd. It
// measures everything twice, with fsync on every write (mode A) and with
// fsync off (mode B), and prints one table per mode; numbers are compared
// only within a mode. Then it measures qlog's cold start from a snapshot
// and the memory of a replica holding a million registers. Last, the
// configuration service (services/config) over HTTP beside etcd in both
// modes, its watch fan-out to 10,000 watchers (with STEWARD_AUTH off, then
// on: -watch-auth), what 10,000 idle watchers of other keys cost its
// writes, and the memory of a replica holding a million keys (section
// config; config-rw, config-watch, config-watch-keys and config-mem run
// its parts alone). Then the service registry
// (services/registry, three voters in child processes): 10,000 instances
// heartbeating 5s TTL checks for 60s, how soon a stopped heartbeat shows
// as critical, and registration throughput beside Consul-style etcd use
// (section registry; registry-load and registry-reg run its parts alone).
// Then the election service: failover after a leader crash and handoff
// after a resignation, beside etcd's concurrency.Election with the same
// TTL (section election). Then reverse proxies on one core: max RPS and
// the latency added at a fixed rate, direct to an upstream, through nginx,
// Caddy, a plain httputil.ReverseProxy and Steward's gateway, each its own
// process (section gateway; it installs nginx and wrk with apt-get and
// builds Caddy from the Go module proxy when missing). Last, the scaler
// service: the time from a load step to the driver call at sync periods
// of 1s and 15s, and its replica counts over a compressed 10-minute load
// series beside hpa.Simulate, an HPA reference written from the
// Kubernetes controller and a naive controller (section scaler). Section
// cluster runs qlog as a clustered deployment does: three NATS servers,
// R3 streams, three voters, with every server fsyncing every write (mode
// A) and with NATS's default interval fsync (mode B), beside JetStream
// publishes to an R3 stream. Section auth measures the config service's
// PUT and linearizable GET at many clients with STEWARD_AUTH off and on
// (a scoped token), runs alternating, and judges the cost against 5%.
// Section cluster3 compares 3-node deployments with fsync on: the config
// service (3 NATS servers, R3 stream, 3 voters, each server and replica
// its own child process) against a 3-member etcd cluster (each member its
// own child process): PUT and linearizable GET at 1 and many clients
// through each system's own client and both through HTTP/JSON with the
// same Go HTTP client (etcd's gRPC gateway), and watch latency.
//
//	go run ./bench [-duration=3s] [-runs=3] [-only=floor,qlog,etcd,cold,mem,config,registry,election,gateway,scaler,cluster,auth,cluster3]
//
// Every number printed is measured in that run. Progress goes to stderr,
// the tables to stdout.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/bench/internal/authbench"
	"github.com/stewardhq/steward/bench/internal/clusterbench"
	"github.com/stewardhq/steward/bench/internal/configbench"
	"github.com/stewardhq/steward/bench/internal/electionbench"
	"github.com/stewardhq/steward/bench/internal/gatewaybench"
	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/bench/internal/qlogbench"
	"github.com/stewardhq/steward/bench/internal/registrybench"
	"github.com/stewardhq/steward/bench/internal/scalerbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == qlogbench.MemChildCommand:
		err = qlogbench.RunMemChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == configbench.FloorChildCommand:
		err = configbench.RunFloorChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == configbench.ChildCommand:
		err = configbench.RunChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == registrybench.ChildCommand:
		err = registrybench.RunChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == clusterbench.NATSChildCommand:
		err = clusterbench.RunNATSChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == clusterbench.EtcdChildCommand:
		err = clusterbench.RunEtcdChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	default:
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (harness.Config, error) {
	var c harness.Config
	var modes, only, rows string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.Duration, "duration", 3*time.Second, "how long each measured run of a row lasts")
	fs.DurationVar(&c.Warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each row")
	fs.IntVar(&c.Runs, "runs", 3, "measured runs per row; the table shows the median run")
	fs.IntVar(&c.Clients, "clients", 64, "concurrency of the many-client rows")
	fs.StringVar(&c.HTTPClient, "http-client", harness.HTTPClientSDK, "the HTTP/JSON rows' client transport: "+harness.HTTPClientSDK+
		" (the one Steward's Go SDK uses: sdk.NewTransport) or "+harness.HTTPClientNetHTTP+" (net/http's alone)")
	fs.IntVar(&c.ValueSize, "value-size", 256, "value (payload) size in bytes")
	fs.StringVar(&modes, "modes", "A,B", "durability modes to measure: A (fsync on every write), B (fsync off)")
	fs.StringVar(&only, "only", "floor,qlog,etcd,cold,mem,config,registry,election,gateway,scaler,cluster,auth,cluster3", "sections to run; config is config-rw, config-watch, config-watch-keys and config-mem; registry is registry-load and registry-reg")
	fs.IntVar(&c.ColdEntries, "cold-entries", 100_000, "entries in the log for the cold-start measurement")
	fs.IntVar(&c.MemEntries, "mem-entries", 1_000_000, "entries applied before measuring memory")
	fs.IntVar(&c.MemValueSize, "mem-value-size", 32, "value size of the memory measurement's small entries")
	fs.IntVar(&c.Proposers, "fill-proposers", 256, "concurrent proposers when filling a log")
	fs.StringVar(&c.Tmp, "tmp", "", "directory for the servers' data (default: the system's temporary directory)")
	fs.StringVar(&rows, "rows", "", "measure only the rows of the enabled sections whose \"group name\" matches this regexp")
	c.Tuning.Flags(fs)
	fs.IntVar(&c.Watchers, "watchers", 10_000, "config watch fan-out: SSE watchers of one key")
	fs.IntVar(&c.WatchPuts, "watch-puts", 5, "config watch fan-out: PUTs, a second apart")
	fs.StringVar(&c.WatchAuth, "watch-auth", configbench.WatchAuthBoth, "config watch fan-out: the replica's STEWARD_AUTH, "+
		configbench.WatchAuthOff+", "+configbench.WatchAuthOn+" (every watcher and PUT with a bearer token) or "+configbench.WatchAuthBoth+" (off, then on)")
	fs.IntVar(&c.ConfigMemKeys, "config-mem-keys", 1_000_000, "config memory: keys loaded")
	fs.IntVar(&c.ConfigMemValueSize, "config-mem-value-size", 100, "config memory: value size in bytes (a JSON string)")
	fs.IntVar(&c.RegInstances, "registry-instances", 10_000, "registry load: instances heartbeating")
	fs.IntVar(&c.RegServices, "registry-services", 100, "registry load: services the instances are spread over")
	fs.DurationVar(&c.RegTTL, "registry-ttl", 5*time.Second, "registry load: the instances' TTL")
	fs.DurationVar(&c.RegEvery, "registry-heartbeat-every", 0, "registry load: each instance's heartbeat interval (0: the TTL, as issue 5 asks)")
	fs.DurationVar(&c.RegDuration, "registry-duration", time.Minute, "registry load: the measured window of sustained heartbeats")
	fs.IntVar(&c.RegStop, "registry-stop", 200, "registry load: instances whose heartbeats stop, for the time to critical")
	electionbench.Flags(fs, &c)
	gatewaybench.Flags(fs, &c)
	scalerbench.Flags(fs, &c.Scaler)
	fs.StringVar(&c.ClusterServers, "cluster-servers", clusterbench.ServersChild, "cluster: where the 3 NATS servers run, "+clusterbench.ServersChild+" (each its own process) or "+clusterbench.ServersInProc+" (in this process)")
	fs.IntVar(&c.Cluster3WatchPuts, "cluster3-watch-puts", 200, "cluster3: PUTs per system for the watch latency")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run (not the memory child) to this file, and its allocations (pprof's allocs profile) to <file>.allocs; the config children write theirs to <file>.watch-child, <file>.watch-child-auth (auth on) and <file>.mem-child, the registry replicas to <file>.registry-load-<i> and <file>.registry-reg-<mode>-<i>, the 3-node comparison's config replicas to <file>.cluster3-config-<i>, the watch fan-out's floor to <file>.watch-floor")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.Rows, err = regexp.Compile(rows); err != nil {
		return c, fmt.Errorf("-rows: %w", err)
	}
	c.Modes = harness.SplitList(modes)
	c.Only = harness.SplitList(only)
	for _, m := range c.Modes {
		if _, ok := harness.ModeByID[m]; !ok {
			return c, fmt.Errorf("-modes: unknown mode %q (want A or B)", m)
		}
	}
	for _, s := range c.Only {
		if !slices.Contains([]string{"auth", "cluster", "cluster3", "election", "gateway", "scaler", "floor", "qlog", "etcd", "cold", "mem", "config", "config-rw", "config-watch", "config-watch-keys", "config-mem",
			"registry", "registry-load", "registry-reg"}, s) {
			return c, fmt.Errorf("-only: unknown section %q", s)
		}
	}
	if c.ClusterServers != clusterbench.ServersChild && c.ClusterServers != clusterbench.ServersInProc {
		return c, fmt.Errorf("-cluster-servers: %q (want %s or %s)", c.ClusterServers, clusterbench.ServersChild, clusterbench.ServersInProc)
	}
	if c.HTTPClient != harness.HTTPClientSDK && c.HTTPClient != harness.HTTPClientNetHTTP {
		return c, fmt.Errorf("-http-client: %q (want %s or %s)", c.HTTPClient, harness.HTTPClientSDK, harness.HTTPClientNetHTTP)
	}
	if c.Runs < 1 || c.Clients < 1 || c.Duration <= 0 || c.ColdEntries < 1 || c.MemEntries < 1 || c.Proposers < 1 {
		return c, fmt.Errorf("-runs, -clients, -duration, -cold-entries, -mem-entries and -fill-proposers must be positive")
	}
	if c.Cluster3WatchPuts < 1 {
		return c, fmt.Errorf("-cluster3-watch-puts must be positive")
	}
	if _, err := configbench.WatchAuthModes(c.WatchAuth); err != nil {
		return c, err
	}
	if c.Watchers < 1 || c.WatchPuts < 1 || c.ConfigMemKeys < 1 || c.ConfigMemValueSize < 2 {
		return c, fmt.Errorf("-watchers, -watch-puts and -config-mem-keys must be positive, -config-mem-value-size at least 2")
	}
	if c.RegEvery == 0 {
		c.RegEvery = c.RegTTL
	}
	if c.RegInstances < 1 || c.RegServices < 1 || c.RegServices > c.RegInstances || c.RegStop < 0 || c.RegStop > c.RegInstances ||
		c.RegTTL < time.Second || c.RegEvery <= 0 || c.RegDuration <= 0 {
		return c, fmt.Errorf("-registry-instances, -registry-services (at most the instances), -registry-heartbeat-every and -registry-duration " +
			"must be positive, -registry-stop between 0 and the instances, -registry-ttl at least 1s")
	}
	if err := electionbench.CheckFlags(c); err != nil {
		return c, err
	}
	if err := scalerbench.CheckFlags(c.Scaler); err != nil {
		return c, err
	}
	return c, gatewaybench.CheckFlags(c)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	stopProfile, err := harness.StartCPUProfile(cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	began := time.Now()
	// Before anything starts, so that child processes inherit it: the
	// watch fan-out needs a descriptor per watcher.
	if soft, err := harness.RaiseFileLimit(); err != nil {
		log.Warn("could not raise RLIMIT_NOFILE", "soft_limit", soft, "err", err)
	}
	fmt.Fprintf(stdout, "Steward bench: %s per run, median of %d runs (%s warm-up), %d-byte values, %d clients for the many-client rows;\n"+
		"qlog group commit: %s; log batches: binary frames (STEWARD_BATCH_ENCODING=binary); HTTP/JSON load over %s; %s\n",
		cfg.Duration, cfg.Runs, cfg.Warmup, cfg.ValueSize, cfg.Clients, cfg.Tuning, harness.HTTPClientTitle(cfg.HTTPClient), harness.Machine())
	if avg := harness.LoadAverage(); avg != "" {
		fmt.Fprintf(stdout, "load average at start: %s (other processes share these CPUs: compare within a table only)\n", avg)
	}
	if tables, known := harness.NetfilterTables(); known && len(tables) > 0 {
		fmt.Fprintf(stdout, "netfilter tables loaded: %s (a nat table, such as dockerd's, tracks every loopback connection; the watch fan-out "+
			"took 20%% more CPU per write with dockerd's tables than without: bench/results/watch-fanout.txt)\n", strings.Join(tables, ", "))
	} else if known {
		fmt.Fprintln(stdout, "netfilter tables loaded: none")
	}

	if cfg.Enabled("floor") || cfg.Enabled("qlog") || cfg.Enabled("etcd") {
		for _, id := range cfg.Modes {
			rep, err := qlogbench.RunMode(ctx, log, cfg, harness.ModeByID[id])
			if err != nil {
				return fmt.Errorf("mode %s: %w", id, err)
			}
			qlogbench.PrintMode(stdout, cfg, rep)
		}
	}
	if cfg.Enabled("cluster") {
		clusterbench.Print(stdout, cfg, clusterbench.Run(ctx, log, cfg))
	}
	if cfg.Enabled("cluster3") {
		clusterbench.Print3(stdout, cfg, clusterbench.Run3(ctx, log, cfg))
	}
	// A failure here is printed in the table, like a failed row, rather
	// than losing what was measured before it.
	var extra qlogbench.ExtraReport
	if cfg.Enabled("cold") {
		extra.Cold, extra.ColdErr = qlogbench.RunColdStart(ctx, log, cfg)
		if extra.ColdErr != nil {
			log.Error("cold start failed", "err", extra.ColdErr)
		}
	}
	if cfg.Enabled("mem") {
		extra.Mem, extra.MemErr = qlogbench.RunMemory(ctx, log, cfg)
		if extra.MemErr != nil {
			log.Error("memory measurement failed", "err", extra.MemErr)
		}
	}
	if cfg.Enabled("cold") || cfg.Enabled("mem") {
		qlogbench.PrintExtra(stdout, cfg, extra)
	}
	if cfg.ConfigPart("config-rw") {
		for _, id := range cfg.Modes {
			rep, err := configbench.RunMode(ctx, log, cfg, harness.ModeByID[id])
			if err != nil {
				return fmt.Errorf("config, mode %s: %w", id, err)
			}
			configbench.PrintMode(stdout, cfg, rep)
		}
	}
	if cfg.ConfigPart("config-watch") {
		rep, err := configbench.RunWatchFanout(ctx, log, cfg)
		if err != nil {
			log.Error("watch fan-out failed", "err", err)
		}
		configbench.PrintWatch(stdout, cfg, rep, err)
	}
	if cfg.ConfigPart("config-watch-keys") {
		rep, err := configbench.RunWatchKeys(ctx, log, cfg)
		if err != nil {
			log.Error("watch keys failed", "err", err)
		}
		configbench.PrintWatchKeys(stdout, cfg, rep, err)
	}
	if cfg.ConfigPart("config-mem") {
		rep, err := configbench.RunMemory(ctx, log, cfg)
		if err != nil {
			log.Error("config memory measurement failed", "err", err)
		}
		configbench.PrintMemory(stdout, rep, err)
	}
	if cfg.RegistryPart("registry-load") {
		// One mode: the first asked for (A, fsync on every write, by
		// default, as `steward dev` runs).
		m := harness.ModeByID[cfg.Modes[0]]
		rep, err := registrybench.RunLoad(ctx, log, cfg, m)
		if err != nil {
			log.Error("registry load failed", "err", err)
		}
		registrybench.PrintLoad(stdout, cfg, rep, err)
	}
	if cfg.RegistryPart("registry-reg") {
		for _, id := range cfg.Modes {
			rep, err := registrybench.RunRegistration(ctx, log, cfg, harness.ModeByID[id])
			if err != nil {
				return fmt.Errorf("registry registration, mode %s: %w", id, err)
			}
			registrybench.PrintRegistration(stdout, cfg, rep)
		}
	}
	if cfg.Enabled("election") {
		electionbench.Print(stdout, cfg, electionbench.Run(ctx, log, cfg))
	}
	if cfg.Enabled("gateway") {
		gatewaybench.Print(stdout, cfg, gatewaybench.Run(ctx, log, cfg))
	}
	if cfg.Enabled("scaler") {
		scalerbench.Print(stdout, cfg, scalerbench.Run(ctx, log, cfg))
	}
	if cfg.Enabled("auth") {
		reps, err := authbench.Run(ctx, log, cfg)
		if err != nil {
			log.Error("auth section failed", "err", err)
		}
		authbench.Print(stdout, cfg, reps, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwhole run: %s\n", time.Since(began).Round(time.Second))
	return nil
}

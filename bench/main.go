// Command bench measures Steward's replicated quorum log (platform/qlog)
// side by side with its floor, raw JetStream publishes on the same embedded
// NATS server, and with its closest peer, a single-node embedded etcd. It
// measures everything twice, with fsync on every write (mode A) and with
// fsync off (mode B), and prints one table per mode; numbers are compared
// only within a mode. Then it measures qlog's cold start from a snapshot
// and the memory of a replica holding a million registers. Last, the
// configuration service (services/config) over HTTP beside etcd in both
// modes, its watch fan-out to 10,000 watchers and the memory of a replica
// holding a million keys (section config; config-rw, config-watch and
// config-mem run its parts alone). Then the service registry
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
// series beside autoscale.Simulate, an HPA reference written from the
// Kubernetes controller and a naive controller (section scaler). Section
// cluster runs qlog as a clustered deployment does: three NATS servers,
// R3 streams, three voters, with every server fsyncing every write (mode
// A) and with NATS's default interval fsync (mode B), beside JetStream
// publishes to an R3 stream.
//
//	go run ./bench [-duration=3s] [-runs=3] [-only=floor,qlog,etcd,cold,mem,config,registry,election,gateway,scaler,cluster]
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
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == memChildCommand:
		err = runMemChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == configChildCommand:
		err = runConfigChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == registryChildCommand:
		err = runRegistryChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == natsChildCommand:
		err = runNATSChild(ctx, os.Args[2:], os.Stdout, os.Stderr)
	default:
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	settings
	clients      int
	valueSize    int
	modes        []string
	only         []string
	coldEntries  int
	memEntries   int
	memValueSize int
	proposers    int // for the fill phases
	tmp          string
	cpuProfile   string
	rows         *regexp.Regexp
	tuning       qlogTuning
	// the config section
	watchers           int
	watchPuts          int
	configMemKeys      int
	configMemValueSize int
	// the election section
	electionTrials int
	electionTTL    time.Duration
	// the registry section
	regInstances int
	regServices  int
	regStop      int
	regTTL       time.Duration
	regEvery     time.Duration
	regDuration  time.Duration
	// the gateway section
	gw gatewayConfig
	// the scaler section
	scaler scalerConfig
	// the cluster section
	clusterServers string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var modes, only, rows string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "how long each measured run of a row lasts")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each row")
	fs.IntVar(&c.runs, "runs", 3, "measured runs per row; the table shows the median run")
	fs.IntVar(&c.clients, "clients", 64, "concurrency of the many-client rows")
	fs.IntVar(&c.valueSize, "value-size", 256, "value (payload) size in bytes")
	fs.StringVar(&modes, "modes", "A,B", "durability modes to measure: A (fsync on every write), B (fsync off)")
	fs.StringVar(&only, "only", "floor,qlog,etcd,cold,mem,config,registry,election,gateway,scaler,cluster", "sections to run; config is config-rw, config-watch and config-mem; registry is registry-load and registry-reg")
	fs.IntVar(&c.coldEntries, "cold-entries", 100_000, "entries in the log for the cold-start measurement")
	fs.IntVar(&c.memEntries, "mem-entries", 1_000_000, "entries applied before measuring memory")
	fs.IntVar(&c.memValueSize, "mem-value-size", 32, "value size of the memory measurement's small entries")
	fs.IntVar(&c.proposers, "fill-proposers", 256, "concurrent proposers when filling a log")
	fs.StringVar(&c.tmp, "tmp", "", "directory for the servers' data (default: the system's temporary directory)")
	fs.StringVar(&rows, "rows", "", "measure only the rows of the enabled sections whose \"group name\" matches this regexp")
	c.tuning.flags(fs)
	fs.IntVar(&c.watchers, "watchers", 10_000, "config watch fan-out: SSE watchers of one key")
	fs.IntVar(&c.watchPuts, "watch-puts", 5, "config watch fan-out: PUTs, a second apart")
	fs.IntVar(&c.configMemKeys, "config-mem-keys", 1_000_000, "config memory: keys loaded")
	fs.IntVar(&c.configMemValueSize, "config-mem-value-size", 100, "config memory: value size in bytes (a JSON string)")
	fs.IntVar(&c.regInstances, "registry-instances", 10_000, "registry load: instances heartbeating")
	fs.IntVar(&c.regServices, "registry-services", 100, "registry load: services the instances are spread over")
	fs.DurationVar(&c.regTTL, "registry-ttl", 5*time.Second, "registry load: the instances' TTL")
	fs.DurationVar(&c.regEvery, "registry-heartbeat-every", 0, "registry load: each instance's heartbeat interval (0: the TTL, as issue 5 asks)")
	fs.DurationVar(&c.regDuration, "registry-duration", time.Minute, "registry load: the measured window of sustained heartbeats")
	fs.IntVar(&c.regStop, "registry-stop", 200, "registry load: instances whose heartbeats stop, for the time to critical")
	electionFlags(fs, &c)
	gatewayFlags(fs, &c)
	scalerFlags(fs, &c.scaler)
	fs.StringVar(&c.clusterServers, "cluster-servers", serversChild, "cluster: where the 3 NATS servers run, "+serversChild+" (each its own process) or "+serversInProc+" (in this process)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (not the memory child) to this file; the config children write theirs to <file>.watch-child and <file>.mem-child, the registry replicas to <file>.registry-load-<i> and <file>.registry-reg-<mode>-<i>")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.rows, err = regexp.Compile(rows); err != nil {
		return c, fmt.Errorf("-rows: %w", err)
	}
	c.modes = splitList(modes)
	c.only = splitList(only)
	for _, m := range c.modes {
		if _, ok := modeByID[m]; !ok {
			return c, fmt.Errorf("-modes: unknown mode %q (want A or B)", m)
		}
	}
	for _, s := range c.only {
		if !slices.Contains([]string{"cluster", "election", "gateway", "scaler", "floor", "qlog", "etcd", "cold", "mem", "config", "config-rw", "config-watch", "config-mem",
			"registry", "registry-load", "registry-reg"}, s) {
			return c, fmt.Errorf("-only: unknown section %q", s)
		}
	}
	if c.clusterServers != serversChild && c.clusterServers != serversInProc {
		return c, fmt.Errorf("-cluster-servers: %q (want %s or %s)", c.clusterServers, serversChild, serversInProc)
	}
	if c.runs < 1 || c.clients < 1 || c.duration <= 0 || c.coldEntries < 1 || c.memEntries < 1 || c.proposers < 1 {
		return c, fmt.Errorf("-runs, -clients, -duration, -cold-entries, -mem-entries and -fill-proposers must be positive")
	}
	if c.watchers < 1 || c.watchPuts < 1 || c.configMemKeys < 1 || c.configMemValueSize < 2 {
		return c, fmt.Errorf("-watchers, -watch-puts and -config-mem-keys must be positive, -config-mem-value-size at least 2")
	}
	if c.regEvery == 0 {
		c.regEvery = c.regTTL
	}
	if c.regInstances < 1 || c.regServices < 1 || c.regServices > c.regInstances || c.regStop < 0 || c.regStop > c.regInstances ||
		c.regTTL < time.Second || c.regEvery <= 0 || c.regDuration <= 0 {
		return c, fmt.Errorf("-registry-instances, -registry-services (at most the instances), -registry-heartbeat-every and -registry-duration " +
			"must be positive, -registry-stop between 0 and the instances, -registry-ttl at least 1s")
	}
	if err := checkElectionFlags(c); err != nil {
		return c, err
	}
	if err := checkScalerFlags(c.scaler); err != nil {
		return c, err
	}
	return c, checkGatewayFlags(c)
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (c config) enabled(section string) bool { return slices.Contains(c.only, section) }

// configPart reports whether a part of the config section runs.
func (c config) configPart(part string) bool { return c.enabled("config") || c.enabled(part) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	stopProfile, err := startCPUProfile(cfg.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	began := time.Now()
	// Before anything starts, so that child processes inherit it: the
	// watch fan-out needs a descriptor per watcher.
	if soft, err := raiseFileLimit(); err != nil {
		log.Warn("could not raise RLIMIT_NOFILE", "soft_limit", soft, "err", err)
	}
	fmt.Fprintf(stdout, "Steward bench: %s per run, median of %d runs (%s warm-up), %d-byte values, %d clients for the many-client rows;\n"+
		"qlog group commit: %s; %s\n",
		cfg.duration, cfg.runs, cfg.warmup, cfg.valueSize, cfg.clients, cfg.tuning, machine())
	if avg := loadAverage(); avg != "" {
		fmt.Fprintf(stdout, "load average at start: %s (other processes share these CPUs: compare within a table only)\n", avg)
	}

	if cfg.enabled("floor") || cfg.enabled("qlog") || cfg.enabled("etcd") {
		for _, id := range cfg.modes {
			rep, err := runMode(ctx, log, cfg, modeByID[id])
			if err != nil {
				return fmt.Errorf("mode %s: %w", id, err)
			}
			printMode(stdout, cfg, rep)
		}
	}
	if cfg.enabled("cluster") {
		printCluster(stdout, cfg, runCluster(ctx, log, cfg))
	}
	// A failure here is printed in the table, like a failed row, rather
	// than losing what was measured before it.
	var extra extraReport
	if cfg.enabled("cold") {
		extra.cold, extra.coldErr = runColdStart(ctx, log, cfg)
		if extra.coldErr != nil {
			log.Error("cold start failed", "err", extra.coldErr)
		}
	}
	if cfg.enabled("mem") {
		extra.mem, extra.memErr = runMemory(ctx, log, cfg)
		if extra.memErr != nil {
			log.Error("memory measurement failed", "err", extra.memErr)
		}
	}
	if cfg.enabled("cold") || cfg.enabled("mem") {
		printExtra(stdout, cfg, extra)
	}
	if cfg.configPart("config-rw") {
		for _, id := range cfg.modes {
			rep, err := runConfigMode(ctx, log, cfg, modeByID[id])
			if err != nil {
				return fmt.Errorf("config, mode %s: %w", id, err)
			}
			printConfigMode(stdout, cfg, rep)
		}
	}
	if cfg.configPart("config-watch") {
		rep, err := runWatchFanout(ctx, log, cfg)
		if err != nil {
			log.Error("watch fan-out failed", "err", err)
		}
		printWatch(stdout, cfg, rep, err)
	}
	if cfg.configPart("config-mem") {
		rep, err := runConfigMemory(ctx, log, cfg)
		if err != nil {
			log.Error("config memory measurement failed", "err", err)
		}
		printConfigMemory(stdout, rep, err)
	}
	if cfg.registryPart("registry-load") {
		// One mode: the first asked for (A, fsync on every write, by
		// default, as `steward dev` runs).
		m := modeByID[cfg.modes[0]]
		rep, err := runRegistryLoad(ctx, log, cfg, m)
		if err != nil {
			log.Error("registry load failed", "err", err)
		}
		printRegistryLoad(stdout, cfg, rep, err)
	}
	if cfg.registryPart("registry-reg") {
		for _, id := range cfg.modes {
			rep, err := runRegistryRegistration(ctx, log, cfg, modeByID[id])
			if err != nil {
				return fmt.Errorf("registry registration, mode %s: %w", id, err)
			}
			printRegistryRegistration(stdout, cfg, rep)
		}
	}
	if cfg.enabled("election") {
		printElection(stdout, cfg, runElection(ctx, log, cfg))
	}
	if cfg.enabled("gateway") {
		printGateway(stdout, cfg, runGateway(ctx, log, cfg))
	}
	if cfg.enabled("scaler") {
		printScaler(stdout, cfg, runScaler(ctx, log, cfg))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwhole run: %s\n", time.Since(began).Round(time.Second))
	return nil
}

// startCPUProfile writes a CPU profile of this process to path until stop
// is called; an empty path profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// tempDir makes a fresh directory for one server's data.
func tempDir(cfg config, pattern string) (string, error) {
	return os.MkdirTemp(cfg.tmp, "steward-bench-"+pattern+"-")
}

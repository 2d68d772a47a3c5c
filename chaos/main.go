// Command chaos is Steward's fault suite (make chaos), in Jepsen's manner:
// three nodes, each a network namespace the suite creates, each running a
// NATS server (clustered, JetStream, fsync on every write, R3 streams) and
// one replica of every service, two of them a gateway; clients in the root
// namespace record what they asked and what they were told while a nemesis
// kills, pauses, partitions and degrades the nodes; checkers then judge the
// histories (porcupine for the config service's linearizability, and each
// service's own guarantees). It prints a table, saves it in the run
// directory beside every process's log, and exits 1 on any violation or
// any HTTP 500 a client saw.
//
// It needs root (namespaces, iptables, tc, a tmpfs mount), the binaries
// of make build and a nats-server in CHAOS_BIN, and PostgreSQL.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the suite's CHAOS_* settings.
type options struct {
	duration time.Duration // CHAOS_DURATION: how long workloads and nemesis run
	binDir   string        // CHAOS_BIN: steward and nats-server
	runDir   string        // CHAOS_RUN_DIR: where logs and the table go
	adminURL string        // STEWARD_TEST_DATABASE_URL: PostgreSQL to create the database on
	seed     int64         // CHAOS_SEED: the nemesis's and clients' randomness
	faults   []string      // CHAOS_FAULTS: only these fault kinds (comma-separated); all if empty
	smoke    bool          // CHAOS_SMOKE: start, check every service answers, stop
	keepDB   bool          // CHAOS_KEEP_DB: keep the run's database for inspection
}

func loadOptions() (options, error) {
	o := options{
		duration: 4 * time.Minute,
		binDir:   "bin",
		adminURL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		seed:     time.Now().UnixNano(),
	}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("CHAOS_DURATION=%q: want a positive duration like 4m", v)
		}
		o.duration = d
	}
	if v := os.Getenv("CHAOS_BIN"); v != "" {
		o.binDir = v
	}
	if v := os.Getenv("STEWARD_TEST_DATABASE_URL"); v != "" {
		o.adminURL = v
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("CHAOS_SEED=%q: want an integer", v)
		}
		o.seed = s
	}
	if v := os.Getenv("CHAOS_FAULTS"); v != "" {
		for f := range strings.SplitSeq(v, ",") {
			f = strings.TrimSpace(f)
			if !knownFault(f) {
				return o, fmt.Errorf("CHAOS_FAULTS: unknown fault %q (known: %s)", f, strings.Join(faultKinds(), ", "))
			}
			o.faults = append(o.faults, f)
		}
	}
	o.smoke = os.Getenv("CHAOS_SMOKE") != ""
	o.keepDB = os.Getenv("CHAOS_KEEP_DB") != ""
	abs, err := filepath.Abs(o.binDir)
	if err != nil {
		return o, err
	}
	o.binDir = abs
	o.runDir = os.Getenv("CHAOS_RUN_DIR")
	if o.runDir == "" {
		o.runDir = filepath.Join(os.TempDir(), mountMarker+"runs", time.Now().Format("20060102-150405"))
	}
	if o.runDir, err = filepath.Abs(o.runDir); err != nil {
		return o, err
	}
	if !strings.Contains(o.runDir, mountMarker) {
		// cleanupLeftovers finds the suite's tmpfs mounts by this marker.
		o.runDir = filepath.Join(o.runDir, mountMarker+"run")
	}
	return o, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := func() error {
		o, err := loadOptions()
		if err != nil {
			return err
		}
		return run(ctx, o, os.Stdout)
	}()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

// run sets everything up, runs the workloads and the nemesis for
// o.duration, tears everything down and judges. The error says why the run
// failed (violations, 500s, or the harness itself).
func run(ctx context.Context, o options, out io.Writer) (err error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(out, "[chaos %s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: it creates network namespaces, iptables rules, qdiscs and a tmpfs")
	}
	for _, bin := range []string{"nats-server", "steward"} {
		if _, err := os.Stat(filepath.Join(o.binDir, bin)); err != nil {
			return fmt.Errorf("%s: %w (make chaos builds it)", bin, err)
		}
	}
	for _, tool := range []string{"ip", "iptables", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install iproute2 iptables)", tool)
		}
	}
	if err := os.MkdirAll(o.runDir, 0o755); err != nil {
		return err
	}
	logf("run directory %s, seed %d, duration %s", o.runDir, o.seed, o.duration)

	// One run at a time on a machine: runs share the names of the
	// namespaces, the bridge and the databases, and each start removes
	// what it takes for a crashed run's leftovers. The lock goes with the
	// process, however it ends.
	lockPath := filepath.Join(os.TempDir(), "stw-chaos.lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("another chaos run holds %s (one run at a time per machine): %w", lockPath, err)
	}

	// Teardown must run even after Ctrl-C, so it gets its own context.
	cleanCtx := context.WithoutCancel(ctx)
	cleanupLeftovers(ctx, logf)
	netw, err := setupNetwork(ctx, 3)
	defer func() {
		if netw != nil {
			netw.teardown(cleanCtx)
		}
	}()
	if err != nil {
		return err
	}
	logf("network %s: bridge %s at %s, nodes %v", netw.subnet, bridgeName, netw.bridgeIP, netw.nodes)

	target, err := pgTarget(o.adminURL)
	if err != nil {
		return err
	}
	fwd, err := startForwarder(netw.bridgeIP.String()+":0", target)
	if err != nil {
		return fmt.Errorf("PostgreSQL forwarder: %w", err)
	}
	defer fwd.close()
	dbName, err := createDatabase(ctx, o.adminURL)
	if err != nil {
		return err
	}
	if !o.keepDB {
		defer dropDatabase(cleanCtx, o.adminURL, dbName)
	}
	dbURL, err := databaseURL(o.adminURL, fwd.addr(), dbName)
	if err != nil {
		return err
	}
	logf("database %s through %s", dbName, fwd.addr())

	c := &cluster{opts: o, net: netw, runDir: o.runDir, dbURL: dbURL, logf: logf, http: newHTTPClient()}
	procCtx, stopProcs := context.WithCancel(cleanCtx)
	defer func() {
		stopProcs()
		c.stop()
		logf("stopped every process; logs in %s", filepath.Join(o.runDir, "logs"))
	}()
	if err := c.prepare(ctx); err != nil {
		return err
	}
	started := time.Now()
	if err := c.start(procCtx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	logf("cluster up in %s: %d processes", time.Since(started).Round(time.Millisecond), len(c.procs))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s := newSuite(c, o, logf)
	if o.smoke {
		return s.smoke(ctx)
	}
	return s.run(ctx, out)
}

// newHTTPClient is the clients' transport: no proxy from the environment,
// bounded idle connections.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// readAll reads a response body, at most 1 MiB of it.
func readAll(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, 1<<20))
}

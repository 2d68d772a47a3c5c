package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward/platform/supervise"
)

// options are what a cluster is started with.
type options struct {
	composeFile string
	binDir      string // steward and nats-server
	runDir      string // logs, NATS stores, configurations
	basePort    int
	adminURL    string // the PostgreSQL the run's database is created on
	logf        func(string, ...any)
	// readyWithin bounds the start, every service ready.
	readyWithin time.Duration
}

// cluster is compose.yaml's topology as local processes.
type cluster struct {
	opts    options
	secrets secrets
	members []*member
	byName  map[string]*member
	procs   map[string]*supervise.Process // the long-running members
	dbName  string
	dbURL   string
	http    *http.Client

	wg       sync.WaitGroup
	mu       sync.Mutex
	exits    []supervise.Exit
	runs     context.CancelFunc // ends every supervisor
	oneShots map[string]error   // each one-shot's outcome
}

// startCluster starts every member in compose's dependency order and
// returns once all are ready (the one-shots done). On an error what was
// started is stopped again.
func startCluster(ctx context.Context, o options) (_ *cluster, err error) {
	if o.readyWithin == 0 {
		o.readyWithin = 3 * time.Minute
	}
	steward := filepath.Join(o.binDir, "steward")
	c := &cluster{opts: o, byName: map[string]*member{}, procs: map[string]*supervise.Process{},
		oneShots: map[string]error{}, http: &http.Client{Timeout: 2 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	// Least-privilege role tokens need `steward auth-init`; a binary
	// without it has every role use the root token.
	authInit := exec.CommandContext(ctx, steward, "auth-init", "--help").Run() == nil
	c.secrets = newSecrets(authInit)
	if c.members, err = loadTopology(ctx, o.composeFile, c.secrets.dotEnv(), o.basePort); err != nil {
		return nil, err
	}
	for _, m := range c.members {
		c.byName[m.name] = m
	}
	for _, d := range []string{"logs", "nats"} {
		if err := os.MkdirAll(filepath.Join(o.runDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if c.dbName, c.dbURL, err = createDatabase(ctx, o.adminURL); err != nil {
		return nil, err
	}
	o.logf("database %s", c.dbName)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.runs = cancel
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	ctx, cancelStart := context.WithTimeout(ctx, o.readyWithin)
	defer cancelStart()
	return c, c.startAll(ctx, runCtx, authInit)
}

// startAll starts each member once its dependencies meet their
// conditions, as `docker compose up` does, and waits for all.
func (c *cluster) startAll(ctx, runCtx context.Context, authInit bool) error {
	// Each member's state, closed as it is reached.
	started, healthy, done := map[string]chan struct{}{}, map[string]chan struct{}{}, map[string]chan struct{}{}
	for _, m := range c.members {
		started[m.name], healthy[m.name], done[m.name] = make(chan struct{}), make(chan struct{}), make(chan struct{})
	}
	// The first failure ends the start: what waits on it would wait in
	// vain.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(c.members))
	for _, m := range c.members {
		go func() {
			errs <- c.bring(ctx, runCtx, m, authInit, started, healthy, done)
		}()
	}
	var first error
	for range c.members {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	if first != nil {
		return fmt.Errorf("start the cluster: %w", first)
	}
	return nil
}

// bring starts one member after its dependencies and waits until it is
// healthy (or, for a one-shot, done).
func (c *cluster) bring(ctx, runCtx context.Context, m *member, authInit bool, started, healthy, done map[string]chan struct{}) error {
	for _, dep := range slices.Sorted(maps.Keys(m.deps)) {
		var ch chan struct{}
		switch m.deps[dep] {
		case "service_healthy":
			ch = healthy[dep]
		case "service_completed_successfully":
			ch = done[dep]
		default:
			ch = started[dep]
		}
		if ch == nil {
			return fmt.Errorf("%s depends on %s, which compose.yaml does not declare", m.name, dep)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: still waiting for %s to be %s", m.name, dep, m.deps[dep])
		case <-ch:
		}
	}
	close(started[m.name])
	switch {
	case m.kind == kindPostgres:
		// The machine's PostgreSQL, the run's database made already.
	case m.oneShot && m.role() == "auth-init" && !authInit:
		c.opts.logf("%s skipped: this steward has no auth-init; every role uses the root token", m.name)
	case m.oneShot:
		if err := c.runOnce(ctx, m); err != nil {
			return err
		}
	default:
		if err := c.startLong(runCtx, m); err != nil {
			return err
		}
		if err := c.waitReady(ctx, m); err != nil {
			return err
		}
	}
	close(done[m.name])
	close(healthy[m.name])
	return nil
}

// runOnce runs a one-shot to completion, its output in its log.
func (c *cluster) runOnce(ctx context.Context, m *member) error {
	logPath := c.logPath(m.name)
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(c.opts.binDir, "steward"), m.command...)
	cmd.Env = m.processEnv(c.dbURL)
	cmd.Stdout, cmd.Stderr = f, f
	began := time.Now()
	err = cmd.Run()
	c.mu.Lock()
	c.oneShots[m.name] = err
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s (steward %s): %w\n%s", m.name, strings.Join(m.command, " "), err, supervise.Tail(logPath, 10))
	}
	c.opts.logf("%s done (%s)", m.name, time.Since(began).Round(time.Millisecond))
	return nil
}

// startLong starts a long-running member under a supervisor, which starts
// it again should it exit on its own.
func (c *cluster) startLong(runCtx context.Context, m *member) error {
	p := &supervise.Process{Name: m.name, LogPath: c.logPath(m.name), OnExit: c.recordExit}
	switch m.kind {
	case kindNATS:
		conf, err := c.writeNATSConfig(m)
		if err != nil {
			return err
		}
		p.Path, p.Args, p.Env = filepath.Join(c.opts.binDir, "nats-server"), []string{"-c", conf}, []string{"PATH=" + os.Getenv("PATH")}
	default:
		p.Path, p.Args, p.Env = filepath.Join(c.opts.binDir, "steward"), m.command, m.processEnv(c.dbURL)
	}
	c.mu.Lock()
	c.procs[m.name] = p
	c.mu.Unlock()
	c.wg.Go(func() { p.Run(runCtx) })
	return nil
}

func (c *cluster) logPath(name string) string {
	return filepath.Join(c.opts.runDir, "logs", name+".log")
}

// writeNATSConfig writes a NATS member's configuration: what
// compose's nats.conf says (JetStream fsyncing every write, the steward
// user with the password from .env, routes to every node), on this
// machine's ports and its own store directory.
func (c *cluster) writeNATSConfig(m *member) (string, error) {
	store := filepath.Join(c.opts.runDir, "nats", m.name)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return "", err
	}
	var routes []string
	for _, o := range c.members {
		if o.kind == kindNATS && o != m {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.ports[natsClusterPort]))
		}
	}
	conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
authorization {
  user: steward
  password: %q
}
jetstream {
  store_dir: %q
  sync_interval: always
}
cluster {
  name: steward
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, m.name, m.ports[natsClientPort], m.ports[natsMonitorPort], c.secrets.natsPassword, store, m.ports[natsClusterPort], strings.Join(routes, ", "))
	path := filepath.Join(c.opts.runDir, "nats", m.name+".conf")
	return path, os.WriteFile(path, []byte(conf), 0o600)
}

// waitReady waits until the member answers its readiness URL 200.
func (c *cluster) waitReady(ctx context.Context, m *member) error {
	u := m.readyURL()
	if u == "" {
		return nil
	}
	began := time.Now()
	last := "no answer"
	for {
		code, err := c.get(ctx, u)
		if err == nil && code == http.StatusOK {
			c.opts.logf("%s ready (%s)", m.name, time.Since(began).Round(time.Millisecond))
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d", code)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s after %s (last: %s); log %s:\n%s", m.name, u,
				time.Since(began).Round(time.Second), last, c.logPath(m.name), supervise.Tail(c.logPath(m.name), 8))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *cluster) get(ctx context.Context, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

func (c *cluster) recordExit(e supervise.Exit) {
	c.mu.Lock()
	c.exits = append(c.exits, e)
	c.mu.Unlock()
	c.opts.logf("UNEXPECTED EXIT of %s (%s), restarting it; log %s:\n%s", e.Proc, e.Status, c.logPath(e.Proc), e.Tail)
}

// unexpectedExits are the exits no one caused.
func (c *cluster) unexpectedExits() []supervise.Exit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.exits)
}

// proc is a long-running member's process (nil if there is none).
func (c *cluster) proc(name string) *supervise.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// gatewayURLs are the gateways' base URLs, by name.
func (c *cluster) gatewayURLs() []string {
	var urls []string
	for _, m := range c.members {
		if m.kind == kindSteward && m.role() == "gateway" {
			urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", m.ports[rolePorts["gateway"].port]))
		}
	}
	return urls
}

// stop ends every process and drops the run's database.
func (c *cluster) stop() {
	c.runs()
	c.mu.Lock()
	procs := slices.Collect(maps.Values(c.procs))
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(p.Shutdown)
	}
	wg.Wait()
	c.wg.Wait()
	c.http.CloseIdleConnections()
	if c.dbName != "" {
		if err := dropDatabase(c.opts.adminURL, c.dbName); err != nil {
			c.opts.logf("drop database %s: %v", c.dbName, err)
		}
	}
}

// dbPrefix names the databases runs create.
const dbPrefix = "steward_cluster_"

// createDatabase creates a fresh database for the run on adminURL's
// server and returns its name and URL.
func createDatabase(ctx context.Context, adminURL string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", "", fmt.Errorf("connect to PostgreSQL at %s: %w", adminURL, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := dbPrefix + strings.ToLower(secret()[4:16])
	name = strings.NewReplacer("-", "_").Replace(name)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", "", err
	}
	u.Path = "/" + name
	return name, u.String(), nil
}

func dropDatabase(adminURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

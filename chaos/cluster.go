package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/supervise"
)

// The replicated services, in the order they start, and the gateway.
var serviceRoles = []string{"registry", "config", "election", "scaler"}

const gatewayRole = "gateway"

// ports each role listens on, on its node's address.
var ports = map[string]int{"gateway": 8080, "config": 8081, "registry": 8082, "election": 8083, "scaler": 8084}

const (
	natsClientPort  = 4222
	natsClusterPort = 6222
	natsMonitorPort = 8222
	// gatewayNodes are the nodes that run a gateway.
	gatewayNodes = 2
	// diskNode is the NATS node whose store is on a small tmpfs, for the
	// full-disk fault.
	diskNode     = 2
	diskNodeSize = "256m"
)

// roleCommand is the one place that says how a Steward role is started:
// the program and its arguments, `steward <role>` as an operator runs it.
func roleCommand(binDir, role string) (string, []string) {
	return filepath.Join(binDir, "steward"), []string{role}
}

// cluster is the system under test: the network, NATS, every replica and
// the gateways, each process supervised.
type cluster struct {
	opts    options
	net     *network
	runDir  string
	dbURL   string // the services' database, through the forwarder
	logf    func(string, ...any)
	procs   []*proc
	byName  map[string]*proc
	http    *http.Client
	diskDir string // diskNode's NATS store (a tmpfs)

	mu    sync.Mutex
	exits []supervise.Exit
	wg    sync.WaitGroup
}

func (c *cluster) nodes() int { return len(c.net.nodes) }

// url is the base URL of role's replica on node i.
func (c *cluster) url(role string, i int) string {
	return fmt.Sprintf("http://%s:%d", c.net.nodes[i], ports[role])
}

func (c *cluster) natsURL(i int) string {
	return fmt.Sprintf("nats://%s:%d", c.net.nodes[i], natsClientPort)
}

// natsURLs lists every NATS server, node i's own first.
func (c *cluster) natsURLs(i int) string {
	urls := []string{c.natsURL(i)}
	for j := range c.nodes() {
		if j != i {
			urls = append(urls, c.natsURL(j))
		}
	}
	return strings.Join(urls, ",")
}

func (c *cluster) replicaID(role string, i int) string { return role + "-" + strconv.Itoa(i) }

// env is role's environment on node i: every STEWARD_* setting the suite
// chooses, from each service's settings.go.
func (c *cluster) env(role string, i int) []string {
	// Each role listens on its default address (all interfaces of its
	// node's namespace, as in a container) and advertises the node's.
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"STEWARD_LOG_FORMAT=text",
		"STEWARD_LOG_LEVEL=info",
		"STEWARD_SHUTDOWN_TIMEOUT=5s",
		fmt.Sprintf("STEWARD_ADVERTISE_ADDR=%s:%d", c.net.nodes[i], ports[role]),
	}
	if role == gatewayRole {
		return append(env,
			"STEWARD_GATEWAY_ID=gateway-"+strconv.Itoa(i),
			"STEWARD_REGISTRY_URL="+c.url("registry", i),
		)
	}
	var voters []string
	for j := range c.nodes() {
		voters = append(voters, c.replicaID(role, j))
	}
	env = append(env,
		"STEWARD_REPLICA_ID="+c.replicaID(role, i),
		"STEWARD_VOTERS="+strings.Join(voters, ","),
		"STEWARD_STREAM_REPLICAS=3",
		// Every replica is of this version: the faults run over binary
		// frames (compose-test keeps the default, JSON).
		"STEWARD_BATCH_ENCODING=binary",
		"STEWARD_NATS_URL="+c.natsURLs(i),
		"STEWARD_DATABASE_URL="+c.dbURL,
		"STEWARD_SNAPSHOT_EVERY="+strconv.Itoa(snapshotEvery),
	)
	switch role {
	case "config", "election":
		env = append(env, "STEWARD_REGISTRY_URL="+c.url("registry", i))
	case "scaler":
		var elections, configs []string
		for j := range c.nodes() {
			elections = append(elections, c.url("election", (i+j)%c.nodes()))
			configs = append(configs, c.url("config", (i+j)%c.nodes()))
		}
		env = append(env,
			"STEWARD_REGISTRY_URL="+c.url("registry", i),
			"STEWARD_ELECTION_URLS="+strings.Join(elections, ","),
			"STEWARD_CONFIG_URL="+strings.Join(configs, ","),
			"STEWARD_SCALER_LEASE_TTL="+scalerLeaseTTL.String(),
			"STEWARD_SCALER_KEEP_DECISIONS=5000",
		)
	}
	return env
}

// snapshotEvery is small so that snapshots and stream trims happen during
// a run; scalerLeaseTTL is short so that a faulted scaler leader is
// replaced within a fault's window.
const (
	snapshotEvery  = 300
	scalerLeaseTTL = 4 * time.Second
)

// natsConfig is node i's NATS server configuration: clustered, JetStream
// on a file store that fsyncs every write.
func (c *cluster) natsConfig(i int, storeDir string) string {
	ip := c.net.nodes[i]
	var routes []string
	for j := range c.nodes() {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats-route://%s:%d", c.net.nodes[j], natsClusterPort))
		}
	}
	maxStore := ""
	if i == diskNode {
		maxStore = "\n  max_file_store: 200MB"
	}
	return fmt.Sprintf(`server_name: n%d
listen: %s:%d
http: %s:%d
jetstream {
  store_dir: %q
  sync_interval: always%s
}
cluster {
  name: stw-chaos
  listen: %s:%d
  routes: [%s]
}
`, i, ip, natsClientPort, ip, natsMonitorPort, storeDir, maxStore, ip, natsClusterPort, strings.Join(routes, ", "))
}

// add registers a supervised process (not started yet).
func (c *cluster) add(name, role string, node int, path string, args, env []string) *proc {
	p := &proc{role: role, node: node, Process: &supervise.Process{Name: name,
		Path: "ip", Args: append([]string{"netns", "exec", nsName(node), path}, args...), Env: env,
		LogPath: filepath.Join(c.runDir, "logs", name+".log"), OnExit: c.recordExit}}
	c.procs = append(c.procs, p)
	c.byName[name] = p
	return p
}

func (c *cluster) recordExit(e supervise.Exit) {
	c.mu.Lock()
	c.exits = append(c.exits, e)
	c.mu.Unlock()
	c.logf("UNEXPECTED EXIT %s: %s\n%s", e.Proc, e.Status, indent(e.Tail))
}

func (c *cluster) unexpectedExits() []supervise.Exit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]supervise.Exit(nil), c.exits...)
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// prepare writes the NATS configurations, mounts the disk node's tmpfs and
// declares every process.
func (c *cluster) prepare(ctx context.Context) error {
	c.byName = map[string]*proc{}
	if err := os.MkdirAll(filepath.Join(c.runDir, "logs"), 0o755); err != nil {
		return err
	}
	for i := range c.nodes() {
		store := filepath.Join(c.runDir, fmt.Sprintf("n%d", i), "jetstream")
		if err := os.MkdirAll(store, 0o755); err != nil {
			return err
		}
		if i == diskNode {
			if err := syscall.Mount("tmpfs", store, "tmpfs", 0, "size="+diskNodeSize); err != nil {
				return fmt.Errorf("mount a tmpfs on %s: %w", store, err)
			}
			c.diskDir = store
		}
		conf := filepath.Join(c.runDir, fmt.Sprintf("n%d", i), "nats.conf")
		if err := os.WriteFile(conf, []byte(c.natsConfig(i, store)), 0o644); err != nil {
			return err
		}
		c.add(fmt.Sprintf("nats-%d", i), "nats", i, filepath.Join(c.opts.binDir, "nats-server"), []string{"-c", conf}, []string{"PATH=" + os.Getenv("PATH")})
	}
	for _, role := range serviceRoles {
		for i := range c.nodes() {
			path, args := roleCommand(c.opts.binDir, role)
			c.add(c.replicaID(role, i), role, i, path, args, c.env(role, i))
		}
	}
	for i := range gatewayNodes {
		path, args := roleCommand(c.opts.binDir, gatewayRole)
		c.add(c.replicaID(gatewayRole, i), gatewayRole, i, path, args, c.env(gatewayRole, i))
	}
	return nil
}

// startRole starts every process of role under the supervisor.
func (c *cluster) startRole(ctx context.Context, role string) {
	for _, p := range c.procs {
		if p.role == role {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				p.Run(ctx)
			}()
		}
	}
}

// role returns role's processes, node order.
func (c *cluster) role(role string) []*proc {
	var out []*proc
	for _, p := range c.procs {
		if p.role == role {
			out = append(out, p)
		}
	}
	return out
}

// start brings NATS up, then the services, then the gateways, waiting for
// each to be ready.
func (c *cluster) start(ctx context.Context) error {
	c.startRole(ctx, "nats")
	if err := c.waitNATS(ctx, 60*time.Second); err != nil {
		return err
	}
	for _, role := range serviceRoles {
		c.startRole(ctx, role)
	}
	for _, role := range serviceRoles {
		if err := c.waitReady(ctx, role, 120*time.Second); err != nil {
			return err
		}
	}
	c.startRole(ctx, gatewayRole)
	return c.waitReady(ctx, gatewayRole, 60*time.Second)
}

// get is a GET with a timeout, answering the status and body.
func (c *cluster) get(ctx context.Context, url string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := readAll(resp.Body)
	return resp.StatusCode, body, err
}

// waitNATS waits until every NATS server answers /healthz with JetStream
// up and the cluster has a meta leader.
func (c *cluster) waitNATS(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for i := range c.nodes() {
		url := fmt.Sprintf("http://%s:%d/healthz", c.net.nodes[i], natsMonitorPort)
		for {
			code, body, err := c.get(ctx, url, time.Second)
			if err == nil && code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) || !sleepCtx(ctx, 200*time.Millisecond) {
				return fmt.Errorf("NATS n%d not healthy after %s: %d %s %v", i, limit, code, body, err)
			}
		}
	}
	return nil
}

// ready reports whether role's replica on node i answers /readyz 200.
func (c *cluster) ready(ctx context.Context, role string, i int) bool {
	code, _, err := c.get(ctx, c.url(role, i)+"/readyz", 2*time.Second)
	return err == nil && code == http.StatusOK
}

// waitReady waits until every replica of role is ready.
func (c *cluster) waitReady(ctx context.Context, role string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, p := range c.role(role) {
		for !c.ready(ctx, role, p.node) {
			if time.Now().After(deadline) || !sleepCtx(ctx, 200*time.Millisecond) {
				return fmt.Errorf("%s not ready after %s (log %s)", p.Name, limit, p.LogPath)
			}
		}
	}
	return nil
}

// allReady reports whether every replica of every service is ready.
func (c *cluster) allReady(ctx context.Context) bool {
	for _, role := range serviceRoles {
		for i := range c.nodes() {
			if !c.ready(ctx, role, i) {
				return false
			}
		}
	}
	return true
}

// streamLeader asks the NATS servers for the stream's leader (its server
// name, n0 ..), trying each node in turn.
func (c *cluster) streamLeader(ctx context.Context, stream string) (int, error) {
	var errs []error
	for i := range c.nodes() {
		leader, err := c.streamLeaderVia(ctx, i, stream)
		if err == nil {
			return leader, nil
		}
		errs = append(errs, err)
	}
	return -1, errors.Join(errs...)
}

func (c *cluster) streamLeaderVia(ctx context.Context, i int, stream string) (int, error) {
	nc, err := nats.Connect(c.natsURL(i), nats.Name("stw-chaos"), nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		return -1, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+stream, nil)
	if err != nil {
		return -1, err
	}
	var info struct {
		Cluster *struct {
			Leader string `json:"leader"`
		} `json:"cluster"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		return -1, err
	}
	if info.Error != nil {
		return -1, errors.New(info.Error.Description)
	}
	if info.Cluster == nil || !strings.HasPrefix(info.Cluster.Leader, "n") {
		return -1, fmt.Errorf("stream %s has no leader", stream)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(info.Cluster.Leader, "n"))
	if err != nil || n < 0 || n >= c.nodes() {
		return -1, fmt.Errorf("stream %s leader %q", stream, info.Cluster.Leader)
	}
	return n, nil
}

// stop ends every process; stopped ones are continued first.
func (c *cluster) stop() {
	var wg sync.WaitGroup
	for _, p := range c.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Shutdown()
		}()
	}
	wg.Wait()
	c.wg.Wait()
	if c.diskDir != "" {
		_ = syscall.Unmount(c.diskDir, syscall.MNT_DETACH)
	}
}

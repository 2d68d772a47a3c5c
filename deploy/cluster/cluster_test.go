package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/deploy/cluster/smoke"
	"github.com/stewardhq/steward/platform/freeport"
	"github.com/stewardhq/steward/platform/supervise"
)

// TestSmokeThroughKills starts compose.yaml's topology as processes with
// auth on and runs the smoke check through gateway-1 while it SIGKILLs,
// each just before one step, one replica of every service and one NATS
// server; the check must pass anyway, and a second one with those five
// still down. Then they come back and must be ready again. Any process
// exiting on its own fails the test.
//
// CLUSTER_BIN names a directory with steward and nats-server already
// built; otherwise the test builds them from this workspace.
func TestSmokeThroughKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 17 processes")
	}
	bin := os.Getenv("CLUSTER_BIN")
	if bin == "" {
		// Its own deadline: a cold build on a busy machine takes minutes,
		// which says nothing about the cluster.
		bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer bcancel()
		bin = t.TempDir()
		began := time.Now()
		if err := buildBinaries(bctx, bin, "."); err != nil {
			t.Fatal(err)
		}
		t.Logf("built steward and nats-server in %s", time.Since(began).Round(time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	adminURL := os.Getenv("STEWARD_TEST_DATABASE_URL")
	if adminURL == "" {
		adminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	runDir := t.TempDir()
	began := time.Now()
	c, err := startCluster(ctx, options{
		composeFile: filepath.Join("..", "compose", "compose.yaml"),
		binDir:      bin,
		runDir:      runDir,
		basePort:    freeport.Range(t, 32),
		adminURL:    adminURL,
		logf:        t.Logf,
		readyWithin: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	t.Logf("cluster ready in %s", time.Since(began).Round(time.Millisecond))

	// Before each of these steps, one process is killed (and held down).
	// nats-1 is every replica's first NATS URL; registry-1 is the first
	// of gateway-1's (and config-1's, election-1's, scaler-1's)
	// STEWARD_REGISTRY_URL, so the gateway's discovery and every
	// process's self-registration must fail over to another replica.
	kills := map[string]string{
		smoke.StepGetKey:   "config-1",
		smoke.StepWatchKey: "nats-1",
		smoke.StepRegister: "registry-1",
		smoke.StepElection: "election-1",
		smoke.StepScaler:   "scaler-1",
	}
	var mu sync.Mutex
	var killed []string
	target := smoke.Target{
		GatewayURL:  c.gatewayURLs()[0],
		Token:       c.secrets.root,
		StepTimeout: 45 * time.Second,
		BeforeStep: func(step string) {
			name, ok := kills[step]
			if !ok {
				return
			}
			p := c.proc(name)
			if p == nil {
				t.Errorf("no process %s to kill", name)
				return
			}
			p.Kill()
			t.Logf("SIGKILLed %s before %q", name, step)
			mu.Lock()
			killed = append(killed, name)
			mu.Unlock()
		},
	}
	began = time.Now()
	if err := smoke.Run(ctx, target, t.Logf); err != nil {
		t.Fatalf("smoke while killing: %v\n%s", err, c.logTails())
	}
	t.Logf("smoke while killing %v passed in %s", killed, time.Since(began).Round(time.Millisecond))
	if len(killed) != len(kills) {
		t.Fatalf("killed %v, want one process before each of %d steps", killed, len(kills))
	}

	// The second pass goes through the other gateway.
	target.BeforeStep = nil
	target.GatewayURL = c.gatewayURLs()[1]
	began = time.Now()
	if err := smoke.Run(ctx, target, t.Logf); err != nil {
		t.Fatalf("smoke through gateway-2 with %v down: %v\n%s", killed, err, c.logTails())
	}
	t.Logf("smoke through %s with %v down passed in %s", target.GatewayURL, killed, time.Since(began).Round(time.Millisecond))

	began = time.Now()
	for _, name := range killed {
		c.proc(name).Restart()
	}
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	for _, name := range killed {
		if err := c.waitReady(rctx, c.byName[name]); err != nil {
			t.Errorf("after its restart: %v", err)
		}
	}
	t.Logf("the killed processes were ready again %s after their restart", time.Since(began).Round(time.Millisecond))
	for _, e := range c.unexpectedExits() {
		t.Errorf("%s exited on its own: %s\n%s", e.Proc, e.Status, e.Tail)
	}
}

// logTails is the end of every long-running process's log, for a
// failure: a step that fails after one replica's kill is as often about
// the replicas that stayed up.
func (c *cluster) logTails() string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(c.procs)) {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", n, c.logPath(n), supervise.Tail(c.logPath(n), 20))
	}
	return b.String()
}

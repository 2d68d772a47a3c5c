package registrybench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/kelseyhightower/envconfig"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/registry"
)

// ChildCommand is the subcommand under which bench re-executes
// itself to run one registry replica (registry.Serve: API, expiry, active
// checks, self-registration) alone in a process (see child.go), so that
// the replicas' CPU and memory are measured apart from the NATS server and
// the load generator.
const ChildCommand = "registrychild"

// registryVoters are the replica IDs of the registry's three voters.
var registryVoters = []string{"registry-0", "registry-1", "registry-2"}

// RegistrySettings are the service's defaults (its envconfig default tags,
// as a process with no STEWARD_* variables gets them) for one replica of
// voters, on a loopback port, with one stream replica (one NATS server).
// Local addresses are allowed, as in dev mode: the replica registers
// itself under its loopback address, which the default refuses.
func RegistrySettings(replicaID string, voters []string) registry.Settings {
	var s registry.Settings
	if err := envconfig.Process("STEWARD_BENCH_UNSET", &s); err != nil {
		panic(fmt.Sprintf("registry settings defaults: %v", err)) // the tags are constants
	}
	s.Addr, s.ReplicaID, s.Voters, s.StreamReplicas = "127.0.0.1:0", replicaID, voters, 1
	s.BatchEncoding = qlog.BatchBinary // every replica is of this version
	s.AllowLocal = true
	return s
}

// RunChild is the child process.
func RunChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var id, voters *string
	url, stopProfile, err := harness.ParseServiceChild(ChildCommand, args, stderr, func(fs *flag.FlagSet) {
		id = fs.String("replica", registryVoters[0], "replica ID")
		voters = fs.String("voters", strings.Join(registryVoters, ","), "the voters, comma-separated")
	})
	if err != nil {
		return err
	}
	defer stopProfile()
	logger := harness.ServiceLogger(stderr).With("process", ChildCommand, "replica", *id)
	nc, err := (&harness.NATSServer{URL: *url}).Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- registry.Serve(sctx, RegistrySettings(*id, harness.SplitList(*voters)), ln, nc, nil, logger)
	}()
	if err := harness.WaitReady(ctx, "http://"+ln.Addr().String(), done); err != nil {
		return fmt.Errorf("replica %s: %w", *id, err)
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(map[string]string{"addr": ln.Addr().String()}); err != nil {
		return err
	}
	if err := harness.AnswerStats(os.Stdin, enc); err != nil {
		return err
	}
	// stdin closed: the parent is done.
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// registryCluster is the registry's three voters, each in its own child
// process, on one NATS server.
type registryCluster struct {
	children []*harness.ServiceChild
	urls     []string
}

// startRegistryCluster starts the voters on ns; with profile set, replica
// i writes its CPU profile to profile-i.
func startRegistryCluster(ctx context.Context, ns *harness.NATSServer, profile string) (*registryCluster, error) {
	c := &registryCluster{}
	for i, id := range registryVoters {
		prof := ""
		if profile != "" {
			prof = fmt.Sprintf("%s-%d", profile, i)
		}
		ch, err := harness.StartChild(ctx, ChildCommand, "-url", ns.URL, "-replica", id,
			"-voters", strings.Join(registryVoters, ","), "-cpuprofile", prof)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.children = append(c.children, ch)
		c.urls = append(c.urls, ch.URL)
	}
	return c, nil
}

// stats asks every replica for its memory and CPU.
func (c *registryCluster) stats() ([]harness.ChildStats, error) {
	out := make([]harness.ChildStats, len(c.children))
	for i, ch := range c.children {
		var err error
		if out[i], err = ch.Stats(false); err != nil {
			return nil, fmt.Errorf("%s: %w", registryVoters[i], err)
		}
	}
	return out, nil
}

// stop stops every replica and returns the first error. All are told at
// once, so that none is left alone without a quorum while it shuts down.
func (c *registryCluster) stop() error {
	for _, ch := range c.children {
		ch.Stdin.Close()
	}
	var first error
	for _, ch := range c.children {
		if err := ch.Stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

package configbench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/qlog"
	configsvc "github.com/stewardhq/steward/services/config"
)

// ChildCommand is the subcommand under which bench re-executes itself
// to run one config service replica (config.Serve) alone in a process (see
// child.go).
const ChildCommand = "configchild"

// configSettings are the service's defaults (its envconfig default tags,
// as a process with no STEWARD_* variables gets them) for one replica;
// voters nil means the replica alone.
func configSettings(replicaID string, voters []string) configsvc.Settings {
	var s configsvc.Settings
	// A prefix nothing sets: only the default tags apply.
	if err := envconfig.Process("STEWARD_BENCH_UNSET", &s); err != nil {
		panic(fmt.Sprintf("config settings defaults: %v", err)) // the tags are constants
	}
	s.Addr, s.ReplicaID, s.Voters, s.StreamReplicas = "127.0.0.1:0", replicaID, voters, 1
	s.BatchEncoding = qlog.BatchBinary // every replica is of this version
	// Every watcher of the fan-out comes from this host: one client to the
	// per-client bound (STEWARD_MAX_WATCHES_PER_CLIENT, 256 by default).
	s.WatchesPerClient = 1 << 20
	// The one setting a run may pick, to compare the two HTTP/1.1
	// servers (STEWARD_HTTP1_SERVER=net/http or steward, the default).
	if v := os.Getenv("STEWARD_HTTP1_SERVER"); v != "" {
		s.HTTP1Server = v
	}
	return s
}

// serveReplica runs config.Serve for s on 127.0.0.1:0 with its own NATS
// connection and waits until /readyz answers 200.
func serveReplica(ctx context.Context, ns *harness.NATSServer, s configsvc.Settings, logger *slog.Logger) (*harness.ServedReplica, error) {
	r, err := harness.ServeOn(ctx, ns, func(ctx context.Context, ln net.Listener, nc *nats.Conn) error {
		return configsvc.Serve(ctx, s, ln, nc, nil, logger)
	})
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", s.ReplicaID, err)
	}
	return r, nil
}

// RunChild is the child process.
func RunChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var id, voters *string
	var streamReplicas *int
	var authOn *bool
	url, stopProfile, err := harness.ParseServiceChild(ChildCommand, args, stderr, func(fs *flag.FlagSet) {
		id = fs.String("replica", "config-0", "replica ID")
		voters = fs.String("voters", "", "the voters' replica IDs, comma-separated (empty: this replica alone)")
		streamReplicas = fs.Int("stream-replicas", 1, "JetStream replicas of the service's stream")
		authOn = fs.Bool("auth", false, "STEWARD_AUTH=on with harness.RootSecret as the bootstrap root token")
	})
	if err != nil {
		return err
	}
	defer stopProfile()
	logger := harness.ServiceLogger(stderr).With("process", ChildCommand)
	s := configSettings(*id, harness.SplitList(*voters))
	s.StreamReplicas = *streamReplicas
	if *authOn {
		// The auth log's voters (STEWARD_AUTH_VOTERS) default to config-0.
		s.Auth, s.BootstrapToken = true, harness.RootSecret
	}
	r, err := serveReplica(ctx, &harness.NATSServer{URL: *url}, s, logger)
	if err != nil {
		return err
	}
	defer r.Close()
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(map[string]string{"addr": strings.TrimPrefix(r.URL, "http://")}); err != nil {
		return err
	}
	if err := harness.AnswerStats(os.Stdin, enc); err != nil {
		return err
	}
	// stdin closed: the parent is done.
	if err := r.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// startConfigChild starts a child process serving a config replica on
// natsURL, with STEWARD_AUTH=on if authOn; with cpuProfile set, the
// child writes its CPU profile there.
func startConfigChild(ctx context.Context, natsURL, cpuProfile string, authOn bool) (*harness.ServiceChild, error) {
	return harness.StartChild(ctx, ChildCommand, "-url", natsURL, "-cpuprofile", cpuProfile, "-auth="+strconv.FormatBool(authOn))
}

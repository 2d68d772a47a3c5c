package main

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
	"strings"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"

	configsvc "github.com/stewardhq/steward/services/config"
)

// configChildCommand is the subcommand under which bench re-executes itself
// to run one config service replica (config.Serve) alone in a process (see
// child.go).
const configChildCommand = "configchild"

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
	return s
}

// serviceLogger is the replicas' logger: warnings and errors only, so the
// per-request access log (info) is not written during the measurements.
func serviceLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// servedReplica is a service's Serve running on a loopback port.
type servedReplica struct {
	url  string
	stop context.CancelFunc
	done chan error
	nc   *nats.Conn
}

// serveReplica runs config.Serve for s on 127.0.0.1:0 with its own NATS
// connection and waits until /readyz answers 200.
func serveReplica(ctx context.Context, ns *natsServer, s configsvc.Settings, logger *slog.Logger) (*servedReplica, error) {
	r, err := serveOn(ctx, ns, func(ctx context.Context, ln net.Listener, nc *nats.Conn) error {
		return configsvc.Serve(ctx, s, ln, nc, nil, logger)
	})
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", s.ReplicaID, err)
	}
	return r, nil
}

// serveOn runs a service's serve on 127.0.0.1:0 with its own NATS
// connection and waits until /readyz answers 200.
func serveOn(ctx context.Context, ns *natsServer, serve func(ctx context.Context, ln net.Listener, nc *nats.Conn) error) (*servedReplica, error) {
	nc, err := ns.connect()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		nc.Close()
		return nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	r := &servedReplica{url: "http://" + ln.Addr().String(), stop: stop, done: make(chan error, 1), nc: nc}
	go func() { r.done <- serve(sctx, ln, nc) }()
	if err := waitReady(ctx, r.url, r.done); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// close stops the replica and waits for its Serve to return.
func (r *servedReplica) close() error {
	r.stop()
	err := <-r.done
	r.done <- err // a second close returns the same
	r.nc.Close()
	return err
}

// runConfigChild is the child process.
func runConfigChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(configChildCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "NATS server URL")
	id := fs.String("replica", "config-0", "replica ID (the only voter)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	logger := serviceLogger(stderr).With("process", configChildCommand)
	r, err := serveReplica(ctx, &natsServer{url: *url}, configSettings(*id, nil), logger)
	if err != nil {
		return err
	}
	defer r.close()
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(map[string]string{"addr": strings.TrimPrefix(r.url, "http://")}); err != nil {
		return err
	}
	if err := answerStats(os.Stdin, enc); err != nil {
		return err
	}
	// stdin closed: the parent is done.
	if err := r.close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// startConfigChild starts a child process serving a config replica on
// natsURL; with cpuProfile set, the child writes its CPU profile there.
func startConfigChild(ctx context.Context, natsURL, cpuProfile string) (*serviceChild, error) {
	return startChild(ctx, configChildCommand, "-url", natsURL, "-cpuprofile", cpuProfile)
}

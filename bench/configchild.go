package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/kelseyhightower/envconfig"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	configsvc "github.com/stewardhq/steward/services/config"
)

// configChildCommand is the subcommand under which bench re-executes itself
// to run one config service replica (config.Serve) alone in a process, so
// that its memory can be measured without the NATS server or the clients
// that load it: the parent runs those and talks to the child over TCP.
//
// The child prints one JSON line {"addr": ...} once the replica is ready,
// then answers each line on stdin, "stats" or "gc" (runtime.GC first), with
// a JSON line of childStats. It stops when stdin closes.
const configChildCommand = "configchild"

// childStats is the child's memory as it reports it.
type childStats struct {
	RSS        int64 `json:"rss_bytes"`      // VmRSS
	HWM        int64 `json:"peak_rss_bytes"` // VmHWM
	HeapInuse  int64 `json:"heap_inuse_bytes"`
	Goroutines int   `json:"goroutines"`
}

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

// servedReplica is config.Serve running on a loopback port.
type servedReplica struct {
	url  string
	stop context.CancelFunc
	done chan error
	nc   *nats.Conn
}

// serveReplica runs config.Serve for s on 127.0.0.1:0 with its own NATS
// connection and waits until /readyz answers 200.
func serveReplica(ctx context.Context, ns *natsServer, s configsvc.Settings, logger *slog.Logger) (*servedReplica, error) {
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
	go func() { r.done <- configsvc.Serve(sctx, s, ln, nc, nil, logger) }()
	if err := waitReady(ctx, r.url, r.done); err != nil {
		r.close()
		return nil, fmt.Errorf("replica %s: %w", s.ReplicaID, err)
	}
	return r, nil
}

// close stops the replica and waits for config.Serve to return.
func (r *servedReplica) close() error {
	r.stop()
	err := <-r.done
	r.done <- err // a second close returns the same
	r.nc.Close()
	return err
}

// waitReady polls url/readyz until it answers 200, serving ends, or a
// minute passes.
func waitReady(ctx context.Context, url string, done chan error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz answered %s", resp.Status)
		}
		last = err
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("config.Serve returned before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("not ready within a minute: %v", last)
		case <-time.After(20 * time.Millisecond):
		}
	}
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
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
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
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "gc":
			runtime.GC()
		case "stats":
		default:
			return fmt.Errorf("unknown request %q on stdin", sc.Text())
		}
		var s childStats
		if s.RSS, s.HWM, err = readRSS(); err != nil {
			return err
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.HeapInuse, s.Goroutines = int64(ms.HeapInuse), runtime.NumGoroutine()
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	// stdin closed: the parent is done.
	if err := r.close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// configChild is the parent's handle on a child process running a replica.
type configChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	url   string
}

// startConfigChild starts a child process serving a replica on natsURL;
// with cpuProfile set, the child writes its CPU profile there.
func startConfigChild(ctx context.Context, natsURL, cpuProfile string) (*configChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, configChildCommand, "-url", natsURL, "-cpuprofile", cpuProfile)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &configChild{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	var hello struct{ Addr string }
	if err := c.readJSON(&hello); err != nil {
		c.stop()
		return nil, fmt.Errorf("child did not start: %w", err)
	}
	c.url = "http://" + hello.Addr
	return c, nil
}

func (c *configChild) readJSON(v any) error {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read the child's answer: %w", err)
	}
	return json.Unmarshal(line, v)
}

// stats asks the child for its memory, after a runtime.GC with gc.
func (c *configChild) stats(gc bool) (childStats, error) {
	req := "stats\n"
	if gc {
		req = "gc\n"
	}
	var s childStats
	if _, err := io.WriteString(c.stdin, req); err != nil {
		return s, fmt.Errorf("ask the child: %w", err)
	}
	return s, c.readJSON(&s)
}

// stop closes the child's stdin and waits for it to exit.
func (c *configChild) stop() error {
	c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		return fmt.Errorf("the child did not stop within 30s; killed: %v", <-done)
	}
}

package clusterbench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/natsembed"
)

// NATSChildCommand is the subcommand under which bench re-executes itself
// to run one NATS server of a cluster alone in a process (see child.go),
// so that the servers do not share a Go runtime (scheduler, GC) with each
// other or with the replicas and clients that load them.
const NATSChildCommand = "natschild"

// Where the cluster section runs its NATS servers (-cluster-servers).
const (
	ServersChild  = "child"
	ServersInProc = "inproc"
)

// RunNATSChild is the child process: one clustered server until stdin
// closes.
func RunNATSChild(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(NATSChildCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o natsembed.Options
	var routes string
	fs.StringVar(&o.Name, "name", "", "server name")
	fs.StringVar(&o.Dir, "dir", "", "JetStream storage directory")
	fs.StringVar(&o.ClusterName, "cluster-name", "", "cluster name")
	fs.StringVar(&o.ClusterAddr, "cluster-addr", "", "cluster listen address")
	fs.StringVar(&routes, "routes", "", "the other members' route URLs, comma-separated")
	fs.BoolVar(&o.SyncAlways, "sync-always", false, "fsync every JetStream write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Addr, o.Routes = "127.0.0.1:0", harness.SplitList(routes)
	srv, err := natsembed.Start(o)
	if err != nil {
		return err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(map[string]string{"addr": strings.TrimPrefix(srv.ClientURL(), "nats://")}); err != nil {
		return err
	}
	// Until stdin closes: the parent is done.
	return harness.AnswerStats(os.Stdin, enc)
}

// natsCluster is three clustered NATS servers with JetStream, in this
// process or each in a child process.
type natsCluster struct {
	names []string // server names, n0, n1, n2
	urls  []string
	pids  []int // the child processes; none in process
	stops []func() error
}

// startNATSCluster starts n servers named n0.. under dir, each fsyncing
// every write with syncAlways, and waits until JetStream answers on every
// one (its meta group has a leader).
func startNATSCluster(ctx context.Context, dir, where, clusterName string, n int, syncAlways bool) (*natsCluster, error) {
	routeAddrs := make([]string, n)
	for i := range routeAddrs {
		u, err := harness.FreeURL()
		if err != nil {
			return nil, err
		}
		routeAddrs[i] = u.Host
	}
	opts := make([]natsembed.Options, n)
	for i := range opts {
		var routes []string
		for j, a := range routeAddrs {
			if j != i {
				routes = append(routes, "nats-route://"+a)
			}
		}
		name := fmt.Sprintf("n%d", i)
		opts[i] = natsembed.Options{Name: name, Dir: filepath.Join(dir, name), Addr: "127.0.0.1:0", SyncAlways: syncAlways,
			ClusterName: clusterName, ClusterAddr: routeAddrs[i], Routes: routes}
	}
	type started struct {
		i    int
		url  string
		pid  int
		stop func() error
		err  error
	}
	// Together: a server's JetStream waits for its routes to form the
	// meta group.
	ch := make(chan started, n)
	for i, o := range opts {
		go func() {
			if where == ServersInProc {
				srv, err := natsembed.Start(o)
				if err != nil {
					ch <- started{i: i, err: err}
					return
				}
				ch <- started{i: i, url: srv.ClientURL(), stop: func() error { srv.Shutdown(); srv.WaitForShutdown(); return nil }}
				return
			}
			c, err := harness.StartChild(ctx, NATSChildCommand, "-name", o.Name, "-dir", o.Dir, "-cluster-name", o.ClusterName,
				"-cluster-addr", o.ClusterAddr, "-routes", strings.Join(o.Routes, ","), fmt.Sprintf("-sync-always=%t", o.SyncAlways))
			if err != nil {
				ch <- started{i: i, err: err}
				return
			}
			// startChild reads the child's {"addr"} as an HTTP address.
			ch <- started{i: i, url: "nats://" + strings.TrimPrefix(c.URL, "http://"), pid: c.Cmd.Process.Pid, stop: c.Stop}
		}()
	}
	c := &natsCluster{names: make([]string, n), urls: make([]string, n), stops: make([]func() error, n)}
	var errs []error
	for range n {
		s := <-ch
		if s.err != nil {
			errs = append(errs, fmt.Errorf("n%d: %w", s.i, s.err))
			continue
		}
		c.names[s.i], c.urls[s.i], c.stops[s.i] = opts[s.i].Name, s.url, s.stop
		if s.pid != 0 {
			c.pids = append(c.pids, s.pid)
		}
	}
	if len(errs) > 0 {
		c.stop()
		return nil, errors.Join(errs...)
	}
	if err := c.waitJetStream(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitJetStream waits until every server answers a JetStream account info
// request, which needs the meta group's leader.
func (c *natsCluster) waitJetStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := range c.urls {
		if err := c.answersJetStream(ctx, i); err != nil {
			return fmt.Errorf("JetStream on %s: %w", c.names[i], err)
		}
	}
	return nil
}

func (c *natsCluster) answersJetStream(ctx context.Context, i int) error {
	nc, err := c.connect(i)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(rctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// connect dials server i.
func (c *natsCluster) connect(i int) (*nats.Conn, error) {
	return (&harness.NATSServer{URL: c.urls[i]}).Connect()
}

// stop stops every server that started, all at once.
func (c *natsCluster) stop() {
	stopAll(c.stops)
}

// stopAll calls every non-nil stop, all at once, and waits for them.
func stopAll(stops []func() error) {
	done := make(chan struct{})
	for _, s := range stops {
		go func() {
			if s != nil {
				_ = s()
			}
			done <- struct{}{}
		}()
	}
	for range stops {
		<-done
	}
}

// placeLeader moves stream's leader to the server named want, by asking
// the current leader to step down in its favour, and waits until the
// stream reports it there.
func placeLeader(ctx context.Context, nc *nats.Conn, stream, want string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var leader, answer string
	for attempt := 0; ; attempt++ {
		l, err := streamLeader(ctx, js, stream)
		if err == nil && l == want {
			return nil
		}
		if err == nil {
			leader = l
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stream %s: leader %q, want %s (last step-down answer: %s): %w", stream, leader, want, answer, ctx.Err())
		}
		// A step-down takes a moment: ask again only now and then.
		if err == nil && l != "" && attempt%10 == 0 {
			answer = stepDown(ctx, nc, stream, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stepDown asks stream's leader to hand over to the server named to, and
// returns its answer (or why there was none).
func stepDown(ctx context.Context, nc *nats.Conn, stream, to string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, to)
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, []byte(req))
	if err != nil {
		return err.Error()
	}
	return string(msg.Data)
}

// streamLeader names the server leading stream, "" while it has none.
func streamLeader(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}

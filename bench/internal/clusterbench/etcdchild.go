package clusterbench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/stewardhq/steward/bench/internal/harness"
)

// EtcdChildCommand is the subcommand under which bench re-executes itself
// to run one member of an etcd cluster (go.etcd.io/etcd/server/v3/embed,
// its defaults: fsync on commit, the gRPC gateway's JSON API on the client
// URL) alone in a process.
const EtcdChildCommand = "etcdchild"

// RunEtcdChild is the child process: one etcd member until stdin closes.
// It says where it serves once the member is ready, which needs the
// cluster's quorum: the members are started together.
func RunEtcdChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(EtcdChildCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "member name")
	dir := fs.String("dir", "", "data directory")
	clientURL := fs.String("client-url", "", "client URL (http://127.0.0.1:port)")
	peerURL := fs.String("peer-url", "", "peer URL (http://127.0.0.1:port)")
	initial := fs.String("initial-cluster", "", "name=peer-url,... of every member")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cu, err := url.Parse(*clientURL)
	if err != nil {
		return fmt.Errorf("-client-url: %w", err)
	}
	pu, err := url.Parse(*peerURL)
	if err != nil {
		return fmt.Errorf("-peer-url: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = *name, *dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster, cfg.InitialClusterToken = *initial, "bench-cluster3"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.LogLevel, cfg.LogOutputs = "fatal", []string{"stderr"}
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd %s: %w", *name, err)
	}
	defer srv.Close()
	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		return fmt.Errorf("etcd %s: %w", *name, err)
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("etcd %s was not ready within 2 minutes", *name)
	case <-ctx.Done():
		return ctx.Err()
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(map[string]string{"addr": cu.Host}); err != nil {
		return err
	}
	// Until stdin closes: the parent is done.
	return harness.AnswerStats(os.Stdin, enc)
}

// etcdCluster is n etcd members, each in a child process.
type etcdCluster struct {
	names      []string // e0, e1, e2
	clientURLs []string
	pids       []int
	stops      []func() error
}

// startEtcdCluster starts n members under dir on free loopback ports, all
// at once, and returns when every one is ready.
func startEtcdCluster(ctx context.Context, dir string, n int) (*etcdCluster, error) {
	c := &etcdCluster{names: make([]string, n), clientURLs: make([]string, n), stops: make([]func() error, n)}
	peers := make([]string, n)
	var initial []string
	for i := range n {
		cu, err := harness.FreeURL()
		if err != nil {
			return nil, err
		}
		pu, err := harness.FreeURL()
		if err != nil {
			return nil, err
		}
		c.names[i], c.clientURLs[i], peers[i] = fmt.Sprintf("e%d", i), cu.String(), pu.String()
		initial = append(initial, c.names[i]+"="+peers[i])
	}
	type started struct {
		i     int
		child *harness.ServiceChild
		err   error
	}
	ch := make(chan started, n)
	for i := range n {
		go func() {
			child, err := harness.StartChild(ctx, EtcdChildCommand, "-name", c.names[i], "-dir", filepath.Join(dir, c.names[i]),
				"-client-url", c.clientURLs[i], "-peer-url", peers[i], "-initial-cluster", strings.Join(initial, ","))
			ch <- started{i: i, child: child, err: err}
		}()
	}
	var errs []error
	for range n {
		s := <-ch
		if s.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.names[s.i], s.err))
			continue
		}
		c.stops[s.i] = s.child.Stop
		c.pids = append(c.pids, s.child.Cmd.Process.Pid)
	}
	if len(errs) > 0 {
		c.stop()
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// client is a clientv3 client over the given endpoints (all members, as a
// user configures it: the client balances its requests over them).
func (c *etcdCluster) client(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
}

// leader names the member leading the cluster, or says why it is unknown.
func (c *etcdCluster) leader(ctx context.Context, cli *clientv3.Client) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for i, ep := range c.clientURLs {
		st, err := cli.Status(ctx, ep)
		if err != nil {
			return "leader unknown: " + err.Error()
		}
		if st.Header.MemberId == st.Leader {
			return "leader " + c.names[i]
		}
	}
	return "no leader"
}

// stop stops every member that started, all at once.
func (c *etcdCluster) stop() {
	stopAll(c.stops)
}

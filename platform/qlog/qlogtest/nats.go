package qlogtest

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/freeport"
	"github.com/stewardhq/steward/platform/natsembed"
)

// Server is an embedded NATS server with JetStream on file storage that
// fsyncs every write. It can be stopped and restarted on the same port and
// data directory, as a crashed and restarted NATS would be.
type Server struct {
	t    testing.TB
	opts natsembed.Options
	srv  *server.Server
}

// StartServer starts a server for t; it is shut down when t ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, opts: natsembed.Options{
		Name:       "test",
		Dir:        filepath.Join(t.TempDir(), "nats"),
		SyncAlways: true,
	}}
	var err error
	for range startAttempts {
		s.opts.Addr = fmt.Sprintf("127.0.0.1:%d", freeport.Port(t))
		if s.srv, err = natsembed.Start(s.opts); err == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("start nats: %v", err)
	return nil
}

// startAttempts bounds the retries of a start whose port another process
// took between freeport's check and the server's bind; the server must
// name its port up front because it restarts on it.
const startAttempts = 5

// Start starts (or restarts) the server.
func (s *Server) Start() {
	s.t.Helper()
	srv, err := natsembed.Start(s.opts)
	if err != nil {
		s.t.Fatalf("start nats: %v", err)
	}
	s.srv = srv
}

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// URL is the client URL.
func (s *Server) URL() string { return "nats://" + s.opts.Addr }

// Connect returns a client connection that reconnects forever, closed
// when the test ends.
func (s *Server) Connect(t testing.TB) *nats.Conn { return Connect(t, s.URL()) }

// Connect dials urls (comma-separated) with unlimited reconnects.
func Connect(t testing.TB, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(64<<20))
	if err != nil {
		t.Fatalf("connect %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Cluster is three (or n) clustered servers.
type Cluster struct {
	Servers []*Server
}

// StartCluster starts n clustered servers with JetStream; streams created
// on it can have up to n replicas.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	var err error
	for attempt := range startAttempts {
		c := newCluster(t, n, filepath.Join(t.TempDir(), fmt.Sprint(attempt)))
		if err = c.start(); err == nil {
			t.Cleanup(c.stop)
			return c
		}
		c.stop()
	}
	t.Fatalf("start cluster: %v", err)
	return nil
}

// newCluster lays out n servers on 2n consecutive free ports: client
// ports first, then cluster (route) ports.
func newCluster(t testing.TB, n int, dir string) *Cluster {
	base := freeport.Range(t, 2*n)
	c := &Cluster{}
	for i := range n {
		var routes []string
		for j := range n {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", base+n+j))
			}
		}
		c.Servers = append(c.Servers, &Server{t: t, opts: natsembed.Options{
			Name:        fmt.Sprintf("n%d", i),
			Dir:         filepath.Join(dir, fmt.Sprintf("n%d", i)),
			Addr:        fmt.Sprintf("127.0.0.1:%d", base+i),
			SyncAlways:  true,
			ClusterName: "steward-test",
			ClusterAddr: fmt.Sprintf("127.0.0.1:%d", base+n+i),
			Routes:      routes,
		}})
	}
	return c
}

// start starts every server at once: each waits for its routes to form a
// JetStream meta group.
func (c *Cluster) start() error {
	errs := make(chan error, len(c.Servers))
	for _, s := range c.Servers {
		go func() {
			srv, err := natsembed.Start(s.opts)
			s.srv = srv
			errs <- err
		}()
	}
	var first error
	for range c.Servers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (c *Cluster) stop() {
	for _, s := range c.Servers {
		s.Stop()
	}
}

// URLs is every server's client URL, comma-separated.
func (c *Cluster) URLs() string {
	out := ""
	for i, s := range c.Servers {
		if i > 0 {
			out += ","
		}
		out += s.URL()
	}
	return out
}

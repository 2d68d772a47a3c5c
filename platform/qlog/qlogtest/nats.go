package qlogtest

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

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
		Addr:       fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		SyncAlways: true,
	}}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

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
	dir := t.TempDir()
	clusterPorts := make([]int, n)
	for i := range clusterPorts {
		clusterPorts[i] = FreePort(t)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		var routes []string
		for j, p := range clusterPorts {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		s := &Server{t: t, opts: natsembed.Options{
			Name:        fmt.Sprintf("n%d", i),
			Dir:         filepath.Join(dir, fmt.Sprintf("n%d", i)),
			Addr:        fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
			SyncAlways:  true,
			ClusterName: "steward-test",
			ClusterAddr: fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]),
			Routes:      routes,
		}}
		c.Servers = append(c.Servers, s)
	}
	// Servers must start together: each waits for its routes to form a
	// JetStream meta group.
	errs := make(chan error, n)
	for _, s := range c.Servers {
		go func() {
			srv, err := natsembed.Start(s.opts)
			s.srv = srv
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("start cluster: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			s.Stop()
		}
	})
	return c
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

// FreePort returns a TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Package natsembed runs a NATS server with JetStream inside the process:
// the zero-dependency `steward dev` mode and the tests (which need real
// servers they can stop, restart and cluster).
package natsembed

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure an embedded server.
type Options struct {
	// Name is the server name; cluster members need distinct names.
	Name string
	// Dir holds JetStream's file storage.
	Dir string
	// Addr is the client listen address, host:port; port 0 picks a free one.
	Addr string
	// MonitorAddr, if set, serves NATS's monitoring endpoints (/healthz, /jsz).
	MonitorAddr string
	// SyncAlways fsyncs every JetStream write before acknowledging it:
	// Steward's durability default for dev mode and tests.
	SyncAlways bool
	// Cluster, if set, is this server's cluster listen address and Routes
	// the other members' route URLs (nats-route://host:port).
	ClusterName string
	ClusterAddr string
	Routes      []string
	Logger      *slog.Logger
	// MaxPayload bounds one message; 0 means 8 MiB (NATS's own default is
	// 1 MiB).
	MaxPayload int32
}

// Start starts a server and waits until it accepts clients.
func Start(o Options) (*server.Server, error) {
	opts := &server.Options{
		ServerName: o.Name,
		JetStream:  true,
		StoreDir:   o.Dir,
		SyncAlways: o.SyncAlways,
		NoSigs:     true,
		MaxPayload: cmp.Or(o.MaxPayload, 8<<20),
	}
	var err error
	if opts.Host, opts.Port, err = hostPort(o.Addr, "127.0.0.1"); err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", o.Addr, err)
	}
	if o.MonitorAddr != "" {
		if opts.HTTPHost, opts.HTTPPort, err = hostPort(o.MonitorAddr, "127.0.0.1"); err != nil {
			return nil, fmt.Errorf("nats monitor address %q: %w", o.MonitorAddr, err)
		}
	}
	if o.ClusterAddr != "" {
		opts.Cluster.Name = o.ClusterName
		if opts.Cluster.Host, opts.Cluster.Port, err = hostPort(o.ClusterAddr, "127.0.0.1"); err != nil {
			return nil, fmt.Errorf("nats cluster address %q: %w", o.ClusterAddr, err)
		}
		opts.Routes = server.RoutesFromStr(strings.Join(o.Routes, ","))
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	// The adapter is installed even without a logger: a listener that
	// cannot bind reports itself only through Fatalf, and Start returns
	// that at once instead of waiting out the readiness deadline.
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fatal := make(chan string, 1)
	s.SetLoggerV2(slogAdapter{l: logger.With("component", "nats"), fatal: fatal}, false, false, false)
	go s.Start()
	deadline := time.Now().Add(readyWithin)
	for !s.ReadyForConnections(readyPoll) {
		select {
		case msg := <-fatal:
			s.Shutdown()
			return nil, fmt.Errorf("nats server on %s: %s", o.Addr, msg)
		default:
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			return nil, fmt.Errorf("nats server on %s did not become ready in %s", o.Addr, readyWithin)
		}
	}
	return s, nil
}

const (
	readyWithin = 30 * time.Second
	readyPoll   = 50 * time.Millisecond
)

// hostPort splits addr; port 0 becomes NATS's "random port".
func hostPort(addr, defaultHost string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = defaultHost
	}
	return host, port, nil
}

// slogAdapter routes the server's own log lines into the process's slog
// logger, and hands the first fatal one (a listener that could not bind)
// to Start.
type slogAdapter struct {
	l     *slog.Logger
	fatal chan<- string
}

// NATS notices (banner, listening lines) are routine: debug level.
func (a slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.l.Error(msg)
	select {
	case a.fatal <- msg:
	default:
	}
}
func (a slogAdapter) Errorf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }

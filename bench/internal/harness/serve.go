package harness

import (
	"bytes"
	"context"
	"fmt"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/sdk"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// JSONValue returns a JSON string of exactly n bytes (n >= 2), quotes
// included: the service stores JSON values.
func JSONValue(n int) []byte {
	b := make([]byte, 0, n)
	b = append(b, '"')
	b = append(b, Filler(max(n-2, 0))...)
	return append(b, '"')
}

// HTTPTarget is the service's HTTP API on one or more replicas.
type HTTPTarget struct {
	Client *http.Client
	// Authorization, when set, is the Authorization header of every
	// request (the auth section's bearer token).
	Authorization string
	urls          []string
}

// HTTP clients the load can use (-http-client).
const (
	// HTTPClientSDK is the transport Steward's Go SDK calls with
	// (sdk.NewTransport: h1client for plain HTTP), over net/http's.
	HTTPClientSDK = "sdk"
	// HTTPClientNetHTTP is net/http's transport alone.
	HTTPClientNetHTTP = "net/http"
)

// HTTPClientTitle describes the client kind names, for the tables.
func HTTPClientTitle(kind string) string {
	if kind == HTTPClientNetHTTP {
		return "net/http's Transport"
	}
	return "the Go SDK's transport, sdk.NewTransport"
}

// NewHTTPTarget is urls called with the client kind names (HTTPClientSDK
// or HTTPClientNetHTTP), keeping up to 2×conns idle connections.
func NewHTTPTarget(kind string, urls []string, conns int) *HTTPTarget {
	var tr http.RoundTripper = &http.Transport{
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		DisableCompression:  true,
	}
	if kind != HTTPClientNetHTTP {
		tr = sdk.NewTransport(tr)
	}
	return &HTTPTarget{Client: &http.Client{Transport: tr}, urls: urls}
}

func (h *HTTPTarget) Close() { h.Client.CloseIdleConnections() }

// URL picks a replica round-robin by seq.
func (h *HTTPTarget) URL(seq int64) string { return h.urls[int(seq%int64(len(h.urls)))] }

// Do sends req and reads the whole answer; anything but 200 is an error.
func (h *HTTPTarget) Do(req *http.Request) error {
	if h.Authorization != "" {
		req.Header.Set("Authorization", h.Authorization)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(b))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// Put is PUT /v1/kv/bench/k<seq>: a unique key per operation.
func (h *HTTPTarget) Put(value []byte) Op {
	return func(ctx context.Context, seq int64) error {
		return h.PutKey(ctx, h.URL(seq), "/bench/k"+strconv.FormatInt(seq, 10), value)
	}
}

func (h *HTTPTarget) PutKey(ctx context.Context, base, key string, value []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/kv"+key, bytes.NewReader(value))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return h.Do(req)
}

// Get is GET /v1/kv{key}, linearizable (the default) or serializable.
func (h *HTTPTarget) Get(key string, serializable bool) Op {
	q := ""
	if serializable {
		q = "?consistency=serializable"
	}
	return func(ctx context.Context, seq int64) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL(seq)+"/v1/kv"+key+q, nil)
		if err != nil {
			return err
		}
		return h.Do(req)
	}
}

// WithNATS runs fn with a fresh embedded NATS server in its own directory.
func WithNATS(cfg Config, name string, syncAlways bool, fn func(*NATSServer) error) error {
	dir, err := TempDir(cfg, name)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := StartNATS(dir, syncAlways)
	if err != nil {
		return err
	}
	defer ns.Stop()
	return fn(ns)
}

// WithEtcd runs fn with an etcd node of mode m in a fresh directory.
func WithEtcd(ctx context.Context, log *slog.Logger, cfg Config, name string, m Mode, fn func(*EtcdPeer) error) error {
	dir, err := TempDir(cfg, name+"-"+m.ID)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e, err := startEtcd(ctx, dir, m.etcdNoSync)
	if err != nil {
		return err
	}
	defer e.close()
	log.Info("etcd started", "mode", m.ID, "unsafe_no_fsync", m.etcdNoSync, "dir", dir)
	return fn(e)
}

// ChildProfile is where a config child process writes its CPU profile:
// beside the run's, with the suffix; none without -cpuprofile.
func ChildProfile(cfg Config, suffix string) string {
	if cfg.CPUProfile == "" {
		return ""
	}
	return cfg.CPUProfile + "." + suffix
}

// SinceRounded is a duration for progress logs.
func SinceRounded(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

// ServiceLogger is the replicas' logger: warnings and errors only, so the
// per-request access log (info) is not written during the measurements.
func ServiceLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// ServedReplica is a service's Serve running on a loopback port.
type ServedReplica struct {
	URL  string
	stop context.CancelFunc
	done chan error
	nc   *nats.Conn
}

// ServeOn runs a service's serve on 127.0.0.1:0 with its own NATS
// connection and waits until /readyz answers 200.
func ServeOn(ctx context.Context, ns *NATSServer, serve func(ctx context.Context, ln net.Listener, nc *nats.Conn) error) (*ServedReplica, error) {
	nc, err := ns.Connect()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		nc.Close()
		return nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	r := &ServedReplica{URL: "http://" + ln.Addr().String(), stop: stop, done: make(chan error, 1), nc: nc}
	go func() { r.done <- serve(sctx, ln, nc) }()
	if err := WaitReady(ctx, r.URL, r.done); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close stops the replica and waits for its Serve to return.
func (r *ServedReplica) Close() error {
	r.stop()
	err := <-r.done
	r.done <- err // a second close returns the same
	r.nc.Close()
	return err
}

package harness

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EtcdPeer is a single-node etcd server in this process and one client
// connection to it, shared by every benchmark goroutine (as etcd's own
// benchmark tool does with --conns=1).
type EtcdPeer struct {
	srv *embed.Etcd
	Cli *clientv3.Client
}

func startEtcd(ctx context.Context, dir string, noFsync bool) (*EtcdPeer, error) {
	clientURL, err := FreeURL()
	if err != nil {
		return nil, err
	}
	peerURL, err := FreeURL()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "bench"
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = noFsync
	// Failures surface as failed operations; etcd's own error lines are
	// mostly noise from shutting down its listeners.
	cfg.LogLevel = "fatal"
	cfg.LogOutputs = []string{"stderr"}
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		srv.Close()
		return nil, fmt.Errorf("etcd: %w", err)
	case <-time.After(60 * time.Second):
		srv.Close()
		return nil, fmt.Errorf("etcd was not ready within 60s")
	case <-ctx.Done():
		srv.Close()
		return nil, ctx.Err()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{clientURL.String()},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return &EtcdPeer{srv: srv, Cli: cli}, nil
}

func (p *EtcdPeer) close() {
	p.Cli.Close()
	p.srv.Close()
}

func (p *EtcdPeer) Put(value string) Op {
	return func(ctx context.Context, seq int64) error {
		_, err := p.Cli.Put(ctx, "k"+strconv.FormatInt(seq, 10), value)
		return err
	}
}

func (p *EtcdPeer) Get(key string, serializable bool) Op {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	return func(ctx context.Context, _ int64) error {
		resp, err := p.Cli.Get(ctx, key, opts...)
		if err == nil && len(resp.Kvs) == 0 {
			err = fmt.Errorf("key %q is missing", key)
		}
		return err
	}
}

// FreeURL returns an http URL on a loopback port that was free a moment ago.
func FreeURL() (*url.URL, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return &url.URL{Scheme: "http", Host: addr}, nil
}

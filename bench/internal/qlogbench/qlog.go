package qlogbench

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// Group is n replicas of one service's log in this process, each with its
// own NATS connection and its own Registers state machine; with n > 1 all
// of them are voters.
type Group struct {
	service string
	Logs    []*qlog.Log
	sms     []*qlogtest.Registers
	Conns   []*nats.Conn
}

func openGroup(ctx context.Context, log *slog.Logger, s *harness.NATSServer, service string, n int, tune harness.QlogTuning, more func(*qlog.Config)) (*Group, error) {
	return OpenGroupOn(ctx, log, func(int) (*nats.Conn, error) { return s.Connect() }, service, n, tune, more)
}

// OpenGroupOn is openGroup with replica i connected by connect(i), to put
// the replicas on different servers of a cluster.
func OpenGroupOn(ctx context.Context, log *slog.Logger, connect func(i int) (*nats.Conn, error), service string, n int,
	tune harness.QlogTuning, more func(*qlog.Config)) (*Group, error) {
	var voters []string
	for i := range n {
		voters = append(voters, "r"+strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	g := &Group{service: service}
	for i, id := range voters {
		nc, err := connect(i)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.Conns = append(g.Conns, nc)
		cfg := qlog.Config{Service: service, ReplicaID: id, Voters: voters, Conn: nc, BatchEncoding: qlog.BatchBinary, Logger: log}
		tune.Apply(&cfg)
		if more != nil {
			more(&cfg)
		}
		sm := qlogtest.NewRegisters()
		l, err := qlog.Open(ctx, cfg, sm)
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("open %s/%s: %w", service, id, err)
		}
		g.Logs, g.sms = append(g.Logs, l), append(g.sms, sm)
	}
	for _, l := range g.Logs {
		if err := l.WaitReady(ctx); err != nil {
			g.Close()
			return nil, fmt.Errorf("%s/%s ready: %w", service, l.ReplicaID(), err)
		}
	}
	return g, nil
}

func (g *Group) Close() {
	for _, l := range g.Logs {
		l.Close()
	}
	for _, nc := range g.Conns {
		nc.Close()
	}
}

// Batching describes the group commit: how many entries the log's stream
// messages carried on average.
func (g *Group) Batching(ctx context.Context) string {
	js, err := jetstream.New(g.Conns[0])
	if err != nil {
		return ""
	}
	st, err := js.Stream(ctx, qlog.StreamName(g.service))
	if err != nil {
		return ""
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f entries/msg", float64(g.Logs[0].Revision())/float64(info.State.Msgs))
}

// ProposePut returns an operation that proposes a put of a unique key with
// a value of the given size. With spread, proposals go round-robin over
// the group's replicas; otherwise all go to the first.
func (g *Group) ProposePut(value string, spread bool) harness.Op {
	return func(ctx context.Context, seq int64) error {
		l := g.Logs[0]
		if spread {
			l = g.Logs[int(seq)%len(g.Logs)]
		}
		_, err := l.Propose(ctx, qlogtest.Put("k"+strconv.FormatInt(seq, 10), value), qlog.ProposeOptions{})
		return err
	}
}

// Read returns an operation that reads key from the first replica's state
// machine through Log.Read with consistency c.
func (g *Group) Read(c qlog.Consistency, key string) harness.Op {
	l, sm := g.Logs[0], g.sms[0]
	return func(ctx context.Context, _ int64) error {
		return l.Read(ctx, c, func(int64) error {
			if _, ok := sm.Get(key); !ok {
				return fmt.Errorf("register %q is missing", key)
			}
			return nil
		})
	}
}

// fill proposes puts of keys prefix0 .. prefix<n-1> from the given number
// of concurrent proposers, logging progress about every tenth.
func fill(ctx context.Context, log *slog.Logger, l *qlog.Log, n, proposers int, prefix, value string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range proposers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				cmd := qlogtest.Put(prefix+strconv.FormatInt(i, 10), value)
				if _, err := l.Propose(ctx, cmd, qlog.ProposeOptions{}); err != nil {
					cancel(fmt.Errorf("propose %s%d: %w", prefix, i, err))
					return
				}
				done.Add(1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	start := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for tenth := int64(1); ; {
		select {
		case <-finished:
			if err := context.Cause(ctx); err != nil {
				return err
			}
			log.Info("filled", "entries", n, "took", time.Since(start).Round(time.Millisecond))
			return nil
		case <-tick.C:
			if d := done.Load(); d*10/int64(n) >= tenth {
				tenth = d*10/int64(n) + 1
				log.Info("filling", "done", d, "of", n, "elapsed", time.Since(start).Round(time.Second))
			}
		}
	}
}

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// qlogTuning overrides qlog's group-commit bounds, to try other settings
// than the defaults; zero keeps a default.
type qlogTuning struct {
	maxInFlight int
	maxBatch    int
	linger      time.Duration
}

func (t *qlogTuning) flags(fs *flag.FlagSet) {
	fs.IntVar(&t.maxInFlight, "qlog-max-in-flight", 0, "qlog Config.MaxInFlight (0: qlog's default)")
	fs.IntVar(&t.maxBatch, "qlog-max-batch", 0, "qlog Config.MaxBatch (0: qlog's default)")
	fs.DurationVar(&t.linger, "qlog-linger", 0, "qlog Config.Linger (0: qlog's default)")
}

// args renders the settings as flags, for the memory child process.
func (t qlogTuning) args() []string {
	return []string{"-qlog-max-in-flight", strconv.Itoa(t.maxInFlight), "-qlog-max-batch", strconv.Itoa(t.maxBatch),
		"-qlog-linger", t.linger.String()}
}

func (t qlogTuning) apply(c *qlog.Config) {
	c.MaxInFlight, c.MaxBatch, c.Linger = t.maxInFlight, t.maxBatch, t.linger
}

func (t qlogTuning) String() string {
	var set []string
	if t.maxInFlight != 0 {
		set = append(set, fmt.Sprintf("MaxInFlight=%d", t.maxInFlight))
	}
	if t.maxBatch != 0 {
		set = append(set, fmt.Sprintf("MaxBatch=%d", t.maxBatch))
	}
	if t.linger != 0 {
		set = append(set, fmt.Sprintf("Linger=%s", t.linger))
	}
	if len(set) == 0 {
		return "qlog's defaults"
	}
	return strings.Join(set, ", ") + " (the rest qlog's defaults)"
}

// group is n replicas of one service's log in this process, each with its
// own NATS connection and its own Registers state machine; with n > 1 all
// of them are voters.
type group struct {
	service string
	logs    []*qlog.Log
	sms     []*qlogtest.Registers
	conns   []*nats.Conn
}

func openGroup(ctx context.Context, log *slog.Logger, s *natsServer, service string, n int, tune qlogTuning, more func(*qlog.Config)) (*group, error) {
	return openGroupOn(ctx, log, func(int) (*nats.Conn, error) { return s.connect() }, service, n, tune, more)
}

// openGroupOn is openGroup with replica i connected by connect(i), to put
// the replicas on different servers of a cluster.
func openGroupOn(ctx context.Context, log *slog.Logger, connect func(i int) (*nats.Conn, error), service string, n int,
	tune qlogTuning, more func(*qlog.Config)) (*group, error) {
	var voters []string
	for i := range n {
		voters = append(voters, "r"+strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	g := &group{service: service}
	for i, id := range voters {
		nc, err := connect(i)
		if err != nil {
			g.close()
			return nil, err
		}
		g.conns = append(g.conns, nc)
		cfg := qlog.Config{Service: service, ReplicaID: id, Voters: voters, Conn: nc, Logger: log}
		tune.apply(&cfg)
		if more != nil {
			more(&cfg)
		}
		sm := qlogtest.NewRegisters()
		l, err := qlog.Open(ctx, cfg, sm)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("open %s/%s: %w", service, id, err)
		}
		g.logs, g.sms = append(g.logs, l), append(g.sms, sm)
	}
	for _, l := range g.logs {
		if err := l.WaitReady(ctx); err != nil {
			g.close()
			return nil, fmt.Errorf("%s/%s ready: %w", service, l.ReplicaID(), err)
		}
	}
	return g, nil
}

func (g *group) close() {
	for _, l := range g.logs {
		l.Close()
	}
	for _, nc := range g.conns {
		nc.Close()
	}
}

// batching describes the group commit: how many entries the log's stream
// messages carried on average.
func (g *group) batching(ctx context.Context) string {
	js, err := jetstream.New(g.conns[0])
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
	return fmt.Sprintf("%.1f entries/msg", float64(g.logs[0].Revision())/float64(info.State.Msgs))
}

// proposePut returns an operation that proposes a put of a unique key with
// a value of the given size. With spread, proposals go round-robin over
// the group's replicas; otherwise all go to the first.
func (g *group) proposePut(value string, spread bool) op {
	return func(ctx context.Context, seq int64) error {
		l := g.logs[0]
		if spread {
			l = g.logs[int(seq)%len(g.logs)]
		}
		_, err := l.Propose(ctx, qlogtest.Put("k"+strconv.FormatInt(seq, 10), value), qlog.ProposeOptions{})
		return err
	}
}

// read returns an operation that reads key from the first replica's state
// machine through Log.Read with consistency c.
func (g *group) read(c qlog.Consistency, key string) op {
	l, sm := g.logs[0], g.sms[0]
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

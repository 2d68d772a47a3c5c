package configbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/stewardhq/steward/bench/internal/harness"
)

// What idle watchers cost the write path: a replica's watchers of keys a
// write does not touch should cost it nothing. Before keyed watches
// (qlog.Log.WatchKey) every apply woke every watcher of the replica, to
// find by its filter that the event was not its own.

// WatchKeysReport is the write path measured without and with watchers.
type WatchKeysReport struct {
	watchers int
	fdNote   string
	rep      harness.ModeReport
	cpuPerOp [2]time.Duration // the child's CPU per PUT: without, with the watchers
	with     harness.ChildStats
}

const (
	rowNoWatchers   = "put-no-watchers"
	rowIdleWatchers = "put-idle-watchers"
)

// RunWatchKeys runs a config replica in a child process on a NATS server
// (fsync on every write) and measures PUT at cfg.Clients clients on keys
// of their own, first with no watcher, then with cfg.Watchers SSE
// watchers connected, each of a key of its own that no PUT touches. Each
// watcher fails the run if it receives any event.
func RunWatchKeys(ctx context.Context, log *slog.Logger, cfg harness.Config) (*WatchKeysReport, error) {
	rep := &WatchKeysReport{}
	var err error
	if rep.watchers, _, rep.fdNote, err = watcherBudget(log, cfg.Watchers); err != nil {
		return nil, err
	}
	child, stop, err := startWatchReplica(ctx, cfg, "watchkeys", "watchkeys-child", false)
	if err != nil {
		return nil, err
	}
	defer stop()
	value := harness.JSONValue(cfg.ValueSize)
	h := harness.NewHTTPTarget(cfg.HTTPClient, []string{child.URL}, cfg.Clients)
	defer h.Close()
	put := func(ctx context.Context, seq int64) error {
		return h.PutKey(ctx, child.URL, "/written/k"+strconv.FormatInt(seq, 10), value)
	}
	measure := func(i int, key, name string) error {
		start, err := child.Stats(false)
		if err != nil {
			return err
		}
		before := harness.SampleCPU()
		res := harness.Measure(ctx, harness.Settings{Duration: cfg.Duration, Runs: cfg.Runs}, cfg.Clients, put)
		rep.rep.Load = harness.Load(before, harness.SampleCPU())
		end, err := child.Stats(false)
		if err != nil {
			return err
		}
		if n := res.Ops(); n > 0 {
			rep.cpuPerOp[i] = (end.CPU - start.CPU) / time.Duration(n)
		}
		rep.rep.Rows = append(rep.rep.Rows, harness.Row{Key: key, Group: "config", Name: name, Res: res})
		return res.Failure()
	}
	// Warm the write path.
	if r := harness.Measure(ctx, harness.Settings{Duration: cfg.Warmup, Runs: 1}, cfg.Clients, put); r.Failure() != nil {
		return nil, fmt.Errorf("warm-up: %w", r.Failure())
	}
	log.Info("watch keys: PUT without watchers", "clients", cfg.Clients)
	if err := measure(0, rowNoWatchers, fmt.Sprintf("PUT, %d clients, no watcher", cfg.Clients)); err != nil {
		return rep, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := newWatchers(rep.watchers, 0, "")
	log.Info("watch keys: connecting watchers, one key each", "watchers", rep.watchers)
	if err := w.connect(wctx, log, func(i int) string { return child.URL + "/v1/watch?key=/watched/k" + strconv.Itoa(i) }); err != nil {
		return rep, err
	}
	if rep.with, err = child.Stats(true); err != nil {
		return rep, err
	}
	log.Info("watch keys: PUT with idle watchers", "watchers", rep.watchers)
	if err := measure(1, rowIdleWatchers, fmt.Sprintf("PUT, %d clients, %s idle watchers", cfg.Clients, harness.Count(rep.watchers))); err != nil {
		return rep, err
	}
	if err := w.failed(); err != nil {
		return rep, fmt.Errorf("a watcher of an unwritten key: %w", err)
	}
	cancel()
	w.wait()
	return rep, nil
}

// PrintWatchKeys prints the two rows, the child's CPU per PUT for each,
// and their ratio.
func PrintWatchKeys(out io.Writer, cfg harness.Config, rep *WatchKeysReport, err error) {
	if !harness.PrintHeading(out, "Config service: what idle watchers cost a write", rep != nil, err) {
		return
	}
	fmt.Fprintf(out, "  One replica in a child process (config.Serve; NATS, fsync on every write, in this process). PUTs of\n"+
		"  %d-byte values to keys of their own at %d clients, first with no watcher, then with %s SSE watchers connected,\n"+
		"  each of one key (/watched/k<i>) that no PUT touches. CPU/PUT is the child's CPU time over its runs' PUTs.\n",
		cfg.ValueSize, cfg.Clients, harness.Count(rep.watchers))
	if rep.fdNote != "" {
		fmt.Fprintf(out, "  %s\n", rep.fdNote)
	}
	harness.PrintRows(out, &rep.rep)
	t := harness.NewTable("l r")
	t.Add("child CPU per PUT, no watcher", harness.Dur(rep.cpuPerOp[0]))
	t.Add(fmt.Sprintf("child CPU per PUT, %s idle watchers", harness.Count(rep.watchers)), harness.Dur(rep.cpuPerOp[1]))
	t.Add(fmt.Sprintf("child with the watchers: goroutines %d, VmRSS %s", rep.with.Goroutines, harness.Mib(rep.with.RSS)), "")
	without, ok0, _ := rep.rep.Get(rowNoWatchers)
	with, ok1, _ := rep.rep.Get(rowIdleWatchers)
	if ok0 && ok1 && without.Rate() > 0 {
		t.Add("PUT ops/s with idle watchers / without", fmt.Sprintf("%.2f×", with.Rate()/without.Rate()))
	}
	t.Write(out)
	if err != nil {
		fmt.Fprintf(out, "  failed: %v\n", err)
	}
}

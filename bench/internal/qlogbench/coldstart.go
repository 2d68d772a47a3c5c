package qlogbench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// coldReport is the cold-start measurement.
type coldReport struct {
	entries       int
	streamMsgs    uint64 // stream messages the entries took (group commit)
	fillTook      time.Duration
	snapRev       int64
	snapBytes     int
	snapTook      time.Duration
	fromSnapshot  []time.Duration // Open + WaitReady, one per run
	replayAll     []time.Duration
	syncAlwaysNAT bool
}

const coldService = "cold"

// RunColdStart fills a log, snapshots it into the JetStream object store
// and then times how long a fresh replica (new connection, new state
// machine, as a newly started process has) takes from qlog.Open until
// WaitReady returns: once restoring the snapshot, once replaying every
// entry without one. NATS fsyncs every write here, Steward's default.
func RunColdStart(ctx context.Context, log *slog.Logger, cfg harness.Config) (*coldReport, error) {
	rep := &coldReport{entries: cfg.ColdEntries, syncAlwaysNAT: true}
	dir, err := harness.TempDir(cfg, "cold")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ns, err := harness.StartNATS(dir, rep.syncAlwaysNAT)
	if err != nil {
		return nil, err
	}
	defer ns.Stop()

	nc, err := ns.Connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	store := qlog.NewObjectStoreSnapshots(js, coldService, 1, 2)
	// Snapshots only when asked, and nothing trimmed, so that the replay
	// measurement below still finds every entry in the stream.
	withStore := func(c *qlog.Config) { c.Snapshots, c.SnapshotEvery = store, 1<<40 }
	g, err := openGroup(ctx, log, ns, coldService, 1, cfg.Tuning, withStore)
	if err != nil {
		return nil, err
	}
	log.Info("cold start: filling the log", "entries", cfg.ColdEntries, "proposers", cfg.Proposers)
	start := time.Now()
	if err := fill(ctx, log, g.Logs[0], cfg.ColdEntries, cfg.Proposers, "k", string(harness.Filler(cfg.ValueSize))); err != nil {
		g.Close()
		return nil, err
	}
	rep.fillTook = time.Since(start)
	start = time.Now()
	rep.snapRev, err = g.Logs[0].TakeSnapshot(ctx)
	rep.snapTook = time.Since(start)
	g.Close()
	if err != nil {
		return nil, fmt.Errorf("take snapshot: %w", err)
	}
	snaps, err := store.NewestSnapshots(ctx, coldService, 1)
	if err != nil || len(snaps) == 0 {
		return nil, fmt.Errorf("read back the snapshot: %d found, %v", len(snaps), err)
	}
	rep.snapBytes = len(snaps[0].Data)
	st, err := js.Stream(ctx, qlog.StreamName(coldService))
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	rep.streamMsgs = info.State.Msgs
	log.Info("cold start: log ready", "revision", rep.snapRev, "stream_msgs", rep.streamMsgs,
		"snapshot_bytes", rep.snapBytes, "snapshot_took", rep.snapTook.Round(time.Millisecond))

	for range cfg.Runs {
		d, err := coldOpen(ctx, log, ns, cfg.Tuning, true, cfg.ColdEntries)
		if err != nil {
			return nil, fmt.Errorf("open from the snapshot: %w", err)
		}
		rep.fromSnapshot = append(rep.fromSnapshot, d)
		log.Info("cold start from the snapshot", "took", d.Round(time.Millisecond))
		d, err = coldOpen(ctx, log, ns, cfg.Tuning, false, cfg.ColdEntries)
		if err != nil {
			return nil, fmt.Errorf("open replaying the log: %w", err)
		}
		rep.replayAll = append(rep.replayAll, d)
		log.Info("cold start replaying every entry", "took", d.Round(time.Millisecond))
	}
	return rep, nil
}

// coldOpen times qlog.Open + WaitReady of a fresh replica on a new
// connection and checks that it holds every register. The snapshot store
// handle is opened before the clock starts.
func coldOpen(ctx context.Context, log *slog.Logger, ns *harness.NATSServer, tune harness.QlogTuning, fromSnapshot bool, want int) (time.Duration, error) {
	nc, err := ns.Connect()
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	cfg := qlog.Config{Service: coldService, ReplicaID: "r0", Conn: nc, SnapshotEvery: 1 << 40, BatchEncoding: qlog.BatchBinary, Logger: log}
	tune.Apply(&cfg)
	if fromSnapshot {
		js, err := jetstream.New(nc)
		if err != nil {
			return 0, err
		}
		cfg.Snapshots = qlog.NewObjectStoreSnapshots(js, coldService, 1, 2)
	}
	sm := qlogtest.NewRegisters()
	start := time.Now()
	l, err := qlog.Open(ctx, cfg, sm)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	if err := l.WaitReady(ctx); err != nil {
		return 0, err
	}
	took := time.Since(start)
	var n int
	if err := l.Read(ctx, qlog.Serializable, func(int64) error { n = sm.Len(); return nil }); err != nil {
		return 0, err
	}
	if n != want {
		return 0, fmt.Errorf("the fresh replica holds %d registers, want %d", n, want)
	}
	return took, nil
}

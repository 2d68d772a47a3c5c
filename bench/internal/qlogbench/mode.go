package qlogbench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// RunMode measures every row of one durability mode. Servers run one at a
// time: NATS for the floor and qlog rows, then etcd, so that neither
// competes with the other for the two CPUs.
func RunMode(ctx context.Context, log *slog.Logger, cfg harness.Config, m harness.Mode) (*harness.ModeReport, error) {
	rep := &harness.ModeReport{Mode: m}
	before := harness.SampleCPU()
	defer func() { rep.Load = harness.Load(before, harness.SampleCPU()) }()
	value := string(harness.Filler(cfg.ValueSize))
	n := cfg.Clients
	// addRow measures a row unless -rows leaves it out.
	addRow := func(key, group, name string, measureFn func() harness.Result) {
		if !cfg.Rows.MatchString(group + " " + name) {
			return
		}
		log.Info("measuring", "mode", m.ID, "row", group+" "+name)
		rep.Add(log, harness.Row{Key: key, Group: group, Name: name, Res: measureFn()})
	}
	measureRow := func(key, group, name string, workers int, fn harness.Op) {
		addRow(key, group, name, func() harness.Result { return harness.Measure(ctx, cfg.Settings, workers, fn) })
	}

	if cfg.Enabled("floor") || cfg.Enabled("qlog") {
		dir, err := harness.TempDir(cfg, "nats-"+m.ID)
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		ns, err := harness.StartNATS(dir, m.NATSSync)
		if err != nil {
			return nil, err
		}
		defer ns.Stop()
		log.Info("nats started", "mode", m.ID, "url", ns.URL, "sync_always", m.NATSSync, "dir", dir)

		// The rows the 40% goal divides, raw async publish and Propose
		// from n proposers spread over 3 voters, have their runs
		// alternate (harness.MeasureAlternating); the other rows are
		// measured one after the other, each with its log alone in the
		// process.
		asyncName := fmt.Sprintf("JetStream async publish, %d in flight", n)
		spreadName := fmt.Sprintf("Propose, 3 voters, %d proposers spread over r0,r1,r2", n)
		var alternated map[string]harness.Row
		if cfg.Enabled("floor") {
			f, err := openFloor(ctx, ns, cfg.ValueSize, n)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			var rows []harness.Alternating
			if cfg.Rows.MatchString("floor " + asyncName) {
				rows = append(rows, harness.Alternating{Row: &harness.Row{Key: harness.RowAsync, Group: "floor", Name: asyncName},
					Measure: func(s harness.Settings) harness.Result { return f.AsyncPublish(ctx, s, n) }})
			}
			// The spread row's log is closed once its row is measured: its
			// state would weigh on the rows after it.
			var spread *Group
			if cfg.Enabled("qlog") && cfg.Rows.MatchString("qlog "+spreadName) {
				if spread, err = openGroup(ctx, log, ns, "p3xnspread", 3, cfg.Tuning, nil); err != nil {
					return nil, fmt.Errorf("qlog %s: %w", spreadName, err)
				}
				rows = append(rows, harness.Alternating{Row: &harness.Row{Key: harness.RowQ3xNSpread, Group: "qlog", Name: spreadName},
					Measure: harness.Measurer(ctx, n, spread.ProposePut(value, true))})
			}
			harness.MeasureAlternating(ctx, log, cfg.Settings, rows, "mode", m.ID)
			alternated = make(map[string]harness.Row, len(rows))
			for _, r := range rows {
				if r.Row.Key == harness.RowQ3xNSpread {
					r.Row.Note = spread.Batching(ctx)
				}
				alternated[r.Row.Key] = *r.Row
			}
			if spread != nil {
				spread.Close()
			}
			measureRow(harness.RowSync, "floor", "JetStream sync publish, 1 client", 1, f.SyncPublish)
			addRow(harness.RowSyncEcho, "floor", "JetStream sync publish + ordered-consumer receive, 1 client", func() harness.Result {
				e, err := f.startEcho(ctx)
				if err != nil {
					return harness.Result{Err: fmt.Errorf("start an ordered consumer: %w", err)}
				}
				defer e.stop()
				return harness.Measure(ctx, cfg.Settings, 1, f.publishAndReceive(e))
			})
			if r, ok := alternated[harness.RowAsync]; ok {
				rep.Add(log, r)
			}
		}

		if cfg.Enabled("qlog") {
			// Each row gets its own log (service) and replicas, so that a
			// replica that fail-stops spoils only its own row.
			qlogRow := func(key, service, name string, voters, workers int, build func(*Group) (harness.Op, error)) error {
				if !cfg.Rows.MatchString("qlog " + name) {
					return nil
				}
				if r, ok := alternated[key]; ok {
					rep.Add(log, r)
					return nil
				}
				g, err := openGroup(ctx, log, ns, service, voters, cfg.Tuning, nil)
				if err != nil {
					return err
				}
				defer g.Close()
				fn, err := build(g)
				if err != nil {
					return err
				}
				measureRow(key, "qlog", name, workers, fn)
				if !slices.Contains([]string{harness.RowQLin, harness.RowQSer, harness.RowQLin3x1, harness.RowQLin3}, key) {
					rep.Rows[len(rep.Rows)-1].Note = g.Batching(ctx)
				}
				return nil
			}
			puts := func(spread bool) func(*Group) (harness.Op, error) {
				return func(g *Group) (harness.Op, error) { return g.ProposePut(value, spread), nil }
			}
			reads := func(c qlog.Consistency) func(*Group) (harness.Op, error) {
				return func(g *Group) (harness.Op, error) {
					if _, err := g.Logs[0].Propose(ctx, qlogtest.Put(harness.ReadKey, value), qlog.ProposeOptions{}); err != nil {
						return nil, fmt.Errorf("write the read key: %w", err)
					}
					return g.Read(c, harness.ReadKey), nil
				}
			}
			for _, r := range []struct {
				key, service, name string
				voters, workers    int
				build              func(*Group) (harness.Op, error)
			}{
				{harness.RowQ1x1, "p1x1", "Propose, 1 voter, 1 proposer", 1, 1, puts(false)},
				{harness.RowQ1xN, "p1xn", fmt.Sprintf("Propose, 1 voter, %d proposers", n), 1, n, puts(false)},
				{harness.RowQ3x1, "p3x1", "Propose, 3 voters, 1 proposer (on r0)", 3, 1, puts(false)},
				{harness.RowQ3xNSpread, "p3xnspread", spreadName, 3, n, puts(true)},
				{harness.RowQ3xNOne, "p3xnone", fmt.Sprintf("Propose, 3 voters, %d proposers all on r0", n), 3, n, puts(false)},
				{harness.RowQLin, "readlin", fmt.Sprintf("Read linearizable, %d readers, 1 voter", n), 1, n, reads(qlog.Linearizable)},
				{harness.RowQSer, "readser", fmt.Sprintf("Read serializable, %d readers, 1 voter", n), 1, n, reads(qlog.Serializable)},
				{harness.RowQLin3x1, "readlin3x1", "Read linearizable, 1 reader, 3 voters (on r0)", 3, 1, reads(qlog.Linearizable)},
				{harness.RowQLin3, "readlin3", fmt.Sprintf("Read linearizable, %d readers, 3 voters (on r0)", n), 3, n, reads(qlog.Linearizable)},
			} {
				if err := qlogRow(r.key, r.service, r.name, r.voters, r.workers, r.build); err != nil {
					return nil, fmt.Errorf("qlog %s: %w", r.name, err)
				}
			}
		}
	}

	if cfg.Enabled("etcd") {
		err := harness.WithEtcd(ctx, log, cfg, "etcd", m, func(e *harness.EtcdPeer) error {
			measureRow(harness.RowEPut1, "etcd", "Put, 1 client", 1, e.Put(value))
			measureRow(harness.RowEPutN, "etcd", fmt.Sprintf("Put, %d clients", n), n, e.Put(value))
			if _, err := e.Cli.Put(ctx, harness.ReadKey, value); err != nil {
				return fmt.Errorf("etcd: write the read key: %w", err)
			}
			measureRow(harness.RowELin, "etcd", fmt.Sprintf("Get linearizable, %d clients", n), n, e.Get(harness.ReadKey, false))
			measureRow(harness.RowESer, "etcd", fmt.Sprintf("Get serializable, %d clients", n), n, e.Get(harness.ReadKey, true))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return rep, ctx.Err()
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// mode is a durability setting shared by every server in one table.
type mode struct {
	id, title  string
	natsSync   bool // NATS SyncAlways
	etcdNoSync bool // etcd UnsafeNoFsync
}

var modeByID = map[string]mode{
	"A": {id: "A", title: "fsync on every write (NATS SyncAlways=true; etcd default, fsync on commit)", natsSync: true},
	"B": {id: "B", title: "fsync off (NATS SyncAlways=false; etcd UnsafeNoFsync=true)", etcdNoSync: true},
}

// Row keys, for the ratios and the side-by-side view.
const (
	rowSync       = "sync"
	rowSyncEcho   = "sync-echo"
	rowAsync      = "async"
	rowQ1x1       = "q1x1"
	rowQ1xN       = "q1xN"
	rowQ3x1       = "q3x1"
	rowQ3xNSpread = "q3xN-spread"
	rowQ3xNOne    = "q3xN-one"
	rowQLin       = "qlin"
	rowQSer       = "qser"
	rowQLin3x1    = "qlin3x1"
	rowQLin3      = "qlin3"
	rowEPut1      = "eput1"
	rowEPutN      = "eputN"
	rowELin       = "elin"
	rowESer       = "eser"
)

type row struct {
	key, group, name string
	res              result
	note             string
}

type modeReport struct {
	mode mode
	rows []row
	load string // CPU use by this and other processes while measuring
}

// get returns a row's median run; ok is false when the row was not
// measured or no run of it completed, failed when a run of it failed.
func (r *modeReport) get(key string) (s runStats, ok, failed bool) {
	for _, x := range r.rows {
		if x.key == key {
			s, ok = x.res.median()
			return s, ok, x.res.failure() != nil
		}
	}
	return runStats{}, false, false
}

// cells are a row's median ops/s, p50 and p99, or dashes.
func (r *modeReport) cells(key string) []string {
	s, ok, _ := r.get(key)
	if !ok {
		return []string{"—", "—", "—"}
	}
	return []string{rate(s.rate()), dur(s.p50), dur(s.p99)}
}

// ratio is row num's throughput over row den's; ok is false when either
// has no median run.
func (r *modeReport) ratio(num, den string) (v float64, ok bool) {
	a, okA, _ := r.get(num)
	b, okB, _ := r.get(den)
	if !okA || !okB || b.rate() == 0 {
		return 0, false
	}
	return a.rate() / b.rate(), true
}

// addPair adds a side-by-side line to t: name, our row's cells, their
// row's cells and the ratio of the throughputs.
func (r *modeReport) addPair(t *table, name, ours, theirs string) {
	row := append([]string{name}, r.cells(ours)...)
	row = append(row, r.cells(theirs)...)
	v := "—"
	if x, ok := r.ratio(ours, theirs); ok {
		v = fmt.Sprintf("%.2f×", x)
	}
	t.add(append(row, v)...)
}

// readKey is the register (and etcd key) the read rows read.
const readKey = "bench-read-key"

// runMode measures every row of one durability mode. Servers run one at a
// time: NATS for the floor and qlog rows, then etcd, so that neither
// competes with the other for the two CPUs.
func runMode(ctx context.Context, log *slog.Logger, cfg config, m mode) (*modeReport, error) {
	rep := &modeReport{mode: m}
	before := sampleCPU()
	defer func() { rep.load = load(before, sampleCPU()) }()
	value := string(filler(cfg.valueSize))
	n := cfg.clients
	// addRow measures a row unless -rows leaves it out.
	addRow := func(key, group, name string, measureFn func() result) {
		if !cfg.rows.MatchString(group + " " + name) {
			return
		}
		log.Info("measuring", "mode", m.id, "row", group+" "+name)
		rep.add(log, row{key: key, group: group, name: name, res: measureFn()})
	}
	measureRow := func(key, group, name string, workers int, fn op) {
		addRow(key, group, name, func() result { return measure(ctx, cfg.settings, workers, fn) })
	}

	if cfg.enabled("floor") || cfg.enabled("qlog") {
		dir, err := tempDir(cfg, "nats-"+m.id)
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		ns, err := startNATS(dir, m.natsSync)
		if err != nil {
			return nil, err
		}
		defer ns.stop()
		log.Info("nats started", "mode", m.id, "url", ns.url, "sync_always", m.natsSync, "dir", dir)

		if cfg.enabled("floor") {
			f, err := openFloor(ctx, ns, cfg.valueSize, n)
			if err != nil {
				return nil, err
			}
			defer f.close()
			measureRow(rowSync, "floor", "JetStream sync publish, 1 client", 1, f.syncPublish)
			addRow(rowSyncEcho, "floor", "JetStream sync publish + ordered-consumer receive, 1 client", func() result {
				e, err := f.startEcho(ctx)
				if err != nil {
					return result{err: fmt.Errorf("start an ordered consumer: %w", err)}
				}
				defer e.stop()
				return measure(ctx, cfg.settings, 1, f.publishAndReceive(e))
			})
			addRow(rowAsync, "floor", fmt.Sprintf("JetStream async publish, %d in flight", n), func() result {
				return f.asyncPublish(ctx, cfg.settings, n)
			})
		}

		if cfg.enabled("qlog") {
			// Each row gets its own log (service) and replicas, so that a
			// replica that fail-stops spoils only its own row.
			qlogRow := func(key, service, name string, voters, workers int, build func(*group) (op, error)) error {
				if !cfg.rows.MatchString("qlog " + name) {
					return nil
				}
				g, err := openGroup(ctx, log, ns, service, voters, cfg.tuning, nil)
				if err != nil {
					return err
				}
				defer g.close()
				fn, err := build(g)
				if err != nil {
					return err
				}
				measureRow(key, "qlog", name, workers, fn)
				if !slices.Contains([]string{rowQLin, rowQSer, rowQLin3x1, rowQLin3}, key) {
					rep.rows[len(rep.rows)-1].note = g.batching(ctx)
				}
				return nil
			}
			puts := func(spread bool) func(*group) (op, error) {
				return func(g *group) (op, error) { return g.proposePut(value, spread), nil }
			}
			reads := func(c qlog.Consistency) func(*group) (op, error) {
				return func(g *group) (op, error) {
					if _, err := g.logs[0].Propose(ctx, qlogtest.Put(readKey, value), qlog.ProposeOptions{}); err != nil {
						return nil, fmt.Errorf("write the read key: %w", err)
					}
					return g.read(c, readKey), nil
				}
			}
			for _, r := range []struct {
				key, service, name string
				voters, workers    int
				build              func(*group) (op, error)
			}{
				{rowQ1x1, "p1x1", "Propose, 1 voter, 1 proposer", 1, 1, puts(false)},
				{rowQ1xN, "p1xn", fmt.Sprintf("Propose, 1 voter, %d proposers", n), 1, n, puts(false)},
				{rowQ3x1, "p3x1", "Propose, 3 voters, 1 proposer (on r0)", 3, 1, puts(false)},
				{rowQ3xNSpread, "p3xnspread", fmt.Sprintf("Propose, 3 voters, %d proposers spread over r0,r1,r2", n), 3, n, puts(true)},
				{rowQ3xNOne, "p3xnone", fmt.Sprintf("Propose, 3 voters, %d proposers all on r0", n), 3, n, puts(false)},
				{rowQLin, "readlin", fmt.Sprintf("Read linearizable, %d readers, 1 voter", n), 1, n, reads(qlog.Linearizable)},
				{rowQSer, "readser", fmt.Sprintf("Read serializable, %d readers, 1 voter", n), 1, n, reads(qlog.Serializable)},
				{rowQLin3x1, "readlin3x1", "Read linearizable, 1 reader, 3 voters (on r0)", 3, 1, reads(qlog.Linearizable)},
				{rowQLin3, "readlin3", fmt.Sprintf("Read linearizable, %d readers, 3 voters (on r0)", n), 3, n, reads(qlog.Linearizable)},
			} {
				if err := qlogRow(r.key, r.service, r.name, r.voters, r.workers, r.build); err != nil {
					return nil, fmt.Errorf("qlog %s: %w", r.name, err)
				}
			}
		}
	}

	if cfg.enabled("etcd") {
		err := withEtcd(ctx, log, cfg, "etcd", m, func(e *etcdPeer) error {
			measureRow(rowEPut1, "etcd", "Put, 1 client", 1, e.put(value))
			measureRow(rowEPutN, "etcd", fmt.Sprintf("Put, %d clients", n), n, e.put(value))
			if _, err := e.cli.Put(ctx, readKey, value); err != nil {
				return fmt.Errorf("etcd: write the read key: %w", err)
			}
			measureRow(rowELin, "etcd", fmt.Sprintf("Get linearizable, %d clients", n), n, e.get(readKey, false))
			measureRow(rowESer, "etcd", fmt.Sprintf("Get serializable, %d clients", n), n, e.get(readKey, true))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return rep, ctx.Err()
}

func (r *modeReport) add(log *slog.Logger, x row) {
	r.rows = append(r.rows, x)
	var rates []string
	for _, s := range x.res.completed() {
		rates = append(rates, fmt.Sprintf("%.0f", s.rate()))
	}
	attrs := []any{"mode", r.mode.id, "row", x.group + " " + x.name, "ops_per_s", strings.Join(rates, "/")}
	if med, ok := x.res.median(); ok {
		attrs = append(attrs, "p50", med.p50.Round(time.Microsecond), "p99", med.p99.Round(time.Microsecond))
	}
	if err := x.res.failure(); err != nil {
		log.Error("row failed", append(attrs, "err", err)...)
		return
	}
	log.Info("measured", attrs...)
}

package clusterbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/bench/internal/qlogbench"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// The cluster section measures qlog as a clustered deployment runs it:
// three NATS servers, streams with three replicas, three voters each on
// its own server. Its two modes are the two durability settings of such a
// deployment, so that the price of fsync on every write is measured
// where it is a choice (README: "Clustered deployments").
var clusterModeByID = map[string]harness.Mode{
	"A": {ID: "A", Title: "every NATS server fsyncs every write (SyncAlways=true; sync_interval: always)", NATSSync: true},
	"B": {ID: "B", Title: "NATS's clustered default, fsync on its sync interval of 2 minutes (SyncAlways=false)"},
}

// clusterLeader is the server every measured stream's leader is moved to
// before a row: not n0, where r0 and the floor's publisher connect, so the
// rows on r0 take the route hop that two of three replicas take in a
// deployment, and the same in both modes.
const clusterLeader = "n1"

// Row keys of the cluster section.
const (
	rowClSync  = "c-sync"
	rowClAsync = "c-async"
	rowClP1    = "c-p1"
	rowClPN    = "c-pn"
	rowClLin1  = "c-lin1"
	rowClLinN  = "c-linn"
	clusterSvc = "cl" // prefix of the rows' log (service) names
)

type clusterReport struct {
	where          string
	dataFS         string // the file system under the servers' data
	modes          []*harness.ModeReport
	loadAvg        [2]string // at the section's start and end
	err            error     // a cluster did not start
	clusterStarted time.Duration
}

// rowRunner is one row set up on one mode's cluster.
type rowRunner struct {
	run   func(harness.Settings) harness.Result // a warm-up and s.runs measured runs
	note  func() string                         // after the last run
	close func()
}

// Run starts one cluster per mode, side by side, and measures each
// row on every mode's cluster in turn, one run at a time (A, B, A, B...):
// on a machine shared with other work, both modes then see the same
// background load, and the ratios compare like with like.
func Run(ctx context.Context, log *slog.Logger, cfg harness.Config) *clusterReport {
	rep := &clusterReport{where: cfg.ClusterServers, loadAvg: [2]string{harness.LoadAverage()}}
	defer func() { rep.loadAvg[1] = harness.LoadAverage() }()
	var clusters []*natsCluster
	var dirs []string
	defer func() {
		for _, c := range clusters {
			c.stop()
		}
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	began := time.Now()
	for _, id := range cfg.Modes {
		m := clusterModeByID[id]
		dir, err := harness.TempDir(cfg, "cluster-"+id)
		if err != nil {
			rep.err = err
			return rep
		}
		dirs = append(dirs, dir)
		rep.dataFS = fsType(dir)
		c, err := startNATSCluster(ctx, dir, cfg.ClusterServers, "bench-"+id, 3, m.NATSSync)
		if err != nil {
			rep.err = fmt.Errorf("mode %s: start the cluster: %w", id, err)
			return rep
		}
		log.Info("nats cluster started", "mode", id, "servers", cfg.ClusterServers, "urls", c.urls, "sync_always", m.NATSSync, "dir", dir)
		clusters = append(clusters, c)
		rep.modes = append(rep.modes, &harness.ModeReport{Mode: m})
	}
	rep.clusterStarted = time.Since(began)
	var pids []int
	for _, c := range clusters {
		pids = append(pids, c.pids...)
	}
	tallies := make([]cpuTally, len(clusters))
	disks := make([]diskTally, len(clusters))
	defer func() {
		who := "this process"
		if len(pids) > 0 {
			who = fmt.Sprintf("this process and its %d NATS servers", len(pids))
		}
		for i, r := range rep.modes {
			r.Load = tallies[i].describe(who) + "\n  " + disks[i].String()
		}
	}()

	value := string(harness.Filler(cfg.ValueSize))
	n := cfg.Clients
	one := cfg.Settings
	one.Runs = 1

	// clusterRow measures one row on every mode's cluster, setting it up
	// with setup(mode index), alternating the modes run by run.
	clusterRow := func(key, group, name string, setup func(i int) (rowRunner, error)) {
		if !cfg.Rows.MatchString(group+" "+name) || ctx.Err() != nil {
			return
		}
		runners := make([]rowRunner, len(clusters))
		results := make([]harness.Result, len(clusters))
		for i := range clusters {
			log.Info("setting up", "mode", rep.modes[i].Mode.ID, "row", group+" "+name)
			r, err := setup(i)
			if err != nil {
				results[i].Err = fmt.Errorf("set up: %w", err)
				continue
			}
			runners[i] = r
			defer r.close()
		}
		for run := range cfg.Runs {
			for i, r := range runners {
				if r.run == nil || results[i].Failure() != nil || ctx.Err() != nil {
					continue
				}
				log.Info("measuring", "mode", rep.modes[i].Mode.ID, "row", group+" "+name, "run", run+1)
				before, disk := harness.SampleCPU(pids...), sampleDisk(dirs[i])
				got := r.run(one)
				tallies[i].add(before, harness.SampleCPU(pids...))
				disks[i].add(disk, sampleDisk(dirs[i]))
				results[i].Runs = append(results[i].Runs, got.Runs...)
				results[i].Err = got.Err
			}
		}
		for i, r := range runners {
			note := ""
			if r.note != nil {
				note = r.note()
			}
			rep.modes[i].Add(log, harness.Row{Key: key, Group: group, Name: name, Res: results[i], Note: note})
		}
	}

	// The floor: one R3 stream per mode, shared by its two rows.
	floors := make([]*qlogbench.Floor, len(clusters))
	defer func() {
		for _, f := range floors {
			if f != nil {
				f.Close()
			}
		}
	}()
	floorOf := func(i int) (*qlogbench.Floor, error) {
		if floors[i] != nil {
			return floors[i], nil
		}
		nc, err := clusters[i].connect(0)
		if err != nil {
			return nil, err
		}
		f, err := qlogbench.NewFloor(ctx, nc, 3, cfg.ValueSize, n)
		if err != nil {
			return nil, err
		}
		floors[i] = f
		if err := placeLeader(ctx, f.NC, qlogbench.RawStream, clusterLeader); err != nil {
			return nil, err
		}
		return f, nil
	}
	floorRow := func(measureFn func(f *qlogbench.Floor, s harness.Settings) harness.Result) func(i int) (rowRunner, error) {
		return func(i int) (rowRunner, error) {
			f, err := floorOf(i)
			if err != nil {
				return rowRunner{}, err
			}
			return rowRunner{
				run:   func(s harness.Settings) harness.Result { return measureFn(f, s) },
				note:  func() string { return leaderNote(ctx, f.JS, qlogbench.RawStream, "") },
				close: func() {},
			}, nil
		}
	}
	clusterRow(rowClSync, "floor", "JetStream sync publish, R3 stream, 1 publisher (on n0)", floorRow(func(f *qlogbench.Floor, s harness.Settings) harness.Result {
		return harness.Measure(ctx, s, 1, f.SyncPublish)
	}))
	clusterRow(rowClAsync, "floor", fmt.Sprintf("JetStream async publish, R3 stream, %d in flight (on n0)", n), floorRow(func(f *qlogbench.Floor, s harness.Settings) harness.Result {
		return f.AsyncPublish(ctx, s, n)
	}))

	// qlog: each row its own log, on every mode's cluster.
	qlogRow := func(service string, workers int, build func(g *qlogbench.Group) harness.Op, batching bool) func(i int) (rowRunner, error) {
		return func(i int) (rowRunner, error) {
			g, err := openClusterGroup(ctx, log.With("mode", rep.modes[i].Mode.ID), clusters[i], service, cfg.Tuning)
			if err != nil {
				return rowRunner{}, err
			}
			faults := g.Faults()
			stream := qlog.StreamName(service)
			js, err := jetstream.New(g.Conns[0])
			if err != nil {
				g.Close()
				return rowRunner{}, err
			}
			return rowRunner{
				run: func(s harness.Settings) harness.Result { return harness.Measure(ctx, s, workers, build(g)) },
				note: func() string {
					var more []string
					if batching {
						more = append(more, g.Batching(ctx))
					}
					if d := g.Faults().Since(faults); d != "" {
						more = append(more, d)
					}
					return leaderNote(ctx, js, stream, strings.Join(more, "; "))
				},
				close: g.Close,
			}, nil
		}
	}
	puts := func(spread bool) func(*qlogbench.Group) harness.Op {
		return func(g *qlogbench.Group) harness.Op { return g.ProposePut(value, spread) }
	}
	reads := func(g *qlogbench.Group) harness.Op { return g.Read(qlog.Linearizable, harness.ReadKey) }
	clusterRow(rowClP1, "qlog", "Propose, 3 voters, 1 proposer (on r0)", qlogRow(clusterSvc+"p1", 1, puts(false), true))
	clusterRow(rowClPN, "qlog", fmt.Sprintf("Propose, 3 voters, %d proposers spread over r0,r1,r2", n), qlogRow(clusterSvc+"pn", n, puts(true), true))
	clusterRow(rowClLin1, "qlog", "Read linearizable, 1 reader (on r0)", qlogRow(clusterSvc+"lin1", 1, reads, false))
	clusterRow(rowClLinN, "qlog", fmt.Sprintf("Read linearizable, %d readers (on r0)", n), qlogRow(clusterSvc+"linn", n, reads, false))
	return rep
}

// openClusterGroup opens three voters of service on c, replica ri on
// server ni, with a stream of three replicas; moves the stream's leader to
// clusterLeader; and writes the read rows' key, which also checks that
// the group commits after the move.
func openClusterGroup(ctx context.Context, log *slog.Logger, c *natsCluster, service string, tune harness.QlogTuning) (*qlogbench.Group, error) {
	g, err := qlogbench.OpenGroupOn(ctx, log, c.connect, service, 3, tune, func(qc *qlog.Config) { qc.StreamReplicas = 3 })
	if err != nil {
		return nil, err
	}
	if err := placeLeader(ctx, g.Conns[0], qlog.StreamName(service), clusterLeader); err != nil {
		g.Close()
		return nil, err
	}
	// A proposal made while the leader moved may fail; the log recovers.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := g.Logs[0].Propose(pctx, qlogtest.Put(harness.ReadKey, "x"), qlog.ProposeOptions{})
		if err == nil {
			return g, nil
		}
		if pctx.Err() != nil {
			g.Close()
			return nil, fmt.Errorf("write the read key after moving the leader: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaderNote says where the stream's leader is after a row (it was on
// clusterLeader before), with more after it.
func leaderNote(ctx context.Context, js jetstream.JetStream, stream, more string) string {
	leader, err := streamLeader(ctx, js, stream)
	switch {
	case err != nil:
		leader = "leader unknown: " + err.Error()
	case leader == clusterLeader:
		leader = "leader " + leader
	default:
		leader = fmt.Sprintf("leader moved %s→%q", clusterLeader, leader)
	}
	return strings.TrimSuffix(leader+"; "+more, "; ")
}

// cpuTally adds up CPU samples over several intervals.
type cpuTally struct {
	sum     harness.CPUSample
	unknown bool
}

func (t *cpuTally) add(a, b harness.CPUSample) {
	if !a.Ok || !b.Ok {
		t.unknown = true
		return
	}
	t.sum.Busy += b.Busy - a.Busy
	t.sum.Total += b.Total - a.Total
	t.sum.Self += b.Self - a.Self
}

func (t *cpuTally) describe(who string) string {
	end := t.sum
	end.Ok = !t.unknown
	return harness.LoadOf(harness.CPUSample{Ok: true}, end, who)
}

// diskSample is the counters of the disk under a directory, from
// /proc/diskstats: every process's I/O, not only this measurement's.
type diskSample struct {
	name                     string
	writes, flushes, ioTicks uint64 // completed writes and cache flushes (fsync), ms busy
	at                       time.Time
	ok                       bool
}

func sampleDisk(dir string) diskSample {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return diskSample{}
	}
	major, minor := (st.Dev>>8)&0xfff, (st.Dev&0xff)|((st.Dev>>12)&0xfff00)
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return diskSample{}
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 14 || f[0] != strconv.FormatUint(major, 10) || f[1] != strconv.FormatUint(minor, 10) {
			continue
		}
		num := func(i int) uint64 {
			if i >= len(f) {
				return 0 // kernels before 5.5 count no flushes
			}
			n, _ := strconv.ParseUint(f[i], 10, 64)
			return n
		}
		return diskSample{name: f[2], writes: num(7), ioTicks: num(12), flushes: num(18), at: time.Now(), ok: true}
	}
	return diskSample{}
}

// diskTally adds up disk samples over several intervals.
type diskTally struct {
	name                     string
	writes, flushes, ioTicks uint64
	elapsed                  time.Duration
	unknown                  bool
}

func (t *diskTally) add(a, b diskSample) {
	if !a.ok || !b.ok {
		t.unknown = true
		return
	}
	t.name = b.name
	t.writes += b.writes - a.writes
	t.flushes += b.flushes - a.flushes
	t.ioTicks += b.ioTicks - a.ioTicks
	t.elapsed += b.at.Sub(a.at)
}

func (t *diskTally) String() string {
	if t.unknown || t.elapsed <= 0 {
		return "disk use unknown (no /proc/diskstats line for the data directory's device)"
	}
	sec := t.elapsed.Seconds()
	return fmt.Sprintf("disk %s while measuring (every process's I/O): %s writes/s, %s cache flushes/s, busy %.0f%% of the time",
		t.name, harness.Rate(float64(t.writes)/sec), harness.Rate(float64(t.flushes)/sec), 100*float64(t.ioTicks)/float64(t.elapsed.Milliseconds()))
}

// fsType names the file system dir is on, as far as it matters for fsync.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case 0x01021994:
		return "tmpfs (fsync costs nothing: mode A measures no disk)"
	case 0xef53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683e:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("type %#x", st.Type)
}

func Print(out io.Writer, cfg harness.Config, rep *clusterReport) {
	fmt.Fprintf(out, "\n== Cluster: qlog on 3 clustered NATS servers, R3 streams, in each durability mode ==\n\n")
	where := "each in its own child process: bench " + NATSChildCommand + ", this nats-server module"
	if rep.where == ServersInProc {
		where = "all three in this process"
	}
	fmt.Fprintf(out, "  3 NATS servers n0, n1, n2 per mode (%s; -cluster-servers=%s),\n"+
		"  JetStream file storage on %s. Each stream's leader is moved to %s before its rows are measured, so r0 and the\n"+
		"  floor's publisher (both on n0) are one route hop from it. 3 voters r0, r1, r2 in this process, ri on its own\n"+
		"  connection to ni, shared by its proposers/readers; each qlog row has its own log (an R3 stream). The modes'\n"+
		"  clusters run side by side (both started in %s) and each row's runs alternate between the modes (A, B, A, B, ...),\n"+
		"  each run after its own %s warm-up, so that both modes see the same background load.\n",
		where, rep.where, rep.dataFS, clusterLeader, rep.clusterStarted.Round(time.Millisecond), cfg.Warmup)
	fmt.Fprintf(out, "  load average at the section's start: %s; at its end: %s\n", rep.loadAvg[0], rep.loadAvg[1])
	if rep.err != nil {
		fmt.Fprintf(out, "\n  FAILED: %v\n", rep.err)
		return
	}
	for _, r := range rep.modes {
		fmt.Fprintf(out, "\nMode %s: %s\n", r.Mode.ID, r.Mode.Title)
		harness.PrintRows(out, r)
	}
	if len(rep.modes) != 2 {
		return
	}
	a, b := rep.modes[0], rep.modes[1]
	fmt.Fprintf(out, "\nmode %s / mode %s, per row (ops/s, p50, p99: the median runs above)\n", a.Mode.ID, b.Mode.ID)
	t := harness.NewTable("ll rrr rrr rrr")
	t.Add("", "", a.Mode.ID+" ops/s", "p50", "p99", b.Mode.ID+" ops/s", "p50", "p99", a.Mode.ID+"/"+b.Mode.ID+" ops/s", "p50", "p99")
	for _, x := range a.Rows {
		cells := append([]string{x.Group, x.Name}, a.Cells(x.Key)...)
		cells = append(cells, b.Cells(x.Key)...)
		sa, okA, _ := a.Get(x.Key)
		sb, okB, _ := b.Get(x.Key)
		if !okA || !okB || sb.Rate() == 0 {
			t.Add(append(cells, "—", "—", "—")...)
			continue
		}
		ratio := func(x, y float64) string { return fmt.Sprintf("%.2f×", x/y) }
		t.Add(append(cells, ratio(sa.Rate(), sb.Rate()), ratio(float64(sa.P50), float64(sb.P50)), ratio(float64(sa.P99), float64(sb.P99)))...)
	}
	t.Write(out)
}

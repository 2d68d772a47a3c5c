package configbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/stewardhq/steward/bench/internal/harness"
)

// The config section measures the configuration service (services/config)
// as its clients see it: config.Serve over real HTTP on a loopback port,
// in this process, on an embedded NATS server with the mode's durability,
// beside a single-node embedded etcd through clientv3 with the same
// workloads. Then (not per mode) the watch fan-out and the memory of a
// replica holding a million keys, each in a child process.

// Row keys of the config section.
const (
	rowCPut1    = "c-put1"
	rowCPutN    = "c-putN"
	rowCLin1    = "c-lin1"
	rowCLinN    = "c-linN"
	rowCSer1    = "c-ser1"
	rowCSerN    = "c-serN"
	rowCPut3N   = "c3-putN"
	rowCLin3N   = "c3-linN"
	rowCEGet1   = "ce-lin1"
	rowCESer1   = "ce-ser1"
	configGroup = "config"
)

// configReadKey is the key the config read rows read.
const configReadKey = "/bench/read"

// RunMode measures the config service and etcd in one durability mode.
// The one-voter replica and etcd run side by side, and each pair of rows
// (a config row and etcd's of the same workload) alternates its runs
// between the two (harness.MeasureAlternating).
func RunMode(ctx context.Context, log *slog.Logger, cfg harness.Config, m harness.Mode) (*harness.ModeReport, error) {
	rep := &harness.ModeReport{Mode: m}
	before := harness.SampleCPU()
	defer func() { rep.Load = harness.Load(before, harness.SampleCPU()) }()
	n := cfg.Clients
	value := harness.JSONValue(cfg.ValueSize)
	wanted := func(group string, names ...string) bool {
		for _, name := range names {
			if cfg.Rows.MatchString(group + " " + name) {
				return true
			}
		}
		return false
	}
	logger := harness.ServiceLogger(os.Stderr)

	// One replica, the only voter, on its own NATS server, beside etcd
	// through clientv3 with the same workloads.
	oneNames := []string{"PUT, 1 client", fmt.Sprintf("PUT, %d clients", n), "GET linearizable, 1 client",
		fmt.Sprintf("GET linearizable, %d clients", n), "GET serializable, 1 client", fmt.Sprintf("GET serializable, %d clients", n)}
	etcdNames := []string{"Put, 1 client", fmt.Sprintf("Put, %d clients", n), "Get linearizable, 1 client",
		fmt.Sprintf("Get linearizable, %d clients", n), "Get serializable, 1 client", fmt.Sprintf("Get serializable, %d clients", n)}
	withConfig := func(fn func(*harness.HTTPTarget) error) error {
		if !wanted(configGroup, oneNames...) {
			return fn(nil)
		}
		err := harness.WithNATS(cfg, "config-"+m.ID, m.NATSSync, func(ns *harness.NATSServer) error {
			r, err := serveReplica(ctx, ns, configSettings("config-0", nil), logger)
			if err != nil {
				return fmt.Errorf("config, 1 voter: %w", err)
			}
			defer r.Close()
			log.Info("config service started", "mode", m.ID, "url", r.URL, "sync_always", m.NATSSync)
			h := harness.NewHTTPTarget(cfg.HTTPClient, []string{r.URL}, n)
			defer h.Close()
			if err := h.PutKey(ctx, r.URL, configReadKey, value); err != nil {
				return fmt.Errorf("config, 1 voter: write the read key: %w", err)
			}
			return fn(h)
		})
		return err
	}
	withEtcd := func(fn func(*harness.EtcdPeer) error) error {
		if !wanted("etcd", etcdNames...) {
			return fn(nil)
		}
		return harness.WithEtcd(ctx, log, cfg, "config-etcd", m, func(e *harness.EtcdPeer) error {
			if _, err := e.Cli.Put(ctx, harness.ReadKey, string(value)); err != nil {
				return fmt.Errorf("etcd: write the read key: %w", err)
			}
			return fn(e)
		})
	}
	err := withConfig(func(h *harness.HTTPTarget) error {
		return withEtcd(func(e *harness.EtcdPeer) error {
			ev := string(value)
			var ours, theirs [6]pairedRow
			if h != nil {
				ours = [6]pairedRow{{rowCPut1, 1, h.Put(value)}, {rowCPutN, n, h.Put(value)}, {rowCLin1, 1, h.Get(configReadKey, false)},
					{rowCLinN, n, h.Get(configReadKey, false)}, {rowCSer1, 1, h.Get(configReadKey, true)}, {rowCSerN, n, h.Get(configReadKey, true)}}
			}
			if e != nil {
				theirs = [6]pairedRow{{harness.RowEPut1, 1, e.Put(ev)}, {harness.RowEPutN, n, e.Put(ev)}, {rowCEGet1, 1, e.Get(harness.ReadKey, false)},
					{harness.RowELin, n, e.Get(harness.ReadKey, false)}, {rowCESer1, 1, e.Get(harness.ReadKey, true)}, {harness.RowESer, n, e.Get(harness.ReadKey, true)}}
			}
			for i := range ours {
				var rows []harness.Alternating
				add := func(group, name string, r pairedRow) {
					if cfg.Rows.MatchString(group + " " + name) {
						rows = append(rows, harness.Alternating{Row: &harness.Row{Key: r.key, Group: group, Name: name},
							Measure: harness.Measurer(ctx, r.workers, r.op)})
					}
				}
				if h != nil {
					add(configGroup, oneNames[i], ours[i])
				}
				if e != nil {
					add("etcd", etcdNames[i], theirs[i])
				}
				harness.MeasureAlternating(ctx, log, cfg.Settings, rows, "mode", m.ID)
				for _, r := range rows {
					rep.Add(log, *r.Row)
				}
			}
			return ctx.Err()
		})
	})
	if err != nil {
		return nil, err
	}

	// Three replicas, all voters, on one NATS server; clients round-robin.
	threeNames := []string{fmt.Sprintf("PUT, 3 voters, %d clients spread", n), fmt.Sprintf("GET linearizable, 3 voters, %d clients spread", n)}
	if wanted(configGroup, threeNames...) {
		err := harness.WithNATS(cfg, "config3-"+m.ID, m.NATSSync, func(ns *harness.NATSServer) error {
			voters := []string{"config-0", "config-1", "config-2"}
			var urls []string
			for _, id := range voters {
				r, err := serveReplica(ctx, ns, configSettings(id, voters), logger)
				if err != nil {
					return err
				}
				defer r.Close()
				urls = append(urls, r.URL)
			}
			log.Info("config service started, 3 voters", "mode", m.ID, "urls", urls)
			h := harness.NewHTTPTarget(cfg.HTTPClient, urls, n)
			defer h.Close()
			if err := h.PutKey(ctx, urls[0], configReadKey, value); err != nil {
				return fmt.Errorf("write the read key: %w", err)
			}
			for i, r := range []pairedRow{{rowCPut3N, n, h.Put(value)}, {rowCLin3N, n, h.Get(configReadKey, false)}} {
				if !cfg.Rows.MatchString(configGroup + " " + threeNames[i]) {
					continue
				}
				log.Info("measuring", "mode", m.ID, "row", configGroup+" "+threeNames[i])
				rep.Add(log, harness.Row{Key: r.key, Group: configGroup, Name: threeNames[i], Res: harness.Measure(ctx, cfg.Settings, r.workers, r.op)})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("config, 3 voters: %w", err)
		}
	}
	return rep, ctx.Err()
}

// pairedRow is one row's workload: its key, its clients and its operation.
type pairedRow struct {
	key     string
	workers int
	op      harness.Op
}

// PrintMode prints the config section of one mode: every row, then
// the service and etcd side by side, then the goals.
func PrintMode(out io.Writer, cfg harness.Config, rep *harness.ModeReport) {
	n := cfg.Clients
	fmt.Fprintf(out, "\n== Config service over HTTP vs etcd, mode %s: %s ==\n\n", rep.Mode.ID, rep.Mode.Title)
	harness.PrintRows(out, rep)
	fmt.Fprintf(out, "  config: config.Serve (documented default settings, qlog's default group commit, access log off) on\n"+
		"  127.0.0.1 in this process, one embedded NATS server per voter set; one http.Client over %s (keep-alive,\n"+
		"  up to %d idle conns per host) for all clients; %d-byte JSON values; PUTs write unique keys (/bench/k<n>); GETs read one key.\n"+
		"  etcd: one node, one clientv3 connection shared by all clients; the same values; Puts write unique keys (k<n>).\n"+
		"  Both run side by side; each 1-voter row's runs alternate with etcd's of the same workload, the order rotated\n"+
		"  every run, each run after its own warm-up.\n",
		harness.HTTPClientTitle(cfg.HTTPClient), 2*n, cfg.ValueSize)

	fmt.Fprintf(out, "\nside by side (mode %s)\n", rep.Mode.ID)
	t := harness.NewTable("l rrr rrr r")
	t.Add("", "config ops/s", "p50", "p99", "etcd ops/s", "p50", "p99", "config/etcd ops/s")
	line := func(name, ours, theirs string) { rep.AddPair(t, name, ours, theirs) }
	line("PUT, 1 client", rowCPut1, harness.RowEPut1)
	line(fmt.Sprintf("PUT, %d clients", n), rowCPutN, harness.RowEPutN)
	line("GET linearizable, 1 client", rowCLin1, rowCEGet1)
	line(fmt.Sprintf("GET linearizable, %d clients", n), rowCLinN, harness.RowELin)
	line("GET serializable, 1 client", rowCSer1, rowCESer1)
	line(fmt.Sprintf("GET serializable, %d clients", n), rowCSerN, harness.RowESer)
	line(fmt.Sprintf("PUT, %d clients: config 3 voters spread, etcd 1 node", n), rowCPut3N, harness.RowEPutN)
	line(fmt.Sprintf("GET linearizable, %d clients: config 3 voters spread, etcd 1 node", n), rowCLin3N, harness.RowELin)
	t.Write(out)

	fmt.Fprintf(out, "\ngoals (mode %s)\n", rep.Mode.ID)
	t = harness.NewTable("l r l l")
	goal := func(name, num, den string) {
		_, _, failA := rep.Get(num)
		_, _, failB := rep.Get(den)
		v, ok := rep.Ratio(num, den)
		switch {
		case !ok && (failA || failB):
			t.Add(name, "—", "target ≥ 1.0×", "not judged: a row failed")
		case !ok:
			t.Add(name, "—", "target ≥ 1.0×", "not measured")
		default:
			res := harness.Verdict(v >= 1)
			if failA || failB {
				res += " (runs that completed; a row failed)"
			}
			t.Add(name, fmt.Sprintf("%.2f×", v), "target ≥ 1.0×", res)
		}
	}
	goal(fmt.Sprintf("PUT ops/s, %d clients, 1 voter / etcd Put ops/s", n), rowCPutN, harness.RowEPutN)
	goal(fmt.Sprintf("GET linearizable ops/s, %d clients, 1 voter / etcd Get ops/s", n), rowCLinN, harness.RowELin)
	t.Write(out)
}

// Package authbench is bench's auth section: what STEWARD_AUTH costs the
// configuration service's hot paths, PUT and linearizable GET at many
// clients, measured with auth off and on in the same run.
//
// Two config replicas run at once in this process, each the only voter
// on its own embedded NATS server with the mode's durability, served over
// real HTTP on a loopback port as in the config section: one with auth
// off, one with auth on and a bootstrap root token. The clients of the
// auth-on replica carry a token created through /v1/auth/roles and
// /v1/auth/tokens with the root secret, holding one role, kv write on
// the benchmark's prefix, as an application's token would. Each row's
// measured runs alternate between the two replicas (off, on, then on,
// off, ...), so that the machine's noise falls on both alike; the table
// shows each side's median run and the ratio of the medians.
package authbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/qlog"
	configsvc "github.com/stewardhq/steward/services/config"
)

// prefix is the benchmark's keys; the clients' token may write under it.
const prefix = "/bench/"

// readKey is the key the GET rows read.
const readKey = prefix + "read"

// maxCost is the bound: auth on costs under 5% of the throughput.
const maxCost = 0.05

// Row keys: an operation, then the side.
const (
	opPut = "put"
	opLin = "lin"
	off   = "off"
	on    = "on"
)

// Report is one mode's measurements.
type Report struct {
	harness.ModeReport
	// Pairs are each row's per-pair on/off throughput ratios, in run order.
	Pairs map[string][]float64
}

// side is one replica and the clients that drive it.
type side struct {
	name string
	h    *harness.HTTPTarget
	url  string
	keys atomic.Int64 // the PUTs' keys, unique across the side's runs
}

// Run measures auth off against auth on in every mode of cfg.
func Run(ctx context.Context, log *slog.Logger, cfg harness.Config) ([]*Report, error) {
	var out []*Report
	for _, id := range cfg.Modes {
		rep, err := runMode(ctx, log, cfg, harness.ModeByID[id])
		if err != nil {
			return out, fmt.Errorf("auth, mode %s: %w", id, err)
		}
		out = append(out, rep)
	}
	return out, nil
}

func runMode(ctx context.Context, log *slog.Logger, cfg harness.Config, m harness.Mode) (*Report, error) {
	rep := &Report{ModeReport: harness.ModeReport{Mode: m}, Pairs: map[string][]float64{}}
	logger := harness.ServiceLogger(os.Stderr)
	value := harness.JSONValue(cfg.ValueSize)
	err := harness.WithNATS(cfg, "auth-off-"+m.ID, m.NATSSync, func(nsOff *harness.NATSServer) error {
		return harness.WithNATS(cfg, "auth-on-"+m.ID, m.NATSSync, func(nsOn *harness.NATSServer) error {
			rOff, err := serveReplica(ctx, nsOff, settings(false), logger)
			if err != nil {
				return fmt.Errorf("auth off: %w", err)
			}
			defer rOff.Close()
			rOn, err := serveReplica(ctx, nsOn, settings(true), logger)
			if err != nil {
				return fmt.Errorf("auth on: %w", err)
			}
			defer rOn.Close()
			sides := [2]*side{
				{name: off, h: harness.NewHTTPTarget(cfg.HTTPClient, []string{rOff.URL}, cfg.Clients), url: rOff.URL},
				{name: on, h: harness.NewHTTPTarget(cfg.HTTPClient, []string{rOn.URL}, cfg.Clients), url: rOn.URL},
			}
			for _, s := range sides {
				defer s.h.Close()
			}
			secret, err := harness.ScopedToken(ctx, sides[1].h.Client, rOn.URL, prefix)
			if err != nil {
				return err
			}
			sides[1].h.Authorization = "Bearer " + secret
			log.Info("config replicas started", "mode", m.ID, "auth_off", rOff.URL, "auth_on", rOn.URL)
			for _, s := range sides {
				if err := s.h.PutKey(ctx, s.url, readKey, value); err != nil {
					return fmt.Errorf("auth %s: write the read key: %w", s.name, err)
				}
			}
			before := harness.SampleCPU()
			defer func() { rep.Load = harness.Load(before, harness.SampleCPU()) }()
			n := cfg.Clients
			rep.measure(ctx, log, cfg, sides, opPut, fmt.Sprintf("PUT, %d clients", n), func(s *side) harness.Op {
				return func(ctx context.Context, _ int64) error {
					return s.h.PutKey(ctx, s.url, prefix+"k"+strconv.FormatInt(s.keys.Add(1), 10), value)
				}
			})
			rep.measure(ctx, log, cfg, sides, opLin, fmt.Sprintf("GET linearizable, %d clients", n), func(s *side) harness.Op {
				return s.h.Get(readKey, false)
			})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return rep, ctx.Err()
}

// measure measures one operation on both sides: a warm-up on each, then
// cfg.Runs runs on each, alternating, the order flipped every pair.
func (rep *Report) measure(ctx context.Context, log *slog.Logger, cfg harness.Config, sides [2]*side, op, name string, opOf func(*side) harness.Op) {
	if !cfg.Rows.MatchString("auth off "+name) && !cfg.Rows.MatchString("auth on "+name) {
		return
	}
	log.Info("measuring", "mode", rep.Mode.ID, "row", name, "runs", cfg.Runs, "alternating", "off/on")
	var res [2]harness.Result
	one := harness.Settings{Duration: cfg.Duration, Runs: 1}
	for i, s := range sides {
		if cfg.Warmup <= 0 {
			break
		}
		w := harness.Measure(ctx, harness.Settings{Duration: cfg.Warmup, Runs: 1}, cfg.Clients, opOf(s))
		if err := w.Failure(); err != nil {
			res[i].Err = fmt.Errorf("the warm-up failed %w", err)
		}
	}
	for run := range cfg.Runs {
		if ctx.Err() != nil || res[0].Failure() != nil || res[1].Failure() != nil {
			break
		}
		order := []int{0, 1}
		if run%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			res[i].Runs = append(res[i].Runs, harness.Measure(ctx, one, cfg.Clients, opOf(sides[i])).Runs...)
		}
		if k := len(res[0].Runs) - 1; k >= 0 && len(res[1].Runs) > k && res[0].Runs[k].Rate() > 0 {
			rep.Pairs[op] = append(rep.Pairs[op], res[1].Runs[k].Rate()/res[0].Runs[k].Rate())
		}
	}
	for i, s := range sides {
		rep.Add(log, harness.Row{Key: op + "-" + s.name, Group: "auth " + s.name, Name: name, Res: res[i]})
	}
}

// settings are the config service's defaults (its envconfig default tags)
// for the only voter, with auth on or off.
func settings(authOn bool) configsvc.Settings {
	var s configsvc.Settings
	// A prefix nothing sets: only the default tags apply.
	if err := envconfig.Process("STEWARD_BENCH_UNSET", &s); err != nil {
		panic(fmt.Sprintf("config settings defaults: %v", err)) // the tags are constants
	}
	s.Addr, s.ReplicaID, s.StreamReplicas = "127.0.0.1:0", "config-0", 1
	s.BatchEncoding = qlog.BatchBinary // every replica is of this version
	if authOn {
		s.Auth, s.BootstrapToken = true, harness.RootSecret
	}
	return s
}

func serveReplica(ctx context.Context, ns *harness.NATSServer, s configsvc.Settings, logger *slog.Logger) (*harness.ServedReplica, error) {
	return harness.ServeOn(ctx, ns, func(ctx context.Context, ln net.Listener, nc *nats.Conn) error {
		return configsvc.Serve(ctx, s, ln, nc, nil, logger)
	})
}

// Print prints each mode's rows, auth off beside auth on with the
// ratios, and the verdict on the bound.
func Print(out io.Writer, cfg harness.Config, reps []*Report, err error) {
	title := "Auth: config service PUT and linearizable GET with STEWARD_AUTH off vs on"
	if !harness.PrintHeading(out, title, len(reps) > 0, err) {
		return
	}
	n := cfg.Clients
	for i, rep := range reps {
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "mode %s: %s\n", rep.Mode.ID, rep.Mode.Title)
		harness.PrintRows(out, &rep.ModeReport)
		fmt.Fprintf(out, "  two config.Serve replicas (documented default settings, each the only voter on its own embedded NATS\n"+
			"  server) on 127.0.0.1 in this process, both up for the whole section; auth on: STEWARD_AUTH=on with a bootstrap\n"+
			"  root token, and the clients carry a token created through POST /v1/auth/roles and /v1/auth/tokens holding one\n"+
			"  role, kv write on %s; %d-byte JSON values, PUTs write unique keys (%sk<n>), GETs read one key. Each row's\n"+
			"  %d measured runs per side alternate off/on (on first every other pair), each side after its own warm-up.\n",
			prefix, cfg.ValueSize, prefix, cfg.Runs)

		fmt.Fprintf(out, "\noff vs on (mode %s; medians of the runs; ratios on/off)\n", rep.Mode.ID)
		t := harness.NewTable("l rrr rrr rrr l")
		t.Add("", "off ops/s", "p50", "p99", "on ops/s", "p50", "p99", "ops/s", "p50", "p99", "per-pair ops/s on/off")
		rows := []struct{ op, name string }{
			{opPut, fmt.Sprintf("PUT, %d clients", n)},
			{opLin, fmt.Sprintf("GET linearizable, %d clients", n)},
		}
		for _, r := range rows {
			cells := append([]string{r.name}, rep.Cells(r.op+"-"+off)...)
			cells = append(cells, rep.Cells(r.op+"-"+on)...)
			cells = append(cells, ratios(&rep.ModeReport, r.op)...)
			t.Add(append(cells, pairs(rep.Pairs[r.op]))...)
		}
		t.Write(out)

		fmt.Fprintf(out, "\ngoal (mode %s): auth on costs under %.0f%% of the throughput\n", rep.Mode.ID, maxCost*100)
		t = harness.NewTable("l r l l")
		for _, r := range rows {
			_, _, failOff := rep.Get(r.op + "-" + off)
			_, _, failOn := rep.Get(r.op + "-" + on)
			v, ok := rep.Ratio(r.op+"-"+on, r.op+"-"+off)
			name := r.name + ": on/off ops/s"
			target := fmt.Sprintf("target ≥ %.2f×", 1-maxCost)
			switch {
			case !ok && (failOff || failOn):
				t.Add(name, "—", target, "not judged: a row failed")
			case !ok:
				t.Add(name, "—", target, "not measured")
			default:
				res := fmt.Sprintf("%s (ops/s %+.1f%% with auth on)", harness.Verdict(v >= 1-maxCost), (v-1)*100)
				if failOff || failOn {
					res += " (runs that completed; a row failed)"
				}
				t.Add(name, fmt.Sprintf("%.3f×", v), target, res)
			}
		}
		t.Write(out)
	}
	if err != nil {
		fmt.Fprintf(out, "\n  FAILED after mode %s: %v\n", reps[len(reps)-1].Mode.ID, err)
	}
}

// ratios are the on/off ratios of an operation's median ops/s, p50 and
// p99, or dashes.
func ratios(rep *harness.ModeReport, op string) []string {
	a, okA, _ := rep.Get(op + "-" + on)
	b, okB, _ := rep.Get(op + "-" + off)
	if !okA || !okB || b.Rate() == 0 || b.P50 == 0 || b.P99 == 0 {
		return []string{"—", "—", "—"}
	}
	return []string{fmt.Sprintf("%.3f×", a.Rate()/b.Rate()), fmt.Sprintf("%.3f×", float64(a.P50)/float64(b.P50)),
		fmt.Sprintf("%.3f×", float64(a.P99)/float64(b.P99))}
}

func pairs(rs []float64) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%.3f", r))
	}
	if len(s) == 0 {
		return "—"
	}
	return strings.Join(s, " ")
}

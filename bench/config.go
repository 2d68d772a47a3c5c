package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"
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

// jsonValue returns a JSON string of exactly n bytes (n >= 2), quotes
// included: the service stores JSON values.
func jsonValue(n int) []byte {
	b := make([]byte, 0, n)
	b = append(b, '"')
	b = append(b, filler(max(n-2, 0))...)
	return append(b, '"')
}

// httpTarget is the service's HTTP API on one or more replicas.
type httpTarget struct {
	client *http.Client
	urls   []string
}

func newHTTPTarget(urls []string, conns int) *httpTarget {
	tr := &http.Transport{
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		DisableCompression:  true,
	}
	return &httpTarget{client: &http.Client{Transport: tr}, urls: urls}
}

func (h *httpTarget) close() { h.client.CloseIdleConnections() }

// url picks a replica round-robin by seq.
func (h *httpTarget) url(seq int64) string { return h.urls[int(seq%int64(len(h.urls)))] }

// do sends req and reads the whole answer; anything but 200 is an error.
func (h *httpTarget) do(req *http.Request) error {
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(b))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// put is PUT /v1/kv/bench/k<seq>: a unique key per operation.
func (h *httpTarget) put(value []byte) op {
	return func(ctx context.Context, seq int64) error {
		return h.putKey(ctx, h.url(seq), "/bench/k"+strconv.FormatInt(seq, 10), value)
	}
}

func (h *httpTarget) putKey(ctx context.Context, base, key string, value []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/kv"+key, bytes.NewReader(value))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

// get is GET /v1/kv{key}, linearizable (the default) or serializable.
func (h *httpTarget) get(key string, serializable bool) op {
	q := ""
	if serializable {
		q = "?consistency=serializable"
	}
	return func(ctx context.Context, seq int64) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url(seq)+"/v1/kv"+key+q, nil)
		if err != nil {
			return err
		}
		return h.do(req)
	}
}

// runConfigMode measures the config service and etcd in one durability
// mode. As in runMode, one server runs at a time.
func runConfigMode(ctx context.Context, log *slog.Logger, cfg config, m mode) (*modeReport, error) {
	rep := &modeReport{mode: m}
	before := sampleCPU()
	defer func() { rep.load = load(before, sampleCPU()) }()
	n := cfg.clients
	value := jsonValue(cfg.valueSize)
	measureRow := func(key, group, name string, workers int, fn op) {
		if !cfg.rows.MatchString(group + " " + name) {
			return
		}
		log.Info("measuring", "mode", m.id, "row", group+" "+name)
		rep.add(log, row{key: key, group: group, name: name, res: measure(ctx, cfg.settings, workers, fn)})
	}
	wanted := func(group string, names ...string) bool {
		for _, name := range names {
			if cfg.rows.MatchString(group + " " + name) {
				return true
			}
		}
		return false
	}
	logger := serviceLogger(os.Stderr)

	// One replica, the only voter, on its own NATS server.
	oneNames := []string{"PUT, 1 client", fmt.Sprintf("PUT, %d clients", n), "GET linearizable, 1 client",
		fmt.Sprintf("GET linearizable, %d clients", n), "GET serializable, 1 client", fmt.Sprintf("GET serializable, %d clients", n)}
	if wanted(configGroup, oneNames...) {
		err := withNATS(cfg, "config-"+m.id, m.natsSync, func(ns *natsServer) error {
			r, err := serveReplica(ctx, ns, configSettings("config-0", nil), logger)
			if err != nil {
				return err
			}
			defer r.close()
			log.Info("config service started", "mode", m.id, "url", r.url, "sync_always", m.natsSync)
			h := newHTTPTarget([]string{r.url}, n)
			defer h.close()
			if err := h.putKey(ctx, r.url, configReadKey, value); err != nil {
				return fmt.Errorf("write the read key: %w", err)
			}
			measureRow(rowCPut1, configGroup, oneNames[0], 1, h.put(value))
			measureRow(rowCPutN, configGroup, oneNames[1], n, h.put(value))
			measureRow(rowCLin1, configGroup, oneNames[2], 1, h.get(configReadKey, false))
			measureRow(rowCLinN, configGroup, oneNames[3], n, h.get(configReadKey, false))
			measureRow(rowCSer1, configGroup, oneNames[4], 1, h.get(configReadKey, true))
			measureRow(rowCSerN, configGroup, oneNames[5], n, h.get(configReadKey, true))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("config, 1 voter: %w", err)
		}
	}

	// Three replicas, all voters, on one NATS server; clients round-robin.
	threeNames := []string{fmt.Sprintf("PUT, 3 voters, %d clients spread", n), fmt.Sprintf("GET linearizable, 3 voters, %d clients spread", n)}
	if wanted(configGroup, threeNames...) {
		err := withNATS(cfg, "config3-"+m.id, m.natsSync, func(ns *natsServer) error {
			voters := []string{"config-0", "config-1", "config-2"}
			var urls []string
			for _, id := range voters {
				r, err := serveReplica(ctx, ns, configSettings(id, voters), logger)
				if err != nil {
					return err
				}
				defer r.close()
				urls = append(urls, r.url)
			}
			log.Info("config service started, 3 voters", "mode", m.id, "urls", urls)
			h := newHTTPTarget(urls, n)
			defer h.close()
			if err := h.putKey(ctx, urls[0], configReadKey, value); err != nil {
				return fmt.Errorf("write the read key: %w", err)
			}
			measureRow(rowCPut3N, configGroup, threeNames[0], n, h.put(value))
			measureRow(rowCLin3N, configGroup, threeNames[1], n, h.get(configReadKey, false))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("config, 3 voters: %w", err)
		}
	}

	// etcd, the same workloads through clientv3.
	etcdNames := []string{"Put, 1 client", fmt.Sprintf("Put, %d clients", n), "Get linearizable, 1 client",
		fmt.Sprintf("Get linearizable, %d clients", n), "Get serializable, 1 client", fmt.Sprintf("Get serializable, %d clients", n)}
	if wanted("etcd", etcdNames...) {
		err := withEtcd(ctx, log, cfg, "config-etcd", m, func(e *etcdPeer) error {
			ev := string(value)
			if _, err := e.cli.Put(ctx, readKey, ev); err != nil {
				return fmt.Errorf("etcd: write the read key: %w", err)
			}
			measureRow(rowEPut1, "etcd", etcdNames[0], 1, e.put(ev))
			measureRow(rowEPutN, "etcd", etcdNames[1], n, e.put(ev))
			measureRow(rowCEGet1, "etcd", etcdNames[2], 1, e.get(readKey, false))
			measureRow(rowELin, "etcd", etcdNames[3], n, e.get(readKey, false))
			measureRow(rowCESer1, "etcd", etcdNames[4], 1, e.get(readKey, true))
			measureRow(rowESer, "etcd", etcdNames[5], n, e.get(readKey, true))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return rep, ctx.Err()
}

// withNATS runs fn with a fresh embedded NATS server in its own directory.
func withNATS(cfg config, name string, syncAlways bool, fn func(*natsServer) error) error {
	dir, err := tempDir(cfg, name)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := startNATS(dir, syncAlways)
	if err != nil {
		return err
	}
	defer ns.stop()
	return fn(ns)
}

// withEtcd runs fn with an etcd node of mode m in a fresh directory.
func withEtcd(ctx context.Context, log *slog.Logger, cfg config, name string, m mode, fn func(*etcdPeer) error) error {
	dir, err := tempDir(cfg, name+"-"+m.id)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e, err := startEtcd(ctx, dir, m.etcdNoSync)
	if err != nil {
		return err
	}
	defer e.close()
	log.Info("etcd started", "mode", m.id, "unsafe_no_fsync", m.etcdNoSync, "dir", dir)
	return fn(e)
}

// printConfigMode prints the config section of one mode: every row, then
// the service and etcd side by side, then the goals.
func printConfigMode(out io.Writer, cfg config, rep *modeReport) {
	n := cfg.clients
	fmt.Fprintf(out, "\n== Config service over HTTP vs etcd, mode %s: %s ==\n\n", rep.mode.id, rep.mode.title)
	printRows(out, rep)
	fmt.Fprintf(out, "  %s\n", rep.load)
	fmt.Fprintf(out, "  config: config.Serve (documented default settings, qlog's default group commit, access log off) on\n"+
		"  127.0.0.1 in this process, one embedded NATS server per voter set; one http.Client (keep-alive, up to %d idle\n"+
		"  conns per host) for all clients; %d-byte JSON values; PUTs write unique keys (/bench/k<n>); GETs read one key.\n"+
		"  etcd: one node, one clientv3 connection shared by all clients; the same values; Puts write unique keys (k<n>).\n",
		2*n, cfg.valueSize)

	fmt.Fprintf(out, "\nside by side (mode %s)\n", rep.mode.id)
	t := newTable("l rrr rrr r")
	t.add("", "config ops/s", "p50", "p99", "etcd ops/s", "p50", "p99", "config/etcd ops/s")
	line := func(name, ours, theirs string) { rep.addPair(t, name, ours, theirs) }
	line("PUT, 1 client", rowCPut1, rowEPut1)
	line(fmt.Sprintf("PUT, %d clients", n), rowCPutN, rowEPutN)
	line("GET linearizable, 1 client", rowCLin1, rowCEGet1)
	line(fmt.Sprintf("GET linearizable, %d clients", n), rowCLinN, rowELin)
	line("GET serializable, 1 client", rowCSer1, rowCESer1)
	line(fmt.Sprintf("GET serializable, %d clients", n), rowCSerN, rowESer)
	line(fmt.Sprintf("PUT, %d clients: config 3 voters spread, etcd 1 node", n), rowCPut3N, rowEPutN)
	line(fmt.Sprintf("GET linearizable, %d clients: config 3 voters spread, etcd 1 node", n), rowCLin3N, rowELin)
	t.write(out)

	fmt.Fprintf(out, "\ngoals (mode %s)\n", rep.mode.id)
	t = newTable("l r l l")
	goal := func(name, num, den string) {
		_, _, failA := rep.get(num)
		_, _, failB := rep.get(den)
		v, ok := rep.ratio(num, den)
		switch {
		case !ok && (failA || failB):
			t.add(name, "—", "target ≥ 1.0×", "not judged: a row failed")
		case !ok:
			t.add(name, "—", "target ≥ 1.0×", "not measured")
		default:
			res := verdict(v >= 1)
			if failA || failB {
				res += " (runs that completed; a row failed)"
			}
			t.add(name, fmt.Sprintf("%.2f×", v), "target ≥ 1.0×", res)
		}
	}
	goal(fmt.Sprintf("PUT ops/s, %d clients, 1 voter / etcd Put ops/s", n), rowCPutN, rowEPutN)
	goal(fmt.Sprintf("GET linearizable ops/s, %d clients, 1 voter / etcd Get ops/s", n), rowCLinN, rowELin)
	t.write(out)
}

// childProfile is where a config child process writes its CPU profile:
// beside the run's, with the suffix; none without -cpuprofile.
func childProfile(cfg config, suffix string) string {
	if cfg.cpuProfile == "" {
		return ""
	}
	return cfg.cpuProfile + "." + suffix
}

// sinceRounded is a duration for progress logs.
func sinceRounded(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

package clusterbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stewardhq/steward/bench/internal/configbench"
	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/qlog"
)

// The cluster3 section compares the two systems as a user deploys them
// for fault tolerance, on one machine: Steward's config service with 3
// NATS servers (each its own child process, R3 streams, fsync on every
// write) and 3 config replicas, all voters, each its own child process on
// its own NATS server; against a 3-member etcd cluster, each member its
// own child process, with etcd's default fsync on commit. Both clusters
// run side by side and each row's runs rotate between the systems, so
// that all see the same background load.

// The systems of the section's rows.
const (
	sysSteward  = "steward"   // the config service's HTTP/JSON API, spread over its 3 replicas
	sysEtcdGRPC = "etcd-grpc" // clientv3 with the 3 members as its endpoints
	sysEtcdJSON = "etcd-json" // etcd's gRPC gateway (/v3/kv/put, /v3/kv/range), spread over its 3 members
)

var cluster3Systems = []string{sysSteward, sysEtcdGRPC, sysEtcdJSON}

// Row keys (after the system's name) of the section.
const (
	rowC3Put1 = "put1"
	rowC3PutN = "putN"
	rowC3Lin1 = "lin1"
	rowC3LinN = "linN"
)

// Keys the section reads and watches.
const (
	c3ReadKey  = "/bench/read" // the config service's key; etcd's is the same string
	c3WatchKey = "/bench/watch"
)

type cluster3Report struct {
	rep            *harness.ModeReport
	dataFS         string
	loadAvg        [2]string
	started        time.Duration
	stewardLeader  string // the config stream's leader, after the rows
	etcdLeader     string
	watch          map[string]*watchStats // by system: steward, etcd-grpc
	watchPuts      int
	err            error // a cluster did not start
	gatewayChecked string
	wrk            string // which wrk measured the wrk rows, or why none
}

// watchStats is one system's watch latencies and its PUTs' latencies.
type watchStats struct {
	events, puts []time.Duration
	err          error
}

// Run3 starts both clusters and measures every row on each system in
// turn, one run at a time.
func Run3(ctx context.Context, log *slog.Logger, cfg harness.Config) *cluster3Report {
	rep := &cluster3Report{
		rep:       &harness.ModeReport{Mode: harness.Mode{ID: "A", Title: "fsync on every write (NATS SyncAlways=true; etcd default, fsync on commit)"}},
		loadAvg:   [2]string{harness.LoadAverage()},
		watch:     map[string]*watchStats{},
		watchPuts: cfg.Cluster3WatchPuts,
	}
	defer func() { rep.loadAvg[1] = harness.LoadAverage() }()
	began := time.Now()
	dir, err := harness.TempDir(cfg, "cluster3")
	if err != nil {
		rep.err = err
		return rep
	}
	defer os.RemoveAll(dir)
	rep.dataFS = fsType(dir)

	// Steward: 3 NATS servers, then 3 config replicas, replica i on ni.
	nc, err := startNATSCluster(ctx, dir+"/nats", ServersChild, "bench-c3", 3, true)
	if err != nil {
		rep.err = fmt.Errorf("start the NATS cluster: %w", err)
		return rep
	}
	defer nc.stop()
	log.Info("nats cluster started", "urls", nc.urls)
	replicas, err := startConfigReplicas(ctx, cfg, nc)
	if err != nil {
		rep.err = fmt.Errorf("start the config replicas: %w", err)
		return rep
	}
	var stewardURLs []string
	for _, r := range replicas {
		defer r.Stop()
		stewardURLs = append(stewardURLs, r.URL)
	}
	log.Info("config replicas started", "urls", stewardURLs)

	// etcd: 3 members.
	ec, err := startEtcdCluster(ctx, dir+"/etcd", 3)
	if err != nil {
		rep.err = fmt.Errorf("start the etcd cluster: %w", err)
		return rep
	}
	defer ec.stop()
	log.Info("etcd cluster started", "urls", ec.clientURLs)
	rep.started = time.Since(began)

	pids := slices.Concat(nc.pids, ec.pids)
	for _, r := range replicas {
		pids = append(pids, r.Cmd.Process.Pid)
	}
	n := cfg.Clients
	value := harness.JSONValue(cfg.ValueSize)

	steward := harness.NewHTTPTarget(cfg.HTTPClient, stewardURLs, n)
	defer steward.Close()
	etcdJSON := harness.NewHTTPTarget(cfg.HTTPClient, ec.clientURLs, n)
	defer etcdJSON.Close()
	cli, err := ec.client(ec.clientURLs)
	if err != nil {
		rep.err = fmt.Errorf("etcd client: %w", err)
		return rep
	}
	defer cli.Close()
	etcdGRPC := &harness.EtcdPeer{Cli: cli}

	// The read key on both, and a check that the gateway answers.
	if err := steward.PutKey(ctx, stewardURLs[0], c3ReadKey, value); err != nil {
		rep.err = fmt.Errorf("steward: write the read key: %w", err)
		return rep
	}
	if err := etcdJSONPutKey(ctx, etcdJSON, ec.clientURLs[0], c3ReadKey, value); err != nil {
		rep.err = fmt.Errorf("etcd gateway: write the read key: %w", err)
		return rep
	}
	if got, err := cli.Get(ctx, c3ReadKey); err != nil || len(got.Kvs) != 1 || !bytes.Equal(got.Kvs[0].Value, value) {
		rep.err = fmt.Errorf("etcd: the key written through POST /v3/kv/put does not read back through clientv3 (err %v)", err)
		return rep
	}
	rep.gatewayChecked = "POST /v3/kv/put wrote the read key, clientv3 read it back"

	sysOps := map[string]struct{ put, get harness.Op }{
		sysSteward:  {steward.Put(value), steward.Get(c3ReadKey, false)},
		sysEtcdGRPC: {etcdGRPC.Put(string(value)), etcdGRPC.Get(c3ReadKey, false)},
		sysEtcdJSON: {etcdJSONPut(etcdJSON, value), etcdJSONRange(etcdJSON, c3ReadKey)},
	}
	before, disk0 := harness.SampleCPU(pids...), sampleDisk(dir)
	row := func(key, name string, workers int, put bool) {
		if !cfg.Rows.MatchString("cluster3 "+name) || ctx.Err() != nil {
			return
		}
		var rows []harness.Alternating
		for _, s := range cluster3Systems {
			op := sysOps[s].get
			if put {
				op = sysOps[s].put
			}
			rows = append(rows, harness.Alternating{Row: &harness.Row{Key: s + "-" + key, Group: s, Name: name}, Measure: harness.Measurer(ctx, workers, op)})
		}
		harness.MeasureAlternating(ctx, log, cfg.Settings, rows)
		for _, r := range rows {
			rep.rep.Add(log, *r.Row)
		}
	}
	row(rowC3Put1, "PUT, 1 client", 1, true)
	row(rowC3PutN, fmt.Sprintf("PUT, %d clients", n), n, true)
	row(rowC3Lin1, "GET linearizable, 1 client", 1, false)
	row(rowC3LinN, fmt.Sprintf("GET linearizable, %d clients", n), n, false)
	rep.wrk = measureWrk(ctx, log, cfg, dir, stewardURLs[0], ec.clientURLs[0], value, rep.rep)
	var disk diskTally
	disk.add(disk0, sampleDisk(dir))
	rep.rep.Load = harness.LoadOf(before, harness.SampleCPU(pids...), fmt.Sprintf("this process and its %d children", len(pids))) + "\n  " + disk.String()

	if cfg.Rows.MatchString("cluster3 watch") && ctx.Err() == nil {
		rep.watch = measureWatch(ctx, log, cfg, steward, stewardURLs, ec, cli, value)
	}

	rep.stewardLeader = configStreamLeader(ctx, nc)
	rep.etcdLeader = ec.leader(ctx, cli)
	return rep
}

// measureWrk measures the HTTP/JSON rows again through wrk, Steward and
// etcd's gateway alternating run by run, each against replica/member 0
// only (wrk loads one host), and adds them to rep. It says which wrk ran,
// or why the rows were not measured.
func measureWrk(ctx context.Context, log *slog.Logger, cfg harness.Config, dir, stewardURL, etcdURL string, value []byte, rep *harness.ModeReport) string {
	if _, err := exec.LookPath("wrk"); err != nil {
		return "wrk rows not measured: wrk is not installed (apt-get install wrk)"
	}
	version, _ := exec.CommandContext(ctx, "wrk", "-v").CombinedOutput()
	scripts, err := wrkScripts(dir, value, c3ReadKey)
	if err != nil {
		return "wrk rows not measured: " + err.Error()
	}
	base := map[string]string{sysSteward: stewardURL, sysEtcdJSON: etcdURL}
	systems := []string{sysSteward, sysEtcdJSON}
	n := cfg.Clients
	for _, r := range []struct {
		key, name, op string
		conns         int
	}{
		{rowC3Put1, "PUT, 1 connection", "put", 1}, {rowC3PutN, fmt.Sprintf("PUT, %d connections", n), "put", n},
		{rowC3Lin1, "GET linearizable, 1 connection", "get", 1}, {rowC3LinN, fmt.Sprintf("GET linearizable, %d connections", n), "get", n},
	} {
		if !cfg.Rows.MatchString("cluster3 wrk "+r.name) || ctx.Err() != nil {
			continue
		}
		results := map[string]*harness.Result{sysSteward: {}, sysEtcdJSON: {}}
		for run := range cfg.Runs {
			for k := range systems {
				s := systems[(k+run)%len(systems)]
				res := results[s]
				if res.Failure() != nil || ctx.Err() != nil {
					continue
				}
				log.Info("measuring", "system", s, "row", "wrk "+r.name, "run", run+1)
				res.Runs = append(res.Runs, runWrk(ctx, base[s], scripts[s+"-"+r.op], r.conns, run, cfg.Duration))
			}
		}
		for _, s := range systems {
			rep.Add(log, harness.Row{Key: "wrk-" + s + "-" + r.key, Group: s + " (wrk)", Name: r.name, Res: *results[s]})
		}
	}
	v, _, _ := strings.Cut(string(version), " [")
	return strings.TrimSpace(v)
}

// startConfigReplicas starts the config service's 3 replicas, all voters
// with an R3 stream, replica i in a child process connected to server i;
// together, since a replica is ready only once a quorum answers.
func startConfigReplicas(ctx context.Context, cfg harness.Config, nc *natsCluster) ([]*harness.ServiceChild, error) {
	voters := []string{"config-0", "config-1", "config-2"}
	type started struct {
		i     int
		child *harness.ServiceChild
		err   error
	}
	ch := make(chan started, len(voters))
	for i, id := range voters {
		go func() {
			c, err := harness.StartChild(ctx, configbench.ChildCommand, "-url", nc.urls[i], "-replica", id,
				"-voters", strings.Join(voters, ","), "-stream-replicas", "3", "-cpuprofile", harness.ChildProfile(cfg, "cluster3-"+id))
			ch <- started{i: i, child: c, err: err}
		}()
	}
	out := make([]*harness.ServiceChild, len(voters))
	var errs []error
	for range voters {
		s := <-ch
		if s.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", voters[s.i], s.err))
			continue
		}
		out[s.i] = s.child
	}
	if len(errs) > 0 {
		for _, c := range out {
			if c != nil {
				_ = c.Stop()
			}
		}
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// configStreamLeader names the NATS server leading the config service's
// stream.
func configStreamLeader(ctx context.Context, nc *natsCluster) string {
	conn, err := nc.connect(0)
	if err != nil {
		return "leader unknown: " + err.Error()
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		return "leader unknown: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l, err := streamLeader(ctx, js, qlog.StreamName("config"))
	if err != nil {
		return "leader unknown: " + err.Error()
	}
	return "stream " + qlog.StreamName("config") + " leader " + l
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// etcdJSONPut is POST /v3/kv/put of a unique key (k<seq>) per operation,
// through etcd's gRPC gateway, to the members round-robin.
func etcdJSONPut(h *harness.HTTPTarget, value []byte) harness.Op {
	return func(ctx context.Context, seq int64) error {
		return etcdJSONPutKey(ctx, h, h.URL(seq), "k"+strconv.FormatInt(seq, 10), value)
	}
}

func etcdJSONPutKey(ctx context.Context, h *harness.HTTPTarget, base, key string, value []byte) error {
	body := `{"key":"` + b64([]byte(key)) + `","value":"` + b64(value) + `"}`
	return etcdJSONPost(ctx, h, base+"/v3/kv/put", body)
}

// etcdJSONRange is POST /v3/kv/range of one key, linearizable
// (serializable false, the default), to the members round-robin.
func etcdJSONRange(h *harness.HTTPTarget, key string) harness.Op {
	body := `{"key":"` + b64([]byte(key)) + `","serializable":false}`
	return func(ctx context.Context, seq int64) error {
		return etcdJSONPost(ctx, h, h.URL(seq)+"/v3/kv/range", body)
	}
}

func etcdJSONPost(ctx context.Context, h *harness.HTTPTarget, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return h.Do(req)
}

// measureWatch times, on each system, PUTs of one key and their delivery
// to one watcher: the watcher on replica/member 0, the PUTs spread over
// all three (Steward round-robin, etcd through the balancing client),
// alternating between the systems, each PUT after the previous event
// arrived and a 20ms pause.
func measureWatch(ctx context.Context, log *slog.Logger, cfg harness.Config, steward *harness.HTTPTarget, stewardURLs []string,
	ec *etcdCluster, cli *clientv3.Client, value []byte) map[string]*watchStats {
	out := map[string]*watchStats{sysSteward: {}, sysEtcdGRPC: {}}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Steward: an SSE stream from replica 0.
	sEvents := make(chan time.Time, 16)
	sReady := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := sseWatch(wctx, stewardURLs[0]+"/v1/watch?key="+c3WatchKey, sReady, sEvents)
		if err != nil && wctx.Err() == nil {
			log.Error("steward watcher", "err", err)
		}
		close(sEvents)
	}()
	if err := <-sReady; err != nil {
		out[sysSteward].err = err
	}

	// etcd: clientv3 Watch on a client of member 0.
	wcli, err := ec.client(ec.clientURLs[:1])
	if err != nil {
		out[sysEtcdGRPC].err = err
	} else {
		defer wcli.Close()
	}
	eEvents := make(chan time.Time, 16)
	if wcli != nil {
		wch := wcli.Watch(wctx, c3WatchKey, clientv3.WithCreatedNotify())
		select {
		case r := <-wch:
			if !r.Created {
				out[sysEtcdGRPC].err = fmt.Errorf("watch not created: %v", r.Err())
			}
		case <-time.After(10 * time.Second):
			out[sysEtcdGRPC].err = fmt.Errorf("watch not created within 10s")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range wch {
				now := time.Now()
				for range r.Events {
					select {
					case eEvents <- now:
					case <-wctx.Done():
					}
				}
			}
			close(eEvents)
		}()
	}

	put := map[string]func(p int) error{
		sysSteward: func(p int) error { return steward.PutKey(ctx, steward.URL(int64(p)), c3WatchKey, value) },
		sysEtcdGRPC: func(int) error {
			_, err := cli.Put(ctx, c3WatchKey, string(value))
			return err
		},
	}
	events := map[string]chan time.Time{sysSteward: sEvents, sysEtcdGRPC: eEvents}
	for p := range cfg.Cluster3WatchPuts {
		for k := range 2 {
			s := []string{sysSteward, sysEtcdGRPC}[(k+p)%2]
			w := out[s]
			if w.err != nil || ctx.Err() != nil {
				continue
			}
			t0 := time.Now()
			if err := put[s](p); err != nil {
				w.err = fmt.Errorf("PUT %d: %w", p+1, err)
				continue
			}
			w.puts = append(w.puts, time.Since(t0))
			select {
			case at, ok := <-events[s]:
				if !ok {
					w.err = fmt.Errorf("the watch ended at PUT %d", p+1)
					continue
				}
				w.events = append(w.events, at.Sub(t0))
			case <-time.After(10 * time.Second):
				w.err = fmt.Errorf("no event within 10s of PUT %d", p+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for s, w := range out {
		log.Info("watch measured", "system", s, "events", len(w.events), "err", w.err)
	}
	return out
}

// sseWatch reads an SSE stream, says on ready when the server's first
// line arrived (or why not), then sends the time each event's end arrived.
func sseWatch(ctx context.Context, url string, ready chan<- error, events chan<- time.Time) error {
	fail := func(err error) error { ready <- err; return err }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fail(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("GET watch: %s", resp.Status))
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != ": watching\n" {
		return fail(fmt.Errorf("first line %q, want \": watching\" (%v)", line, err))
	}
	ready <- nil
	inEvent := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch {
		case strings.HasPrefix(line, "event: error"):
			return fmt.Errorf("the server ended the stream with an error event")
		case line == "\n" && inEvent:
			select {
			case events <- time.Now():
			case <-ctx.Done():
				return nil
			}
			inEvent = false
		case strings.HasPrefix(line, "id: ") || strings.HasPrefix(line, "data: "):
			inEvent = true
		}
	}
}

// Print3 prints the section: every row, then Steward beside etcd through
// etcd's own client and through the same HTTP/JSON client, then the
// watch latencies.
func Print3(out io.Writer, cfg harness.Config, rep *cluster3Report) {
	n := cfg.Clients
	fmt.Fprintf(out, "\n== 3-node clusters: Steward's config service vs etcd, fsync on ==\n\n")
	fmt.Fprintf(out, "  Steward: 3 NATS servers n0, n1, n2 (each its own child process, bench %s; SyncAlways=true: fsync on every write),\n"+
		"  3 config replicas config-0..2, all voters, each its own child process (bench %s -voters=config-0,config-1,config-2\n"+
		"  -stream-replicas=3), replica i connected to ni; the stream's leader is where NATS puts it (not moved).\n"+
		"  etcd: 3 members e0, e1, e2, each its own child process (bench %s: go.etcd.io/etcd/server/v3/embed, its defaults:\n"+
		"  fsync on commit, gRPC gateway on the client URL). Data on %s. Both clusters started in %s and run side by side;\n"+
		"  each row's runs rotate between steward, etcd-grpc and etcd-json (each run after its own %s warm-up).\n"+
		"  Clients, all in this process: steward = the config service's HTTP/JSON API (PUT /v1/kv/bench/k<n>, GET /v1/kv%s,\n"+
		"  linearizable) with one http.Client over %s (keep-alive, %d idle conns per host) round-robin over the 3 replicas;\n"+
		"  etcd-grpc = one clientv3 client with the 3 members as endpoints (its balancer spreads the requests), Put k<n>,\n"+
		"  Get %s linearizable; etcd-json = etcd's JSON gateway, POST /v3/kv/put and /v3/kv/range (base64 key/value,\n"+
		"  serializable=false) with the same Go HTTP client code as steward (another instance), round-robin over the 3\n"+
		"  members. %d-byte values (a JSON string). The HTTP/JSON rows are measured twice: with this in-process closed-loop\n"+
		"  Go client for both systems, and with wrk, an external load generator, for both (its own table below).\n",
		NATSChildCommand, configbench.ChildCommand, EtcdChildCommand, rep.dataFS, rep.started.Round(time.Millisecond), cfg.Warmup,
		c3ReadKey, harness.HTTPClientTitle(cfg.HTTPClient), 2*n, c3ReadKey, cfg.ValueSize)
	fmt.Fprintf(out, "  load average at the section's start: %s; at its end: %s\n", rep.loadAvg[0], rep.loadAvg[1])
	if rep.err != nil {
		fmt.Fprintf(out, "\n  FAILED: %v\n", rep.err)
		return
	}
	fmt.Fprintf(out, "  gateway check: %s. After the rows: Steward's %s; etcd's %s.\n\n", rep.gatewayChecked, rep.stewardLeader, rep.etcdLeader)
	harness.PrintRows(out, rep.rep)

	pair := func(title, ours, theirs string) {
		fmt.Fprintf(out, "\n%s\n", title)
		t := harness.NewTable("l rrr rrr rrr")
		t.Add("", "Steward ops/s", "p50", "p99", "etcd ops/s", "p50", "p99", "Steward/etcd ops/s", "p50", "p99")
		for _, k := range []struct{ key, name string }{
			{rowC3Put1, "PUT, 1 client"}, {rowC3PutN, fmt.Sprintf("PUT, %d clients", n)},
			{rowC3Lin1, "GET linearizable, 1 client"}, {rowC3LinN, fmt.Sprintf("GET linearizable, %d clients", n)},
		} {
			a, okA, _ := rep.rep.Get(ours + "-" + k.key)
			b, okB, _ := rep.rep.Get(theirs + "-" + k.key)
			cells := append([]string{k.name}, rep.rep.Cells(ours+"-"+k.key)...)
			cells = append(cells, rep.rep.Cells(theirs+"-"+k.key)...)
			if okA && okB && b.Rate() > 0 && b.P50 > 0 && b.P99 > 0 {
				cells = append(cells, fmt.Sprintf("%.2f×", a.Rate()/b.Rate()), fmt.Sprintf("%.2f×", float64(a.P50)/float64(b.P50)),
					fmt.Sprintf("%.2f×", float64(a.P99)/float64(b.P99)))
			} else {
				cells = append(cells, "—", "—", "—")
			}
			t.Add(cells...)
		}
		t.Write(out)
	}
	pair("each system's own client: Steward HTTP/JSON vs etcd clientv3 (gRPC) (the median runs above; ops/s ratio > 1 and latency ratios < 1 favour Steward)", sysSteward, sysEtcdGRPC)
	pair("both over HTTP/JSON with the same Go HTTP client: Steward vs etcd's gateway (the Steward runs are the same as in the table above)", sysSteward, sysEtcdJSON)
	fmt.Fprintf(out, "\nwrk (%s; closed loop, 1 thread per 32 connections at most 2, --latency, no warm-up run of its own: the\n"+
		"  servers are warm from the rows above) against replica config-0 and member e0 only, one wrk process per run,\n"+
		"  Steward and etcd alternating run by run; Steward PUT /v1/kv/bench/w<run>-<thread>-<n>, GET /v1/kv%s; etcd POST\n"+
		"  /v3/kv/put (key w<run>-<thread>-<n> base64-encoded in the Lua script) and /v3/kv/range.\n", rep.wrk, c3ReadKey)
	pair("both over HTTP/JSON through wrk, all connections to replica/member 0 (\"clients\" are wrk connections)", "wrk-"+sysSteward, "wrk-"+sysEtcdJSON)

	fmt.Fprintf(out, "\nwatch latency: one watcher per system on replica/member 0 (Steward: SSE GET /v1/watch?key=%s; etcd: clientv3 Watch\n"+
		"  on a client of e0), %d PUTs of %s per system (Steward: HTTP PUT round-robin over the replicas; etcd: clientv3 Put\n"+
		"  through the 3-endpoint client), alternating between the systems, back to back (the next PUT 20ms after the event\n"+
		"  arrived). Latency: from just before the PUT until the watcher read the event.\n", c3WatchKey, rep.watchPuts, c3WatchKey)
	t := harness.NewTable("l r rrr r l")
	t.Add("", "events", "p50", "p99", "max", "PUT p50", "")
	stats := map[string][3]time.Duration{}
	for _, s := range []string{sysSteward, sysEtcdGRPC} {
		w := rep.watch[s]
		if w == nil {
			t.Add(s, "—", "—", "—", "—", "—", "not measured")
			continue
		}
		note := ""
		if w.err != nil {
			note = "FAILED: " + w.err.Error()
		}
		ev := slices.Sorted(slices.Values(w.events))
		pt := slices.Sorted(slices.Values(w.puts))
		if len(ev) == 0 {
			t.Add(s, "0", "—", "—", "—", "—", note)
			continue
		}
		st := [3]time.Duration{harness.Percentile(ev, 0.5), harness.Percentile(ev, 0.99), ev[len(ev)-1]}
		stats[s] = st
		t.Add(s, harness.Count(len(ev)), harness.Dur(st[0]), harness.Dur(st[1]), harness.Dur(st[2]), harness.Dur(harness.Percentile(pt, 0.5)), note)
	}
	if a, ok := stats[sysSteward]; ok {
		if b, ok := stats[sysEtcdGRPC]; ok {
			t.Add("Steward/etcd", "", fmt.Sprintf("%.2f×", float64(a[0])/float64(b[0])), fmt.Sprintf("%.2f×", float64(a[1])/float64(b[1])),
				fmt.Sprintf("%.2f×", float64(a[2])/float64(b[2])), "", "")
		}
	}
	t.Write(out)
}

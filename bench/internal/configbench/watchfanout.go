package configbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/bench/internal/harness"
)

// watchReport is the watch fan-out measurement of one auth mode.
type watchReport struct {
	authOn           bool               // STEWARD_AUTH=on, every watcher and PUT with a bearer token
	wanted, watchers int                // watchers asked for, and connected
	fdLimit          uint64             // RLIMIT_NOFILE soft limit in force
	fdNote           string             // why fewer watchers than asked, if so
	before, with     harness.ChildStats // the child after runtime.GC: before the watchers, with them connected
	replica          fanRun
	floor            fanRun // fanfloor.go, measured after the replica with auth off
}

// fanRun is one server's fan-out: how long connecting the watchers took,
// each PUT's delivery, and the CPU time (user + system) per PUT while the
// PUTs were delivered, the second between PUTs included: the server's
// child's, and this process's (the watchers, the PUTs' client and, with
// the replica, NATS).
type fanRun struct {
	connectTook       time.Duration
	puts              []watchPut
	childCPU, hereCPU time.Duration
}

// watchPut is one PUT and its delivery to every watcher.
type watchPut struct {
	putLatency    time.Duration // the PUT's own HTTP round trip
	revision      int64
	received      int
	p50, p99, max time.Duration
	wrongID       int // events whose id was not the PUT's revision
}

const (
	fanPrefix = "/fan/" // the auth-on token's kv rule
	fanKey    = fanPrefix + "k"
)

// Values of -watch-auth.
const (
	WatchAuthOff  = "off"
	WatchAuthOn   = "on"
	WatchAuthBoth = "both"
)

// WatchAuthModes are the auth modes -watch-auth asks for, in the order
// they run: false is auth off.
func WatchAuthModes(flag string) ([]bool, error) {
	switch flag {
	case WatchAuthOff:
		return []bool{false}, nil
	case WatchAuthOn:
		return []bool{true}, nil
	case WatchAuthBoth:
		return []bool{false, true}, nil
	}
	return nil, fmt.Errorf("-watch-auth: %q (want %s, %s or %s)", flag, WatchAuthOff, WatchAuthOn, WatchAuthBoth)
}

// RunWatchFanout runs the fan-out with auth off, on, or off then on
// (cfg.WatchAuth), each with a child and a NATS server of its own, and
// returns the reports of the modes that ran.
func RunWatchFanout(ctx context.Context, log *slog.Logger, cfg harness.Config) ([]*watchReport, error) {
	modes, err := WatchAuthModes(cfg.WatchAuth)
	if err != nil {
		return nil, err
	}
	var reps []*watchReport
	for _, authOn := range modes {
		rep, err := runWatchFanout(ctx, log, cfg, authOn)
		if rep != nil {
			reps = append(reps, rep)
		}
		if err != nil {
			return reps, fmt.Errorf("auth %s: %w", onOff(authOn), err)
		}
	}
	return reps, nil
}

func onOff(b bool) string {
	if b {
		return WatchAuthOn
	}
	return WatchAuthOff
}

// runWatchFanout runs a config replica in a child process on a NATS
// server (fsync on every write, as `steward dev` runs) in this process,
// with STEWARD_AUTH=on if authOn, connects cfg.Watchers SSE watchers of
// one key to it, then PUTs that key cfg.WatchPuts times, a second apart,
// and times each watcher's receipt of each event from just before the
// PUT. With auth on, the watchers and the PUTs carry one token holding
// kv write on fanPrefix.
func runWatchFanout(ctx context.Context, log *slog.Logger, cfg harness.Config, authOn bool) (*watchReport, error) {
	rep := &watchReport{authOn: authOn, wanted: cfg.Watchers}
	var err error
	if rep.watchers, rep.fdLimit, rep.fdNote, err = watcherBudget(log, cfg.Watchers); err != nil {
		return rep, err
	}
	profile := "watch-child"
	if authOn {
		profile += "-auth"
	}
	child, stop, err := startWatchReplica(ctx, cfg, "watch", profile, authOn)
	if err != nil {
		return nil, err
	}
	defer stop()
	value := harness.JSONValue(cfg.ValueSize)
	h := harness.NewHTTPTarget(cfg.HTTPClient, []string{child.URL}, 1)
	defer h.Close()
	if authOn {
		secret, err := harness.ScopedToken(ctx, h.Client, child.URL, fanPrefix)
		if err != nil {
			return nil, err
		}
		h.Authorization = "Bearer " + secret
	}
	// Warm the write path, on another key.
	for i := range 10 {
		if err := h.PutKey(ctx, child.URL, "/fan/warm"+strconv.Itoa(i), value); err != nil {
			return nil, fmt.Errorf("warm-up PUT: %w", err)
		}
	}
	if rep.before, err = child.Stats(true); err != nil {
		return nil, err
	}

	rep.replica, err = measureFanout(ctx, log, "auth "+onOff(authOn), child, rep.watchers, cfg.WatchPuts, h.Authorization,
		func() (err error) {
			rep.with, err = child.Stats(true)
			return err
		},
		func() (int64, error) { return putRevision(ctx, h, child.URL, fanKey, value) })
	if err != nil && rep.replica.puts == nil {
		return nil, err // nothing measured to report
	}
	if err != nil || authOn {
		return rep, err
	}
	stop()
	floor, err := startFloorChild(ctx, cfg.ValueSize, harness.ChildProfile(cfg, "watch-floor"))
	if err != nil {
		return rep, err
	}
	defer floor.Stop()
	rep.floor, err = measureFanout(ctx, log, "floor", floor, rep.watchers, cfg.WatchPuts, "", nil,
		func() (int64, error) { return putRevision(ctx, h, floor.URL, fanKey, value) })
	if err != nil {
		return rep, fmt.Errorf("floor: %w", err)
	}
	return rep, nil
}

// measureFanout connects n watchers of fanKey to child's server, with
// authorization if not empty, calls connected (if not nil) once every one
// received ": watching", then makes puts PUTs with put, a second apart,
// and measures their delivery and the CPU time they took.
func measureFanout(ctx context.Context, log *slog.Logger, label string, child *harness.ServiceChild, n, puts int, authorization string,
	connected func() error, put func() (int64, error)) (fanRun, error) {
	wctx, cancel := context.WithCancel(ctx)
	w := newWatchers(n, puts, authorization)
	defer w.wait()
	defer cancel()
	var run fanRun
	start := time.Now()
	log.Info("watch fan-out: connecting watchers", "server", label, "watchers", n, "url", child.URL)
	if err := w.connect(wctx, log, func(int) string { return child.URL + "/v1/watch?key=" + fanKey }); err != nil {
		return run, err
	}
	run.connectTook = time.Since(start)
	log.Info("watch fan-out: every watcher received \": watching\"", "server", label, "watchers", n, "took", run.connectTook.Round(time.Millisecond))
	if connected != nil {
		if err := connected(); err != nil {
			return run, err
		}
	}
	before, err := child.Stats(false)
	if err != nil {
		return run, err
	}
	hereBefore, err := harness.SelfCPU()
	if err != nil {
		return run, err
	}
	if run.puts, err = deliver(ctx, log, label, w, put); err != nil {
		return run, err
	}
	hereAfter, err := harness.SelfCPU()
	if err != nil {
		return run, err
	}
	after, err := child.Stats(false)
	if err != nil {
		return run, err
	}
	k := time.Duration(len(run.puts))
	run.childCPU, run.hereCPU = (after.CPU-before.CPU)/k, (hereAfter-hereBefore)/k
	return run, nil
}

// deliver makes a PUT with put for each of w's events, a second apart, and
// times the watchers' receipt of each PUT's event from just before the PUT.
func deliver(ctx context.Context, log *slog.Logger, label string, w *watchers, put func() (int64, error)) ([]watchPut, error) {
	n, puts := w.n, len(w.got)
	var out []watchPut
	for p := range puts {
		t0 := time.Now()
		rev, err := put()
		if err != nil {
			return out, fmt.Errorf("PUT %d: %w", p+1, err)
		}
		put := watchPut{putLatency: time.Since(t0), revision: rev}
		deadline := t0.Add(30 * time.Second)
		for w.got[p].Load() < int64(n) && time.Now().Before(deadline) && w.failed() == nil {
			time.Sleep(time.Millisecond)
		}
		if err := w.failed(); err != nil {
			return out, err
		}
		put.received, put.wrongID, put.p50, put.p99, put.max = w.latencies(p, t0, rev)
		out = append(out, put)
		log.Info("watch fan-out: PUT delivered", "server", label, "put", p+1, "received", put.received, "of", n,
			"p50", put.p50, "p99", put.p99, "max", put.max)
		if put.received < n {
			log.Warn("watch fan-out: some watchers did not receive the event within 30s", "server", label, "missing", n-put.received)
		}
		if p < puts-1 {
			select {
			case <-time.After(time.Until(t0.Add(time.Second))):
			case <-ctx.Done():
				return out, ctx.Err()
			}
		}
	}
	return out, nil
}

// watcherBudget raises the file descriptor limit and returns how many of
// want watchers it leaves room for (each takes one descriptor here and
// one in the child), with a note saying why when fewer; none is an error.
func watcherBudget(log *slog.Logger, want int) (n int, soft uint64, note string, err error) {
	soft, err = harness.RaiseFileLimit()
	if err != nil {
		log.Warn("watchers: could not raise the file descriptor limit", "err", err, "soft_limit", soft)
		note = err.Error()
	}
	// Room for NATS, its files and the rest.
	const reserve = 512
	n = want
	if avail := int(soft) - reserve; want > avail {
		n = max(avail, 0)
		note = fmt.Sprintf("RLIMIT_NOFILE is %d: %d watchers at most (%d descriptors kept for the rest)", soft, n, reserve)
		log.Warn("watchers: too few file descriptors", "soft_limit", soft, "watchers", n)
	}
	if n == 0 {
		return 0, soft, note, fmt.Errorf("no file descriptors for watchers: %s", note)
	}
	return n, soft, note, nil
}

// startWatchReplica starts a NATS server (fsync on every write) in a
// temporary directory named after name, and a config replica in a child
// process on it (its CPU profile named profile); stop ends both (once,
// however often called).
func startWatchReplica(ctx context.Context, cfg harness.Config, name, profile string, authOn bool) (child *harness.ServiceChild, stop func(), err error) {
	dir, err := harness.TempDir(cfg, name)
	if err != nil {
		return nil, nil, err
	}
	ns, err := harness.StartNATS(dir, true)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	child, err = startConfigChild(ctx, ns.URL, harness.ChildProfile(cfg, profile), authOn)
	if err != nil {
		ns.Stop()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return child, sync.OnceFunc(func() { child.Stop(); ns.Stop(); os.RemoveAll(dir) }), nil
}

// putRevision PUTs key, with h's Authorization if any, and returns the
// revision the answer reports.
func putRevision(ctx context.Context, h *harness.HTTPTarget, base, key string, value []byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/kv"+key, bytes.NewReader(value))
	if err != nil {
		return 0, err
	}
	if h.Authorization != "" {
		req.Header.Set("Authorization", h.Authorization)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("PUT %s: %s", key, resp.Status)
	}
	return strconv.ParseInt(resp.Header.Get("X-Steward-Revision"), 10, 64)
}

// watchers are the SSE streams; recv[p][i] is when watcher i received the
// event of PUT p (unix ns), id[p][i] that event's id.
type watchers struct {
	n    int
	auth string // the Authorization header of every watch, if any
	recv [][]atomic.Int64
	id   [][]int64
	got  []atomic.Int64 // per PUT, how many watchers received it
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

func newWatchers(n, puts int, authorization string) *watchers {
	w := &watchers{n: n, auth: authorization, recv: make([][]atomic.Int64, puts), id: make([][]int64, puts),
		got: make([]atomic.Int64, puts)}
	for p := range puts {
		w.recv[p] = make([]atomic.Int64, n)
		w.id[p] = make([]int64, n)
	}
	return w
}

func (w *watchers) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *watchers) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *watchers) wait() { w.wg.Wait() }

// connect starts every watcher and returns once each has received the
// server's first line, ": watching", or one failed. At most 128 are
// connecting at a time, to stay inside the listen backlog.
func (w *watchers) connect(ctx context.Context, log *slog.Logger, url func(i int) string) error {
	tr := &http.Transport{
		MaxConnsPerHost:    0,
		DisableCompression: true,
		DialContext:        (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
	}
	client := &http.Client{Transport: tr}
	connecting := make(chan struct{}, 128)
	var ready sync.WaitGroup
	var connected atomic.Int64
	for i := range w.n {
		select {
		case connecting <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := w.failed(); err != nil {
			return err
		}
		ready.Add(1)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			once := sync.OnceFunc(func() { <-connecting; ready.Done() })
			defer once()
			if err := w.watch(ctx, client, url(i), i, func() { connected.Add(1); once() }); err != nil && ctx.Err() == nil {
				w.fail(fmt.Errorf("watcher %d: %w", i, err))
			}
		}()
		if (i+1)%(max(w.n/10, 1)) == 0 {
			log.Info("watch fan-out: connecting", "started", i+1, "connected", connected.Load())
		}
	}
	ready.Wait()
	if err := w.failed(); err != nil {
		return err
	}
	if c := connected.Load(); c != int64(w.n) {
		return fmt.Errorf("%d of %d watchers connected", c, w.n)
	}
	return nil
}

// watch is one watcher: it reads the stream line by line and records,
// for the k-th event, when its last line arrived.
func (w *watchers) watch(ctx context.Context, client *http.Client, url string, i int, ready func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if w.auth != "" {
		req.Header.Set("Authorization", w.auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET watch: %s", resp.Status)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read the first line: %w", err)
	}
	if string(line) != ": watching\n" {
		return fmt.Errorf("first line %q, want \": watching\"", line)
	}
	ready()
	k, id := 0, int64(-1)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull: // a long data line: read on
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return err
			}
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case bytes.HasPrefix(line, []byte("id: ")):
			id, _ = strconv.ParseInt(string(bytes.TrimSpace(line[4:])), 10, 64)
		case bytes.HasPrefix(line, []byte("event: error")):
			return fmt.Errorf("the server ended the stream with an error event")
		case len(line) == 1 && id >= 0: // the blank line ending an event
			now := time.Now().UnixNano()
			if k >= len(w.recv) {
				return fmt.Errorf("event %d (id %d) after the last PUT", k+1, id)
			}
			w.id[k][i] = id // before recv: a reader that sees recv sees id
			w.recv[k][i].Store(now)
			w.got[k].Add(1)
			k, id = k+1, -1
		}
	}
}

// medianP99 returns the median of puts' p99s, and whether every watcher
// received every PUT's event with the right id.
func medianP99(puts []watchPut, watchers int) (time.Duration, bool) {
	var p99s []time.Duration
	complete := true
	for _, p := range puts {
		p99s = append(p99s, p.p99)
		complete = complete && p.received == watchers && p.wrongID == 0
	}
	slices.Sort(p99s)
	return p99s[(len(p99s)-1)/2], complete
}

// latencies returns, for PUT p started at t0 with revision rev, how many
// watchers received its event and its delivery latencies' percentiles.
func (w *watchers) latencies(p int, t0 time.Time, rev int64) (received, wrongID int, p50, p99, worst time.Duration) {
	lat := make([]time.Duration, 0, w.n)
	for i := range w.n {
		at := w.recv[p][i].Load()
		if at == 0 {
			continue
		}
		if w.id[p][i] != rev {
			wrongID++
		}
		lat = append(lat, time.Duration(at-t0.UnixNano()))
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0, wrongID, 0, 0, 0
	}
	return len(lat), wrongID, harness.Percentile(lat, 0.50), harness.Percentile(lat, 0.99), lat[len(lat)-1]
}

// PrintWatch prints the fan-out of each auth mode that ran, every row
// named by its mode.
func PrintWatch(out io.Writer, cfg harness.Config, reps []*watchReport, err error) {
	if !harness.PrintHeading(out, "Config service: watch fan-out", len(reps) > 0, err) {
		return
	}
	var took []string
	for _, rep := range reps {
		took = append(took, fmt.Sprintf("%s with auth %s", rep.replica.connectTook.Round(time.Millisecond), onOff(rep.authOn)))
	}
	fmt.Fprintf(out, "  %s SSE watchers of one key (GET /v1/watch?key=%s), in this process, one connection each, on one\n"+
		"  replica in a child process (config.Serve; NATS, fsync on every write, in this process); each watcher connected\n"+
		"  and received \": watching\" before the PUTs; then %d PUTs of a %d-byte value to that key, a second apart.\n"+
		"  Latency: from just before the PUT until the watcher read the event's last line.\n"+
		"  Auth off: STEWARD_AUTH off (the default). Auth on: STEWARD_AUTH=on with a bootstrap root token, as the compose\n"+
		"  stack and the Helm chart run; every watcher and every PUT carries one token created through POST /v1/auth/roles\n"+
		"  and /v1/auth/tokens holding one role, kv write on %s. The modes run one after the other (-watch-auth=%s),\n"+
		"  each with its own child and NATS server. Connecting all took %s.\n"+
		"  RLIMIT_NOFILE soft limit: %d.\n",
		harness.Count(reps[0].watchers), fanKey, cfg.WatchPuts, cfg.ValueSize, fanPrefix, cfg.WatchAuth, strings.Join(took, ", "), reps[0].fdLimit)
	for _, rep := range reps {
		if rep.fdNote != "" {
			fmt.Fprintf(out, "  NOTE (auth %s): asked for %s watchers: %s\n", onOff(rep.authOn), harness.Count(rep.wanted), rep.fdNote)
		}
	}
	if err != nil {
		fmt.Fprintf(out, "  FAILED: %v\n", err)
	}
	t := harness.NewTable("l l r r rrr r")
	t.Add("server", "", "PUT took", "received", "p50", "p99", "max", "wrong id")
	addPuts := func(server string, puts []watchPut, watchers int) {
		for i, p := range puts {
			t.Add(server, fmt.Sprintf("PUT %d (revision %d)", i+1, p.revision), harness.Dur(p.putLatency),
				fmt.Sprintf("%s/%s", harness.Count(p.received), harness.Count(watchers)), harness.Dur(p.p50), harness.Dur(p.p99), harness.Dur(p.max), harness.Count(p.wrongID))
		}
	}
	for _, rep := range reps {
		addPuts("auth "+onOff(rep.authOn), rep.replica.puts, rep.watchers)
		addPuts("floor", rep.floor.puts, rep.watchers)
	}
	t.Write(out)
	t = harness.NewTable("l l r l l")
	for _, rep := range reps {
		if len(rep.replica.puts) == 0 {
			continue
		}
		med, complete := medianP99(rep.replica.puts, rep.watchers)
		res := harness.Verdict(med < 100*time.Millisecond && complete)
		if !complete {
			res += " (some watchers missed an event or got a wrong one)"
		}
		t.Add("auth "+onOff(rep.authOn), "median of the per-PUT p99s", harness.Dur(med), "target < 100ms", res)
		t.Add("auth "+onOff(rep.authOn), "the child's CPU per PUT", harness.Dur(rep.replica.childCPU), "", "")
		t.Add("auth "+onOff(rep.authOn), "this process's CPU per PUT", harness.Dur(rep.replica.hereCPU), "", "the watchers, the PUTs, NATS")
		if len(rep.floor.puts) == 0 {
			continue
		}
		floor, complete := medianP99(rep.floor.puts, rep.watchers)
		note := fmt.Sprintf("auth off / floor: %.2f×", float64(med)/float64(floor))
		if !complete {
			note = "(some watchers missed an event or got a wrong one)"
		}
		t.Add("floor", "median of the per-PUT p99s", harness.Dur(floor), "", note)
		t.Add("floor", "the child's CPU per PUT", harness.Dur(rep.floor.childCPU), "",
			fmt.Sprintf("auth off / floor: %.2f×", float64(rep.replica.childCPU)/float64(rep.floor.childCPU)))
		t.Add("floor", "this process's CPU per PUT", harness.Dur(rep.floor.hereCPU), "", "the watchers, the PUTs")
	}
	t.Write(out)

	for _, rep := range reps {
		if len(rep.floor.puts) > 0 {
			fmt.Fprintf(out, "  floor: the same watchers and PUTs (connected in %s) against a server of raw TCP writes in a child process\n"+
				"  (bench/internal/configbench/fanfloor.go), measured after the replica: on each PUT it writes the event a replica writes\n"+
				"  (id, event: put, the entry and the one before it) to every watcher's connection from GOMAXPROCS goroutines; no log, no fsync, no goroutine\n"+
				"  per watcher. What this machine allows a fan-out to %s watchers on the same two CPUs as their readers.\n",
				rep.floor.connectTook.Round(time.Millisecond), harness.Count(rep.watchers))
		}
	}
	fmt.Fprintf(out, "\n  memory of the child (VmRSS after runtime.GC):\n")
	t = harness.NewTable("l l r r r")
	t.Add("auth", "", "VmRSS", "Go heap in use", "goroutines")
	for _, rep := range reps {
		mode := onOff(rep.authOn)
		delta := rep.with.RSS - rep.before.RSS
		heap := rep.with.HeapInuse - rep.before.HeapInuse
		goroutines := rep.with.Goroutines - rep.before.Goroutines
		t.Add(mode, "before the watchers", harness.Mib(rep.before.RSS), harness.Mib(rep.before.HeapInuse), harness.Count(rep.before.Goroutines))
		t.Add(mode, fmt.Sprintf("with %s watchers connected", harness.Count(rep.watchers)), harness.Mib(rep.with.RSS), harness.Mib(rep.with.HeapInuse), harness.Count(rep.with.Goroutines))
		t.Add(mode, "increase", harness.Mib(delta), harness.Mib(heap), harness.Count(goroutines))
		t.Add(mode, "per watcher", fmt.Sprintf("%.1f KiB", float64(delta)/1024/float64(rep.watchers)),
			fmt.Sprintf("%.1f KiB", float64(heap)/1024/float64(rep.watchers)),
			fmt.Sprintf("%.1f", float64(goroutines)/float64(rep.watchers)))
	}
	t.Write(out)
}

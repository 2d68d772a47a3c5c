package registrybench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// The heartbeat load of the registry section: instances register with a
// TTL check and heartbeat, each on its own schedule, the schedules spread
// evenly over one heartbeat interval, against three voters (instance i
// talks to replica i mod 3). One SSE watcher per service, ?status=critical,
// sees every instance that turns critical.

// hbLoad is one sustained heartbeat run and its detection phase.
type hbLoad struct {
	instances, services, stop int
	ttl, every, duration      time.Duration
	urls                      []string
	client                    *http.Client

	all   []*hbInstance
	start time.Time // the schedules' origin

	mu       sync.Mutex
	beats    []hbBeat // every heartbeat that succeeded
	errs     int
	firstErr error
	// flips are the instances whose heartbeat answer showed they had not
	// stayed passing since they registered.
	flips map[string]hbFlip
}

// hbBeat is one heartbeat: when it was sent and how long it took.
type hbBeat struct {
	sent time.Time
	lat  time.Duration
}

// hbFlip is what the load generator knew when a heartbeat's answer showed
// that an instance had left passing: the send times of that heartbeat and
// of the one before, and when the one before was answered.
type hbFlip struct {
	sent, prevSent, prevAck time.Time
}

// hbInstance is one instance's state in the load generator.
type hbInstance struct {
	idx      int
	service  string
	id       string
	base     string    // the replica it talks to
	since    time.Time // statusSince of its registration
	stopNext atomic.Bool
	// Set by the instance's goroutine before it closes stopped: when its
	// last heartbeat was answered, or the error that ended it.
	lastAck time.Time
	stopErr error
	stopped chan struct{}
}

// instanceView is the part of an instance answer the load generator reads.
type instanceView struct {
	Status      catalog.Status  `json:"status"`
	StatusSince time.Time       `json:"statusSince"`
	Held        json.RawMessage `json:"held"`
}

func newHBLoad(cfg harness.Config, urls []string) *hbLoad {
	tr := &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		MaxConnsPerHost:     256,
		DisableCompression:  true,
	}
	ld := &hbLoad{instances: cfg.RegInstances, services: cfg.RegServices, stop: cfg.RegStop,
		ttl: cfg.RegTTL, every: cfg.RegEvery, duration: cfg.RegDuration, urls: urls,
		client: &http.Client{Transport: tr}, flips: map[string]hbFlip{}}
	perService := (ld.instances + ld.services - 1) / ld.services
	for i := range ld.instances {
		ld.all = append(ld.all, &hbInstance{idx: i, service: fmt.Sprintf("bench-%03d", i/perService),
			id: fmt.Sprintf("i%05d", i), base: urls[i%len(urls)], stopped: make(chan struct{})})
	}
	return ld
}

func (in *hbInstance) key() string { return in.service + "/" + in.id }

// serviceNames returns the services the instances are in, sorted.
func (ld *hbLoad) serviceNames() []string {
	var out []string
	for _, in := range ld.all {
		if len(out) == 0 || out[len(out)-1] != in.service {
			out = append(out, in.service)
		}
	}
	return out
}

// stopSet returns the instances the detection phase stops: spread evenly
// over the instances, hence over the services and the schedule.
func (ld *hbLoad) stopSet() []*hbInstance {
	var out []*hbInstance
	step := max(ld.instances/max(ld.stop, 1), 1)
	for i := 0; i < ld.instances && len(out) < ld.stop; i += step {
		out = append(out, ld.all[i])
	}
	return out
}

func (ld *hbLoad) fail(err error) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ld.errs++
	if ld.firstErr == nil {
		ld.firstErr = err
	}
}

// run starts every instance's goroutine; they register and heartbeat until
// ctx ends or they are stopped. wg tracks them.
func (ld *hbLoad) run(ctx context.Context, wg *sync.WaitGroup) {
	ld.start = time.Now()
	for _, in := range ld.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ld.instance(ctx, in)
		}()
	}
}

// instance is one instance: it registers at its place in the schedule,
// then heartbeats every interval, counted from when it sent the
// registration, as a client with a ticker does.
func (ld *hbLoad) instance(ctx context.Context, in *hbInstance) {
	defer close(in.stopped)
	phase := time.Duration(in.idx) * ld.every / time.Duration(ld.instances)
	select {
	case <-time.After(time.Until(ld.start.Add(phase))):
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(ld.every)
	defer tick.Stop()
	var v instanceView
	body := registrationBody(int64(in.idx), ld.ttl)
	if err := ld.call(ctx, http.MethodPut, in.base+"/v1/services/"+in.service+"/instances/"+in.id, body, &v); err != nil {
		if ctx.Err() == nil {
			ld.fail(fmt.Errorf("register %s: %w", in.key(), err))
		}
		in.stopErr = err
		return
	}
	in.since = v.StatusSince
	var prevSent, prevAck time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		last := in.stopNext.Load()
		sent := time.Now()
		var v instanceView
		err := ld.call(ctx, http.MethodPut, in.base+"/v1/services/"+in.service+"/instances/"+in.id+"/heartbeat", nil, &v)
		ack := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ld.fail(fmt.Errorf("heartbeat %s: %w", in.key(), err))
			if last {
				in.stopErr = err
				return
			}
			continue
		}
		ld.mu.Lock()
		ld.beats = append(ld.beats, hbBeat{sent: sent, lat: ack.Sub(sent)})
		if _, seen := ld.flips[in.key()]; !seen && (v.Status != catalog.Passing || !v.StatusSince.Equal(in.since) || len(v.Held) > 0 && string(v.Held) != "null") {
			ld.flips[in.key()] = hbFlip{sent: sent, prevSent: prevSent, prevAck: prevAck}
		}
		ld.mu.Unlock()
		prevSent, prevAck = sent, ack
		if last {
			in.lastAck = ack
			return
		}
	}
}

// call sends a request without a body or with a JSON one and decodes the
// JSON answer into v; anything but 200 is an error.
func (ld *hbLoad) call(ctx context.Context, method, url string, body []byte, v any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ld.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}

// beatsIn returns the latencies of the heartbeats sent in [from, to).
func (ld *hbLoad) beatsIn(from, to time.Time) []time.Duration {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	var out []time.Duration
	for _, b := range ld.beats {
		if !b.sent.Before(from) && b.sent.Before(to) {
			out = append(out, b.lat)
		}
	}
	slices.Sort(out)
	return out
}

// criticalWatch is one SSE watcher per service of ?status=critical; it
// records each time an instance enters a service's critical set and
// whether the guard ever protected a service.
type criticalWatch struct {
	mu        sync.Mutex
	entered   map[string][]time.Time // "service/id" → when it entered the critical set
	protected map[string]bool
	events    int
	err       error
	wg        sync.WaitGroup
}

// watchCritical connects a watcher to each service, service j on replica
// j mod len(urls), and returns once all have received ": watching".
func watchCritical(ctx context.Context, client *http.Client, urls, services []string) (*criticalWatch, error) {
	w := &criticalWatch{entered: map[string][]time.Time{}, protected: map[string]bool{}}
	ready := make(chan error, len(services))
	for j, svc := range services {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			err := w.follow(ctx, client, urls[j%len(urls)]+"/v1/services/"+svc+"/watch?status=critical", svc, ready)
			if err != nil && ctx.Err() == nil {
				w.mu.Lock()
				if w.err == nil {
					w.err = fmt.Errorf("watch %s: %w", svc, err)
				}
				w.mu.Unlock()
			}
		}()
	}
	for range services {
		select {
		case err := <-ready:
			if err != nil {
				return w, err
			}
		case <-ctx.Done():
			return w, ctx.Err()
		}
	}
	return w, nil
}

// follow reads one service's stream; ready receives once, nil when the
// stream started.
func (w *criticalWatch) follow(ctx context.Context, client *http.Client, url, svc string, ready chan<- error) error {
	started := false
	start := func(err error) {
		if !started {
			started = true
			ready <- err
		}
	}
	defer func() { start(fmt.Errorf("watch %s ended before it started", svc)) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		start(err)
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		start(err)
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("GET %s: %s", url, resp.Status)
		start(err)
		return err
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	prev := map[string]bool{}
	var event string
	var data []byte
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		line = bytes.TrimRight(line, "\n")
		switch {
		case bytes.Equal(line, []byte(": watching")):
			start(nil)
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data[:0], line[len("data: "):]...)
		case len(line) == 0 && event != "":
			if event == "error" {
				return fmt.Errorf("the stream ended with an error event: %s", data)
			}
			if event == "instances" {
				var set registry.InstanceSet
				if err := json.Unmarshal(data, &set); err != nil {
					return fmt.Errorf("decode an instance set: %w", err)
				}
				cur := map[string]bool{}
				w.mu.Lock()
				w.events++
				for _, inst := range set.Instances {
					cur[inst.ID] = true
					if !prev[inst.ID] {
						k := svc + "/" + inst.ID
						w.entered[k] = append(w.entered[k], now)
					}
				}
				if set.Protected {
					w.protected[svc] = true
				}
				w.mu.Unlock()
				prev = cur
			}
			event, data = "", data[:0]
		}
	}
}

// enteredAfter returns the first time key entered the critical set at or
// after t.
func (w *criticalWatch) enteredAfter(key string, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.entered[key] {
		if !at.Before(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// enteredBefore reports whether key entered the critical set before t.
func (w *criticalWatch) enteredBefore(key string, t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entered[key]) > 0 && w.entered[key][0].Before(t)
}

func (w *criticalWatch) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// hbReport is what the registry's heartbeat phases measured.
type hbReport struct {
	instances, services, stop int
	ttl, every                time.Duration
	mode                      harness.Mode
	window                    time.Duration // the measured window, as it ran
	beats                     []time.Duration
	errs                      int
	firstErr                  error
	// instances that were ever critical (or held) while heartbeating,
	// by how each was found, and together
	wrong, wrongWatch, wrongAnswer, wrongList int
	listErr                                   error
	flips                                     []hbFlip
	protected                                 []string
	watchEvents                               int
	// CPU and memory over the window: the replicas' (children) and this
	// process's (NATS server, load generator, watchers)
	cpuBefore, cpuAfter []harness.ChildStats
	parentLoad          string
	parentCPU           float64 // CPU-seconds per second
	// the detection phase
	stopped, stopFailed int
	delay, absolute     []time.Duration // sorted
	undetected          int
}

// runHeartbeats runs the load on urls: registration over the first
// interval, the measured window, then the detection phase; then it lists
// every instance.
func runHeartbeats(ctx context.Context, log *slog.Logger, cfg harness.Config, m harness.Mode, cluster *registryCluster) (*hbReport, error) {
	ld := newHBLoad(cfg, cluster.urls)
	rep := &hbReport{instances: ld.instances, services: len(ld.serviceNames()), stop: len(ld.stopSet()),
		ttl: ld.ttl, every: ld.every, mode: m}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	watchClient := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 256}}
	w, err := watchCritical(lctx, watchClient, ld.urls, ld.serviceNames())
	wg.Add(1)
	go func() { defer wg.Done(); w.wg.Wait() }()
	if err != nil {
		return nil, err
	}
	log.Info("registry: watchers connected; registering and heartbeating", "instances", ld.instances,
		"services", rep.services, "ttl", ld.ttl, "every", ld.every)

	ld.run(lctx, &wg)
	// The window starts once every instance has registered and is on its
	// heartbeat schedule.
	w0 := ld.start.Add(ld.every)
	if err := sleepUntil(ctx, w0); err != nil {
		return nil, err
	}
	if rep.cpuBefore, err = cluster.stats(); err != nil {
		return nil, err
	}
	p0 := harness.SampleCPU()
	w1 := w0.Add(ld.duration)
	for t := w0.Add(10 * time.Second); t.Before(w1); t = t.Add(10 * time.Second) {
		if err := sleepUntil(ctx, t); err != nil {
			return nil, err
		}
		ld.mu.Lock()
		n, errs, flips := len(ld.beats), ld.errs, len(ld.flips)
		ld.mu.Unlock()
		log.Info("registry: heartbeating", "elapsed", t.Sub(w0).Round(time.Second), "heartbeats", n, "errors", errs, "flipped", flips)
	}
	if err := sleepUntil(ctx, w1); err != nil {
		return nil, err
	}
	if rep.cpuAfter, err = cluster.stats(); err != nil {
		return nil, err
	}
	p1 := harness.SampleCPU()
	rep.window = time.Since(w0) // as it ran (stats took a moment)
	rep.parentLoad = harness.Load(p0, p1)
	if p0.Ok && p1.Ok {
		rep.parentCPU = float64(p1.Self-p0.Self) / clockTicks / rep.window.Seconds()
	}
	rep.beats = ld.beatsIn(w0, w1)
	log.Info("registry: window measured", "heartbeats", len(rep.beats), "window", rep.window.Round(time.Millisecond))

	// Detection: each stopped instance sends one more heartbeat, then no
	// more; the others go on.
	stops := ld.stopSet()
	for _, in := range stops {
		in.stopNext.Store(true)
	}
	deadline := time.Now().Add(ld.every + 2*ld.ttl + 5*time.Second)
	detected := map[string]time.Time{}
	for len(detected)+rep.stopFailed < len(stops) && time.Now().Before(deadline) {
		rep.stopFailed = 0
		for _, in := range stops {
			select {
			case <-in.stopped:
			default:
				continue
			}
			if in.stopErr != nil {
				rep.stopFailed++
				continue
			}
			if at, ok := w.enteredAfter(in.key(), in.lastAck); ok {
				detected[in.key()] = at
			}
		}
		if err := w.failed(); err != nil {
			return nil, err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for _, in := range stops {
		at, ok := detected[in.key()]
		if !ok {
			if in.stopErr == nil {
				rep.undetected++
			}
			continue
		}
		rep.stopped++
		rep.absolute = append(rep.absolute, at.Sub(in.lastAck))
		rep.delay = append(rep.delay, at.Sub(in.lastAck)-ld.ttl)
	}
	slices.Sort(rep.absolute)
	slices.Sort(rep.delay)
	log.Info("registry: detection measured", "stopped", len(stops), "detected", rep.stopped, "undetected", rep.undetected)

	// Every instance still heartbeating must be passing and must never
	// have left passing: statusSince is the registration's.
	stopping := map[string]*hbInstance{}
	for _, in := range stops {
		stopping[in.key()] = in
	}
	// A failed listing (a read can time out on an overloaded machine)
	// spoils only its own column: what was measured is still reported.
	listed, listErr := ld.listAll(ctx)
	rep.listErr = listErr
	cancel()
	wg.Wait()

	ld.mu.Lock()
	defer ld.mu.Unlock()
	rep.errs, rep.firstErr = ld.errs, ld.firstErr
	w.mu.Lock()
	rep.watchEvents = w.events
	rep.protected = slices.Sorted(func(yield func(string) bool) {
		for svc := range w.protected {
			if !yield(svc) {
				return
			}
		}
	})
	w.mu.Unlock()
	for _, in := range ld.all {
		k := in.key()
		// A stopped instance is judged up to its last heartbeat.
		until := time.Now()
		if s := stopping[k]; s != nil {
			until = s.lastAck
		}
		_, byAnswer := ld.flips[k]
		byWatch := w.enteredBefore(k, until)
		byList := false
		if s := stopping[k]; s == nil && listErr == nil {
			v, ok := listed[k]
			byList = !ok || v.Status != catalog.Passing || !v.StatusSince.Equal(in.since) || len(v.Held) > 0 && string(v.Held) != "null"
		}
		if byAnswer {
			rep.wrongAnswer++
			rep.flips = append(rep.flips, ld.flips[k])
		}
		if byWatch {
			rep.wrongWatch++
		}
		if byList {
			rep.wrongList++
		}
		if byAnswer || byWatch || byList {
			rep.wrong++
		}
	}
	return rep, nil
}

// listAll lists every service's instances (linearizable), service j from
// replica j mod 3; a failed read is tried twice more.
func (ld *hbLoad) listAll(ctx context.Context) (map[string]instanceView, error) {
	out := map[string]instanceView{}
	for j, svc := range ld.serviceNames() {
		var list []struct {
			ID string `json:"id"`
			instanceView
		}
		var err error
		for range 3 {
			if err = ld.call(ctx, http.MethodGet, ld.urls[j%len(ld.urls)]+"/v1/services/"+svc+"/instances", nil, &list); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", svc, err)
		}
		for _, v := range list {
			out[svc+"/"+v.ID] = v.instanceView
		}
	}
	return out, nil
}

// sleepUntil sleeps until t or ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-time.After(time.Until(t)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTicks = 100

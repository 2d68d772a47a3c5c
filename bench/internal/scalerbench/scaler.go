package scalerbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/bench/internal/registrybench"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/election"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/scaler"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

func Flags(fs *flag.FlagSet, c *harness.ScalerConfig) {
	fs.IntVar(&c.TrialsFast, "scaler-trials-1s", 20, "scaler: load-step trials at a 1s sync period")
	fs.IntVar(&c.TrialsSlow, "scaler-trials-15s", 10, "scaler: load-step trials at a 15s sync period (HPA's default)")
	fs.IntVar(&c.Wave, "scaler-wave", 5, "scaler: load-step trials run at once, each with its own scaler, service and receiver path")
	fs.IntVar(&c.Compress, "scaler-compress", 5, "scaler: how many times faster than real time the 10-minute series runs (1, 3, 5 or 15: its 15s policy periods stay whole seconds)")
}

func CheckFlags(c harness.ScalerConfig) error {
	if c.TrialsFast < 1 || c.TrialsSlow < 1 || c.Wave < 1 || c.Compress < 1 || 15%c.Compress != 0 {
		return errors.New("-scaler-trials-1s, -scaler-trials-15s and -scaler-wave must be positive, -scaler-compress 1, 3, 5 or 15")
	}
	return nil
}

const (
	scalerMetric   = "gateway_rps"
	scalerTarget   = 10.0 // per replica
	scalerBase     = 2    // replicas at the steady load
	scalerStep     = 4    // the load step's factor
	scalerEvery    = time.Second
	scalerSecret   = "bench-secret"
	scalerGateway  = "bench-gateway" // the pushing "gateway replica"
	seriesSeconds  = 600             // the series' length at full scale
	seriesMaxRepls = 20
)

// scalerReport is the section's results.
type scalerReport struct {
	reaction     []reactionRow
	reactionLoad string
	series       *seriesReport
	seriesErr    error
	seriesLoad   string
	sweep        sweepResult
	err          error
}

func Run(ctx context.Context, log *slog.Logger, cfg harness.Config) *scalerReport {
	rep := &scalerReport{sweep: sweepSingleSync()}
	rep.err = harness.WithNATS(cfg, "scaler", true, func(ns *harness.NATSServer) error {
		p, err := startScalerPlane(ctx, ns)
		if err != nil {
			return err
		}
		defer p.close()
		sc := cfg.Scaler
		a := harness.SampleCPU()
		for _, r := range []struct {
			sync   time.Duration
			trials int
		}{{time.Second, sc.TrialsFast}, {15 * time.Second, sc.TrialsSlow}} {
			log.Info("scaler: load-step trials", "sync", r.sync, "trials", r.trials, "at_once", sc.Wave)
			row := measureReaction(ctx, log, p, r.sync, r.trials, sc.Wave)
			rep.reaction = append(rep.reaction, row)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		rep.reactionLoad = harness.Load(a, harness.SampleCPU())
		log.Info("scaler: the load series", "compress", sc.Compress, "live", time.Duration(seriesSeconds/sc.Compress)*time.Second)
		a = harness.SampleCPU()
		rep.series, rep.seriesErr = runSeries(ctx, log, p, sc.Compress)
		rep.seriesLoad = harness.Load(a, harness.SampleCPU())
		if rep.seriesErr != nil {
			log.Error("scaler series failed", "err", rep.seriesErr)
		}
		return ctx.Err()
	})
	return rep
}

// scalerPlane is the scaler with what it needs, the receiver its webhook
// driver calls, and a NATS subscription that sees the pushed samples when
// the scaler's replicas do.
type scalerPlane struct {
	api   string
	hc    *http.Client
	hooks *hookServer
	probe *fanoutProbe
	stop  []func()
}

func startScalerPlane(ctx context.Context, ns *harness.NATSServer) (_ *scalerPlane, err error) {
	p := &scalerPlane{hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	logger := harness.ServiceLogger(os.Stderr)
	reg, err := harness.ServeOn(ctx, ns, func(ctx context.Context, ln net.Listener, nc *nats.Conn) error {
		return registry.Serve(ctx, registrybench.RegistrySettings("registry-0", nil), ln, nc, nil, logger)
	})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	p.stop = append(p.stop, func() { _ = reg.Close() })
	el, err := harness.ServeOn(ctx, ns, func(ctx context.Context, ln net.Listener, nc *nats.Conn) error {
		s := election.Settings{Replicated: service.Replicated{ReplicaID: "election-0", StreamReplicas: 1, SnapshotEvery: 50_000, Process: service.Process{ShutdownTimeout: 4 * time.Second}}}
		return election.Serve(ctx, s, ln, nc, nil, logger)
	})
	if err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	p.stop = append(p.stop, func() { _ = el.Close() })
	if p.hooks, err = startHookServer(); err != nil {
		return nil, err
	}
	p.stop = append(p.stop, p.hooks.close)
	if p.probe, err = startFanoutProbe(ns); err != nil {
		return nil, err
	}
	p.stop = append(p.stop, p.probe.close)
	sc, err := harness.ServeOn(ctx, ns, func(ctx context.Context, ln net.Listener, nc *nats.Conn) error {
		return scaler.Serve(ctx, scalerSettings(reg.URL, el.URL), ln, nc, nil, logger)
	})
	if err != nil {
		return nil, fmt.Errorf("scaler: %w", err)
	}
	p.stop = append(p.stop, func() { _ = sc.Close() })
	p.api = sc.URL
	return p, nil
}

// close stops everything, the scaler first.
func (p *scalerPlane) close() {
	for i := len(p.stop) - 1; i >= 0; i-- {
		p.stop[i]()
	}
	p.hc.CloseIdleConnections()
}

// scalerSettings are the scaler's defaults (its envconfig default tags)
// for one replica on loopback; it keeps up to 1,000 decisions per scaler
// so that a whole series can be read back (there is no PostgreSQL).
func scalerSettings(registryURL, electionURL string) scaler.Settings {
	var s scaler.Settings
	if err := envconfig.Process("STEWARD_BENCH_UNSET", &s); err != nil {
		panic(fmt.Sprintf("scaler settings defaults: %v", err)) // the tags are constants
	}
	s.Addr, s.ReplicaID, s.StreamReplicas = "127.0.0.1:0", "scaler-0", 1
	s.BatchEncoding = qlog.BatchBinary // every replica is of this version
	s.RegistryURL, s.ElectionURLs = registryURL, []string{electionURL}
	s.KeepDecisions = 1000
	return s
}

// call sends one request to the scaler's API and decodes the answer into
// out (unless nil) when its status is want.
func (p *scalerPlane) call(ctx context.Context, method, path string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.api+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %.300s", method, path, res.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// push sends one gateway_rps sample for service, as one gateway replica.
func (p *scalerPlane) push(ctx context.Context, service string, v float64) error {
	return p.call(ctx, http.MethodPost, "/v1/metrics", metrics.Push{Samples: []metrics.Sample{
		{Service: service, Instance: scalerGateway, Name: scalerMetric, Value: v}}}, http.StatusAccepted, nil)
}

func (p *scalerPlane) put(ctx context.Context, name string, s ledger.Spec) error {
	return p.call(ctx, http.MethodPut, "/v1/scalers/"+name, s, http.StatusCreated, nil)
}

func (p *scalerPlane) remove(ctx context.Context, name string) error {
	return p.call(ctx, http.MethodDelete, "/v1/scalers/"+name, nil, http.StatusNoContent, nil)
}

// decisions returns a scaler's recorded decisions, oldest first.
func (p *scalerPlane) decisions(ctx context.Context, name string) ([]ledger.Decision, error) {
	var out struct {
		Items []ledger.Decision `json:"items"`
	}
	if err := p.call(ctx, http.MethodGet, "/v1/scalers/"+name+"/decisions?limit=1000", nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	slices.Reverse(out.Items)
	return out.Items, nil
}

// webhookTo is the driver spec that calls the receiver's path for name.
func (p *scalerPlane) webhookTo(name string) driver.Spec {
	return driver.Spec{Type: driver.TypeWebhook, WebhookSpec: driver.WebhookSpec{
		URL: p.hooks.url + "/hook/" + name, Secret: scalerSecret, ReadCurrent: true}}
}

// stepSpec is the reaction trials' scaler: HPA's defaults (scale up at
// once by 4 pods or 100 % per 15 s; scale down after 300 s) but for the
// sync period.
func stepSpec(p *scalerPlane, name string, sync time.Duration) ledger.Spec {
	minR := 1
	return ledger.Spec{Service: name, Driver: p.webhookTo(name), Spec: hpa.Spec{
		MinReplicas: &minR, MaxReplicas: 10, SyncPeriod: wire.Duration(sync),
		Metrics: []hpa.Metric{{Name: scalerMetric, Target: hpa.Target{Type: hpa.AverageValue, Value: scalerTarget}}},
	}}
}

// hookServer is the webhook receiver, one path per scaler, as a careful
// user writes one: it checks the signature and refuses a token older than
// the newest it acknowledged. It notes the time of every request first.
type hookServer struct {
	url  string
	srv  *http.Server
	done chan error

	mu    sync.Mutex
	hooks map[string]*hook
}

// hook is one scaler's endpoint.
type hook struct {
	replicas int
	newest   int64
	calls    []hookCall
	// synced gets a signal at each GET (the driver reading the count at
	// the start of a sync), called at each accepted POST.
	synced, called chan struct{}
}

type hookCall struct {
	at       time.Time
	replicas int
}

func startHookServer() (*hookServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &hookServer{url: "http://" + ln.Addr().String(), hooks: map[string]*hook{}, done: make(chan error, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hook/{name}", h.get)
	mux.HandleFunc("POST /hook/{name}", h.post)
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { h.done <- h.srv.Serve(ln) }()
	return h, nil
}

func (h *hookServer) close() {
	_ = h.srv.Close()
	<-h.done
}

// add makes the endpoint for name, running replicas.
func (h *hookServer) add(name string, replicas int) *hook {
	k := &hook{replicas: replicas, synced: make(chan struct{}, 1), called: make(chan struct{}, 1)}
	h.mu.Lock()
	h.hooks[name] = k
	h.mu.Unlock()
	return k
}

func (h *hookServer) lookup(w http.ResponseWriter, r *http.Request) *hook {
	h.mu.Lock()
	k := h.hooks[r.PathValue("name")]
	h.mu.Unlock()
	if k == nil {
		http.NotFound(w, r)
	}
	return k
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (h *hookServer) get(w http.ResponseWriter, r *http.Request) {
	k := h.lookup(w, r)
	if k == nil {
		return
	}
	h.mu.Lock()
	n := k.replicas
	h.mu.Unlock()
	notify(k.synced)
	_ = json.NewEncoder(w).Encode(map[string]int{"replicas": n})
}

func (h *hookServer) post(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	k := h.lookup(w, r)
	if k == nil {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if driver.Verify([]byte(scalerSecret), r.Header, body, time.Now(), time.Minute) != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var req driver.WebhookRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	if req.Token < k.newest {
		h.mu.Unlock()
		http.Error(w, "fenced: a newer leader has acted", http.StatusConflict)
		return
	}
	k.newest, k.replicas = req.Token, req.Replicas
	k.calls = append(k.calls, hookCall{at: at, replicas: req.Replicas})
	h.mu.Unlock()
	notify(k.called)
	_ = json.NewEncoder(w).Encode(map[string]int{"replicas": req.Replicas})
}

// callsOf returns the calls the endpoint received.
func (h *hookServer) callsOf(k *hook) []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(k.calls)
}

// fanoutProbe listens where the scaler's replicas listen for pushed
// samples, and notes when a watched value of a service first arrives.
type fanoutProbe struct {
	nc  *nats.Conn
	sub *nats.Subscription

	mu      sync.Mutex
	watch   map[string]float64
	arrived map[string]time.Time
}

func startFanoutProbe(ns *harness.NATSServer) (*fanoutProbe, error) {
	nc, err := ns.Connect()
	if err != nil {
		return nil, err
	}
	f := &fanoutProbe{nc: nc, watch: map[string]float64{}, arrived: map[string]time.Time{}}
	f.sub, err = nc.Subscribe(scaler.SamplesSubject, func(m *nats.Msg) {
		at := time.Now()
		var p metrics.Push
		if json.Unmarshal(m.Data, &p) != nil {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range p.Samples {
			if v, ok := f.watch[s.Service]; ok && v == s.Value && f.arrived[s.Service].IsZero() {
				f.arrived[s.Service] = at
			}
		}
	})
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return f, nil
}

func (f *fanoutProbe) close() { _ = f.sub.Unsubscribe(); f.nc.Close() }

// expect starts watching service for value.
func (f *fanoutProbe) expect(service string, value float64) {
	f.mu.Lock()
	f.watch[service] = value
	delete(f.arrived, service)
	f.mu.Unlock()
}

// seen stops watching service and returns when the value arrived.
func (f *fanoutProbe) seen(service string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.arrived[service]
	delete(f.watch, service)
	delete(f.arrived, service)
	return at, ok
}

// reactionRow is one sync period's trials.
type reactionRow struct {
	sync   time.Duration
	trials []stepTrial
	err    error // the first trial that failed
	failed int
}

// stepTrial is one load step and what followed.
type stepTrial struct {
	reaction time.Duration // the step's first push → the driver's POST
	wait     time.Duration // the step's first push → the deciding sync's clock reading
	act      time.Duration // that reading → the driver's POST
	fanout   time.Duration // the step's first push → the sample on NATS
	interval time.Duration // the median time between this scaler's decisions
	phase    time.Duration // the step's delay after the scaler's first sync began
	replicas int           // the count the POST asked for
}

func measureReaction(ctx context.Context, log *slog.Logger, p *scalerPlane, period time.Duration, trials, wave int) reactionRow {
	row := reactionRow{sync: period}
	rng := rand.New(rand.NewPCG(7, uint64(period)))
	for start := 0; start < trials && ctx.Err() == nil; start += wave {
		n := min(wave, trials-start)
		out := make([]stepTrial, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			// Where in the sync cycle the step falls: uniform over one
			// period after the scaler's first sync.
			phase := time.Duration(rng.Int64N(int64(period)))
			name := fmt.Sprintf("step-%ds-%d", period/time.Second, start+i)
			wg.Go(func() {
				out[i], errs[i] = runStepTrial(ctx, p, name, period, phase)
				out[i].phase = phase
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				row.failed++
				if row.err == nil {
					row.err = fmt.Errorf("trial %d: %w", start+i+1, errs[i])
				}
				log.Error("scaler trial failed", "sync", period, "trial", start+i+1, "err", errs[i])
				continue
			}
			t := out[i]
			log.Info("scaler trial", "sync", period, "trial", start+i+1, "reaction", t.reaction, "wait", t.wait, "act", t.act, "fanout", t.fanout, "to", t.replicas)
			row.trials = append(row.trials, t)
		}
	}
	return row
}

// runStepTrial runs one scaler through a load step: it pushes the steady
// load every second, creates the scaler, and phase after the scaler's
// first sync (its first GET of the count) pushes the stepped load, then
// every second again, until the driver's POST arrives.
func runStepTrial(ctx context.Context, p *scalerPlane, name string, period, phase time.Duration) (stepTrial, error) {
	k := p.hooks.add(name, scalerBase)
	base := scalerTarget * scalerBase
	stepped := base * scalerStep
	value := base
	if err := p.push(ctx, name, value); err != nil {
		return stepTrial{}, err
	}
	if err := p.put(ctx, name, stepSpec(p, name, period)); err != nil {
		return stepTrial{}, err
	}
	defer func() { _ = p.remove(context.WithoutCancel(ctx), name) }()
	p.probe.expect(name, stepped)
	tick := time.NewTicker(scalerEvery)
	defer tick.Stop()
	limit := time.NewTimer(10 * time.Second)
	defer limit.Stop()
	step := time.NewTimer(time.Hour)
	step.Stop()
	var (
		armed bool
		at    time.Time // the step's first push
		call  hookCall
	)
wait:
	for {
		select {
		case <-ctx.Done():
			return stepTrial{}, ctx.Err()
		case <-limit.C:
			if at.IsZero() {
				return stepTrial{}, errors.New("no sync within 10s of creating the scaler")
			}
			return stepTrial{}, fmt.Errorf("no driver call within %s of the step", 2*period+10*time.Second)
		case <-tick.C:
			if err := p.push(ctx, name, value); err != nil {
				return stepTrial{}, err
			}
		case <-k.synced:
			if !armed {
				armed = true
				step.Reset(phase)
				limit.Reset(phase + time.Minute) // until the step resets it
			}
		case <-step.C:
			value, at = stepped, time.Now()
			if err := p.push(ctx, name, value); err != nil {
				return stepTrial{}, err
			}
			tick.Reset(scalerEvery)
			limit.Reset(2*period + 10*time.Second)
		case <-k.called:
			calls := p.hooks.callsOf(k)
			if at.IsZero() {
				return stepTrial{}, fmt.Errorf("a driver call before the step: %+v", calls)
			}
			call = calls[0]
			break wait
		}
	}
	t := stepTrial{reaction: call.at.Sub(at), replicas: call.replicas}
	found := false
	if arrived, ok := p.probe.seen(name); ok {
		t.fanout = arrived.Sub(at)
	}
	ds, err := p.decisions(ctx, name)
	if err != nil {
		return stepTrial{}, err
	}
	var gaps []time.Duration
	for i, d := range ds {
		if i > 0 {
			gaps = append(gaps, d.At.Sub(ds[i-1].At))
		}
		if !found && d.Scale() && d.Observed[scalerMetric] == stepped {
			found, t.wait, t.act = true, d.At.Sub(at), call.at.Sub(d.At)
		}
	}
	if !found {
		return stepTrial{}, fmt.Errorf("no recorded decision scaled on %g among %d", stepped, len(ds))
	}
	t.interval = harness.Pct(gaps, 0.5)
	return t, nil
}

// The series, at full scale (seconds): 20 req/s (2 replicas' worth)
// for 30 s; a ramp to 70 until 120 s; a plateau at 70 ± 15 % until 270 s,
// with a spike to 140 ± 15 % from 150 s to 180 s; a ramp down to 20 until
// 360 s; 20 until 600 s. Outside the plateau and spike the noise is ± 5 %.
// Values have one decimal, as a rate is reported.
func seriesLoad(sec float64, rng *rand.Rand) float64 {
	lerp := func(a, b, from, to float64) float64 { return a + (b-a)*(sec-from)/(to-from) }
	v, noise := 20.0, 0.05
	switch {
	case sec < 30:
	case sec < 120:
		v = lerp(20, 70, 30, 120)
	case sec >= 150 && sec < 180:
		v, noise = 140, 0.15
	case sec < 270:
		v, noise = 70, 0.15
	case sec < 360:
		v = lerp(70, 20, 270, 360)
	}
	v *= 1 + noise*(2*rng.Float64()-1)
	return math.Round(v*10) / 10
}

// seriesSpec is the series' scaler: HPA's default behaviour with its
// windows and policy periods divided by compress, a 1 s sync (HPA's
// 15 s would leave too few syncs), tolerance 0.1, 1 to 20 replicas.
func seriesSpec(p *scalerPlane, name string, compress int) ledger.Spec {
	scaled := func(sec int) wire.Duration {
		return wire.Duration(time.Duration(sec) * time.Second / time.Duration(compress))
	}
	minR, tol := 1, 0.1
	upWindow, downWindow := wire.Duration(0), scaled(300)
	return ledger.Spec{Service: name, Driver: p.webhookTo(name), Spec: hpa.Spec{
		MinReplicas: &minR, MaxReplicas: seriesMaxRepls, Tolerance: &tol, SyncPeriod: wire.Duration(time.Second),
		Metrics: []hpa.Metric{{Name: scalerMetric, Target: hpa.Target{Type: hpa.AverageValue, Value: scalerTarget}}},
		Behavior: &hpa.Behavior{
			ScaleUp: &hpa.Rules{StabilizationWindow: &upWindow, SelectPolicy: hpa.SelectMax, Policies: []hpa.Policy{
				{Type: hpa.Pods, Value: 4, Period: scaled(15)}, {Type: hpa.Percent, Value: 100, Period: scaled(15)}}},
			ScaleDown: &hpa.Rules{StabilizationWindow: &downWindow, SelectPolicy: hpa.SelectMax, Policies: []hpa.Policy{
				{Type: hpa.Percent, Value: 100, Period: scaled(15)}}},
		},
	}}
}

// hpaSpecOf translates a spec whose every field is set (seriesSpec's)
// into the reference's terms.
func hpaSpecOf(s hpa.Spec) hpaSpec {
	rules := func(r *hpa.Rules) hpaRules {
		out := hpaRules{window: r.StabilizationWindow.Std(), selectPolicy: string(r.SelectPolicy)}
		for _, p := range r.Policies {
			out.policies = append(out.policies, hpaPolicy{percent: p.Type == hpa.Percent, value: p.Value, period: p.Period.Std()})
		}
		return out
	}
	return hpaSpec{minReplicas: *s.MinReplicas, maxReplicas: s.MaxReplicas, target: s.Metrics[0].Target.Value,
		tolerance: *s.Tolerance, up: rules(s.Behavior.ScaleUp), down: rules(s.Behavior.ScaleDown)}
}

// timeline is a replica count over time: at[i] holds until at[i+1].
type timeline struct {
	at []time.Time
	n  []int
}

func (tl *timeline) set(at time.Time, n int) {
	if len(tl.n) > 0 && tl.n[len(tl.n)-1] == n {
		return
	}
	tl.at, tl.n = append(tl.at, at), append(tl.n, n)
}

// value is the count at t (a change at t counts).
func (tl timeline) value(t time.Time) int {
	i, _ := slices.BinarySearchFunc(tl.at, t, func(a, b time.Time) int { return a.Compare(b) })
	if i < len(tl.at) && tl.at[i].Equal(t) {
		return tl.n[i]
	}
	return tl.n[max(i-1, 0)]
}

// seriesRow is one controller's behaviour on the series.
type seriesRow struct {
	name                 string
	changes, maxReplicas int
	replicaSeconds       float64
	under                time.Duration
	overTolerance        time.Duration // the load per replica above target × (1 + tolerance)
	agree, agreeNear     float64       // shares of the grid's syncs; -1 when not compared
	tl                   timeline
}

type seriesReport struct {
	compress      int
	target, tol   float64
	points        []hpa.Point
	start, end    time.Time
	grid          []time.Time
	need          seriesRow
	rows          []seriesRow // live, Simulate, reference, naive
	maxNeed       int
	conformance   conformance
	liveDecisions int
	liveInterval  time.Duration
}

// conformance is the reference replayed on the live decisions' own inputs.
type conformance struct {
	compared, agreed, skipped int
	first                     []string // the first disagreements
}

func runSeries(ctx context.Context, log *slog.Logger, p *scalerPlane, compress int) (*seriesReport, error) {
	const name = "series"
	rng := rand.New(rand.NewPCG(11, 13))
	n := seriesSeconds / compress // pushes after the first, one a second
	loads := make([]float64, n+1)
	for i := range loads {
		loads[i] = seriesLoad(float64(i*compress), rng)
	}
	k := p.hooks.add(name, scalerBase)
	spec := seriesSpec(p, name, compress)
	rep := &seriesReport{compress: compress}
	// The first point is the push before the scaler exists; the replays
	// sync on a grid anchored there, and the series' pushes start half a
	// sync off that grid, so that the replays see each push half a period
	// late: what the live loop, at a random phase, does on average.
	pre := time.Now().Round(0)
	if err := p.push(ctx, name, loads[0]); err != nil {
		return nil, err
	}
	rep.points = append(rep.points, hpa.Point{At: pre, Metrics: map[string]float64{scalerMetric: loads[0]}})
	if err := p.put(ctx, name, spec); err != nil {
		return nil, err
	}
	defer func() { _ = p.remove(context.WithoutCancel(ctx), name) }()
	select { // the scaler's first sync
	case <-k.synced:
	case <-time.After(10 * time.Second):
		return nil, errors.New("no sync within 10s of creating the scaler")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	first := pre.Add(scalerEvery / 2)
	for first.Before(time.Now()) {
		first = first.Add(scalerEvery)
	}
	time.Sleep(time.Until(first))
	tick := time.NewTicker(scalerEvery)
	defer tick.Stop()
	for i, v := range loads {
		at := time.Now().Round(0)
		if err := p.push(ctx, name, v); err != nil {
			return nil, fmt.Errorf("push %d: %w", i, err)
		}
		rep.points = append(rep.points, hpa.Point{At: at, Metrics: map[string]float64{scalerMetric: v}})
		if i%(n/6) == 0 {
			log.Info("scaler series", "pushed", i, "of", n+1, "load", v)
		}
		if i < n {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	// The last load holds for one push interval.
	rep.start, rep.end = rep.points[1].At, rep.points[len(rep.points)-1].At.Add(scalerEvery)
	time.Sleep(time.Until(rep.end))
	calls := p.hooks.callsOf(k)
	ds, err := p.decisions(ctx, name)
	if err != nil {
		return nil, err
	}
	return rep, rep.analyse(spec.Spec, calls, ds)
}

// analyse replays the pushed series through the models and compares all
// of them with what the live scaler did.
func (rep *seriesReport) analyse(spec hpa.Spec, calls []hookCall, ds []ledger.Decision) error {
	hs := hpaSpecOf(spec)
	rep.target, rep.tol = hs.target, hs.tolerance
	sync := spec.SyncPeriod.Std()
	loadAt := rep.loadAt
	// Simulate's grid: from the first point to the last, one sync apart.
	var grid []time.Time
	for t := rep.points[0].At; !t.After(rep.points[len(rep.points)-1].At); t = t.Add(sync) {
		grid = append(grid, t)
		if !t.Before(rep.start) {
			rep.grid = append(rep.grid, t)
		}
	}

	need := seriesRow{name: "need: ceil(load / target) at every push", agree: -1, agreeNear: -1}
	for _, pt := range rep.points {
		need.tl.set(pt.At, naiveController(hs, pt.Metrics[scalerMetric]))
	}
	live := seriesRow{name: "Steward scaler, live (webhook driver)"}
	initial := scalerBase
	for _, c := range calls {
		if c.at.Before(rep.start) {
			initial = c.replicas
		}
	}
	live.tl.set(rep.start, initial)
	for _, c := range calls {
		if !c.at.Before(rep.start) && c.at.Before(rep.end) {
			live.tl.set(c.at.Round(0), c.replicas)
		}
	}
	sim := seriesRow{name: "hpa.Simulate, same spec and series"}
	sim.tl.set(rep.points[0].At, scalerBase)
	decisions, err := hpa.Simulate(spec, hpa.Series{Replicas: scalerBase, Points: rep.points})
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	for _, d := range decisions {
		sim.tl.set(d.At, d.DesiredReplicas)
	}
	ref := seriesRow{name: "HPA reference (hparef.go), same grid", agree: -1, agreeNear: -1}
	naive := seriesRow{name: "naive: ceil(load / target) every sync", agree: -1, agreeNear: -1}
	h := &hpaRef{spec: hs}
	cur := scalerBase
	ref.tl.set(rep.points[0].At, cur)
	naive.tl.set(rep.points[0].At, cur)
	for _, t := range grid {
		cur = h.sync(t, cur, loadAt(t))
		ref.tl.set(t, cur)
		naive.tl.set(t, naiveController(hs, loadAt(t)))
	}

	// The reference replayed on the live decisions' inputs: the time each
	// was made, the count the driver reported and the load it observed.
	hc := &hpaRef{spec: hs}
	for _, d := range ds {
		obs, ok := d.Observed[scalerMetric]
		if d.Error != "" || !ok {
			rep.conformance.skipped++
			continue
		}
		rep.conformance.compared++
		if got := hc.sync(d.At, d.CurrentReplicas, obs); got == d.DesiredReplicas {
			rep.conformance.agreed++
		} else if len(rep.conformance.first) < 3 {
			rep.conformance.first = append(rep.conformance.first, fmt.Sprintf("at +%.1fs (live): current %d, load %g: Steward %d, reference %d (%s)",
				d.At.Sub(rep.start).Seconds(), d.CurrentReplicas, obs, d.DesiredReplicas, got, d.Reason))
		}
	}
	rep.liveDecisions = len(ds)
	var gaps []time.Duration
	for i := 1; i < len(ds); i++ {
		gaps = append(gaps, ds[i].At.Sub(ds[i-1].At))
	}
	rep.liveInterval = harness.Pct(gaps, 0.5)

	need.stats(rep, need.tl)
	rep.need, rep.maxNeed = need, need.maxReplicas
	for _, r := range []*seriesRow{&live, &sim, &ref, &naive} {
		r.stats(rep, need.tl)
	}
	for _, r := range []*seriesRow{&live, &sim, &naive} {
		r.agree, r.agreeNear = agreement(rep.grid, r.tl, ref.tl, sync)
	}
	rep.rows = []seriesRow{live, sim, ref, naive}
	return nil
}

// loadAt is the load pushed last at or before t.
func (rep *seriesReport) loadAt(t time.Time) float64 {
	i, _ := slices.BinarySearchFunc(rep.points, t, func(p hpa.Point, t time.Time) int { return p.At.Compare(t) })
	if i == len(rep.points) || !rep.points[i].At.Equal(t) {
		i--
	}
	return rep.points[max(i, 0)].Metrics[scalerMetric]
}

// stats fills the row's numbers over [start, end) from its timeline.
func (r *seriesRow) stats(rep *seriesReport, need timeline) {
	cuts := append(slices.Clone(r.tl.at), need.at...)
	for _, p := range rep.points {
		cuts = append(cuts, p.At)
	}
	cuts = append(cuts, rep.start, rep.end)
	slices.SortFunc(cuts, func(a, b time.Time) int { return a.Compare(b) })
	cuts = slices.CompactFunc(cuts, func(a, b time.Time) bool { return a.Equal(b) })
	for i := 1; i < len(r.tl.at); i++ {
		if !r.tl.at[i].Before(rep.start) && r.tl.at[i].Before(rep.end) {
			r.changes++
		}
	}
	for i := 0; i+1 < len(cuts); i++ {
		a, b := cuts[i], cuts[i+1]
		if a.Before(rep.start) || !b.After(a) || b.After(rep.end) {
			continue
		}
		n := r.tl.value(a)
		r.maxReplicas = max(r.maxReplicas, n)
		r.replicaSeconds += float64(n) * b.Sub(a).Seconds()
		if n < need.value(a) {
			r.under += b.Sub(a)
		}
		if rep.loadAt(a) > float64(n)*rep.target*(1+rep.tol) {
			r.overTolerance += b.Sub(a)
		}
	}
}

// agreement is the share of grid syncs at which tl holds the reference's
// count, and the share at which it holds the reference's count of that
// sync, the one before or the one after.
func agreement(grid []time.Time, tl, ref timeline, sync time.Duration) (exact, near float64) {
	var e, n int
	for _, t := range grid {
		v := tl.value(t)
		if v == ref.value(t) {
			e++
		}
		if v == ref.value(t) || v == ref.value(t.Add(-sync)) || v == ref.value(t.Add(sync)) {
			n++
		}
	}
	return float64(e) / float64(len(grid)), float64(n) / float64(len(grid))
}

// sweepResult compares single decisions on a service-wide averageValue
// load with the reference's.
type sweepResult struct {
	cases, decideOff, simulateOff int
	decideFirst, simulateFirst    string
}

// sweepSingleSync makes one decision for every count from 1 to 20 and
// every load from 0.1 to 300.0 in steps of 0.1, with no window and no
// policy in the way, three ways: the reference; hpa.Decide given the
// load as the service-wide total the live loop observes for a gateway_
// metric; and hpa.Simulate given the same load as a one-point
// series, which spreads it over the instances as per-instance samples.
func sweepSingleSync() sweepResult {
	minR, tol := 1, 0.1
	none := wire.Duration(0)
	every := wire.Duration(time.Second)
	spec := hpa.Spec{MinReplicas: &minR, MaxReplicas: 1000, Tolerance: &tol, SyncPeriod: every,
		Metrics: []hpa.Metric{{Name: scalerMetric, Target: hpa.Target{Type: hpa.AverageValue, Value: scalerTarget}}},
		Behavior: &hpa.Behavior{
			ScaleUp:   &hpa.Rules{StabilizationWindow: &none, SelectPolicy: hpa.SelectMax, Policies: []hpa.Policy{{Type: hpa.Percent, Value: 100_000, Period: every}}},
			ScaleDown: &hpa.Rules{StabilizationWindow: &none, SelectPolicy: hpa.SelectMax, Policies: []hpa.Policy{{Type: hpa.Percent, Value: 100, Period: every}}},
		}}
	hs := hpaSpecOf(spec)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var r sweepResult
	for cur := 1; cur <= 20; cur++ {
		for tenths := 1; tenths <= 3000; tenths++ {
			q := float64(tenths) / 10
			want := (&hpaRef{spec: hs}).sync(now, cur, q)
			d, _ := hpa.Decide(spec, hpa.State{}, hpa.Input{Now: now, CurrentReplicas: cur,
				Metrics: map[string]hpa.Observation{scalerMetric: {Value: &q}}})
			sim, err := hpa.Simulate(spec, hpa.Series{Replicas: cur, Points: []hpa.Point{{At: now, Metrics: map[string]float64{scalerMetric: q}}}})
			r.cases++
			note := func(n *int, first *string, got int) {
				*n++
				if *first == "" {
					*first = fmt.Sprintf("first: %d replicas, load %g: %d, the reference %d", cur, q, got, want)
				}
			}
			if d.DesiredReplicas != want {
				note(&r.decideOff, &r.decideFirst, d.DesiredReplicas)
			}
			if err != nil || len(sim) != 1 || sim[0].DesiredReplicas != want {
				got := -1
				if len(sim) == 1 {
					got = sim[0].DesiredReplicas
				}
				note(&r.simulateOff, &r.simulateFirst, got)
			}
		}
	}
	return r
}

func Print(out io.Writer, cfg harness.Config, rep *scalerReport) {
	fmt.Fprintf(out, "\n== Scaler: reaction to a load step, and behaviour on a load series beside the HPA algorithm ==\n\n")
	fmt.Fprintf(out, "  scaler.Serve (1 replica, its defaults but 1,000 decisions kept) with registry.Serve and election.Serve, in this process\n"+
		"  on one embedded NATS server (fsync on every write), HTTP on loopback. The load is pushed to POST /v1/metrics every\n"+
		"  second as a gateway replica sends it (%s: a service-wide total against an averageValue target of %g per\n"+
		"  replica); the webhook driver calls a receiver in this process (HMAC checked, readCurrent: a GET of the count at\n"+
		"  each sync, then the POST), which notes the time of each request on arrival.\n", scalerMetric, scalerTarget)
	if rep.err != nil {
		fmt.Fprintf(out, "  FAILED: %v\n", rep.err)
	}
	printReaction(out, cfg, rep)
	if rep.series != nil || rep.seriesErr != nil {
		printSeries(out, rep)
	}
	w := rep.sweep
	fmt.Fprintf(out, "\nsingle decisions, no window or policy in the way: every count 1–20 × every load 0.1–300.0 in steps of 0.1\n"+
		"(%s cases), each decided by the reference, by hpa.Decide given the load as the service-wide total the live\n"+
		"loop observes for a gateway_ metric, and by hpa.Simulate given it as a one-point series\n", harness.Count(w.cases))
	t := harness.NewTable("l r l")
	t.Add("hpa.Decide, the total (the live path)", fmt.Sprintf("%d differ from the reference", w.decideOff), w.decideFirst)
	t.Add("hpa.Simulate, spread over the instances", fmt.Sprintf("%d differ from the reference", w.simulateOff), w.simulateFirst)
	t.Write(out)
}

func printReaction(out io.Writer, cfg harness.Config, rep *scalerReport) {
	if len(rep.reaction) == 0 {
		return
	}
	fmt.Fprintf(out, "\nreaction: from the first push of a load step (%g → %g req/s, %d replicas at target) to the driver's POST\n\n",
		scalerTarget*scalerBase, scalerTarget*scalerBase*scalerStep, scalerBase)
	fmt.Fprintf(out, "  Each trial has its own scaler (HPA's default behaviour; the step asks for 8 and the scale-up policy allows 6),\n"+
		"  service and receiver path; up to %d trials run at once. The step falls at a uniformly random point of one sync\n"+
		"  period after the scaler's first sync. Components per trial, from the recorded decision that scaled: wait = step →\n"+
		"  the deciding sync's clock reading (decision.at, taken after it listed the instances and read the count; the metric\n"+
		"  is read just after); act = decision.at → POST (Decide, recording the decision in the log, the driver's GET and\n"+
		"  POST); fan-out = step → the sample on NATS, where the replicas' stores get it. interval = the median time between\n"+
		"  the scaler's decisions: the loop sleeps a whole period after each sync's work, so it is the period plus that work.\n"+
		"  expected mean = interval/2 + median fan-out + median act (the step lands uniformly in a sync cycle); given the\n"+
		"  phases drawn = the mean over the trials of interval − phase + act, phase being the step's delay after the\n"+
		"  first sync began (the next sync begins one interval after it; the same seed draws the same phases each run).\n\n",
		cfg.Scaler.Wave)
	t := harness.NewTable("l r rrrrr rr rrrr")
	t.Add("sync period", "trials", "min", "median", "p90", "max", "mean", "expected mean", "given the phases drawn", "wait p50", "act p50", "fan-out p50", "interval − period p50")
	for _, r := range rep.reaction {
		if len(r.trials) == 0 {
			t.Add(r.sync.String(), "0", "—", "—", "—", "—", "—", "—", "—", "—", "—", "—", "—")
			continue
		}
		col := func(f func(stepTrial) time.Duration) []time.Duration {
			var out []time.Duration
			for _, x := range r.trials {
				out = append(out, f(x))
			}
			return out
		}
		reaction := col(func(x stepTrial) time.Duration { return x.reaction })
		var sum, given time.Duration
		for i, d := range reaction {
			x := r.trials[i]
			sum += d
			given += x.interval - x.phase + x.act
		}
		mean, given := sum/time.Duration(len(reaction)), given/time.Duration(len(reaction))
		act, fan, interval := harness.Pct(col(func(x stepTrial) time.Duration { return x.act }), 0.5),
			harness.Pct(col(func(x stepTrial) time.Duration { return x.fanout }), 0.5), harness.Pct(col(func(x stepTrial) time.Duration { return x.interval }), 0.5)
		t.Add(r.sync.String(), fmt.Sprint(len(r.trials)), harness.Dur(harness.Pct(reaction, 0)), harness.Dur(harness.Pct(reaction, 0.5)), harness.Dur(harness.Pct(reaction, 0.9)), harness.Dur(harness.Pct(reaction, 1)), harness.Dur(mean),
			harness.Dur(interval/2+fan+act), harness.Dur(given), harness.Dur(harness.Pct(col(func(x stepTrial) time.Duration { return x.wait }), 0.5)), harness.Dur(act), harness.Dur(fan), harness.Dur(interval-r.sync))
	}
	t.Write(out)
	for _, r := range rep.reaction {
		if r.err != nil {
			fmt.Fprintf(out, "  sync %s: %d trials FAILED; the first: %v\n", r.sync, r.failed, r.err)
		}
		var asked []string
		for _, x := range r.trials {
			if x.replicas != 6 {
				asked = append(asked, strconv.Itoa(x.replicas))
			}
		}
		if len(asked) > 0 {
			fmt.Fprintf(out, "  sync %s: POSTs asking for other than 6 replicas: %s\n", r.sync, strings.Join(asked, " "))
		}
	}
	fmt.Fprintf(out, "  %s\n", rep.reactionLoad)
}

func printSeries(out io.Writer, rep *scalerReport) {
	s := rep.series
	if s == nil {
		fmt.Fprintf(out, "\nbehaviour on a load series: FAILED: %v\n", rep.seriesErr)
		return
	}
	k := s.compress
	fmt.Fprintf(out, "\nbehaviour on a load series: 10 minutes of load run %d× faster (%s live), sync 1s (%ds at full scale)\n\n", k,
		s.end.Sub(s.start).Round(time.Second), k)
	fmt.Fprintf(out, "  Load at full scale: 20 req/s for 30s, a ramp to 70 by 120s, 70 ± 15%% until 270s with a spike to 140 ± 15%%\n"+
		"  from 150s to 180s, a ramp down to 20 by 360s, 20 until 600s; ± 5%% noise elsewhere; one push a second live\n"+
		"  (%d pushes, and one of the first load before the scaler is created). Spec: averageValue %g per replica,\n"+
		"  1 to %d replicas, tolerance 0.1, HPA's default behaviour scaled by 1/%d: scale up at once by 4 pods or 100%% per\n"+
		"  %s, scale down after a %s window by up to 100%% per %s.\n"+
		"  The pushed series (times and values) is replayed through hpa.Simulate (a 1s grid from the first point),\n"+
		"  the reference and the naive controller (on the same grid); the series' pushes fall half a second after the grid's\n"+
		"  syncs, so the replays see each push 0.5s late, as the live loop, whose phase is arbitrary, does on average.\n"+
		"  Live: the counts the receiver was POSTed.\n"+
		"  Times are live seconds (× %d for the full-scale series); the columns cover [first push, last push + 1s).\n"+
		"  overshoot = max replicas − the most the load needed (ceil(load/target), at most maxReplicas: %d).\n"+
		"  under-provisioned = time with fewer replicas than ceil(load/target) of the current push; beyond tolerance = time\n"+
		"  with the load per replica above target × 1.1, which the tolerance lets every HPA-like controller leave alone.\n"+
		"  agreement = share of the %d grid syncs at which the count equals the reference's; ±1 sync: equals it at that\n"+
		"  sync, the one before or the one after (the live loop's syncs drift against the grid, see below).\n\n",
		len(s.points)-1, scalerTarget, seriesMaxRepls, k, time.Duration(15/k)*time.Second, time.Duration(300/k)*time.Second,
		time.Duration(15/k)*time.Second, k, s.maxNeed, len(s.grid))
	t := harness.NewTable("l rrrrrr rr")
	t.Add("controller", "changes", "max replicas", "overshoot", "replica·s", "under-provisioned", "beyond tolerance", "agreement", "±1 sync")
	total := s.end.Sub(s.start)
	row := func(r seriesRow, overshoot bool) {
		o, a, an := "—", "—", "—"
		if overshoot {
			o = fmt.Sprintf("%+d", r.maxReplicas-s.maxNeed)
		}
		if r.agree >= 0 {
			a, an = fmt.Sprintf("%.1f%%", 100*r.agree), fmt.Sprintf("%.1f%%", 100*r.agreeNear)
		}
		t.Add(r.name, fmt.Sprint(r.changes), fmt.Sprint(r.maxReplicas), o, fmt.Sprintf("%.0f", r.replicaSeconds),
			fmt.Sprintf("%.1fs (%.0f%%)", r.under.Seconds(), 100*r.under.Seconds()/total.Seconds()),
			fmt.Sprintf("%.1fs (%.0f%%)", r.overTolerance.Seconds(), 100*r.overTolerance.Seconds()/total.Seconds()), a, an)
	}
	for _, r := range s.rows {
		row(r, true)
	}
	row(s.need, false)
	t.Write(out)
	c := s.conformance
	fmt.Fprintf(out, "\n  the live loop: %d decisions, median %s apart (the 1s period plus %s of each sync's work);\n"+
		"  the reference replayed on the live decisions' own inputs (their time, the count the driver reported, the load they\n"+
		"  observed): %d of %d agree", s.liveDecisions, harness.Dur(s.liveInterval), harness.Dur(s.liveInterval-time.Second), c.agreed, c.compared)
	if c.skipped > 0 {
		fmt.Fprintf(out, " (%d without an observation skipped)", c.skipped)
	}
	fmt.Fprintln(out)
	for _, f := range c.first {
		fmt.Fprintf(out, "    disagrees %s\n", f)
	}

	fmt.Fprintf(out, "\n  replica count over time, at every 5th grid sync (live time from the first series push; full-scale in brackets)\n")
	tt := harness.NewTable("rr rr rrrr")
	tt.Add("live", "[full]", "load", "need", "live", "Simulate", "reference", "naive")
	for j := 0; j < len(s.grid); j += 5 {
		at := s.grid[j]
		sec := at.Sub(s.start).Seconds()
		tt.Add(fmt.Sprintf("%.1fs", sec), fmt.Sprintf("[%.0fs]", sec*float64(k)), fmt.Sprintf("%.1f", s.loadAt(at)),
			fmt.Sprint(s.need.tl.value(at)), fmt.Sprint(s.rows[0].tl.value(at)), fmt.Sprint(s.rows[1].tl.value(at)),
			fmt.Sprint(s.rows[2].tl.value(at)), fmt.Sprint(s.rows[3].tl.value(at)))
	}
	tt.Write(out)
	fmt.Fprintf(out, "  %s\n", rep.seriesLoad)
}

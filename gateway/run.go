package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stewardhq/steward/gateway/api"
	"github.com/stewardhq/steward/gateway/balancer"
	"github.com/stewardhq/steward/gateway/console"
	"github.com/stewardhq/steward/gateway/discovery"
	"github.com/stewardhq/steward/gateway/proxy"
	"github.com/stewardhq/steward/gateway/route"
	"github.com/stewardhq/steward/gateway/routesource"
	"github.com/stewardhq/steward/platform/advertise"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/sdk"
	sdkapi "github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/sdk/replicas"
)

// Serve runs the gateway on ln until ctx ends: it proxies, follows the
// route documents, registers itself as steward-gateway, and sends the
// scaler its load signals.
func Serve(ctx context.Context, s Settings, ln net.Listener, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// One transport for every call to Steward's services (the registry,
	// the config service, the scaler): it trusts STEWARD_TLS_CA_FILE and
	// presents the gateway's certificate to listeners that require one.
	// Proxied requests verify instances that serve HTTPS the same way.
	calls, err := s.TLS.Transport(logger)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: calls}
	fallback := proxy.NewTransport()
	fallback.TLSClientConfig = calls.TLSClientConfig
	upstream := proxy.NewUpstreamTransport(fallback)
	reg.MustRegister(newTransportCollector(upstream))
	registry, err := advertise.Client(s.RegistryURL, hc, s.Token)
	if err != nil {
		return fmt.Errorf("the registry: %w", err)
	}
	host, port, err := advertise.Advertised(s.AdvertiseAddr, ln.Addr())
	if err != nil {
		return err
	}
	md := advertise.SelfMetadata(s.Scheme(), "gateway", s.ID)
	self := sdkapi.Registration{Address: host, Port: port, Metadata: &md}
	if s.Zone != "" {
		self.Zone = &s.Zone
	}
	_, lnPort, _ := net.SplitHostPort(ln.Addr().String())
	disc := &discovery.Discovery{Registry: registry.Services(), Logger: logger,
		Options: balancer.Options{Zone: s.Zone, Outlier: balancer.Outlier{Consecutive: s.EjectAfter,
			BaseEjection: s.BaseEjection, MaxEjectedShare: s.MaxEjectedShare}},
		Self: []string{net.JoinHostPort(host, strconv.Itoa(port)), ln.Addr().String(),
			net.JoinHostPort("127.0.0.1", lnPort), net.JoinHostPort("localhost", lnPort)}}
	reg.MustRegister(newPoolCollector(disc))
	px := proxy.New(proxy.Config{Pools: disc, ID: s.ID, Zone: s.Zone, MaxRequests: s.MaxRequests,
		MaxPending: s.MaxPending, Transport: upstream, Logger: logger, Registerer: reg})
	// The config service: the replicas of STEWARD_CONFIG_URL, else an
	// instance of steward-config the registry lists.
	var configs *replicas.Set
	if s.ConfigURL != "" {
		configs = replicas.Parse(s.ConfigURL)
	}
	config := func() (*replicas.Set, error) {
		if configs != nil {
			return configs, nil
		}
		base, err := pickURL(ctx, disc, "steward-config")
		if err != nil {
			return nil, err
		}
		return replicas.New([]string{base}), nil
	}
	src := &routesource.Source{Apply: px.SetRoutes, HTTP: hc, Logger: logger, Token: s.Token, Config: config}

	bctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	if s.PprofAddr != "" {
		var lc net.ListenConfig
		pln, err := lc.Listen(ctx, "tcp", s.PprofAddr)
		if err != nil {
			return fmt.Errorf("listen for pprof on %s: %w", s.PprofAddr, err)
		}
		logger.Info("pprof listening", "addr", pln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = web.ServeTLS(bctx, pln, pprofHandler(), logger, time.Second, s.Limits, s.TLS)
		}()
	}
	for _, run := range []func(){
		func() { disc.Run(bctx) },
		func() { src.Run(bctx) },
		func() {
			registry.Services().Announce(bctx, route.SelfService, s.ID, self, sdk.AnnounceOptions{Logger: logger})
		},
		func() { sendSignals(bctx, s, px, disc, calls, logger) },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	var guard func(http.Handler) http.Handler
	if s.Auth {
		own := &ownAuth{config: config, client: hc, metricsPublic: s.MetricsPublic,
			logger: logger, cache: map[string]ownAuthAnswer{}}
		guard = own.middleware
	}
	cl := &cluster{registry: registry.Services(), client: hc, token: s.Token}
	return web.ServeTLS(ctx, ln, newHandler(px, src, disc, reg, logger, guard, cl), logger, s.ShutdownTimeout, s.Limits, s.TLS, web.WithMetrics(reg))
}

// NewHandler serves the gateway's own endpoints (/healthz, /readyz,
// /metrics, /gateway/routes, /gateway/upstreams, /gateway/cluster,
// /openapi.json: the whole API's document) and proxies everything else.
// The proxied path skips the web middleware: the proxy keeps its own
// metrics, and an access log line per proxied request is the upstream's
// job. The gateway is ready once it has the registry's service list:
// before, it could only answer 404 to every /s/ request. Its
// /gateway/cluster asks the replicas with a plain client and no token.
func NewHandler(px *proxy.Proxy, src *routesource.Source, disc *discovery.Discovery, reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	return newHandler(px, src, disc, reg, logger, nil, &cluster{registry: disc.Registry, client: http.DefaultClient})
}

// newHandler is NewHandler with guard (nil with auth off) in front of the
// gateway's own endpoints, and cl answering /gateway/cluster.
func newHandler(px *proxy.Proxy, src *routesource.Source, disc *discovery.Discovery, reg *prometheus.Registry, logger *slog.Logger,
	guard func(http.Handler) http.Handler, cl *cluster) http.Handler {
	var mw []func(http.Handler) http.Handler
	if guard != nil {
		mw = append(mw, guard)
	}
	own := web.NewHandler(web.Options{Service: "gateway", Logger: logger, Registry: reg, Middleware: mw, OpenAPI: api.Document,
		Ready: func(context.Context) error { return disc.Ready() },
		Routes: func(r chi.Router) {
			r.Get("/gateway/routes", func(w http.ResponseWriter, _ *http.Request) { _ = web.Encode(w, http.StatusOK, src.Status()) })
			r.Method(http.MethodGet, "/gateway/upstreams", upstreams(disc))
			r.Method(http.MethodGet, "/gateway/cluster", cl)
		}})
	// The web console's files hold no data, so they are served without a
	// token, outside the guard; the page sends one with each API call.
	ui := console.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, console.Prefix) {
			ui.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics", "/gateway/routes", "/gateway/upstreams", "/gateway/cluster", "/openapi.json":
			own.ServeHTTP(w, r)
		default:
			px.ServeHTTP(w, r)
		}
	})
}

// pprofHandler serves net/http/pprof's endpoints, on a listener of their
// own so that they never share the proxy's address.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// pickURL returns the base URL of a passing instance of service, https
// when it serves TLS.
func pickURL(ctx context.Context, disc *discovery.Discovery, service string) (string, error) {
	ep := disc.Pool(ctx, service).Pick(balancer.Request{})
	if ep == nil {
		return "", fmt.Errorf("no passing instance of %s", service)
	}
	return ep.Scheme() + "://" + ep.HostPort(), nil
}

// signal is one sample of POST /v1/metrics (the scaler's API).
type signal struct {
	Service   string    `json:"service"`
	Instance  string    `json:"instance"`
	Name      string    `json:"name"`
	Value     float64   `json:"value"`
	Timestamp time.Time `json:"timestamp"`
	// Upstream is set on upstreamSignal samples only.
	Upstream *upstream `json:"upstream,omitempty"`
}

// upstreamSignal names the per-version sample: one per service and
// instance version, Value the attempts counted since Upstream.Since
// (the scaler's metrics.UpstreamName and metrics.Upstream).
const upstreamSignal = "gateway_upstream_requests"

type upstream struct {
	Version  string    `json:"version"`
	Since    time.Time `json:"since"`
	Failures float64   `json:"failures"`
	Latency  []bucket  `json:"latency"`
}

type bucket struct {
	Le    float64 `json:"le"`
	Count float64 `json:"count"`
}

// versionSignals are the per-version samples of every service: the
// counts since each began, cumulative, so that the scaler can take any
// window's difference and a lost push loses nothing.
func versionSignals(id string, versions map[string][]proxy.VersionCounts, now time.Time) []signal {
	bounds := proxy.UpstreamBounds()
	var out []signal
	for svc, counts := range versions {
		if svc == "steward-scaler" {
			continue
		}
		for _, c := range counts {
			u := &upstream{Version: c.Version, Since: c.Since, Failures: float64(c.Failures), Latency: make([]bucket, len(bounds))}
			for i, le := range bounds {
				u.Latency[i] = bucket{Le: le, Count: float64(c.Cumulative[i])}
			}
			out = append(out, signal{svc, id, upstreamSignal, float64(c.Requests), now, u})
		}
	}
	return out
}

// sendSignals posts each service's request rate, requests in flight and
// mean peak-EWMA latency, and its per-version counts (versionSignals), as
// this gateway sees them, to the scaler every SignalsEvery, through calls. Without a scaler registered there is
// nobody to tell, and nothing is sent.
func sendSignals(ctx context.Context, s Settings, px *proxy.Proxy, disc *discovery.Discovery, calls http.RoundTripper, logger *slog.Logger) {
	if s.SignalsEvery <= 0 {
		return
	}
	tick := time.NewTicker(s.SignalsEvery)
	defer tick.Stop()
	last := map[string]int64{}
	lastAt := time.Now()
	hc := &http.Client{Transport: calls, Timeout: 5 * time.Second}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		elapsed := now.Sub(lastAt).Seconds()
		lastAt = now
		pools := disc.Pools()
		var samples []signal
		for svc, load := range px.Loads() {
			if svc == "steward-scaler" {
				continue
			}
			rps := float64(load.Served-last[svc]) / elapsed
			last[svc] = load.Served
			samples = append(samples,
				signal{svc, s.ID, "gateway_rps", rps, now, nil},
				signal{svc, s.ID, "gateway_in_flight", float64(load.InFlight), now, nil})
			if pool := pools[svc]; pool != nil {
				var sum time.Duration
				eps := pool.Endpoints()
				for _, ep := range eps {
					sum += ep.EWMA()
				}
				if len(eps) > 0 {
					samples = append(samples, signal{svc, s.ID, "gateway_latency_seconds", (sum / time.Duration(len(eps))).Seconds(), now, nil})
				}
			}
		}
		versions := versionSignals(s.ID, px.Versions(), now)
		if len(samples) == 0 && len(versions) == 0 {
			continue
		}
		base, err := pickURL(ctx, disc, "steward-scaler")
		if err != nil {
			logger.Debug("no scaler to send load signals to", "err", err)
			continue
		}
		// The per-version samples go apart from the load signals, so
		// that a scaler that refuses them (one older than they are)
		// still gets what it scales on, and in pushes of
		// maxVersionPush, far below the scaler's 4 MiB and 10,000
		// samples.
		if len(samples) > 0 {
			postSignals(ctx, hc, base, s.Token, samples, logger)
		}
		for chunk := range slices.Chunk(versions, maxVersionPush) {
			postSignals(ctx, hc, base, s.Token, chunk, logger)
		}
	}
}

// maxVersionPush bounds a push of per-version samples: about 800 bytes
// each.
const maxVersionPush = 1000

// postSignals sends samples to the scaler at base.
func postSignals(ctx context.Context, hc *http.Client, base, token string, samples []signal, logger *slog.Logger) {
	body, _ := json.Marshal(map[string]any{"samples": samples})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/metrics", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		logger.Warn("sending load signals to the scaler failed", "err", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		logger.Warn("the scaler refused load signals", "status", resp.StatusCode, "samples", len(samples), "answer", string(msg))
	}
}

// Run is the standalone process.
func Run(ctx context.Context, s Settings, logger *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", string(s.Addr))
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	logger.Info("gateway listening", "addr", ln.Addr().String(), "id", s.ID, "registry", s.RegistryURL)
	return Serve(ctx, s, ln, logger)
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// maxInFlight bounds the load generator's requests in flight: past it a
// request that is due is not sent and counts as dropped, so a service
// that stops answering meets the rate it was offered, not an ever larger
// pile of connections.
const maxInFlight = 256

// loadGen sends GETs at a fixed rate (open loop: a request is sent when
// it is due, whether or not the previous ones have been answered, as
// users arrive), so that a slow service shows up as latency and not as
// fewer requests.
type loadGen struct {
	client *http.Client
	url    string
	rates  chan float64
	sem    chan struct{}
	wg     sync.WaitGroup // requests in flight

	mu    sync.Mutex
	win   window // since the last take
	total window // the whole run
	// lastFrom is when an answer last came from each version (the
	// version demo-app names in its answer).
	lastFrom map[string]time.Time
}

// window counts what happened over a span of time.
type window struct {
	offered, served, failed, dropped int
	latency                          []time.Duration // of the served requests
	lastFailure                      string
}

func newLoadGen(url string) *loadGen {
	return &loadGen{
		client: &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				// One host, many requests at once: keep a connection for
				// each rather than the default two.
				MaxIdleConns:        maxInFlight,
				MaxIdleConnsPerHost: maxInFlight,
				IdleConnTimeout:     30 * time.Second,
				DisableCompression:  true,
			},
		},
		url:      url,
		rates:    make(chan float64),
		sem:      make(chan struct{}, maxInFlight),
		lastFrom: map[string]time.Time{},
	}
}

// setRate changes the rate; 0 stops sending.
func (g *loadGen) setRate(ctx context.Context, rps float64) {
	select {
	case g.rates <- rps:
	case <-ctx.Done():
	}
}

// run paces the requests until ctx ends, then waits for those in flight.
func (g *loadGen) run(ctx context.Context) {
	defer g.client.CloseIdleConnections()
	defer g.wg.Wait()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		interval time.Duration
		next     time.Time
	)
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case rps := <-g.rates:
			timer.Stop()
			interval = 0
			if rps > 0 {
				interval = time.Duration(float64(time.Second) / rps)
				next = time.Now()
				timer.Reset(0)
			}
		case <-timer.C:
			if interval == 0 {
				continue
			}
			now := time.Now()
			// A pause longer than a second (the machine was busy) is not
			// made up in a burst: those requests were never offered.
			if now.Sub(next) > time.Second {
				next = now
			}
			for !next.After(now) {
				g.fire(ctx)
				next = next.Add(interval)
			}
			timer.Reset(next.Sub(now))
		}
	}
}

// fire sends one request unless maxInFlight are already out.
func (g *loadGen) fire(ctx context.Context) {
	select {
	case g.sem <- struct{}{}:
		g.record(func(w *window) { w.offered++ })
	default:
		g.record(func(w *window) { w.offered++; w.dropped++ })
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer func() { <-g.sem }()
		start := time.Now()
		failure, version := g.get(ctx)
		elapsed := time.Since(start)
		if ctx.Err() != nil {
			return // cut short by the end of the run: not the service's doing
		}
		if version != "" {
			g.mu.Lock()
			g.lastFrom[version] = time.Now()
			g.mu.Unlock()
		}
		g.record(func(w *window) {
			if failure != "" {
				w.failed++
				w.lastFailure = failure
			} else {
				w.served++
				w.latency = append(w.latency, elapsed)
			}
		})
	}()
}

// get sends one GET and reads the answer; it returns "" on a 2xx, else
// what went wrong, and the version the answer names, if any.
func (g *loadGen) get(ctx context.Context) (failure, version string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url, nil)
	if err != nil {
		return err.Error(), ""
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return err.Error(), ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return err.Error(), ""
	}
	var answer struct {
		Version string `json:"version"`
	}
	_ = json.Unmarshal(body, &answer)
	if resp.StatusCode/100 != 2 {
		return resp.Status, answer.Version
	}
	return "", answer.Version
}

// lastAnswerFrom is when an answer last came from version (zero if never).
func (g *loadGen) lastAnswerFrom(version string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastFrom[version]
}

// record applies f to this window and to the run's totals.
func (g *loadGen) record(f func(*window)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(&g.win)
	f(&g.total)
}

// take returns the window since the last take and starts a new one.
func (g *loadGen) take() window {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.win
	g.win = window{}
	return w
}

// totals returns the whole run's counts.
func (g *loadGen) totals() window {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.total
	w.latency = slices.Clone(w.latency)
	return w
}

// quantile returns the q-quantile of the latencies (nearest rank), 0 if
// there are none. It sorts d.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

package metrics

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/stewardhq/steward/services/registry/catalog"
)

// Scraping constants.
const (
	// MetricsPathKey is the registry metadata key naming an instance's
	// Prometheus endpoint ("/metrics"); instances without it are not
	// scraped.
	MetricsPathKey = "metricsPath"
	// RateSuffix is appended to a counter's name for its per-second rate.
	RateSuffix = ":rate"
	// MaxScrapeBytes bounds one instance's answer.
	MaxScrapeBytes = 4 << 20
	// DefaultScrapeTimeout is the timeout of NewScraper's own client.
	DefaultScrapeTimeout = 2 * time.Second

	scrapeParallel = 16
	// acceptHeader is what Prometheus sent before OpenMetrics: delimited
	// protobuf preferred, then the text format. promhttp serves either.
	acceptHeader = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1`
)

// Scraper reads Prometheus metrics from the instances whose registry
// metadata has a metricsPath. It remembers each instance's counters from
// one scrape to the next to compute their rates. It is safe for concurrent
// use.
type Scraper struct {
	hc *http.Client

	mu   sync.Mutex
	last map[instanceKey]scrape
}

type instanceKey struct{ service, id string }

// scrape is what a rate needs of the previous scrape of an instance.
type scrape struct {
	at       time.Time
	counters map[string]float64
}

// NewScraper returns a scraper using hc; nil means NewScrapeClient(nil).
func NewScraper(hc *http.Client) *Scraper {
	if hc == nil {
		hc = NewScrapeClient(nil)
	}
	return &Scraper{hc: hc, last: make(map[instanceKey]scrape)}
}

// NewScrapeClient returns a client over tr (nil: http.DefaultTransport)
// with a DefaultScrapeTimeout timeout that does not follow redirects (an
// instance's endpoint is where the registry says it is, and a redirect
// could point the scaler anywhere).
func NewScrapeClient(tr http.RoundTripper) *http.Client {
	return &http.Client{
		Transport:     tr,
		Timeout:       DefaultScrapeTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Scrape GETs <scheme>://<address>:<port><metricsPath> of every instance
// that has a metricsPath (https when its metadata says so:
// catalog.Instance.Scheme), at most 16 at once, and returns their samples
// with Instance the instance's ID and Timestamp now:
//
//   - a gauge, untyped or counter family gives one sample named after it,
//     the sum over its series;
//   - a counter also gives name+RateSuffix, its per-second increase since
//     this Scraper's previous successful scrape of the instance, except on
//     the first scrape and when the counter went down (a restart);
//   - a histogram or summary gives <name>_count and <name>_sum, as
//     counters (with their rates); a gauge histogram gives them as gauges.
//
// Series with a value that is not finite, and names Push would refuse,
// are left out. An instance that fails gives no samples and one error
// naming it; the others are still scraped. Samples and errors come in the
// order of instances, and an instance's samples sorted by name.
func (s *Scraper) Scrape(ctx context.Context, instances []catalog.Instance, now time.Time) ([]Sample, []error) {
	type result struct {
		samples []Sample
		err     error
	}
	results := make([]result, len(instances))
	sem := make(chan struct{}, scrapeParallel)
	var wg sync.WaitGroup
	for i, inst := range instances {
		path, ok := inst.Metadata[MetricsPathKey]
		if !ok {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			samples, err := s.scrapeOne(ctx, inst, path, now)
			if err != nil {
				err = fmt.Errorf("scrape %s instance %s: %w", inst.Service, inst.ID, err)
			}
			results[i] = result{samples, err}
		})
	}
	wg.Wait()

	var samples []Sample
	var errs []error
	for _, r := range results {
		samples = append(samples, r.samples...)
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	return samples, errs
}

// Forget drops the counter memory of instances whose ID is not in keep,
// so that the memory does not grow with instances that are gone. keep
// holds every instance this Scraper still scrapes, of all services.
func (s *Scraper) Forget(keep map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.last {
		if !keep[k.id] {
			delete(s.last, k)
		}
	}
}

func (s *Scraper) scrapeOne(ctx context.Context, inst catalog.Instance, path string, now time.Time) ([]Sample, error) {
	fams, err := s.fetch(ctx, inst, path)
	if err != nil {
		return nil, err
	}
	gauges, counters := flatten(fams)

	key := instanceKey{inst.Service, inst.ID}
	s.mu.Lock()
	prev, seen := s.last[key]
	s.last[key] = scrape{at: now, counters: counters}
	s.mu.Unlock()

	var out []Sample
	add := func(name string, v float64) {
		if finite(v) && len(name) <= MaxNameBytes && metricName(name) {
			out = append(out, Sample{Service: inst.Service, Instance: inst.ID, Name: name, Value: v, Timestamp: now})
		}
	}
	for name, v := range gauges {
		add(name, v)
	}
	dt := now.Sub(prev.at).Seconds()
	for name, v := range counters {
		add(name, v)
		if p, ok := prev.counters[name]; seen && ok && dt > 0 && v >= p {
			add(name+RateSuffix, (v-p)/dt)
		}
	}
	slices.SortFunc(out, func(a, b Sample) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// fetch GETs an instance's metrics and decodes them in the format the
// instance answered with.
func (s *Scraper) fetch(ctx context.Context, inst catalog.Instance, path string) ([]*dto.MetricFamily, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("metadata %s %q: want a path starting with /", MetricsPathKey, path)
	}
	url := inst.Scheme() + "://" + net.JoinHostPort(inst.Address, strconv.Itoa(inst.Port)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", acceptHeader)
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	// Read whole before decoding: the limit then holds for the text
	// parser as well, and the protobuf framing can be checked first.
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxScrapeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > MaxScrapeBytes {
		return nil, fmt.Errorf("GET %s: body over %d bytes", url, MaxScrapeBytes)
	}
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() == expfmt.TypeProtoDelim {
		if err := checkFrames(body); err != nil {
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
	}
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	var fams []*dto.MetricFamily
	for {
		mf := new(dto.MetricFamily)
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return fams, nil
		}
		if err != nil {
			return nil, fmt.Errorf("GET %s: decode %s: %w", url, format, err)
		}
		fams = append(fams, mf)
	}
}

// checkFrames walks the length prefixes of a delimited protobuf body. The
// decoder allocates each message's declared length before reading it, so
// without this a 10-byte body declaring an exabyte would take the scaler
// down.
func checkFrames(b []byte) error {
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return errors.New("protobuf: bad length prefix")
		}
		if n > uint64(len(b)-k) {
			return fmt.Errorf("protobuf: a message of %d bytes in the %d left", n, len(b)-k)
		}
		b = b[k+int(n):]
	}
	return nil
}

// flatten sums each family over its series into gauges (gauge, untyped)
// and counters (counter, and a histogram's or summary's _count and _sum).
func flatten(fams []*dto.MetricFamily) (gauges, counters map[string]float64) {
	gauges, counters = make(map[string]float64), make(map[string]float64)
	for _, mf := range fams {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				gauges[name] += m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				gauges[name] += m.GetUntyped().GetValue()
			case dto.MetricType_COUNTER:
				counters[name] += m.GetCounter().GetValue()
			case dto.MetricType_SUMMARY:
				counters[name+"_count"] += float64(m.GetSummary().GetSampleCount())
				counters[name+"_sum"] += m.GetSummary().GetSampleSum()
			case dto.MetricType_HISTOGRAM:
				counters[name+"_count"] += histogramCount(m.GetHistogram())
				counters[name+"_sum"] += m.GetHistogram().GetSampleSum()
			case dto.MetricType_GAUGE_HISTOGRAM:
				// Its count and sum go up and down: gauges, without rates.
				gauges[name+"_count"] += histogramCount(m.GetHistogram())
				gauges[name+"_sum"] += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return gauges, counters
}

// histogramCount is the observation count, which a float histogram keeps
// in SampleCountFloat.
func histogramCount(h *dto.Histogram) float64 {
	if f := h.GetSampleCountFloat(); f > 0 {
		return f
	}
	return float64(h.GetSampleCount())
}

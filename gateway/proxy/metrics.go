package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	circuit  *prometheus.CounterVec

	// The series every answered request touches, looked up once per
	// route: WithLabelValues validates and hashes its labels and takes
	// the vector's lock on every call, a cost the request path would
	// otherwise pay per request.
	mu      sync.RWMutex
	byRoute map[routeKey]*routeSeries
}

type routeKey struct{ route, service string }

// routeSeries are one route's series: its latency histogram and a request
// counter per status code seen (a route sees few), copied on write.
type routeSeries struct {
	key      routeKey
	duration prometheus.Observer
	mu       sync.Mutex // held to add a code
	codes    atomic.Pointer[[]codeCounter]
}

type codeCounter struct {
	code    int
	counter prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "steward_gateway_requests_total",
			Help: "Requests the gateway answered, by route, service and status code."}, []string{"route", "service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "steward_gateway_request_duration_seconds",
			Help: "Time to answer a request through the gateway, by route and service.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
			[]string{"route", "service"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "steward_gateway_retries_total",
			Help: "Attempts retried on another instance, by service."}, []string{"service"}),
		circuit: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "steward_gateway_circuit_open_total",
			Help: "Requests refused at once by a service's circuit breaker, and retries refused by its budget, by service and limit (requests, pending, retry-budget)."}, []string{"service", "limit"}),
		byRoute: map[routeKey]*routeSeries{},
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.retries, m.circuit)
	}
	return m
}

func (m *metrics) observe(route, service string, code int, d time.Duration) {
	s := m.series(route, service)
	s.counter(m, code).Inc()
	s.duration.Observe(d.Seconds())
}

// series returns the route's series, creating them on its first request
// (as WithLabelValues would).
func (m *metrics) series(route, service string) *routeSeries {
	k := routeKey{route, service}
	m.mu.RLock()
	s := m.byRoute[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.byRoute[k]; s == nil {
		s = &routeSeries{key: k, duration: m.duration.WithLabelValues(route, service)}
		m.byRoute[k] = s
	}
	return s
}

func (s *routeSeries) counter(m *metrics, code int) prometheus.Counter {
	if codes := s.codes.Load(); codes != nil {
		for _, c := range *codes {
			if c.code == code {
				return c.counter
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var codes []codeCounter
	if old := s.codes.Load(); old != nil {
		for _, c := range *old {
			if c.code == code {
				return c.counter
			}
		}
		codes = append(codes, *old...)
	}
	c := m.requests.WithLabelValues(s.key.route, s.key.service, strconv.Itoa(code))
	codes = append(codes, codeCounter{code, c})
	s.codes.Store(&codes)
	return c
}

func (m *metrics) retry(service string)           { m.retries.WithLabelValues(service).Inc() }
func (m *metrics) overflow(service, limit string) { m.circuit.WithLabelValues(service, limit).Inc() }

package proxy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	circuit  *prometheus.CounterVec
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
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.retries, m.circuit)
	}
	return m
}

func (m *metrics) observe(route, service string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, service, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route, service).Observe(d.Seconds())
}

func (m *metrics) retry(service string)           { m.retries.WithLabelValues(service).Inc() }
func (m *metrics) overflow(service, limit string) { m.circuit.WithLabelValues(service, limit).Inc() }

package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/gateway/discovery"
	"github.com/stewardhq/steward/sdk/h1client"
)

// poolCollector reports each upstream service's pool as the balancer sees
// it, and what the gateway holds of the registry, at scrape time: nothing
// is counted on the request path for it.
type poolCollector struct {
	disc                                   *discovery.Discovery
	endpoints, ejected, inFlight, ewmaDesc *prometheus.Desc
	listed, watches                        *prometheus.Desc
}

func newPoolCollector(disc *discovery.Discovery) *poolCollector {
	return &poolCollector{disc: disc,
		endpoints: prometheus.NewDesc("steward_gateway_upstream_instances", "Passing instances of a service the gateway balances over.", []string{"service"}, nil),
		ejected:   prometheus.NewDesc("steward_gateway_upstream_ejected", "Instances of a service ejected by outlier detection.", []string{"service"}, nil),
		inFlight:  prometheus.NewDesc("steward_gateway_upstream_in_flight", "Requests in flight to a service's instances.", []string{"service"}, nil),
		ewmaDesc:  prometheus.NewDesc("steward_gateway_upstream_latency_ewma_seconds", "Mean of the instances' peak-EWMA latency.", []string{"service"}, nil),
		listed:    prometheus.NewDesc("steward_gateway_registry_services", "Services the registry lists, the only ones /s/ routes to.", nil, nil),
		watches:   prometheus.NewDesc("steward_gateway_registry_watches", "Registry watches open, one per listed service in use.", nil, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.endpoints
	ch <- c.ejected
	ch <- c.inFlight
	ch <- c.ewmaDesc
	ch <- c.listed
	ch <- c.watches
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	pools := c.disc.Pools()
	ch <- prometheus.MustNewConstMetric(c.listed, prometheus.GaugeValue, float64(c.disc.Listed()))
	ch <- prometheus.MustNewConstMetric(c.watches, prometheus.GaugeValue, float64(len(pools)))
	for svc, pool := range pools {
		eps := pool.Endpoints()
		var ejected, inFlight int64
		var ewma float64
		for _, ep := range eps {
			if ep.Ejected() {
				ejected++
			}
			inFlight += ep.InFlight()
			ewma += ep.EWMA().Seconds()
		}
		if len(eps) > 0 {
			ewma /= float64(len(eps))
		}
		ch <- prometheus.MustNewConstMetric(c.endpoints, prometheus.GaugeValue, float64(len(eps)), svc)
		ch <- prometheus.MustNewConstMetric(c.ejected, prometheus.GaugeValue, float64(ejected), svc)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(inFlight), svc)
		ch <- prometheus.MustNewConstMetric(c.ewmaDesc, prometheus.GaugeValue, ewma, svc)
	}
}

// transportCollector reports the upstream transport's counters at scrape
// time: which requests h1client carried and which went to net/http's
// transport, and how its connections were used.
type transportCollector struct {
	t                                    *h1client.Transport
	requests, dials, reused, stale, idle *prometheus.Desc
}

func newTransportCollector(t *h1client.Transport) *transportCollector {
	return &transportCollector{t: t,
		requests: prometheus.NewDesc("steward_gateway_upstream_transport_requests_total", "Upstream attempts by transport: h1client (plain HTTP/1.1 on the caller's goroutine) or fallback (net/http's, for HTTPS, upgrades, large or chunked bodies).", []string{"transport"}, nil),
		dials:    prometheus.NewDesc("steward_gateway_upstream_connections_opened_total", "Connections h1client opened to upstream instances.", nil, nil),
		reused:   prometheus.NewDesc("steward_gateway_upstream_connections_reused_total", "Upstream attempts h1client sent on a pooled keep-alive connection.", nil, nil),
		stale:    prometheus.NewDesc("steward_gateway_upstream_connections_stale_total", "Pooled connections h1client found closed by the upstream or holding bytes nobody asked for, before use (then not used), or by a replayable request that got no answer on one (then resent on another).", nil, nil),
		idle:     prometheus.NewDesc("steward_gateway_upstream_connections_idle", "Keep-alive connections idle in h1client's pools.", nil, nil),
	}
}

func (c *transportCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.dials
	ch <- c.reused
	ch <- c.stale
	ch <- c.idle
}

func (c *transportCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.t.Stats()
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.Requests.Load()), "h1client")
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.Fallbacks.Load()), "fallback")
	ch <- prometheus.MustNewConstMetric(c.dials, prometheus.CounterValue, float64(s.Dials.Load()))
	ch <- prometheus.MustNewConstMetric(c.reused, prometheus.CounterValue, float64(s.Reused.Load()))
	ch <- prometheus.MustNewConstMetric(c.stale, prometheus.CounterValue, float64(s.Stale.Load()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(c.t.Idle()))
}

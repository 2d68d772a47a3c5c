package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/web/h1server"
)

// h1Collector reports the counters of the HTTP/1.1 server in front of
// net/http at scrape time: which requests it served on its lean path,
// and which connections it handed to net/http, and why. Nothing is
// counted on the request path for it beyond h1server's atomics.
type h1Collector struct {
	s                               *h1server.Server
	requests, connections, handoffs *prometheus.Desc
}

func newH1Collector(s *h1server.Server) *h1Collector {
	return &h1Collector{s: s,
		requests:    prometheus.NewDesc("steward_http1_requests_total", "Plain HTTP/1.1 requests the lean server in front of net/http (STEWARD_HTTP1_SERVER=steward) served itself; the listener's other requests are net/http's, on the connections of steward_http1_handoffs_total.", nil, nil),
		connections: prometheus.NewDesc("steward_http1_connections_total", "Connections the lean HTTP/1.1 server accepted; each is served by it until a request it does not take hands it to net/http.", nil, nil),
		handoffs: prometheus.NewDesc("steward_http1_handoffs_total", "Connections the lean HTTP/1.1 server handed to net/http, by the reason it did not take their next request: "+
			"method (not GET, POST, PUT, DELETE, HEAD, PATCH or OPTIONS; also h2c's preface, TLS on a plain port), target (not origin-form), version (not HTTP/1.1), host, "+
			"framing (Transfer-Encoding, TE, a repeated or bad Content-Length), expect, upgrade (Upgrade, HTTP2-Settings), connection (not close or keep-alive), "+
			"too_large (head over 4 KiB or 100 lines), malformed, incomplete (the head was cut). That request and every later one on the connection are net/http's.", []string{"reason"}, nil),
	}
}

func (c *h1Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.connections
	ch <- c.handoffs
}

func (c *h1Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.Requests.Load()))
	ch <- prometheus.MustNewConstMetric(c.connections, prometheus.CounterValue, float64(st.Connections.Load()))
	for r := range st.Handoffs {
		ch <- prometheus.MustNewConstMetric(c.handoffs, prometheus.CounterValue, float64(st.Handoffs[r].Load()), h1server.Reason(r).String())
	}
}

// Package metrics gathers the readings the scaler decides on and turns
// them into hpa observations.
//
// Samples come from three places:
//
//   - pushed: a service (or anything acting for it) POSTs a Push to
//     /v1/metrics, per instance or for the whole service;
//   - scraped: a Scraper reads the Prometheus endpoint of every registered
//     instance whose metadata names a metricsPath;
//   - the gateway: each gateway replica sends what it sees of a service
//     (request rate, in-flight requests, latency) under names starting
//     with "gateway_", one sample per replica.
//
// A Store keeps the newest sample of each series for a while, and Observe
// builds the hpa.Observation of one metric from it: a sum or a max
// over gateway replicas, a service-wide value, or per-instance samples of
// the instances the registry knows.
package metrics

import (
	"fmt"
	"math"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// Sample is one reading: pushed to POST /v1/metrics, scraped, or sent by
// the gateway.
type Sample struct {
	Service string `json:"service"`
	// Instance is the instance the reading is of (a gateway replica's ID for
	// gateway_ names); empty for a service-wide reading.
	Instance string  `json:"instance,omitempty"`
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	// Request is the instance's request of the resource, for utilization
	// targets.
	Request float64 `json:"request,omitempty"`
	// Timestamp is when the reading was taken; zero means when received.
	Timestamp time.Time `json:"timestamp,omitzero"`
	// Upstream is set on, and only on, a gateway's per-version sample
	// (Name UpstreamName, Instance the gateway replica, Value the
	// attempts counted since Upstream.Since).
	Upstream *Upstream `json:"upstream,omitempty"`
}

// Push is POST /v1/metrics's body.
type Push struct {
	Samples []Sample `json:"samples"`
}

// Limits on a push.
const (
	MaxPushSamples   = 10_000
	MaxNameBytes     = 200
	MaxInstanceBytes = 256
	// MaxSkew is how far in the future of the receiver's clock a timestamp
	// may be: a sender's clock a little ahead is tolerated, but a sample
	// from far ahead would stay the newest of its series, and so shadow
	// every later one, until its time came.
	MaxSkew = time.Minute
)

// maxServiceEcho bounds the service names handed to the registry's
// validator, which quotes the name in its error: the registry's limit is
// far lower, so this only keeps a huge name out of the message.
const maxServiceEcho = 253

// Validate checks a push received at now. It returns nil or a fault.Invalid
// error naming the first bad field as "samples[3].value".
func (p Push) Validate(now time.Time) error {
	switch {
	case len(p.Samples) == 0:
		return fault.New(fault.Invalid, "samples: want at least one sample")
	case len(p.Samples) > MaxPushSamples:
		return fault.New(fault.Invalid, "samples: %d samples, want at most %d", len(p.Samples), MaxPushSamples)
	}
	for i, s := range p.Samples {
		if field, problem := s.check(now); field != "" {
			return fault.New(fault.Invalid, "samples[%d].%s: %s", i, field, problem)
		}
	}
	return nil
}

// check returns the first bad field of s and what is wrong with it, or "".
func (s Sample) check(now time.Time) (field, problem string) {
	if len(s.Service) > maxServiceEcho {
		return "service", fmt.Sprintf("%d bytes: not a service name", len(s.Service))
	}
	// Service names are the registry's: a sample under any other name
	// could never match a registered service.
	if err := catalog.ValidateService(s.Service); err != nil {
		return "service", err.Error()
	}
	if len(s.Instance) > MaxInstanceBytes {
		return "instance", fmt.Sprintf("%d bytes, want at most %d", len(s.Instance), MaxInstanceBytes)
	}
	if !utf8.ValidString(s.Instance) {
		return "instance", "not UTF-8"
	}
	for _, r := range s.Instance {
		if unicode.IsControl(r) {
			return "instance", fmt.Sprintf("%q: control characters are not allowed", s.Instance)
		}
	}
	if len(s.Name) > MaxNameBytes {
		return "name", fmt.Sprintf("%d bytes, want at most %d", len(s.Name), MaxNameBytes)
	}
	if !metricName(s.Name) {
		return "name", fmt.Sprintf("%q: want a Prometheus metric name, [a-zA-Z_:][a-zA-Z0-9_:]*", s.Name)
	}
	if !finite(s.Value) {
		return "value", fmt.Sprintf("%g: want a finite number", s.Value)
	}
	if !finite(s.Request) || s.Request < 0 {
		return "request", fmt.Sprintf("%g: want a finite number at least 0", s.Request)
	}
	if s.Timestamp.After(now.Add(MaxSkew)) {
		return "timestamp", fmt.Sprintf("%s is more than %s ahead of the receiver's clock (%s)",
			s.Timestamp.Format(time.RFC3339Nano), MaxSkew, now.Format(time.RFC3339Nano))
	}
	if s.Upstream != nil || s.Name == UpstreamName {
		return s.checkUpstream(now)
	}
	return "", ""
}

// metricName reports whether s is a (legacy) Prometheus metric name.
func metricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

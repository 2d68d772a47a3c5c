package metrics_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

const ttl = 30 * time.Second

// show renders an observation for comparison: "missing", "value 3" or
// "samples a=1/0.5 b=2/0.5" (value/request).
func show(o hpa.Observation, ok bool) string {
	switch {
	case !ok:
		return "missing"
	case o.Value != nil && len(o.Samples) > 0:
		return "both (a bug)"
	case o.Value != nil:
		return fmt.Sprintf("value %g", *o.Value)
	}
	parts := []string{"samples"}
	for _, s := range o.Samples {
		parts = append(parts, fmt.Sprintf("%s=%g/%g", s.Instance, s.Value, s.Request))
	}
	return strings.Join(parts, " ")
}

func metric(name string, typ hpa.TargetType) hpa.Metric {
	return hpa.Metric{Name: name, Target: hpa.Target{Type: typ, Value: 10}}
}

func registered(ids ...string) []catalog.Instance {
	var out []catalog.Instance
	for _, id := range ids {
		out = append(out, catalog.Instance{Service: "web", ID: id, Status: "passing"})
	}
	return out
}

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestObserve(t *testing.T) {
	s := func(inst, name string, v, req float64, age time.Duration) metrics.Sample {
		return metrics.Sample{Service: "web", Instance: inst, Name: name, Value: v, Request: req, Timestamp: t0.Add(-age)}
	}
	tests := []struct {
		name      string
		samples   []metrics.Sample
		metric    hpa.Metric
		instances []catalog.Instance
		later     time.Duration // Observe at t0+later
		want      string
	}{
		{"nothing", nil, metric("queue_depth", hpa.AverageValue), registered("a"), 0, "missing"},

		{"gateway rate sums over replicas",
			[]metrics.Sample{s("gw-1", "gateway_requests_per_second", 40, 0, 0), s("gw-2", "gateway_requests_per_second", 60, 0, 5*time.Second)},
			metric("gateway_requests_per_second", hpa.AverageValue), registered("a"), 0, "value 100"},
		{"gateway latency takes the max over replicas",
			[]metrics.Sample{s("gw-1", "gateway_latency_p95_seconds", 0.2, 0, 0), s("gw-2", "gateway_latency_p95_seconds", 0.7, 0, 0), s("gw-3", "gateway_latency_p95_seconds", 0.1, 0, 0)},
			metric("gateway_latency_p95_seconds", hpa.Value), nil, 0, "value 0.7"},
		{"gateway replicas need not be registered instances, and utilization still gets a value",
			[]metrics.Sample{s("gw-1", "gateway_in_flight", 3, 0, 0), s("gw-2", "gateway_in_flight", 4, 0, 0)},
			metric("gateway_in_flight", hpa.Utilization), registered("a"), 0, "value 7"},
		{"a stale gateway replica no longer counts",
			[]metrics.Sample{s("gw-1", "gateway_in_flight", 3, 0, ttl), s("gw-2", "gateway_in_flight", 4, 0, ttl+time.Nanosecond)},
			metric("gateway_in_flight", hpa.Value), nil, 0, "value 3"},
		{"every gateway replica stale",
			[]metrics.Sample{s("gw-1", "gateway_in_flight", 3, 0, 0)},
			metric("gateway_in_flight", hpa.Value), nil, ttl + time.Second, "missing"},

		{"service-wide for a value target",
			[]metrics.Sample{s("", "queue_depth", 17, 0, 0)},
			metric("queue_depth", hpa.Value), registered("a"), 0, "value 17"},
		{"service-wide for averageValue, as a total",
			[]metrics.Sample{s("", "queue_depth", 17, 0, 0)},
			metric("queue_depth", hpa.AverageValue), nil, 0, "value 17"},
		{"service-wide, stale",
			[]metrics.Sample{s("", "queue_depth", 17, 0, ttl+time.Second)},
			metric("queue_depth", hpa.Value), nil, 0, "missing"},

		{"per-instance samples, sorted, of registered instances only",
			[]metrics.Sample{s("c", "cpu", 3, 1, 0), s("a", "cpu", 1, 1, 0), s("gone", "cpu", 9, 1, 0), s("b", "cpu", 2, 1, 0)},
			metric("cpu", hpa.Utilization), registered("b", "c", "a"), 0, "samples a=1/1 b=2/1 c=3/1"},
		{"per-instance for averageValue, stale ones dropped",
			[]metrics.Sample{s("a", "queue_depth", 1, 0, 0), s("b", "queue_depth", 2, 0, time.Minute)},
			metric("queue_depth", hpa.AverageValue), registered("a", "b"), 0, "samples a=1/0"},
		{"per-instance summed for a value target",
			[]metrics.Sample{s("a", "queue_depth", 1, 0, 0), s("b", "queue_depth", 2.5, 0, 0), s("gone", "queue_depth", 100, 0, 0)},
			metric("queue_depth", hpa.Value), registered("a", "b"), 0, "value 3.5"},
		{"per-instance, none registered",
			[]metrics.Sample{s("gone", "queue_depth", 1, 0, 0)},
			metric("queue_depth", hpa.AverageValue), registered("a"), 0, "missing"},
		{"an instance listed twice gives one sample",
			[]metrics.Sample{s("a", "queue_depth", 1, 0, 0)},
			metric("queue_depth", hpa.AverageValue), registered("a", "a"), 0, "samples a=1/0"},

		{"both: value takes the service-wide sample",
			[]metrics.Sample{s("", "queue_depth", 50, 0, 0), s("a", "queue_depth", 1, 0, 0)},
			metric("queue_depth", hpa.Value), registered("a"), 0, "value 50"},
		{"both: averageValue takes the per-instance samples",
			[]metrics.Sample{s("", "queue_depth", 50, 0, 0), s("a", "queue_depth", 1, 0, 0)},
			metric("queue_depth", hpa.AverageValue), registered("a"), 0, "samples a=1/0"},
		{"both, but no instance registered: the service-wide sample",
			[]metrics.Sample{s("", "queue_depth", 50, 0, 0), s("gone", "queue_depth", 1, 0, 0)},
			metric("queue_depth", hpa.AverageValue), registered("a"), 0, "value 50"},

		{"another service's samples do not count",
			[]metrics.Sample{{Service: "api", Instance: "a", Name: "queue_depth", Value: 1, Timestamp: t0}},
			metric("queue_depth", hpa.AverageValue), registered("a"), 0, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := metrics.NewStore(ttl)
			st.Add(t0.Add(-time.Minute), tt.samples...) // received a while ago: only their own age matters
			if got := show(st.Observe(t0.Add(tt.later), "web", tt.metric, tt.instances)); got != tt.want {
				t.Fatalf("Observe = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestStoreNewestWins(t *testing.T) {
	st := metrics.NewStore(ttl)
	m := metric("queue_depth", hpa.Value)
	obs := func(now time.Time) string { return show(st.Observe(now, "web", m, nil)) }

	st.Add(at(0), metrics.Sample{Service: "web", Name: "queue_depth", Value: 1}) // stamped on receipt
	if got := obs(at(0)); got != "value 1" {
		t.Fatalf("after the first sample: Observe = %s, want value 1", got)
	}
	st.Add(at(2*time.Second), metrics.Sample{Service: "web", Name: "queue_depth", Value: 2, Timestamp: at(-time.Second)})
	if got := obs(at(2 * time.Second)); got != "value 1" {
		t.Fatalf("after an older sample arrived late: Observe = %s, want value 1", got)
	}
	st.Add(at(3*time.Second), metrics.Sample{Service: "web", Name: "queue_depth", Value: 3, Timestamp: at(0)})
	if got := obs(at(3 * time.Second)); got != "value 3" {
		t.Fatalf("after a sample of the same time: Observe = %s, want value 3", got)
	}
	st.Add(at(4*time.Second), metrics.Sample{Service: "web", Name: "queue_depth", Value: 4})
	if got := obs(at(4 * time.Second)); got != "value 4" {
		t.Fatalf("after a newer sample: Observe = %s, want value 4", got)
	}
	if got := obs(at(4*time.Second + ttl)); got != "value 4" {
		t.Fatalf("at exactly ttl: Observe = %s, want value 4", got)
	}
	if got := obs(at(4*time.Second + ttl + 1)); got != "missing" {
		t.Fatalf("past ttl: Observe = %s, want missing", got)
	}
	// A sample older than ttl on arrival is not kept, so it cannot shadow
	// nothing and then turn up as fresh to an Observe with an earlier now.
	st.Add(at(time.Hour), metrics.Sample{Service: "web", Name: "other", Value: 1, Timestamp: at(0)})
	if got := show(st.Observe(at(0), "web", metric("other", hpa.Value), nil)); got != "missing" {
		t.Fatalf("a sample stale on arrival: Observe = %s, want missing", got)
	}
}

func TestStorePrune(t *testing.T) {
	st := metrics.NewStore(ttl)
	st.Add(at(0),
		metrics.Sample{Service: "web", Instance: "a", Name: "queue_depth", Value: 1},
		metrics.Sample{Service: "web", Instance: "b", Name: "queue_depth", Value: 2, Timestamp: at(10 * time.Second)},
	)
	m := metric("queue_depth", hpa.AverageValue)
	st.Prune(at(ttl + 5*time.Second))
	// Observe at an earlier time would still see a, had Prune kept it.
	if got, want := show(st.Observe(at(0), "web", m, registered("a", "b"))), "samples b=2/0"; got != want {
		t.Fatalf("after Prune: Observe = %s, want %s", got, want)
	}
	st.Prune(at(ttl + 11*time.Second))
	if got := show(st.Observe(at(10*time.Second), "web", m, registered("a", "b"))); got != "missing" {
		t.Fatalf("after Prune of all: Observe = %s, want missing", got)
	}
	// The series can come back.
	st.Add(at(time.Minute), metrics.Sample{Service: "web", Instance: "a", Name: "queue_depth", Value: 5})
	if got, want := show(st.Observe(at(time.Minute), "web", m, registered("a"))), "samples a=5/0"; got != want {
		t.Fatalf("after a new sample: Observe = %s, want %s", got, want)
	}
}

// Add, Prune and Observe from many goroutines (for the race detector).
func TestStoreConcurrent(t *testing.T) {
	st := metrics.NewStore(ttl)
	m := metric("queue_depth", hpa.AverageValue)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				now := at(time.Duration(i) * time.Second)
				st.Add(now, metrics.Sample{Service: "web", Instance: fmt.Sprint(g), Name: "queue_depth", Value: float64(i)})
				st.Observe(now, "web", m, registered("0", "1", "2"))
				if i%50 == 0 {
					st.Prune(now)
				}
			}
		})
	}
	wg.Wait()
	if got, want := show(st.Observe(at(199*time.Second), "web", m, registered("0", "7"))), "samples 0=199/0 7=199/0"; got != want {
		t.Fatalf("Observe = %s, want %s", got, want)
	}
}

package metrics_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/services/scaler/metrics"
	"github.com/stewardhq/steward/services/scaler/rollout/analysis"
)

// bounds are the gateway's: 0.5 ms, 1 ms, 2 ms, ... 16.384 s.
var bounds = func() []float64 {
	out := make([]float64, 16)
	for i := range out {
		out[i] = 0.0005 * math.Pow(2, float64(i))
	}
	return out
}()

// push is gateway replica gw's sample of web's version at t: counts
// cumulative since since, every request within latency (seconds).
func push(gw, version string, since, at time.Time, requests, failures float64, latency float64) metrics.Sample {
	u := &metrics.Upstream{Version: version, Since: since, Failures: failures}
	for _, le := range bounds {
		b := metrics.Bucket{Le: le}
		if latency <= le {
			b.Count = requests
		}
		u.Latency = append(u.Latency, b)
	}
	return metrics.Sample{Service: "web", Instance: gw, Name: metrics.UpstreamName, Value: requests, Timestamp: at, Upstream: u}
}

func TestValidateUpstream(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(s *metrics.Sample)
		want   string // "" for valid, else the start of the message
	}{
		{"good", func(*metrics.Sample) {}, ""},
		{"no timestamp", func(s *metrics.Sample) { s.Timestamp = time.Time{} }, ""},
		{"nothing counted yet", func(s *metrics.Sample) {
			s.Value, s.Upstream.Failures = 0, 0
			for i := range s.Upstream.Latency {
				s.Upstream.Latency[i].Count = 0
			}
		}, ""},
		{"one bucket", func(s *metrics.Sample) { s.Upstream.Latency = s.Upstream.Latency[:1] }, ""},
		{"version of 128 bytes", func(s *metrics.Sample) { s.Upstream.Version = strings.Repeat("v", 128) }, ""},

		{"upstream under another name", func(s *metrics.Sample) { s.Name = "gateway_rps" }, "samples[0].upstream: only a sample named"},
		{"the name without upstream", func(s *metrics.Sample) { s.Upstream = nil }, "samples[0].upstream: a sample named"},
		{"no gateway replica", func(s *metrics.Sample) { s.Instance = "" }, "samples[0].instance:"},
		{"fractional count", func(s *metrics.Sample) { s.Value = 100.5 }, "samples[0].value: 100.5"},
		{"negative count", func(s *metrics.Sample) { s.Value = -1 }, "samples[0].value:"},
		{"count beyond 2^53", func(s *metrics.Sample) { s.Value = 1 << 54 }, "samples[0].value:"},
		{"no version", func(s *metrics.Sample) { s.Upstream.Version = "" }, "samples[0].upstream.version:"},
		{"version of 129 bytes", func(s *metrics.Sample) { s.Upstream.Version = strings.Repeat("v", 129) }, "samples[0].upstream.version:"},
		{"version with a newline", func(s *metrics.Sample) { s.Upstream.Version = "v\n2" }, "samples[0].upstream.version:"},
		{"version not UTF-8", func(s *metrics.Sample) { s.Upstream.Version = "v\xff" }, "samples[0].upstream.version:"},
		{"no since", func(s *metrics.Sample) { s.Upstream.Since = time.Time{} }, "samples[0].upstream.since: want"},
		{"since after the timestamp", func(s *metrics.Sample) { s.Upstream.Since = s.Timestamp.Add(time.Second) }, "samples[0].upstream.since:"},
		{"since far ahead", func(s *metrics.Sample) {
			s.Timestamp, s.Upstream.Since = time.Time{}, t0.Add(time.Hour)
		}, "samples[0].upstream.since:"},
		{"more failures than requests", func(s *metrics.Sample) { s.Upstream.Failures = 101 }, "samples[0].upstream.failures: 101"},
		{"fractional failures", func(s *metrics.Sample) { s.Upstream.Failures = 0.5 }, "samples[0].upstream.failures:"},
		{"NaN failures", func(s *metrics.Sample) { s.Upstream.Failures = math.NaN() }, "samples[0].upstream.failures:"},
		{"no buckets", func(s *metrics.Sample) { s.Upstream.Latency = nil }, "samples[0].upstream.latency: 0 buckets"},
		{"65 buckets", func(s *metrics.Sample) {
			s.Upstream.Latency = nil
			for i := range 65 {
				s.Upstream.Latency = append(s.Upstream.Latency, metrics.Bucket{Le: float64(i + 1), Count: 100})
			}
		}, "samples[0].upstream.latency: 65 buckets"},
		{"bound zero", func(s *metrics.Sample) { s.Upstream.Latency[0].Le = 0 }, "samples[0].upstream.latency[0].le:"},
		{"bound +Inf", func(s *metrics.Sample) { s.Upstream.Latency[15].Le = math.Inf(1) }, "samples[0].upstream.latency[15].le:"},
		{"bounds not increasing", func(s *metrics.Sample) { s.Upstream.Latency[3].Le = s.Upstream.Latency[2].Le }, "samples[0].upstream.latency[3].le:"},
		{"counts decreasing", func(s *metrics.Sample) { s.Upstream.Latency[5].Count = 99 }, "samples[0].upstream.latency[5].count:"},
		{"count above requests", func(s *metrics.Sample) { s.Upstream.Latency[15].Count = 101 }, "samples[0].upstream.latency[15].count:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Fast enough that every bucket from the second counts all.
			s := push("gw-0", "v2", t0.Add(-time.Hour), t0, 100, 4, 0.0007)
			tt.change(&s)
			checkValidate(t, metrics.Push{Samples: []metrics.Sample{s}}.Validate(t0), tt.want)
		})
	}
}

// TestUpstreamJSON is the wire form a gateway sends.
func TestUpstreamJSON(t *testing.T) {
	body := `{"samples":[{"service":"web","instance":"gateway-0","name":"gateway_upstream_requests","value":12,"timestamp":"2026-03-01T12:00:00Z",` +
		`"upstream":{"version":"v2","since":"2026-03-01T11:59:00Z","failures":1,"latency":[{"le":0.001,"count":10},{"le":0.002,"count":12}]}}]}`
	var p metrics.Push
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(t0); err != nil {
		t.Fatal(err)
	}
	st := metrics.NewStore(30 * time.Second)
	st.Add(t0, p.Samples...)
	got := st.Versions("web", 2*time.Minute, t0)["v2"]
	// The series began a minute ago, within the window: from zero.
	if got.Requests != 12 || got.Failures != 1 || got.P99.Std() != 1940*time.Microsecond {
		t.Fatalf("Versions = %+v, want 12 requests, 1 failure, p99 1.94ms (rank 11.88 interpolated in the 2 ms bucket)", got)
	}
}

// TestVersionsWindow: one gateway replica pushing every second for five
// minutes, v1 at 10 requests a second (no failure, 3 ms), v2 at 1 a
// second with a failure every 10 s (the window sees only the newest
// counts less those at its start).
func TestVersionsWindow(t *testing.T) {
	st := metrics.NewStore(30 * time.Second)
	since := t0.Add(-time.Hour)
	var now time.Time
	for s := range 301 {
		now = t0.Add(time.Duration(s) * time.Second)
		st.Add(now,
			push("gw-0", "v1", since, now, float64(10*s), 0, 0.003),
			push("gw-0", "v2", since, now, float64(s), float64(s/10), 0.3))
	}
	got := st.Versions("web", time.Minute, now)
	v1, v2 := got["v1"], got["v2"]
	// The last push at or before the window's start is at most 5 s
	// earlier (one point per 5 s is kept).
	if v1.Requests < 600 || v1.Requests > 650 || v1.Failures != 0 || v1.ErrorRate != 0 {
		t.Errorf("v1 = %+v, want 600 to 650 requests in a minute, no failure", v1)
	}
	if v2.Requests < 60 || v2.Requests > 65 || v2.Failures < 6 || v2.Failures > 7 || math.Abs(v2.ErrorRate-0.1) > 0.02 {
		t.Errorf("v2 = %+v, want 60 to 65 requests, 6 or 7 failures", v2)
	}
	if w := v1.Window.Std(); w < time.Minute || w > time.Minute+5*time.Second {
		t.Errorf("v1 covers %s, want a minute to 65 s", w)
	}
	// 3 ms is in the 4 ms bucket (from 2 ms): 2 + 2*0.99 ms.
	if p := v1.P99.Std(); p != 3980*time.Microsecond {
		t.Errorf("v1 p99 = %s, want 3.98ms", p)
	}
	if p := v2.P99.Std(); p < 256*time.Millisecond || p > 512*time.Millisecond {
		t.Errorf("v2 p99 = %s, want within the 256-512 ms bucket", p)
	}
	// A window longer than the ring's is cut to MaxVersionWindow; here the
	// series' points only reach back 5 minutes (and began before).
	if all := st.Versions("web", time.Hour, now)["v1"]; all.Window.Std() > metrics.MaxVersionWindow || all.Requests != 3000 {
		t.Errorf("Versions over an hour = %+v, want the 3000 requests held, covering at most %s", all, metrics.MaxVersionWindow)
	}
	if other := st.Versions("api", time.Minute, now); len(other) != 0 {
		t.Errorf("Versions(api) = %v, want none", other)
	}
	// Nothing pushed within the window: nothing to say.
	if late := st.Versions("web", time.Minute, now.Add(2*time.Minute)); len(late) != 0 {
		t.Errorf("Versions two minutes after the last push = %v, want none", late)
	}
}

func TestVersionsAcrossReplicasAndRestarts(t *testing.T) {
	st := metrics.NewStore(30 * time.Second)
	old, restarted := t0.Add(-time.Hour), t0.Add(20*time.Second)
	st.Add(t0,
		// gw-0 counted 1000 before the window, 1100 at its end.
		push("gw-0", "v2", old, t0, 1000, 10, 0.001),
		// gw-1 restarted within the window: its old run counted 50
		// more (500 → 550), its new run 30 since.
		push("gw-1", "v2", old, t0, 500, 5, 0.001),
	)
	st.Add(t0.Add(10*time.Second), push("gw-1", "v2", old, t0.Add(10*time.Second), 550, 7, 0.001))
	st.Add(t0.Add(30*time.Second), push("gw-1", "v2", restarted, t0.Add(30*time.Second), 30, 3, 0.001))
	st.Add(t0.Add(60*time.Second), push("gw-0", "v2", old, t0.Add(60*time.Second), 1100, 12, 0.001))
	// gw-2's counts began within the window: from zero.
	st.Add(t0.Add(60*time.Second), push("gw-2", "v2", t0.Add(5*time.Second), t0.Add(60*time.Second), 20, 1, 0.001))
	// A repeat of an old push changes nothing.
	st.Add(t0.Add(60*time.Second), push("gw-0", "v2", old, t0, 1000, 10, 0.001))

	got := st.Versions("web", time.Minute, t0.Add(60*time.Second))["v2"]
	want := analysis.VersionSignals{Requests: 100 + 50 + 30 + 20, Failures: 2 + 2 + 3 + 1}
	if got.Requests != want.Requests || got.Failures != want.Failures || math.Abs(got.ErrorRate-8.0/200) > 1e-12 || got.P99.Std() != 995*time.Microsecond {
		t.Fatalf("Versions = %+v, want %d requests, %d failures, p99 0.995ms", got, want.Requests, want.Failures)
	}
}

// TestVersionsFoldsOtherBounds: a replica whose buckets differ is summed
// onto the first replica's bounds, never as faster than it was.
func TestVersionsFoldsOtherBounds(t *testing.T) {
	st := metrics.NewStore(30 * time.Second)
	since := t0.Add(-10 * time.Second)
	a := push("gw-a", "v1", since, t0, 100, 0, 0.0007) // within 1 ms
	b := metrics.Sample{Service: "web", Instance: "gw-b", Name: metrics.UpstreamName, Value: 100, Timestamp: t0,
		Upstream: &metrics.Upstream{Version: "v1", Since: since, Latency: []metrics.Bucket{{Le: 0.0015, Count: 0}, {Le: 3, Count: 100}}}}
	st.Add(t0, a, b)
	got := st.Versions("web", time.Minute, t0)["v1"]
	// gw-b's 100 within 3 s count at 4.096 s, the first bound above;
	// rank 198 of 200 falls in (2.048 s, 4.096 s].
	if got.Requests != 200 || got.P99.Std() < 2048*time.Millisecond || got.P99.Std() > 4096*time.Millisecond {
		t.Fatalf("Versions = %+v, want 200 requests, p99 in (2.048s, 4.096s]", got)
	}
}

// TestVersionsBounded: the ring keeps one point per 5 s whatever the
// push rate, and at most MaxVersionSeries series per service.
func TestVersionsBounded(t *testing.T) {
	st := metrics.NewStore(30 * time.Second)
	since := t0.Add(-time.Second)
	// 20 minutes of pushes every 100 ms.
	var now time.Time
	for i := range 12_000 {
		now = t0.Add(time.Duration(i) * 100 * time.Millisecond)
		st.Add(now, push("gw-0", "v1", since, now, float64(i), 0, 0.001))
	}
	got := st.Versions("web", metrics.MaxVersionWindow, now)["v1"]
	if w := got.Window.Std(); w < metrics.MaxVersionWindow || w > metrics.MaxVersionWindow+5*time.Second {
		t.Errorf("window held %s, want %s to 5 s more", w, metrics.MaxVersionWindow)
	}
	if got.Requests < 6000 || got.Requests > 6050 {
		t.Errorf("requests over %s = %d, want 6000 to 6050", metrics.MaxVersionWindow, got.Requests)
	}
	v1 := got.Requests
	for i := range metrics.MaxVersionSeries + 10 {
		st.Add(now, push(fmt.Sprintf("gw-%d", i), fmt.Sprintf("v%d", i%20), now.Add(-time.Second), now, 1, 0, 0.001))
	}
	var total int64
	for _, v := range st.Versions("web", metrics.MaxVersionWindow, now) {
		total += v.Requests
	}
	// gw-0's v1 was one series; of the new ones (1 request each, counted
	// from zero as they began within the window) MaxVersionSeries-1 are
	// kept.
	if want := v1 + metrics.MaxVersionSeries - 1; total != want {
		t.Errorf("%d requests over the series, want %d: series beyond %d ignored", total, want, metrics.MaxVersionSeries)
	}
	// A single push whose counts began before the window says nothing
	// of it.
	fresh := metrics.NewStore(30 * time.Second)
	fresh.Add(now, push("gw-0", "v99", t0.Add(-time.Hour), now, 500, 0, 0.001))
	if got, ok := fresh.Versions("web", time.Minute, now)["v99"]; !ok || got.Requests != 0 || got.Window != 0 {
		t.Errorf("a single push of counts older than the window = %+v, %v; want 0 requests over 0s", got, ok)
	}
	// A push older than any window is not kept.
	stale := metrics.NewStore(30 * time.Second)
	stale.Add(now, push("gw-0", "v1", now.Add(-time.Hour), now.Add(-metrics.MaxVersionWindow-time.Second), 5, 0, 0.001))
	if got := stale.Versions("web", metrics.MaxVersionWindow, now.Add(-metrics.MaxVersionWindow)); len(got) != 0 {
		t.Errorf("a push older than %s was kept: %v", metrics.MaxVersionWindow, got)
	}
	st.Prune(now.Add(metrics.MaxVersionWindow + time.Second))
	if left := st.Versions("web", time.Hour, now); len(left) != 0 {
		t.Errorf("after Prune %s later: %v, want nothing", metrics.MaxVersionWindow, left)
	}
}

// TestVersionsApartFromObserve: per-version samples never reach the
// scaler's metrics.
func TestVersionsApartFromObserve(t *testing.T) {
	st := metrics.NewStore(30 * time.Second)
	st.Add(t0, push("gw-0", "v1", t0.Add(-time.Second), t0, 10, 0, 0.001))
	if _, ok := st.Observe(t0, "web", metric(metrics.UpstreamName, "Value"), nil); ok {
		t.Fatal("Observe found the per-version sample as a metric")
	}
}

// The analysis refuses windows the store cannot answer for.
func TestMaxWindowsAgree(t *testing.T) {
	if metrics.MaxVersionWindow != analysis.MaxWindow {
		t.Fatalf("metrics.MaxVersionWindow = %s, analysis.MaxWindow = %s; want the same", metrics.MaxVersionWindow, analysis.MaxWindow)
	}
}

package hpa_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/hpa"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestSimulateStep replays a load step (200 rps, then 1 000 for five
// minutes, then 200 again) against the default behaviour: up in the
// policies' steps, down in one go once the scale-down window has passed.
// The decisions, as the future POST /simulate returns them, are golden.
func TestSimulateStep(t *testing.T) {
	s := spec(1, 20, metric("rps", hpa.AverageValue, 100))
	series := hpa.Series{Replicas: 2, Points: []hpa.Point{
		{At: t0, Metrics: map[string]float64{"rps": 200}},
		{At: t0.Add(time.Minute), Metrics: map[string]float64{"rps": 1000}},
		{At: t0.Add(6 * time.Minute), Metrics: map[string]float64{"rps": 200}},
		{At: t0.Add(12 * time.Minute), Metrics: map[string]float64{"rps": 200}},
	}}
	ds, err := hpa.Simulate(s, series)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 12*4+1 {
		t.Fatalf("Simulate() made %d decisions, want one per 15 s: 49", len(ds))
	}
	var got []change
	for _, d := range ds {
		if d.Scale() {
			got = append(got, change{d.At.Sub(t0), d.DesiredReplicas})
		}
	}
	// 2 → 6 (2+4) → 10 (the proposal, ceil(1000/100)); the last
	// recommendation of 10 is at 5m45s, so down to 2 at 10m45s.
	want := []change{{time.Minute, 6}, {75 * time.Second, 10}, {645 * time.Second, 2}}
	if !equalChanges(got, want) {
		t.Fatalf("changes = %v, want %v", got, want)
	}
	golden(t, "simulate_step.json", ds)
}

// TestSimulateDoesNotFlap replays an hour of a noisy load whose mean
// never moves (±30% around 1 000 rps at a 100 rps target): with HPA's
// default behaviour the count climbs to cover the noise's peaks and
// stays, changing direction at most when the peaks themselves change,
// never within a window of the last change. Without the scale-down window
// the same series flaps, which is what the window is for ("avoids having
// the scaling algorithm frequently remove Pods only to trigger recreating
// an equivalent Pod just moments later").
func TestSimulateDoesNotFlap(t *testing.T) {
	points := noisy(t0, time.Hour, 15*time.Second, 1000, 0.3)
	s := spec(1, 50, metric("rps", hpa.AverageValue, 100))
	series := hpa.Series{Replicas: 10, Points: points}
	ds, err := hpa.Simulate(s, series)
	if err != nil {
		t.Fatal(err)
	}
	if f := flaps(ds, 5*time.Minute); f != 0 {
		t.Fatalf("default behaviour: %d flaps, want 0 (%v)", f, changes(ds))
	}
	if n := len(changes(ds)); n > 3 {
		t.Errorf("default behaviour: %d changes in an hour of a steady mean, want a few at most (%v)", n, changes(ds))
	}

	s.Behavior = &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: dur(0)}}
	ds, err = hpa.Simulate(s, series)
	if err != nil {
		t.Fatal(err)
	}
	if f := flaps(ds, 5*time.Minute); f < 10 {
		t.Fatalf("without a scale-down window: %d flaps, want the series to flap (it is the control case): %v", f, changes(ds))
	}
}

// TestSimulateReadiness: instances the simulation starts are not ready
// for ReadyAfter, and HPA counts them at zero on a scale-up, which damps
// the second step.
func TestSimulateReadiness(t *testing.T) {
	s := spec(1, 50, metric("rps", hpa.AverageValue, 100))
	series := hpa.Series{Replicas: 2, ReadyAfter: wire.Duration(time.Minute), Points: []hpa.Point{
		{At: t0, Metrics: map[string]float64{"rps": 1200}},
		{At: t0.Add(2 * time.Minute), Metrics: map[string]float64{"rps": 1200}},
	}}
	ds, err := hpa.Simulate(s, series)
	if err != nil {
		t.Fatal(err)
	}
	// At 0: 600 each on 2 → proposes 12, the policies allow 6. At 15 s the
	// 4 new instances are not ready: 1200 spread over the 2 ready is
	// ratio 6, rebalanced with 4 zeros (1200/6 = 200) ratio 2 → 12,
	// allowed 12.
	d := ds[1]
	m := d.Metrics[0]
	if m.Ready != 2 || m.Unready != 4 || m.Rebalanced == nil || *m.Rebalanced != 2 || d.DesiredReplicas != 12 {
		t.Fatalf("decision at 15s = %s, want 2 ready, 4 unready, rebalanced ratio 2, 12 replicas", show(d))
	}
}

// TestSimulateWakesFromZero: with minReplicas 0 the service sleeps until
// the load passes the activation, wakes to one, grows, and goes back to
// zero after the scale-down window.
func TestSimulateWakesFromZero(t *testing.T) {
	m := metric("rps", hpa.AverageValue, 100)
	m.Activation = ptr(0.0)
	ds, err := hpa.Simulate(spec(0, 10, m), hpa.Series{Replicas: 0, Points: []hpa.Point{
		{At: t0, Metrics: map[string]float64{"rps": 0}},
		{At: t0.Add(time.Minute), Metrics: map[string]float64{"rps": 300}},
		{At: t0.Add(2 * time.Minute), Metrics: map[string]float64{"rps": 0}},
		{At: t0.Add(10 * time.Minute), Metrics: map[string]float64{"rps": 0}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []change{{time.Minute, 1}, {75 * time.Second, 3}, {405 * time.Second, 0}}
	if got := changes(ds); !equalChanges(got, want) {
		t.Fatalf("changes = %v, want %v", got, want)
	}
}

func TestSimulateIsDeterministic(t *testing.T) {
	s := spec(1, 50, metric("rps", hpa.AverageValue, 100), metric("cpu", hpa.Utilization, 60))
	series := hpa.Series{Replicas: 3, ReadyAfter: wire.Duration(30 * time.Second), Requests: map[string]float64{"cpu": 0.5},
		Points: noisy(t0, 30*time.Minute, 10*time.Second, 900, 0.5)}
	for i := range series.Points {
		series.Points[i].Metrics["cpu"] = series.Points[i].Metrics["rps"] / 1000
	}
	a, err := hpa.Simulate(s, series)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := hpa.Simulate(s, series)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatal("two simulations of the same series differ")
	}
}

func TestSimulateRejects(t *testing.T) {
	s := spec(1, 5, metric("cpu", hpa.Utilization, 50))
	one := []hpa.Point{{At: t0, Metrics: map[string]float64{"cpu": 1}}}
	tests := []struct {
		name   string
		spec   hpa.Spec
		series hpa.Series
		want   string
	}{
		{name: "invalid spec", spec: spec(1, 0, metric("cpu", hpa.Utilization, 50)), series: hpa.Series{Points: one}, want: "maxReplicas must be positive"},
		{name: "no points", spec: s, series: hpa.Series{Requests: map[string]float64{"cpu": 1}}, want: "points: must list at least one point"},
		{name: "points out of order", spec: s, series: hpa.Series{Requests: map[string]float64{"cpu": 1}, Points: []hpa.Point{{At: t0}, {At: t0.Add(-time.Second)}}},
			want: "points[1].at: is before points[0].at"},
		{name: "utilization without a request", spec: s, series: hpa.Series{Points: one}, want: "requests.cpu: a utilization metric needs a positive per-instance request"},
		{name: "replicas above max", spec: s, series: hpa.Series{Replicas: 6, Requests: map[string]float64{"cpu": 1}, Points: one}, want: "replicas: must be between 0 and maxReplicas (5)"},
		{name: "too long", spec: s, series: hpa.Series{Requests: map[string]float64{"cpu": 1}, Points: []hpa.Point{{At: t0}, {At: t0.Add(1000 * time.Hour)}}},
			want: "the series spans 240001 sync periods of 15s; at most 100000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hpa.Simulate(tt.spec, tt.series)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Simulate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// noisy is a steady mean with deterministic noise of ±amp around it (a
// linear congruential generator, so the series is the same everywhere).
func noisy(start time.Time, span, step time.Duration, mean, amp float64) []hpa.Point {
	var pts []hpa.Point
	x := uint32(12345)
	for at := time.Duration(0); at <= span; at += step {
		x = x*1664525 + 1013904223
		u := float64(x>>8)/float64(1<<24)*2 - 1 // in [-1, 1)
		pts = append(pts, hpa.Point{At: start.Add(at), Metrics: map[string]float64{"rps": mean * (1 + amp*u)}})
	}
	return pts
}

func changes(ds []hpa.Decision) []change {
	var out []change
	for _, d := range ds {
		if d.Scale() {
			out = append(out, change{d.At.Sub(t0), d.DesiredReplicas})
		}
	}
	return out
}

// flaps counts the changes that undo the direction of the change before
// them less than within after it: down then soon up, or up then soon
// down.
func flaps(ds []hpa.Decision, within time.Duration) int {
	n, last := 0, 0
	var lastAt time.Time
	for _, d := range ds {
		dir := 0
		switch {
		case d.DesiredReplicas > d.CurrentReplicas:
			dir = 1
		case d.DesiredReplicas < d.CurrentReplicas:
			dir = -1
		}
		if dir == 0 {
			continue
		}
		if last != 0 && dir != last && d.At.Sub(lastAt) < within {
			n++
		}
		last, lastAt = dir, d.At
	}
	return n
}

func equalChanges(a, b []change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the decisions; run go test -update and review the diff", path)
	}
}

// TestSimulateExactMultiple: 130 requests a second over 3 replicas at a
// target of 10 each needs exactly 13, not 14: the load is spread over the
// instances as samples and summed back, and the float noise of that round
// trip must not round a whole count up (found by the benchmark's sweep
// against an HPA reference).
func TestSimulateExactMultiple(t *testing.T) {
	s := hpa.Spec{MaxReplicas: 20, Metrics: []hpa.Metric{{Name: "rps", Target: hpa.Target{Type: hpa.AverageValue, Value: 10}}}}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ds, err := hpa.Simulate(s, hpa.Series{Replicas: 3, Points: []hpa.Point{{At: at, Metrics: map[string]float64{"rps": 130}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Proposal == nil || *ds[0].Proposal != 13 {
		t.Fatalf("Simulate = %+v, want one decision proposing 13", ds)
	}
}

// TestSimulateBoundsWork: a small request asking for billions of
// replicas is refused before anything is allocated.
func TestSimulateBoundsWork(t *testing.T) {
	s := hpa.Spec{MaxReplicas: 2_000_000_000, Metrics: []hpa.Metric{{Name: "rps", Target: hpa.Target{Type: hpa.AverageValue, Value: 10}}}}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := hpa.Simulate(s, hpa.Series{Replicas: 1_900_000_000, Points: []hpa.Point{
		{At: at, Metrics: map[string]float64{"rps": 1}}, {At: at.Add(time.Minute), Metrics: map[string]float64{"rps": 1}}}})
	if err == nil || !strings.Contains(err.Error(), "instance-steps") {
		t.Fatalf("Simulate of 1.9e9 replicas = %v, want refused", err)
	}
}

package analysis_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/rollout/analysis"
)

func ms(n int) wire.Duration { return wire.Duration(time.Duration(n) * time.Millisecond) }

func signals(requests, failures int64, p99 wire.Duration) analysis.VersionSignals {
	return analysis.VersionSignals{Requests: requests, Failures: failures, P99: p99, Window: wire.Duration(time.Minute)}
}

func TestJudge(t *testing.T) {
	spec := analysis.Thresholds{Window: wire.Duration(time.Minute), MaxErrorRate: 0.01, MaxP99: ms(500), MinRequests: 50}
	healthy := signals(5000, 3, ms(120))
	for _, tt := range []struct {
		name       string
		thresholds analysis.Thresholds
		canary     analysis.VersionSignals
		baseline   analysis.VersionSignals
		want       analysis.Verdict
		failed     []string
		message    string // a part of the message
	}{
		{"within both", spec, signals(500, 5, ms(300)), healthy, analysis.Pass, nil, "error rate 1.00% (5 of 500)"},
		{"error rate above", spec, signals(500, 6, ms(300)), healthy, analysis.Fail, []string{analysis.MaxErrorRate}, "error rate 1.20% (6 of 500) above maxErrorRate 1.00%"},
		{"p99 above", spec, signals(500, 0, ms(501)), healthy, analysis.Fail, []string{analysis.MaxP99}, "p99 501ms above maxP99 500ms"},
		{"both above", spec, signals(100, 50, ms(2000)), healthy, analysis.Fail, []string{analysis.MaxErrorRate, analysis.MaxP99}, "; p99 2s"},
		{"too few requests", spec, signals(49, 49, ms(9000)), healthy, analysis.Inconclusive, []string{analysis.MinRequests}, "served 49 requests"},
		{"exactly minRequests", spec, signals(50, 0, ms(10)), healthy, analysis.Pass, nil, "passed"},
		{"no requests, minRequests 0", analysis.Thresholds{Window: spec.Window, MaxErrorRate: 0.5}, signals(0, 0, 0), healthy, analysis.Inconclusive, []string{analysis.MinRequests}, "fewer than minRequests 1"},
		{"latency unjudged", analysis.Thresholds{Window: spec.Window, MaxErrorRate: 0.01, MinRequests: 1}, signals(10, 0, ms(60000)), healthy, analysis.Pass, nil, "p99 1m0s"},
		{"no failure tolerated", analysis.Thresholds{Window: spec.Window, MinRequests: 1}, signals(10000, 1, ms(1)), healthy, analysis.Fail, []string{analysis.MaxErrorRate}, "0.01% (1 of 10000)"},
		{"baseline breaks it too", spec, signals(500, 50, ms(100)), signals(5000, 400, ms(100)), analysis.Fail, []string{analysis.MaxErrorRate}, "(the baseline too: 8.00%)"},
		{"baseline p99 too", spec, signals(500, 0, ms(800)), signals(5000, 0, ms(700)), analysis.Fail, []string{analysis.MaxP99}, "(the baseline too: 700ms)"},
		{"baseline without requests", spec, signals(500, 0, ms(10)), signals(0, 0, 0), analysis.Pass, nil, "baseline error rate 0.00% (0 of 0)"},
		// The rate is recomputed from the counts, whatever ErrorRate says.
		{"stale error rate ignored", spec, analysis.VersionSignals{Requests: 100, Failures: 10, ErrorRate: 0}, healthy, analysis.Fail, []string{analysis.MaxErrorRate}, "10.00%"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := analysis.Judge(tt.thresholds, tt.canary, tt.baseline)
			if r.Verdict != tt.want || !slices.Equal(r.Failed, tt.failed) || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("Judge = %s %v %q; want %s %v, a message with %q", r.Verdict, r.Failed, r.Message, tt.want, tt.failed, tt.message)
			}
			if r.Canary.Requests != tt.canary.Requests || r.Baseline.Requests != tt.baseline.Requests || r.Thresholds != tt.thresholds {
				t.Fatalf("Judge kept %+v, %+v, %+v; want the measurements and thresholds it judged", r.Canary, r.Baseline, r.Thresholds)
			}
		})
	}
}

// TestThresholdsJSON reads the spec's analysis as the scaler's API
// writes it.
func TestThresholdsJSON(t *testing.T) {
	var th analysis.Thresholds
	if err := json.Unmarshal([]byte(`{"window":"1m","maxErrorRate":0.01,"maxP99":"500ms","minRequests":50}`), &th); err != nil {
		t.Fatal(err)
	}
	want := analysis.Thresholds{Window: wire.Duration(time.Minute), MaxErrorRate: 0.01, MaxP99: ms(500), MinRequests: 50}
	if th != want {
		t.Fatalf("Unmarshal = %+v, want %+v", th, want)
	}
	if err := th.Validate(); err != nil {
		t.Fatalf("Validate = %v, want nil", err)
	}
	r := analysis.Judge(th, signals(100, 2, ms(10)), signals(1000, 0, ms(10)))
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{`"verdict":"fail"`, `"failed":["maxErrorRate"]`, `"canary":{"requests":100,"failures":2,"errorRate":0.02,"p99":"10ms","window":"1m0s"}`} {
		if !strings.Contains(string(b), part) {
			t.Errorf("Marshal = %s, want %s in it", b, part)
		}
	}
}

func TestThresholdsValidate(t *testing.T) {
	ok := analysis.Thresholds{Window: wire.Duration(time.Minute), MaxErrorRate: 0.01, MaxP99: ms(500), MinRequests: 50}
	for _, tt := range []struct {
		name  string
		edit  func(*analysis.Thresholds)
		field string // "" when valid
	}{
		{"as written", func(*analysis.Thresholds) {}, ""},
		{"longest window", func(t *analysis.Thresholds) { t.Window = wire.Duration(analysis.MaxWindow) }, ""},
		{"no window", func(t *analysis.Thresholds) { t.Window = 0 }, "analysis.window"},
		{"window too long", func(t *analysis.Thresholds) { t.Window = wire.Duration(analysis.MaxWindow + time.Second) }, "analysis.window"},
		{"negative error rate", func(t *analysis.Thresholds) { t.MaxErrorRate = -0.1 }, "analysis.maxErrorRate"},
		{"error rate above 1", func(t *analysis.Thresholds) { t.MaxErrorRate = 1.5 }, "analysis.maxErrorRate"},
		{"negative p99", func(t *analysis.Thresholds) { t.MaxP99 = -1 }, "analysis.maxP99"},
		{"negative minRequests", func(t *analysis.Thresholds) { t.MinRequests = -1 }, "analysis.minRequests"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			th := ok
			tt.edit(&th)
			err := th.Validate()
			if (err == nil) != (tt.field == "") || err != nil && !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate(%+v) = %v, want an error naming %q", th, err, tt.field)
			}
		})
	}
}

package metrics_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

func FuzzPushValidate(f *testing.F) {
	for _, seed := range []string{
		`{"samples":[{"service":"web","instance":"web-1","name":"queue_depth","value":3,"request":0.5,"timestamp":"2026-03-01T12:00:00Z"}]}`,
		`{"samples":[{"service":"web","name":"gateway_requests_per_second","value":1e308}]}`,
		`{"samples":[{"service":"web","name":"x","value":-1,"timestamp":"2026-03-01T12:01:00.000000001Z"}]}`,
		`{"samples":[{"service":"Web","name":"1x","value":1,"request":-1}]}`,
		`{"samples":[]}`,
		`{"samples":[{"service":"web","instance":"a\u0000b","name":"x","value":1}]}`,
		`{"samples":[{"service":"web","name":"x","value":1,"extra":true}]}`,
		`{"samples":[{"service":"web","instance":"gateway-0","name":"gateway_upstream_requests","value":12,"timestamp":"2026-03-01T12:00:00Z","upstream":{"version":"v2","since":"2026-03-01T11:59:00Z","failures":1,"latency":[{"le":0.001,"count":10},{"le":0.002,"count":12}]}}]}`,
		`{"samples":[{"service":"web","instance":"gateway-0","name":"gateway_upstream_requests","value":12,"upstream":{"version":"v2","since":"2026-03-01T11:59:00Z","failures":13,"latency":[{"le":0.002,"count":10},{"le":0.001,"count":9}]}}]}`,
		`{"samples":[{"service":"web","instance":"gateway-0","name":"gateway_upstream_requests","value":1.5,"upstream":{"version":"","since":"0001-01-01T00:00:00Z","failures":-1,"latency":[]}}]}`,
		`{"samples":[{"service":"web","name":"queue_depth","value":1,"upstream":{"version":"v1","since":"2026-03-01T11:59:00Z","failures":0,"latency":[{"le":1,"count":0}]}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var p metrics.Push
		if dec.Decode(&p) != nil {
			return
		}
		if p.Validate(t0) != nil {
			return
		}
		if len(p.Samples) == 0 || len(p.Samples) > metrics.MaxPushSamples {
			t.Fatalf("accepted %d samples", len(p.Samples))
		}
		for i, s := range p.Samples {
			if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || math.IsNaN(s.Request) || math.IsInf(s.Request, 0) || s.Request < 0 {
				t.Fatalf("accepted samples[%d] with value %g, request %g", i, s.Value, s.Request)
			}
			if catalog.ValidateService(s.Service) != nil || s.Name == "" || len(s.Name) > metrics.MaxNameBytes {
				t.Fatalf("accepted samples[%d] = %+v", i, s)
			}
			if (s.Upstream != nil) != (s.Name == metrics.UpstreamName) {
				t.Fatalf("accepted samples[%d] named %s with upstream %+v", i, s.Name, s.Upstream)
			}
			if u := s.Upstream; u != nil {
				if s.Instance == "" || u.Version == "" || u.Since.IsZero() || s.Value < 0 || s.Value != math.Trunc(s.Value) || u.Failures > s.Value || len(u.Latency) == 0 {
					t.Fatalf("accepted samples[%d] = %+v, upstream %+v", i, s, u)
				}
				for j, b := range u.Latency {
					if b.Le <= 0 || b.Count > s.Value || j > 0 && (b.Le <= u.Latency[j-1].Le || b.Count < u.Latency[j-1].Count) {
						t.Fatalf("accepted samples[%d].upstream.latency = %+v", i, u.Latency)
					}
				}
			}
		}
		// What is accepted is stored and measured without a panic, and
		// measures sensibly.
		st := metrics.NewStore(time.Minute)
		st.Add(t0, p.Samples...)
		for _, s := range p.Samples {
			for v, sig := range st.Versions(s.Service, time.Hour, t0.Add(time.Second)) {
				if sig.Requests < 0 || sig.Failures < 0 || sig.Failures > sig.Requests || sig.P99 < 0 || sig.Window < 0 || sig.ErrorRate < 0 || sig.ErrorRate > 1 {
					t.Fatalf("Versions(%s)[%s] = %+v", s.Service, v, sig)
				}
			}
		}
	})
}

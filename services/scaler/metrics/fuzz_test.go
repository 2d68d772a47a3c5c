package metrics_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

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
		}
	})
}

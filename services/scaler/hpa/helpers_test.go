package hpa_test

import (
	"fmt"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/hpa"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// warm is the state of a scaler that has run for a while and recorded
// nothing that still counts: a single decision then shows the metric
// algorithm alone, without the initial recommendation HPA records (which
// holds scale-downs for one window).
var warm = hpa.State{Since: t0.Add(-time.Hour)}

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) *wire.Duration { w := wire.Duration(d); return &w }

func metric(name string, typ hpa.TargetType, target float64) hpa.Metric {
	return hpa.Metric{Name: name, Target: hpa.Target{Type: typ, Value: target}}
}

func spec(minR, maxR int, metrics ...hpa.Metric) hpa.Spec {
	return hpa.Spec{MinReplicas: &minR, MaxReplicas: maxR, Metrics: metrics}
}

// instances returns ready instances i1..in followed by unready ones.
func instances(ready, unready int) []hpa.Instance {
	var out []hpa.Instance
	for i := range ready + unready {
		out = append(out, hpa.Instance{ID: fmt.Sprintf("i%d", i+1), Ready: i < ready})
	}
	return out
}

// samples gives instances i1, i2, ... the values in order.
func samples(values ...float64) hpa.Observation {
	var o hpa.Observation
	for i, v := range values {
		o.Samples = append(o.Samples, hpa.Sample{Instance: fmt.Sprintf("i%d", i+1), Value: v})
	}
	return o
}

// usage gives instances i1, i2, ... the usage values, each with request.
func usage(request float64, values ...float64) hpa.Observation {
	o := samples(values...)
	for i := range o.Samples {
		o.Samples[i].Request = request
	}
	return o
}

func value(v float64) hpa.Observation { return hpa.Observation{Value: &v} }

// sameValues repeats v n times.
func sameValues(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

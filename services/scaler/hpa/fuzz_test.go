package hpa_test

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/hpa"
)

// FuzzDecide builds a spec and a run of inputs from the fuzzer's bytes
// (odd values, NaN, infinities, duplicate and unknown instances, missing
// metrics, counts out of bounds, time standing still) and checks on every
// decision: Decide does not panic; a decision without an error keeps the
// count within [minReplicas, maxReplicas], or at zero when minReplicas is
// 0 or when the service was scaled to zero by hand; a decision with an
// error keeps the count; the decision and state encode as JSON, and the
// decoded state gives the same next decision (the service logs it); the
// same arguments give the same results.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{1, 10, 2, 1, 0, 100, 0, 0, 0, 4, 3, 1, 200, 200, 200})
	f.Add([]byte{0, 5, 1, 1, 1, 10, 1, 0, 0, 0, 0, 1, 50, 0, 0, 0, 2, 7})
	f.Add([]byte{2, 8, 0, 3, 2, 50, 0, 1, 1, 2, 7, 4, 4, 255, 254, 253, 252, 30, 6, 6, 9})
	f.Add([]byte{1, 1, 3, 2, 0, 1, 0, 2, 2, 1, 250, 1, 1, 0, 128, 64, 32})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &byteReader{b: data}
		s := fuzzSpec(r)
		check := s
		check.Defaults()
		valid := check.Validate() == nil
		st := hpa.State{}
		now := t0
		current := int(r.next() % 12)
		for step := 0; step < 12 && r.more(); step++ {
			now = now.Add(time.Duration(r.next()%70) * time.Second)
			in := fuzzInput(r, s, now, current)
			d, next := hpa.Decide(s, st, in)

			if d2, next2 := hpa.Decide(s, st, in); !reflect.DeepEqual(d, d2) || !reflect.DeepEqual(next, next2) {
				t.Fatalf("Decide is not deterministic:\n%s\n%s", show(d), show(d2))
			}
			if _, err := json.Marshal(d); err != nil {
				t.Fatalf("decision does not encode: %v\n%#v", err, d)
			}
			b, err := json.Marshal(st)
			if err != nil {
				t.Fatalf("state does not encode: %v", err)
			}
			var decoded hpa.State
			if err := json.Unmarshal(b, &decoded); err != nil {
				t.Fatal(err)
			}
			if d3, _ := hpa.Decide(s, decoded, in); !reflect.DeepEqual(d, d3) {
				t.Fatalf("a state decoded from JSON decides otherwise:\n%s\n%s", show(d), show(d3))
			}

			if valid && in.CurrentReplicas >= 0 {
				minR, maxR := *check.MinReplicas, check.MaxReplicas
				want := func(ok bool) {
					if !ok {
						t.Fatalf("min %d max %d current %d: desired %d\n%s", minR, maxR, in.CurrentReplicas, d.DesiredReplicas, show(d))
					}
				}
				switch {
				case d.Error != "":
					want(d.DesiredReplicas == in.CurrentReplicas)
				case in.CurrentReplicas == 0 && minR > 0: // scaling disabled, as HPA
					want(d.DesiredReplicas == 0)
				case minR == 0:
					want(d.DesiredReplicas >= 0 && d.DesiredReplicas <= maxR)
				default:
					want(d.DesiredReplicas >= minR && d.DesiredReplicas <= maxR)
				}
			}
			st = next
			if r.next()%4 == 0 {
				current = int(r.next() % 40) // someone else changed the count
			} else {
				current = d.DesiredReplicas
			}
		}
	})
}

type byteReader struct {
	b []byte
	i int
}

func (r *byteReader) more() bool { return r.i < len(r.b) }

func (r *byteReader) next() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

// float is a metric value: mostly ordinary, sometimes hostile.
func (r *byteReader) float() float64 {
	switch b := r.next(); b {
	case 255:
		return math.NaN()
	case 254:
		return math.Inf(1)
	case 253:
		return -1
	case 252:
		return math.MaxFloat64
	case 251:
		return 1e-300
	default:
		return float64(b) * 5
	}
}

func fuzzSpec(r *byteReader) hpa.Spec {
	minR := int(r.next()%4) - 0
	if minR == 3 {
		minR = 0
	}
	s := hpa.Spec{MinReplicas: &minR, MaxReplicas: int(r.next() % 30)}
	tols := []float64{0, 0.05, 0.1, 0.5}
	s.Tolerance = &tols[r.next()%4]
	types := []hpa.TargetType{hpa.AverageValue, hpa.Value, hpa.Utilization}
	for i := range int(r.next()%3) + 1 {
		m := metric(fmt.Sprintf("m%d", i), types[r.next()%3], float64(r.next()%200)+0.5)
		if minR == 0 || r.next()%3 == 0 {
			m.Activation = ptr(float64(r.next() % 20))
		}
		if minR == 0 && m.Target.Type == hpa.Utilization {
			m.Target.Type = hpa.Value
		}
		s.Metrics = append(s.Metrics, m)
	}
	if r.next()%2 == 0 {
		s.Behavior = &hpa.Behavior{ScaleUp: fuzzRules(r), ScaleDown: fuzzRules(r)}
	}
	return s
}

func fuzzRules(r *byteReader) *hpa.Rules {
	windows := []time.Duration{0, 30 * time.Second, time.Minute, 5 * time.Minute}
	selects := []hpa.SelectPolicy{hpa.SelectMax, hpa.SelectMin, hpa.SelectDisabled, ""}
	rules := &hpa.Rules{StabilizationWindow: dur(windows[r.next()%4]), SelectPolicy: selects[r.next()%4]}
	for range int(r.next() % 3) {
		typ := hpa.Pods
		if r.next()%2 == 0 {
			typ = hpa.Percent
		}
		rules.Policies = append(rules.Policies, hpa.Policy{Type: typ, Value: int(r.next()%150) + 1,
			Period: wire.Duration(time.Duration(r.next()%120+1) * time.Second)})
	}
	return rules
}

func fuzzInput(r *byteReader, s hpa.Spec, now time.Time, current int) hpa.Input {
	in := hpa.Input{Now: now, CurrentReplicas: current, Metrics: map[string]hpa.Observation{}}
	n := int(r.next() % 10)
	mask := r.next()
	for i := range n {
		in.Instances = append(in.Instances, hpa.Instance{ID: fmt.Sprintf("i%d", i%8), Ready: mask&(1<<(i%8)) != 0})
	}
	for _, m := range s.Metrics {
		switch k := r.next() % 5; {
		case k == 0: // missing
		case k == 1 || m.Target.Type == hpa.Value && k != 4:
			v := r.float()
			in.Metrics[m.Name] = hpa.Observation{Value: &v}
		default:
			var o hpa.Observation
			for j := range int(r.next() % 10) {
				o.Samples = append(o.Samples, hpa.Sample{Instance: fmt.Sprintf("i%d", j%9), Value: r.float(), Request: r.float() / 50})
			}
			in.Metrics[m.Name] = o
		}
	}
	return in
}

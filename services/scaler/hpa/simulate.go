package hpa

import (
	"fmt"
	"strconv"
	"time"

	"github.com/stewardhq/steward/platform/wire"
)

// MaxSimulationSteps bounds one Simulate call (a day at 1 s syncs is
// 86 400 steps).
const MaxSimulationSteps = 100_000

// MaxSimulationWork bounds one Simulate call's instance-steps: the
// simulation keeps every instance it runs and looks at each at every
// step, so replicas × steps is its time and replicas its memory. A
// thousand replicas for half a day at 1 s syncs, or five hundred for the
// longest series, fit.
const MaxSimulationWork = 50_000_000

// Series is a metric time series to replay against a spec: the load the
// service saw, with the replica count left to the simulation.
type Series struct {
	// Replicas is the count at the first point, all of them ready.
	Replicas int `json:"replicas"`
	// ReadyAfter is how long an instance the simulation starts takes to
	// become ready; 0 makes it ready at once.
	ReadyAfter wire.Duration `json:"readyAfter,omitempty"`
	// Requests is the per-instance request of each utilization metric.
	Requests map[string]float64 `json:"requests,omitempty"`
	Points   []Point            `json:"points"`
}

// Point is the load at one time, held until the next point.
type Point struct {
	At time.Time `json:"at"`
	// Metrics gives, per metric name, the service-wide quantity: the value
	// of a value metric, the total over all instances of an averageValue
	// or utilization metric (which the simulation spreads evenly over the
	// ready instances, so that more replicas mean less each). A metric
	// absent from a point has no observation then.
	Metrics map[string]float64 `json:"metrics"`
}

// Simulate replays a series through Decide, one decision per sync period
// from the first point to the last, each seeing the latest point at or
// before it, and carries every decision out at once: instances it adds
// are ready after ReadyAfter, instances it removes are the newest. It
// acts on nothing; the same spec and series give the same decisions.
func Simulate(spec Spec, series Series) ([]Decision, error) {
	s := spec.clone()
	s.Defaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := series.validate(&s); err != nil {
		return nil, err
	}
	first, last := series.Points[0].At, series.Points[len(series.Points)-1].At
	sync := s.SyncPeriod.Std()
	steps := last.Sub(first)/sync + 1
	if steps > MaxSimulationSteps {
		return nil, fmt.Errorf("the series spans %d sync periods of %v; at most %d", steps, sync, MaxSimulationSteps)
	}
	if most := max(series.Replicas, s.MaxReplicas); int64(most)*int64(steps) > MaxSimulationWork {
		return nil, fmt.Errorf("up to %d replicas over %d sync periods is more than a simulation does (%d instance-steps at most)", most, steps, MaxSimulationWork)
	}
	type instance struct {
		id      string
		started time.Time // zero for the instances there from the start
	}
	var (
		insts     []instance
		seq       int
		state     State
		decisions []Decision
		p         int
	)
	add := func(at time.Time) {
		seq++
		insts = append(insts, instance{id: "i" + strconv.Itoa(seq), started: at})
	}
	for range series.Replicas {
		add(time.Time{})
	}
	for t := first; !t.After(last); t = t.Add(sync) {
		for p+1 < len(series.Points) && !series.Points[p+1].At.After(t) {
			p++
		}
		in := Input{Now: t, CurrentReplicas: len(insts), Metrics: map[string]Observation{}}
		var ready []string
		for _, x := range insts {
			ok := x.started.IsZero() || !t.Before(x.started.Add(series.ReadyAfter.Std()))
			in.Instances = append(in.Instances, Instance{ID: x.id, Ready: ok})
			if ok {
				ready = append(ready, x.id)
			}
		}
		for _, m := range s.Metrics {
			q, ok := series.Points[p].Metrics[m.Name]
			if !ok {
				continue
			}
			if m.Target.Type == Value || (m.Target.Type == AverageValue && len(ready) == 0) {
				// With no ready instance to carry it, an averageValue load
				// is the service-wide total (HPA's External AverageValue),
				// which is also what can wake a service from zero.
				in.Metrics[m.Name] = Observation{Value: &q}
				continue
			}
			o := Observation{}
			for _, id := range ready {
				o.Samples = append(o.Samples, Sample{Instance: id, Value: q / float64(len(ready)), Request: series.Requests[m.Name]})
			}
			in.Metrics[m.Name] = o
		}
		var d Decision
		d, state = Decide(s, state, in)
		decisions = append(decisions, d)
		for len(insts) < d.DesiredReplicas {
			add(t)
		}
		insts = insts[:min(len(insts), d.DesiredReplicas)]
	}
	return decisions, nil
}

func (sr *Series) validate(s *Spec) error {
	if len(sr.Points) == 0 {
		return fmt.Errorf("points: must list at least one point")
	}
	if sr.Replicas < 0 || sr.Replicas > s.MaxReplicas {
		return fmt.Errorf("replicas: must be between 0 and maxReplicas (%d)", s.MaxReplicas)
	}
	if sr.ReadyAfter < 0 {
		return fmt.Errorf("readyAfter: must not be negative")
	}
	for i := 1; i < len(sr.Points); i++ {
		if sr.Points[i].At.Before(sr.Points[i-1].At) {
			return fmt.Errorf("points[%d].at: is before points[%d].at", i, i-1)
		}
	}
	for _, m := range s.Metrics {
		if r := sr.Requests[m.Name]; m.Target.Type == Utilization && (!finite(r) || r <= 0) {
			return fmt.Errorf("requests.%s: a utilization metric needs a positive per-instance request", m.Name)
		}
	}
	return nil
}

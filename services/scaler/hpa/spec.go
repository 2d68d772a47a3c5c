package hpa

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/wire"
)

// HPA's defaults and limits (k8s.io/kubernetes/pkg/apis/autoscaling/v2
// defaults.go and validation.go; the scale-down window is the controller
// flag --horizontal-pod-autoscaler-downscale-stabilization).
const (
	DefaultTolerance       = 0.1
	DefaultSyncPeriod      = 15 * time.Second
	DefaultScaleDownWindow = 5 * time.Minute
	DefaultPolicyPeriod    = 15 * time.Second
	MaxStabilizationWindow = time.Hour
	MaxPolicyPeriod        = 30 * time.Minute
	// MaxReplicas is HPA's int32 ceiling; keeping every count below it
	// keeps the arithmetic on replica counts free of overflow.
	MaxReplicas = math.MaxInt32
)

// TargetType says how a metric's observations compare with its target.
type TargetType string

const (
	// AverageValue: the mean of the per-instance samples of ready
	// instances (HPA's Pods metric), or a service-wide total divided by the
	// replica count (HPA's External metric with an AverageValue target).
	AverageValue TargetType = "averageValue"
	// Value: one value for the whole service (HPA's Object or External
	// metric with a Value target).
	Value TargetType = "value"
	// Utilization: per-instance usage over per-instance request, in
	// percent (HPA's Resource metric with an averageUtilization target).
	Utilization TargetType = "utilization"
)

// PolicyType is the unit of a rate policy.
type PolicyType string

const (
	Pods    PolicyType = "Pods"
	Percent PolicyType = "Percent"
)

// SelectPolicy chooses among a direction's policies.
type SelectPolicy string

const (
	// SelectMax takes the policy that allows the largest change.
	SelectMax SelectPolicy = "Max"
	// SelectMin takes the policy that allows the smallest change.
	SelectMin SelectPolicy = "Min"
	// SelectDisabled turns scaling in that direction off.
	SelectDisabled SelectPolicy = "Disabled"
)

// Spec is what an autoscaler is asked to do. Pointer fields tell an
// omitted value (which Defaults fills) from an explicit zero, as HPA's
// API does: an explicit "stabilizationWindow": "0s" on scale-down is not
// the default 300 s.
type Spec struct {
	// MinReplicas defaults to 1. Zero is allowed only with an activation
	// on every metric (scaling to zero, as KEDA does it).
	MinReplicas *int     `json:"minReplicas,omitempty"`
	MaxReplicas int      `json:"maxReplicas"`
	Metrics     []Metric `json:"metrics"`
	// Tolerance is how far the usage ratio may stray from 1.0 before a
	// metric proposes a change; 0.1 by default. A direction's own
	// tolerance in Behavior overrides it.
	Tolerance *float64 `json:"tolerance,omitempty"`
	// SyncPeriod is how often the service calls Decide (and Simulate's
	// step); 15 s by default, as the HPA controller's --horizontal-pod-
	// autoscaler-sync-period.
	SyncPeriod wire.Duration `json:"syncPeriod,omitempty"`
	Behavior   *Behavior     `json:"behavior,omitempty"`
}

// Metric is one signal the service scales on.
type Metric struct {
	Name   string `json:"name"`
	Target Target `json:"target"`
	// Activation is KEDA's activation threshold: with minReplicas 0 the
	// service wakes from zero when the metric is above it and may go to
	// zero only when every metric is at or below its own. It compares the
	// service-wide quantity: the value, or the total of averageValue.
	Activation *float64 `json:"activation,omitempty"`
}

// Target is the value a metric is held to.
type Target struct {
	Type TargetType `json:"type"`
	// Value is the target: per instance for averageValue, for the whole
	// service for value, a percentage of the request for utilization.
	Value float64 `json:"value"`
}

// Behavior is HPA's configurable scaling behaviour for each direction.
type Behavior struct {
	ScaleUp   *Rules `json:"scaleUp,omitempty"`
	ScaleDown *Rules `json:"scaleDown,omitempty"`
}

// Rules limits scaling in one direction (HPA's HPAScalingRules).
type Rules struct {
	// StabilizationWindow is how far back recorded recommendations count:
	// 0 s for scale-up and 300 s for scale-down by default.
	StabilizationWindow *wire.Duration `json:"stabilizationWindow,omitempty"`
	// SelectPolicy is Max by default.
	SelectPolicy SelectPolicy `json:"selectPolicy,omitempty"`
	// Policies default, when omitted, to 4 pods or 100 % per 15 s for
	// scale-up and 100 % per 15 s for scale-down. An empty list is an
	// error, as in HPA.
	Policies []Policy `json:"policies"`
	// Tolerance overrides the spec's tolerance for this direction
	// (HPA's behavior.scaleUp.tolerance, Kubernetes 1.33 on).
	Tolerance *float64 `json:"tolerance,omitempty"`
}

// Policy is one rate limit: at most Value pods, or Value percent of the
// replica count at the start of the period, per Period.
type Policy struct {
	Type   PolicyType    `json:"type"`
	Value  int           `json:"value"`
	Period wire.Duration `json:"period"`
}

func (p Policy) String() string {
	if p.Type == Percent {
		return fmt.Sprintf("%d%% per %v", p.Value, p.Period.Std())
	}
	return fmt.Sprintf("%d pods per %v", p.Value, p.Period.Std())
}

// Defaults fills every omitted field with HPA's default. It is
// idempotent, and Decide applies it to its own copy, so a caller may
// store specs as the user wrote them.
func (s *Spec) Defaults() {
	if s.MinReplicas == nil {
		s.MinReplicas = ptr(1)
	}
	if s.Tolerance == nil {
		s.Tolerance = ptr(DefaultTolerance)
	}
	if s.SyncPeriod == 0 {
		s.SyncPeriod = wire.Duration(DefaultSyncPeriod)
	}
	if s.Behavior == nil {
		s.Behavior = &Behavior{}
	}
	s.Behavior.ScaleUp = defaultRules(s.Behavior.ScaleUp, 0, []Policy{
		{Type: Pods, Value: 4, Period: wire.Duration(DefaultPolicyPeriod)},
		{Type: Percent, Value: 100, Period: wire.Duration(DefaultPolicyPeriod)},
	})
	s.Behavior.ScaleDown = defaultRules(s.Behavior.ScaleDown, DefaultScaleDownWindow, []Policy{
		{Type: Percent, Value: 100, Period: wire.Duration(DefaultPolicyPeriod)},
	})
}

// defaultRules copies r (the caller's struct stays as it was) with its
// omitted fields filled, as HPA's copyHPAScalingRules does.
func defaultRules(r *Rules, window time.Duration, policies []Policy) *Rules {
	out := Rules{}
	if r != nil {
		out = *r
	}
	if out.StabilizationWindow == nil {
		out.StabilizationWindow = ptr(wire.Duration(window))
	}
	if out.SelectPolicy == "" {
		out.SelectPolicy = SelectMax
	}
	if out.Policies == nil {
		out.Policies = policies
	}
	return &out
}

// FieldError is one problem with a spec, naming the field as a JSON path
// ("behavior.scaleUp.policies[0].value").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Message }

// ValidationError lists every problem Validate found, so a 400 can name
// them all at once.
type ValidationError []*FieldError

func (v ValidationError) Error() string {
	msgs := make([]string, len(v))
	for i, e := range v {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Validate checks a spec after Defaults, with HPA's rules and limits. It
// returns nil or a ValidationError.
func (s *Spec) Validate() error {
	var errs ValidationError
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if s.MinReplicas == nil || s.Tolerance == nil || s.Behavior == nil ||
		s.Behavior.ScaleUp == nil || s.Behavior.ScaleDown == nil {
		add("spec", "is missing defaults: call Defaults before Validate")
		return errs
	}
	minR := *s.MinReplicas
	switch {
	case minR < 0:
		add("minReplicas", "must not be negative")
	case minR > MaxReplicas:
		add("minReplicas", "must be at most %d", MaxReplicas)
	}
	switch {
	case s.MaxReplicas < 1:
		add("maxReplicas", "must be positive")
	case s.MaxReplicas > MaxReplicas:
		add("maxReplicas", "must be at most %d", MaxReplicas)
	case s.MaxReplicas < minR:
		add("maxReplicas", "must be at least minReplicas (%d)", minR)
	}
	if !finite(*s.Tolerance) || *s.Tolerance < 0 {
		add("tolerance", "must be a number at least 0")
	}
	if s.SyncPeriod <= 0 {
		add("syncPeriod", "must be positive")
	}
	if len(s.Metrics) == 0 {
		add("metrics", "must list at least one metric")
	}
	seen := map[string]bool{}
	for i, m := range s.Metrics {
		field := fmt.Sprintf("metrics[%d]", i)
		switch {
		case m.Name == "":
			add(field+".name", "is required")
		case seen[m.Name]:
			add(field+".name", "%q is listed twice", m.Name)
		}
		seen[m.Name] = true
		switch m.Target.Type {
		case AverageValue, Value, Utilization:
		default:
			add(field+".target.type", "must be averageValue, value or utilization")
		}
		if !finite(m.Target.Value) || m.Target.Value <= 0 {
			add(field+".target.value", "must be positive")
		}
		if m.Activation != nil && (!finite(*m.Activation) || *m.Activation < 0) {
			add(field+".activation", "must be a number at least 0")
		}
		if minR == 0 {
			// At zero replicas there is no instance to sample, so only a
			// service-wide quantity can wake the service: HPA, likewise,
			// allows minReplicas 0 only with Object or External metrics.
			if m.Activation == nil {
				add(field+".activation", "is required when minReplicas is 0")
			}
			if m.Target.Type == Utilization {
				add(field+".target.type", "utilization cannot wake a service from zero replicas: use minReplicas 1 or another metric")
			}
		}
	}
	validateRules(add, "behavior.scaleUp", s.Behavior.ScaleUp)
	validateRules(add, "behavior.scaleDown", s.Behavior.ScaleDown)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func validateRules(add func(field, format string, args ...any), field string, r *Rules) {
	if w := r.StabilizationWindow; w == nil || *w < 0 || w.Std() > MaxStabilizationWindow {
		add(field+".stabilizationWindow", "must be between 0s and %v", MaxStabilizationWindow)
	}
	switch r.SelectPolicy {
	case SelectMax, SelectMin, SelectDisabled:
	default:
		add(field+".selectPolicy", "must be Max, Min or Disabled")
	}
	if r.Tolerance != nil && (!finite(*r.Tolerance) || *r.Tolerance < 0) {
		add(field+".tolerance", "must be a number at least 0")
	}
	if len(r.Policies) == 0 {
		add(field+".policies", "must list at least one policy")
	}
	for i, p := range r.Policies {
		pf := fmt.Sprintf("%s.policies[%d]", field, i)
		if p.Type != Pods && p.Type != Percent {
			add(pf+".type", "must be Pods or Percent")
		}
		switch {
		case p.Value <= 0:
			add(pf+".value", "must be positive")
		case p.Value > MaxReplicas:
			add(pf+".value", "must be at most %d", MaxReplicas)
		}
		if p.Period <= 0 || p.Period.Std() > MaxPolicyPeriod {
			add(pf+".period", "must be positive and at most %v", MaxPolicyPeriod)
		}
	}
}

// minReplicas, tolerance and the rest read a spec after Defaults.
func (s *Spec) minReplicas() int { return *s.MinReplicas }

func (s *Spec) tolerances() tolerances {
	t := tolerances{up: *s.Tolerance, down: *s.Tolerance}
	if r := s.Behavior.ScaleUp.Tolerance; r != nil {
		t.up = *r
	}
	if r := s.Behavior.ScaleDown.Tolerance; r != nil {
		t.down = *r
	}
	return t
}

// tolerances is HPA's Tolerances: a usage ratio within [1-down, 1+up],
// bounds included, proposes no change.
type tolerances struct{ up, down float64 }

func (t tolerances) within(ratio float64) bool { return 1-t.down <= ratio && ratio <= 1+t.up }

// clone copies a spec deeply enough that Defaults on the copy leaves the
// caller's pointers alone.
func (s Spec) clone() Spec {
	s.Metrics = append([]Metric(nil), s.Metrics...)
	if s.Behavior != nil {
		b := *s.Behavior
		s.Behavior = &b
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

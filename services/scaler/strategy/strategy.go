// Package strategy is how a scaler rolls a new template out: the
// strategy a spec names (RollingUpdate, with Kubernetes' fields and
// defaults, or Canary), and the rolling update's step, a pure function
// from what runs to what to start and stop next (Step). It does no I/O:
// the control loop observes and acts, the ledger records.
package strategy

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/rollout/analysis"
)

// Types of strategy.
const (
	RollingUpdate = "RollingUpdate"
	Canary        = "Canary"
)

// Kubernetes' Deployment defaults (apps/v1 defaults.go), and Argo
// Rollouts' bounds on a canary.
const (
	DefaultMaxSurge         = "25%"
	DefaultMaxUnavailable   = "25%"
	DefaultProgressDeadline = 10 * time.Minute
	MaxSteps                = 100
	MaxPause                = 24 * time.Hour
	// maxPercent keeps percent × replicas inside an int.
	maxPercent = 10_000
)

// Spec is a scaler's strategy field.
type Spec struct {
	// Type is RollingUpdate (the default) or Canary.
	Type          string         `json:"type,omitempty"`
	RollingUpdate *RollingParams `json:"rollingUpdate,omitempty"`
	// MinReadySeconds is how long a new instance must have been passing
	// in the registry before it counts as available; 0 by default.
	MinReadySeconds *int `json:"minReadySeconds,omitempty"`
	// ProgressDeadline is how long a rollout may go without progress
	// before it is marked Failed; 10m by default.
	ProgressDeadline *wire.Duration `json:"progressDeadline,omitempty"`
	Canary           *CanaryParams  `json:"canary,omitempty"`
}

// RollingParams bound a rolling update, as a Deployment's do.
type RollingParams struct {
	// MaxSurge is how many instances may run above the replica count,
	// a count or a percentage of it rounded up; 25% by default.
	MaxSurge *IntOrPercent `json:"maxSurge,omitempty"`
	// MaxUnavailable is how many of the replica count may be
	// unavailable, a count or a percentage rounded down; 25% by default.
	// It cannot be 0 with MaxSurge 0.
	MaxUnavailable *IntOrPercent `json:"maxUnavailable,omitempty"`
}

// CanaryParams is a canary's shape: its steps and the analysis that
// judges each (control/canary.go runs it).
type CanaryParams struct {
	Steps    []CanaryStep `json:"steps"`
	Analysis *Analysis    `json:"analysis,omitempty"`
}

// CanaryStep is one of setWeight (the share of traffic, in percent, the
// new version gets) or pause.
type CanaryStep struct {
	SetWeight *int          `json:"setWeight,omitempty"`
	Pause     wire.Duration `json:"pause,omitempty"`
}

// Analysis holds the thresholds the new version's gateway signals are
// compared with over Window after each step.
type Analysis struct {
	Window wire.Duration `json:"window"`
	// MaxErrorRate is the largest share of 5xx and failed requests, 0 to 1.
	MaxErrorRate *float64 `json:"maxErrorRate,omitempty"`
	// MaxP99Latency bounds the 99th percentile of latency.
	MaxP99Latency wire.Duration `json:"maxP99Latency,omitempty"`
	// MinRequests is how many requests the window needs before it is
	// judged at all.
	MinRequests int `json:"minRequests,omitempty"`
}

// IntOrPercent is Kubernetes' IntOrString as a rolling update reads it:
// a count (JSON number) or a percentage ("25%").
type IntOrPercent struct {
	Value   int
	Percent bool
}

// Count and Pct make IntOrPercents.
func Count(n int) *IntOrPercent { return &IntOrPercent{Value: n} }
func Pct(n int) *IntOrPercent   { return &IntOrPercent{Value: n, Percent: true} }

func (v IntOrPercent) String() string {
	if v.Percent {
		return strconv.Itoa(v.Value) + "%"
	}
	return strconv.Itoa(v.Value)
}

// MarshalJSON writes a count as a number and a percentage as "N%".
func (v IntOrPercent) MarshalJSON() ([]byte, error) {
	if v.Percent {
		return json.Marshal(v.String())
	}
	return json.Marshal(v.Value)
}

// UnmarshalJSON reads a whole number or a string "N%" (N whole).
func (v *IntOrPercent) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		n, ok := strings.CutSuffix(s, "%")
		p, err := strconv.Atoi(n)
		if !ok || err != nil || n == "" || n[0] == '+' || n[0] == '-' {
			return fmt.Errorf("%q is not a percentage: want a whole number followed by %%, such as \"25%%\"", s)
		}
		*v = IntOrPercent{Value: p, Percent: true}
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("want a count or a percentage such as \"25%%\", not %s", b)
	}
	if f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return fmt.Errorf("%s is not a whole count", b)
	}
	*v = IntOrPercent{Value: int(f)}
	return nil
}

// scaled is the value against replicas: a percentage rounded up or down.
func (v IntOrPercent) scaled(replicas int, up bool) int {
	if !v.Percent {
		return v.Value
	}
	n := v.Value * replicas
	if up {
		return (n + 99) / 100
	}
	return n / 100
}

// Defaults fills the omitted fields with Kubernetes' defaults; a Canary
// keeps no rollingUpdate. It is idempotent.
func (s *Spec) Defaults() {
	if s.Type == "" {
		s.Type = RollingUpdate
	}
	if s.Type == RollingUpdate {
		ru := RollingParams{}
		if s.RollingUpdate != nil {
			ru = *s.RollingUpdate
		}
		if ru.MaxSurge == nil {
			ru.MaxSurge = Pct(25)
		}
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = Pct(25)
		}
		s.RollingUpdate = &ru
	}
	if s.MinReadySeconds == nil {
		zero := 0
		s.MinReadySeconds = &zero
	}
	if s.ProgressDeadline == nil {
		d := wire.Duration(DefaultProgressDeadline)
		s.ProgressDeadline = &d
	}
}

// Validate checks a spec after Defaults, naming each field under
// "strategy.".
func (s *Spec) Validate() error {
	var errs hpa.ValidationError
	add := func(field, format string, args ...any) {
		errs = append(errs, &hpa.FieldError{Field: "strategy." + field, Message: fmt.Sprintf(format, args...)})
	}
	if s.MinReadySeconds == nil || s.ProgressDeadline == nil {
		add("", "is missing defaults: call Defaults before Validate")
		return errs
	}
	if *s.MinReadySeconds < 0 || *s.MinReadySeconds > math.MaxInt32 {
		add("minReadySeconds", "must be 0 to %d", math.MaxInt32)
	}
	if *s.ProgressDeadline <= 0 {
		add("progressDeadline", "must be positive")
	} else if time.Duration(*s.ProgressDeadline) <= time.Duration(*s.MinReadySeconds)*time.Second {
		add("progressDeadline", "must be longer than minReadySeconds, as a Deployment's")
	}
	switch s.Type {
	case RollingUpdate:
		if s.Canary != nil {
			add("canary", "is a Canary field, not a RollingUpdate one")
		}
		ru := s.RollingUpdate
		if ru == nil || ru.MaxSurge == nil || ru.MaxUnavailable == nil {
			add("rollingUpdate", "is missing defaults: call Defaults before Validate")
			break
		}
		checkBound(add, "rollingUpdate.maxSurge", *ru.MaxSurge, maxPercent)
		checkBound(add, "rollingUpdate.maxUnavailable", *ru.MaxUnavailable, 100)
		if ru.MaxSurge.Value == 0 && ru.MaxUnavailable.Value == 0 {
			add("rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0: the rollout could never start")
		}
	case Canary:
		if s.RollingUpdate != nil {
			add("rollingUpdate", "is a RollingUpdate field, not a Canary one")
		}
		validateCanary(add, s.Canary)
	default:
		add("type", "must be RollingUpdate or Canary, not %q", s.Type)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func checkBound(add func(field, format string, args ...any), field string, v IntOrPercent, maxPct int) {
	switch {
	case v.Value < 0:
		add(field, "must not be negative")
	case v.Percent && v.Value > maxPct:
		add(field, "must be at most %d%%", maxPct)
	}
}

func validateCanary(add func(field, format string, args ...any), c *CanaryParams) {
	if c == nil {
		add("canary", "is required with type Canary: its steps")
		return
	}
	if len(c.Steps) == 0 || len(c.Steps) > MaxSteps {
		add("canary.steps", "must list 1 to %d steps", MaxSteps)
	}
	for i, st := range c.Steps {
		field := fmt.Sprintf("canary.steps[%d]", i)
		switch {
		case (st.SetWeight != nil) == (st.Pause != 0):
			add(field, "must be one of setWeight or pause")
		case st.SetWeight != nil && (*st.SetWeight < 0 || *st.SetWeight > 100):
			add(field+".setWeight", "must be 0 to 100")
		case st.Pause < 0 || time.Duration(st.Pause) > MaxPause:
			add(field+".pause", "must be positive and at most %v", MaxPause)
		}
	}
	a := c.Analysis
	if a == nil {
		return
	}
	if a.Window <= 0 || time.Duration(a.Window) > analysis.MaxWindow {
		add("canary.analysis.window", "must be positive and at most %v (the span of the gateway signals the scaler keeps)", analysis.MaxWindow)
	}
	if a.MaxErrorRate == nil && a.MaxP99Latency == 0 {
		add("canary.analysis", "needs a threshold: maxErrorRate or maxP99Latency")
	}
	if r := a.MaxErrorRate; r != nil && (math.IsNaN(*r) || *r < 0 || *r > 1) {
		add("canary.analysis.maxErrorRate", "must be 0 to 1")
	}
	if a.MaxP99Latency < 0 {
		add("canary.analysis.maxP99Latency", "must be positive")
	}
	if a.MinRequests < 0 {
		add("canary.analysis.minRequests", "must not be negative")
	}
}

// Bounds are a rolling update's limits for a replica count: how many may
// run above it and how many of it may be unavailable.
type Bounds struct {
	Replicas       int `json:"replicas"`
	MaxSurge       int `json:"maxSurge"`
	MaxUnavailable int `json:"maxUnavailable"`
}

// Resolve turns the spec's limits into counts for replicas, as
// Kubernetes' ResolveFenceposts does: surge rounds up, unavailable down,
// and if both come to 0, one may be unavailable.
func (s Spec) Resolve(replicas int) Bounds {
	s.Defaults()
	ru := s.RollingUpdate
	if ru == nil { // a Canary: no surge, one at a time
		return Bounds{Replicas: replicas, MaxUnavailable: 1}
	}
	b := Bounds{Replicas: replicas, MaxSurge: ru.MaxSurge.scaled(replicas, true), MaxUnavailable: ru.MaxUnavailable.scaled(replicas, false)}
	if b.MaxSurge == 0 && b.MaxUnavailable == 0 {
		b.MaxUnavailable = 1
	}
	return b
}

// Thresholds are the analysis's thresholds as analysis.Judge takes them;
// an omitted maxErrorRate leaves errors unjudged (1).
func (a Analysis) Thresholds() analysis.Thresholds {
	t := analysis.Thresholds{Window: a.Window, MaxErrorRate: 1, MaxP99: a.MaxP99Latency, MinRequests: a.MinRequests}
	if a.MaxErrorRate != nil {
		t.MaxErrorRate = *a.MaxErrorRate
	}
	return t
}

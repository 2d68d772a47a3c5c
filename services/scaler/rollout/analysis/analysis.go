// Package analysis judges a canary: whether the traffic the new version
// served over a window stayed within a rollout's thresholds, as Flagger's
// and Argo Rollouts' analyses do after each step. It is pure: the
// measurements come in (metrics.Store.Versions), a verdict goes out, and
// the controller acts on it.
package analysis

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/wire"
)

// VersionSignals are what the gateways measured of one version of a
// service over a window: the attempts they sent its instances, those
// answered 5xx or not at all, and the 99th percentile of their time to
// response headers.
type VersionSignals struct {
	Requests int64 `json:"requests"`
	Failures int64 `json:"failures"`
	// ErrorRate is Failures/Requests, 0 without requests.
	ErrorRate float64 `json:"errorRate"`
	// P99 is estimated from histogram buckets (interpolated within the
	// bucket that holds it, as Prometheus's histogram_quantile does):
	// with the gateway's doubling buckets, within a factor of two.
	P99 wire.Duration `json:"p99"`
	// Window is the time the counts cover: the window asked for, give or
	// take a push interval, or less when the version is younger or the
	// samples do not reach that far back.
	Window wire.Duration `json:"window"`
}

// Thresholds are a rollout spec's analysis: over Window, the canary's
// error rate must stay at most MaxErrorRate and its p99 at most MaxP99,
// judged once it served at least MinRequests.
type Thresholds struct {
	Window       wire.Duration `json:"window"`
	MaxErrorRate float64       `json:"maxErrorRate"`
	// MaxP99 of 0 leaves latency unjudged.
	MaxP99 wire.Duration `json:"maxP99,omitempty"`
	// MinRequests below which the window says too little to judge; a
	// window without any request is never judged, whatever MinRequests.
	MinRequests int `json:"minRequests"`
}

// MaxWindow is the longest window the scaler's store keeps samples for
// (metrics.MaxVersionWindow, restated: this package imports no store).
const MaxWindow = 10 * time.Minute

// Validate checks thresholds; the error is a fault.Invalid naming the
// field as analysis.window.
func (t Thresholds) Validate() error {
	switch {
	case t.Window.Std() <= 0 || t.Window.Std() > MaxWindow:
		return fault.New(fault.Invalid, "analysis.window: %s, want more than 0 and at most %s", t.Window.Std(), MaxWindow)
	case math.IsNaN(t.MaxErrorRate) || t.MaxErrorRate < 0 || t.MaxErrorRate > 1:
		return fault.New(fault.Invalid, "analysis.maxErrorRate: %g, want 0 to 1", t.MaxErrorRate)
	case t.MaxP99 < 0:
		return fault.New(fault.Invalid, "analysis.maxP99: %s, want 0 (unjudged) or more", t.MaxP99.Std())
	case t.MinRequests < 0:
		return fault.New(fault.Invalid, "analysis.minRequests: %d, want 0 or more", t.MinRequests)
	}
	return nil
}

// Verdict is the outcome of one analysis.
type Verdict string

const (
	// Pass: the canary stayed within every threshold; go on.
	Pass Verdict = "pass"
	// Fail: it broke at least one; roll back.
	Fail Verdict = "fail"
	// Inconclusive: too few requests to judge; wait and judge again.
	Inconclusive Verdict = "inconclusive"
)

// Thresholds' names in Result.Failed: the spec's field names.
const (
	MaxErrorRate = "maxErrorRate"
	MaxP99       = "maxP99"
	MinRequests  = "minRequests"
)

// Result is a verdict with what it was reached on, kept in the rollout's
// status so that a rollback explains itself.
type Result struct {
	Verdict    Verdict        `json:"verdict"`
	Canary     VersionSignals `json:"canary"`
	Baseline   VersionSignals `json:"baseline"`
	Thresholds Thresholds     `json:"thresholds"`
	// Failed names the thresholds the canary broke (Fail), or
	// minRequests when it served too few (Inconclusive).
	Failed  []string `json:"failed,omitempty"`
	Message string   `json:"message"`
}

// Judge decides on the canary's signals over the window. Only the
// canary's own measurements decide: thresholds are the service's
// objectives, which a canary must meet whatever the stable version does.
// The baseline is reported beside them, and the message says when the
// baseline breaks the same threshold, a sign that the cause may be
// shared (a dependency, the load) rather than the new version.
func Judge(t Thresholds, canary, baseline VersionSignals) Result {
	canary.ErrorRate, baseline.ErrorRate = rate(canary), rate(baseline)
	r := Result{Canary: canary, Baseline: baseline, Thresholds: t}
	if canary.Requests == 0 || canary.Requests < int64(t.MinRequests) {
		r.Verdict, r.Failed = Inconclusive, []string{MinRequests}
		r.Message = fmt.Sprintf("the canary served %d requests in %s, fewer than minRequests %d: too few to judge",
			canary.Requests, canary.Window.Std(), max(t.MinRequests, 1))
		return r
	}
	var broken []string
	if canary.ErrorRate > t.MaxErrorRate {
		r.Failed = append(r.Failed, MaxErrorRate)
		broken = append(broken, fmt.Sprintf("error rate %s (%d of %d) above maxErrorRate %s%s",
			percent(canary.ErrorRate), canary.Failures, canary.Requests, percent(t.MaxErrorRate),
			alsoBaseline(baseline.Requests > 0 && baseline.ErrorRate > t.MaxErrorRate, percent(baseline.ErrorRate))))
	}
	if t.MaxP99 > 0 && canary.P99 > t.MaxP99 {
		r.Failed = append(r.Failed, MaxP99)
		broken = append(broken, fmt.Sprintf("p99 %s above maxP99 %s%s", canary.P99.Std(), t.MaxP99.Std(),
			alsoBaseline(baseline.Requests > 0 && baseline.P99 > t.MaxP99, baseline.P99.Std().String())))
	}
	if len(broken) > 0 {
		r.Verdict = Fail
		r.Message = "the canary failed over " + canary.Window.Std().String() + ": " + strings.Join(broken, "; ")
		return r
	}
	r.Verdict = Pass
	r.Message = fmt.Sprintf("the canary passed over %s: error rate %s (%d of %d), p99 %s; baseline error rate %s (%d of %d), p99 %s",
		canary.Window.Std(), percent(canary.ErrorRate), canary.Failures, canary.Requests, canary.P99.Std(),
		percent(baseline.ErrorRate), baseline.Failures, baseline.Requests, baseline.P99.Std())
	return r
}

// rate is Failures/Requests, 0 without requests.
func rate(s VersionSignals) float64 {
	if s.Requests <= 0 {
		return 0
	}
	return float64(s.Failures) / float64(s.Requests)
}

func percent(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

func alsoBaseline(broken bool, value string) string {
	if !broken {
		return ""
	}
	return " (the baseline too: " + value + ")"
}

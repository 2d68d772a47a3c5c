package hpa_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stewardhq/steward/services/scaler/hpa"
)

// TestDefaults: an omitted field takes HPA's default (the "Default
// Behavior" section of the HPA documentation); an explicit one, zero
// included, is kept.
func TestDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "everything omitted",
			in: `{"maxReplicas":5,"metrics":[{"name":"cpu","target":{"type":"utilization","value":80}}]}`,
			want: `{"minReplicas":1,"maxReplicas":5,"metrics":[{"name":"cpu","target":{"type":"utilization","value":80}}],"tolerance":0.1,"syncPeriod":"15s",` +
				`"behavior":{"scaleUp":{"stabilizationWindow":"0s","selectPolicy":"Max","policies":[{"type":"Pods","value":4,"period":"15s"},{"type":"Percent","value":100,"period":"15s"}]},` +
				`"scaleDown":{"stabilizationWindow":"5m0s","selectPolicy":"Max","policies":[{"type":"Percent","value":100,"period":"15s"}]}}}`},
		{name: "explicit zeros are kept",
			in: `{"minReplicas":0,"maxReplicas":5,"metrics":[{"name":"q","target":{"type":"value","value":10},"activation":0}],"tolerance":0,` +
				`"behavior":{"scaleDown":{"stabilizationWindow":"0s"}}}`,
			want: `{"minReplicas":0,"maxReplicas":5,"metrics":[{"name":"q","target":{"type":"value","value":10},"activation":0}],"tolerance":0,"syncPeriod":"15s",` +
				`"behavior":{"scaleUp":{"stabilizationWindow":"0s","selectPolicy":"Max","policies":[{"type":"Pods","value":4,"period":"15s"},{"type":"Percent","value":100,"period":"15s"}]},` +
				`"scaleDown":{"stabilizationWindow":"0s","selectPolicy":"Max","policies":[{"type":"Percent","value":100,"period":"15s"}]}}}`},
		{name: "a direction's own fields win",
			in: `{"maxReplicas":5,"metrics":[{"name":"rps","target":{"type":"averageValue","value":100}}],"syncPeriod":"1s",` +
				`"behavior":{"scaleUp":{"selectPolicy":"Min","tolerance":0.05,"policies":[{"type":"Pods","value":1,"period":"1m"}]}}}`,
			want: `{"minReplicas":1,"maxReplicas":5,"metrics":[{"name":"rps","target":{"type":"averageValue","value":100}}],"tolerance":0.1,"syncPeriod":"1s",` +
				`"behavior":{"scaleUp":{"stabilizationWindow":"0s","selectPolicy":"Min","policies":[{"type":"Pods","value":1,"period":"1m0s"}],"tolerance":0.05},` +
				`"scaleDown":{"stabilizationWindow":"5m0s","selectPolicy":"Max","policies":[{"type":"Percent","value":100,"period":"15s"}]}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s hpa.Spec
			if err := json.Unmarshal([]byte(tt.in), &s); err != nil {
				t.Fatal(err)
			}
			s.Defaults()
			if err := s.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			got, _ := json.Marshal(s)
			if string(got) != tt.want {
				t.Fatalf("Defaults() =\n%s\nwant\n%s", got, tt.want)
			}
			s.Defaults() // idempotent
			if again, _ := json.Marshal(s); string(again) != tt.want {
				t.Fatalf("Defaults() twice =\n%s", again)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // each field error, in order
	}{
		{name: "no metrics, no max", in: `{}`,
			want: []string{"maxReplicas must be positive", "metrics must list at least one metric"}},
		{name: "max below min", in: `{"minReplicas":4,"maxReplicas":2,"metrics":[{"name":"m","target":{"type":"value","value":1}}]}`,
			want: []string{"maxReplicas must be at least minReplicas (4)"}},
		{name: "negative min", in: `{"minReplicas":-1,"maxReplicas":2,"metrics":[{"name":"m","target":{"type":"value","value":1}}]}`,
			want: []string{"minReplicas must not be negative"}},
		{name: "metric fields", in: `{"maxReplicas":2,"metrics":[{"target":{"type":"bogus","value":0}},{"name":"a","target":{"type":"value","value":1},"activation":-1},{"name":"a","target":{"type":"value","value":-3}}]}`,
			want: []string{"metrics[0].name is required", "metrics[0].target.type must be averageValue, value or utilization",
				"metrics[0].target.value must be positive", "metrics[1].activation must be a number at least 0",
				`metrics[2].name "a" is listed twice`, "metrics[2].target.value must be positive"}},
		{name: "tolerance and sync period", in: `{"maxReplicas":2,"tolerance":-0.1,"syncPeriod":"-1s","metrics":[{"name":"m","target":{"type":"value","value":1}}]}`,
			want: []string{"tolerance must be a number at least 0", "syncPeriod must be positive"}},
		// minReplicas 0 is KEDA's scale to zero: it needs an activation on
		// every metric, and a metric that exists at zero replicas.
		{name: "zero min without activation", in: `{"minReplicas":0,"maxReplicas":2,"metrics":[{"name":"m","target":{"type":"value","value":1}}]}`,
			want: []string{"metrics[0].activation is required when minReplicas is 0"}},
		{name: "zero min with utilization", in: `{"minReplicas":0,"maxReplicas":2,"metrics":[{"name":"cpu","target":{"type":"utilization","value":50},"activation":1}]}`,
			want: []string{"metrics[0].target.type utilization cannot wake a service from zero replicas: use minReplicas 1 or another metric"}},
		// HPA's validateScalingRules and validateScalingPolicy.
		{name: "policy fields", in: `{"maxReplicas":2,"metrics":[{"name":"m","target":{"type":"value","value":1}}],"behavior":{"scaleUp":{"policies":[{"type":"Pods","value":0,"period":"15s"},{"type":"Nodes","value":1,"period":"0s"},{"type":"Percent","value":10,"period":"31m"}]}}}`,
			want: []string{"behavior.scaleUp.policies[0].value must be positive", "behavior.scaleUp.policies[1].type must be Pods or Percent",
				"behavior.scaleUp.policies[1].period must be positive and at most 30m0s", "behavior.scaleUp.policies[2].period must be positive and at most 30m0s"}},
		{name: "empty policy list", in: `{"maxReplicas":2,"metrics":[{"name":"m","target":{"type":"value","value":1}}],"behavior":{"scaleDown":{"policies":[]}}}`,
			want: []string{"behavior.scaleDown.policies must list at least one policy"}},
		{name: "window and select policy", in: `{"maxReplicas":2,"metrics":[{"name":"m","target":{"type":"value","value":1}}],"behavior":{"scaleDown":{"stabilizationWindow":"2h","selectPolicy":"Sometimes","tolerance":-1}}}`,
			want: []string{"behavior.scaleDown.stabilizationWindow must be between 0s and 1h0m0s", "behavior.scaleDown.selectPolicy must be Max, Min or Disabled",
				"behavior.scaleDown.tolerance must be a number at least 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s hpa.Spec
			if err := json.Unmarshal([]byte(tt.in), &s); err != nil {
				t.Fatal(err)
			}
			s.Defaults()
			err := s.Validate()
			var verr hpa.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate() = %v, want a ValidationError", err)
			}
			var got []string
			for _, e := range verr {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("Validate() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestValidateNeedsDefaults(t *testing.T) {
	s := spec(1, 2, metric("m", hpa.Value, 1))
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "call Defaults before Validate") {
		t.Fatalf("Validate() before Defaults = %v, want it to say so", err)
	}
}

func TestDefaultsLeavesTheCallerAlone(t *testing.T) {
	up := &hpa.Rules{SelectPolicy: hpa.SelectMin}
	s := spec(1, 2, metric("m", hpa.Value, 1))
	s.Behavior = &hpa.Behavior{ScaleUp: up}
	s.Defaults()
	if up.Policies != nil || up.StabilizationWindow != nil {
		t.Fatalf("Defaults wrote into the caller's Rules: %+v", up)
	}
}

package strategy_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/strategy"
)

func TestIntOrPercentJSON(t *testing.T) {
	for _, tt := range []struct {
		in, out string
		ok      bool
	}{
		{`3`, `3`, true}, {`"25%"`, `"25%"`, true}, {`"0%"`, `"0%"`, true}, {`0`, `0`, true},
		{`-1`, `-1`, true}, // decoded; Validate refuses it
		{`1.5`, ``, false}, {`"25"`, ``, false}, {`"%"`, ``, false}, {`"+5%"`, ``, false},
		{`"-5%"`, ``, false}, {`"5.5%"`, ``, false}, {`true`, ``, false}, {`null`, ``, false}, {`1e300`, ``, false},
	} {
		var v strategy.IntOrPercent
		err := json.Unmarshal([]byte(tt.in), &v)
		if (err == nil) != tt.ok {
			t.Errorf("Unmarshal(%s) error = %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		if b, _ := json.Marshal(v); string(b) != tt.out {
			t.Errorf("Marshal(Unmarshal(%s)) = %s, want %s", tt.in, b, tt.out)
		}
	}
}

func TestDefaults(t *testing.T) {
	var s strategy.Spec
	s.Defaults()
	b, _ := json.Marshal(s)
	want := `{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"},"minReadySeconds":0,"progressDeadline":"10m0s"}`
	if string(b) != want {
		t.Errorf("defaults = %s, want %s", b, want)
	}
	s.Defaults()
	if b2, _ := json.Marshal(s); string(b2) != want {
		t.Errorf("Defaults is not idempotent: %s", b2)
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name, spec string
		want       []string
	}{
		{"empty", `{}`, nil},
		{"counts", `{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0},"minReadySeconds":5,"progressDeadline":"1m"}`, nil},
		{"both zero", `{"rollingUpdate":{"maxSurge":0,"maxUnavailable":"0%"}}`, []string{"strategy.rollingUpdate.maxUnavailable"}},
		{"negative", `{"rollingUpdate":{"maxSurge":-1}}`, []string{"strategy.rollingUpdate.maxSurge"}},
		{"unavailable over 100%", `{"rollingUpdate":{"maxUnavailable":"101%"}}`, []string{"strategy.rollingUpdate.maxUnavailable"}},
		{"surge over 100% is fine", `{"rollingUpdate":{"maxSurge":"200%"}}`, nil},
		{"negative minReady", `{"minReadySeconds":-1}`, []string{"strategy.minReadySeconds"}},
		{"deadline not past minReady", `{"minReadySeconds":60,"progressDeadline":"1m"}`, []string{"strategy.progressDeadline"}},
		{"zero deadline", `{"progressDeadline":"0s"}`, []string{"strategy.progressDeadline"}},
		{"unknown type", `{"type":"Recreate"}`, []string{"strategy.type"}},
		{"canary field on rolling", `{"canary":{"steps":[{"setWeight":10}]}}`, []string{"strategy.canary"}},
		{"canary", `{"type":"Canary","canary":{"steps":[{"setWeight":10},{"pause":"2m"},{"setWeight":50}],"analysis":{"window":"1m","maxErrorRate":0.01,"maxP99Latency":"300ms"}}}`, nil},
		{"canary window past the signals kept", `{"type":"Canary","canary":{"steps":[{"setWeight":10}],"analysis":{"window":"11m","maxErrorRate":0.01}}}`, []string{"strategy.canary.analysis.window"}},
		{"canary without steps", `{"type":"Canary"}`, []string{"strategy.canary"}},
		{"canary bad steps", `{"type":"Canary","canary":{"steps":[{},{"setWeight":10,"pause":"1s"},{"setWeight":101},{"pause":"-1s"}]}}`,
			[]string{"strategy.canary.steps[0]", "strategy.canary.steps[1]", "strategy.canary.steps[2].setWeight", "strategy.canary.steps[3].pause"}},
		{"canary bad analysis", `{"type":"Canary","canary":{"steps":[{"setWeight":10}],"analysis":{"window":"0s","maxErrorRate":2}}}`,
			[]string{"strategy.canary.analysis.window", "strategy.canary.analysis.maxErrorRate"}},
		{"canary analysis without threshold", `{"type":"Canary","canary":{"steps":[{"setWeight":10}],"analysis":{"window":"1m"}}}`,
			[]string{"strategy.canary.analysis"}},
		{"canary with rollingUpdate", `{"type":"Canary","rollingUpdate":{"maxSurge":1},"canary":{"steps":[{"setWeight":10}]}}`, []string{"strategy.rollingUpdate"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s strategy.Spec
			if err := json.Unmarshal([]byte(tt.spec), &s); err != nil {
				t.Fatal(err)
			}
			s.Defaults()
			err := s.Validate()
			var got []string
			var v hpa.ValidationError
			if errors.As(err, &v) {
				for _, e := range v {
					got = append(got, e.Field)
				}
			} else if err != nil {
				t.Fatalf("Validate() = %v, not a ValidationError", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate() names %q, want %q (%v)", got, tt.want, err)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	for _, tt := range []struct {
		spec     string
		replicas int
		want     strategy.Bounds
	}{
		{`{}`, 10, strategy.Bounds{Replicas: 10, MaxSurge: 3, MaxUnavailable: 2}}, // 2.5 up and down
		{`{}`, 4, strategy.Bounds{Replicas: 4, MaxSurge: 1, MaxUnavailable: 1}},
		{`{}`, 1, strategy.Bounds{Replicas: 1, MaxSurge: 1, MaxUnavailable: 0}},
		{`{}`, 0, strategy.Bounds{Replicas: 0, MaxSurge: 0, MaxUnavailable: 1}}, // both 0: one may be unavailable
		{`{"rollingUpdate":{"maxSurge":0,"maxUnavailable":"10%"}}`, 5, strategy.Bounds{Replicas: 5, MaxSurge: 0, MaxUnavailable: 1}},
		{`{"rollingUpdate":{"maxSurge":"100%","maxUnavailable":0}}`, 3, strategy.Bounds{Replicas: 3, MaxSurge: 3, MaxUnavailable: 0}},
	} {
		var s strategy.Spec
		if err := json.Unmarshal([]byte(tt.spec), &s); err != nil {
			t.Fatal(err)
		}
		if got := s.Resolve(tt.replicas); got != tt.want {
			t.Errorf("Resolve(%s, %d) = %+v, want %+v", tt.spec, tt.replicas, got, tt.want)
		}
	}
}

func quote(s string) string {
	if len(s) > 0 && s[len(s)-1] == '%' {
		return `"` + s + `"`
	}
	return s
}

func unmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

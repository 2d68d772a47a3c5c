package ledger_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"a", true},
		{"Web-API_v2.1", true},
		{"...", true},
		{".hidden", true},
		{"0", true},
		{strings.Repeat("x", ledger.MaxNameBytes), true},
		{"", false},
		{".", false},
		{"..", false},
		{strings.Repeat("x", ledger.MaxNameBytes+1), false},
		{"a/b", false},
		{"a b", false},
		{"a%2Fb", false},
		{"a?b", false},
		{"a#b", false},
		{"a:b", false},
		{"café", false},
		{"tab\t", false},
		{"nul\x00", false},
	}
	for _, tt := range tests {
		err := ledger.ValidateName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil && fault.KindOf(err) != fault.Invalid {
			t.Errorf("ValidateName(%q) kind = %v, want invalid", tt.name, fault.KindOf(err))
		}
	}
}

func TestSpecValidateFillsDefaults(t *testing.T) {
	s := webhookSpec("web", 10)
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	if s.MinReplicas == nil || *s.MinReplicas != 1 {
		t.Errorf("minReplicas = %v, want 1", s.MinReplicas)
	}
	if s.Tolerance == nil || *s.Tolerance != hpa.DefaultTolerance {
		t.Errorf("tolerance = %v, want %v", s.Tolerance, hpa.DefaultTolerance)
	}
	if s.SyncPeriod.Std() != hpa.DefaultSyncPeriod {
		t.Errorf("syncPeriod = %v, want %v", s.SyncPeriod.Std(), hpa.DefaultSyncPeriod)
	}
	b := s.Behavior
	if b == nil || b.ScaleUp == nil || b.ScaleDown == nil {
		t.Fatalf("behavior = %+v, want both directions filled", b)
	}
	if w := b.ScaleDown.StabilizationWindow; w == nil || w.Std() != hpa.DefaultScaleDownWindow {
		t.Errorf("behavior.scaleDown.stabilizationWindow = %v, want %v", w, hpa.DefaultScaleDownWindow)
	}
	if w := b.ScaleUp.StabilizationWindow; w == nil || *w != 0 {
		t.Errorf("behavior.scaleUp.stabilizationWindow = %v, want 0s", w)
	}
	if len(b.ScaleUp.Policies) != 2 || len(b.ScaleDown.Policies) != 1 || b.ScaleUp.SelectPolicy != hpa.SelectMax {
		t.Errorf("behavior = up %+v down %+v, want HPA's default policies", b.ScaleUp, b.ScaleDown)
	}
	// The secret is the spec's: Validate neither drops nor shows it.
	if s.Driver.Secret != secret {
		t.Errorf("driver.secret = %q after Validate, want it kept", s.Driver.Secret)
	}
	// Validate is idempotent: a spec read back validates to itself.
	before := mustJSON(t, s)
	if err := s.Validate(); err != nil || mustJSON(t, s) != before {
		t.Errorf("second Validate = %v, spec %s, want nil and %s", err, mustJSON(t, s), before)
	}
	// What the user set explicitly stays, zero included.
	s = webhookSpec("web", 10)
	s.MinReplicas = ptr(3)
	s.Behavior = &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: ptr(wire.Duration(0))}}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if *s.MinReplicas != 3 || *s.Behavior.ScaleDown.StabilizationWindow != 0 {
		t.Errorf("minReplicas %d, scale-down window %v; want the explicit 3 and 0s", *s.MinReplicas, s.Behavior.ScaleDown.StabilizationWindow.Std())
	}
}

type fieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// problems returns the fields an Invalid fault's "errors" extension names,
// as a client reads them from the problem document.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var fe *fault.Error
	if !errors.As(err, &fe) {
		t.Fatalf("Validate() = %v (%T), want a *fault.Error", err, err)
	}
	if fe.Kind != fault.Invalid {
		t.Errorf("kind = %v, want invalid", fe.Kind)
	}
	raw, ok := fe.Fields["errors"]
	if !ok {
		t.Fatalf("fault fields = %v, want an \"errors\" list", fe.Fields)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	var ps []fieldProblem
	if err := json.Unmarshal(b, &ps); err != nil {
		t.Fatalf("errors = %s, want a list of {field, message}: %v", b, err)
	}
	var fields []string
	for _, p := range ps {
		if p.Field == "" || p.Message == "" {
			t.Errorf("problem %+v lacks its field or message", p)
		}
		fields = append(fields, p.Field)
	}
	return fields
}

func TestSpecValidateNamesEveryField(t *testing.T) {
	s := webhookSpec("Web Shop", 0)
	s.Metrics = append(s.Metrics, hpa.Metric{Name: "rps", Target: hpa.Target{Type: "qps", Value: -1}})
	s.Driver.URL = "ftp://hooks.example"
	s.Driver.Secret = ""
	s.Driver.Command = []string{"oops"}
	err := s.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want every field named")
	}
	got := problems(t, err)
	want := []string{"service", "maxReplicas", "metrics[1].name", "metrics[1].target.type", "metrics[1].target.value",
		"driver.command", "driver.url", "driver.secret"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors name %v, want %v", got, want)
	}
	var fe *fault.Error
	errors.As(err, &fe)
	if !strings.HasPrefix(fe.Detail, "invalid spec: ") || !strings.Contains(fe.Detail, "maxReplicas") || !strings.Contains(fe.Detail, "driver.url") {
		t.Errorf("detail = %q, want every problem in one line", fe.Detail)
	}
	var v hpa.ValidationError
	if !errors.As(err, &v) || len(v) != len(want) {
		t.Errorf("cause = %v, want the hpa.ValidationError of %d problems", v, len(want))
	}
}

func TestSpecValidateOneProblem(t *testing.T) {
	tests := []struct {
		name   string
		change func(*ledger.Spec)
		want   string
	}{
		{"no service", func(s *ledger.Spec) { s.Service = "" }, "service"},
		{"upper-case service", func(s *ledger.Spec) { s.Service = "Web" }, "service"},
		{"service too long", func(s *ledger.Spec) { s.Service = strings.Repeat("a", 64) }, "service"},
		{"max below min", func(s *ledger.Spec) { s.MinReplicas = ptr(5); s.MaxReplicas = 4 }, "maxReplicas"},
		{"negative min", func(s *ledger.Spec) { s.MinReplicas = ptr(-1) }, "minReplicas"},
		{"no metrics", func(s *ledger.Spec) { s.Metrics = nil }, "metrics"},
		{"scale to zero without activation", func(s *ledger.Spec) { s.MinReplicas = ptr(0) }, "metrics[0].activation"},
		{"negative tolerance", func(s *ledger.Spec) { s.Tolerance = ptr(-0.1) }, "tolerance"},
		{"empty scale-up policies", func(s *ledger.Spec) {
			s.Behavior = &hpa.Behavior{ScaleUp: &hpa.Rules{Policies: []hpa.Policy{}}}
		}, "behavior.scaleUp.policies"},
		{"policy period too long", func(s *ledger.Spec) {
			s.Behavior = &hpa.Behavior{ScaleDown: &hpa.Rules{Policies: []hpa.Policy{
				{Type: hpa.Pods, Value: 1, Period: wire.Duration(time.Hour)}}}}
		}, "behavior.scaleDown.policies[0].period"},
		{"no driver type", func(s *ledger.Spec) { s.Driver = driver.Spec{} }, "driver.type"},
		{"unknown driver type", func(s *ledger.Spec) { s.Driver.Type = "ssh" }, "driver.type"},
		{"webhook without url", func(s *ledger.Spec) { s.Driver.URL = "" }, "driver.url"},
		{"webhook with secret and secretEnv", func(s *ledger.Spec) { s.Driver.SecretEnv = "HOOK_SECRET" }, "driver.secret"},
		{"process without command", func(s *ledger.Spec) {
			s.Driver = driver.Spec{Type: driver.TypeProcess}
		}, "driver.command"},
		{"kubernetes without name", func(s *ledger.Spec) {
			s.Driver = driver.Spec{Type: driver.TypeKubernetes}
		}, "driver.name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := webhookSpec("web", 10)
			tt.change(&s)
			err := s.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want %s named", tt.want)
			}
			if got := problems(t, err); !reflect.DeepEqual(got, []string{tt.want}) {
				t.Errorf("errors name %v, want [%s]", got, tt.want)
			}
		})
	}
}

// TestSpecStrategy: an omitted strategy is shown with Kubernetes'
// defaults; a Canary needs the process driver and a version to split
// traffic on.
func TestSpecStrategy(t *testing.T) {
	s := webhookSpec("web", 10)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s.Strategy)
	if want := `{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"},"minReadySeconds":0,"progressDeadline":"10m0s"}`; string(b) != want {
		t.Errorf("strategy = %s, want %s", b, want)
	}
	c := webhookSpec("web", 10)
	if err := json.Unmarshal([]byte(`{"type":"Canary","canary":{"steps":[{"setWeight":10},{"pause":"2m"}]}}`), &c.Strategy); err != nil {
		t.Fatal(err)
	}
	err := c.Validate()
	if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "strategy.type Canary needs the process driver") {
		t.Errorf("Validate(webhook Canary) = %v, want invalid: needs the process driver", err)
	}
	pc := ledger.Spec{Spec: c.Spec, Service: "web", Driver: driver.Spec{Type: driver.TypeProcess, ProcessSpec: driver.ProcessSpec{Command: []string{"app"}}}, Strategy: c.Strategy}
	err = pc.Validate()
	if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "driver.version is required with a Canary") {
		t.Errorf("Validate(Canary without a version) = %v, want invalid: driver.version required", err)
	}
	pc.Driver.Version = "v2"
	if err := pc.Validate(); err != nil {
		t.Errorf("Validate(process Canary with a version) = %v", err)
	}
}

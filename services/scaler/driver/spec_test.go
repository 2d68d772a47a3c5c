package driver_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
)

func TestSpecJSON(t *testing.T) {
	in := `{"type":"process","command":["./bin/demo-app","--flag"],"env":{"K":"V"},"gracePeriod":"10s"}`
	var s driver.Spec
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	want := driver.Spec{Type: "process", ProcessSpec: driver.ProcessSpec{
		Command: []string{"./bin/demo-app", "--flag"}, Env: map[string]string{"K": "V"}, GracePeriod: wire.Duration(10 * time.Second)}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Unmarshal = %+v, want %+v", s, want)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	b, _ := json.Marshal(s)
	if string(b) != in {
		t.Errorf("Marshal = %s, want %s", b, in)
	}
}

func TestSpecValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		spec string
		want []string // fields named, in order
	}{
		{"no type", `{}`, []string{"driver.type"}},
		{"unknown type", `{"type":"ssh"}`, []string{"driver.type"}},
		{"process without command", `{"type":"process"}`, []string{"driver.command"}},
		{"process negative grace", `{"type":"process","command":["x"],"gracePeriod":"-1s"}`, []string{"driver.gracePeriod"}},
		{"process bad env", `{"type":"process","command":["x"],"env":{"A=B":"c"}}`, []string{"driver.env"}},
		{"process with a webhook field", `{"type":"process","command":["x"],"url":"http://h"}`, []string{"driver.url"}},
		{"webhook ok", `{"type":"webhook","url":"https://h/scale","secret":"s","maxAttempts":3}`, nil},
		{"webhook without url or secret", `{"type":"webhook"}`, []string{"driver.url", "driver.secret"}},
		{"webhook two secrets", `{"type":"webhook","url":"http://h","secret":"s","secretEnv":"S"}`, []string{"driver.secret"}},
		{"webhook not http", `{"type":"webhook","url":"ftp://h","secret":"s"}`, []string{"driver.url"}},
		{"webhook negative attempts", `{"type":"webhook","url":"http://h","secret":"s","maxAttempts":-1}`, []string{"driver.maxAttempts"}},
		{"kubernetes ok", `{"type":"kubernetes","kind":"StatefulSet","name":"db","namespace":"prod"}`, nil},
		{"kubernetes without name", `{"type":"kubernetes"}`, []string{"driver.name"}},
		{"kubernetes bad kind", `{"type":"kubernetes","kind":"DaemonSet","name":"x"}`, []string{"driver.kind"}},
		{"kubernetes with a process field", `{"type":"kubernetes","name":"x","command":["y"]}`, []string{"driver.command"}},
		{"process versioned", `{"type":"process","command":["x"],"version":"v2.0"}`, nil},
		{"bad version", `{"type":"process","command":["x"],"version":"v\u0001"}`, []string{"driver.version"}},
		{"long version", `{"type":"process","command":["x"],"version":"` + strings.Repeat("v", 129) + `"}`, []string{"driver.version"}},
		{"webhook template", `{"type":"webhook","url":"http://h","secret":"s","template":{"image":"web:2"},"version":"2"}`, nil},
		{"webhook template not an object", `{"type":"webhook","url":"http://h","secret":"s","template":[1]}`, []string{"driver.template"}},
		{"webhook template null", `{"type":"webhook","url":"http://h","secret":"s","template":null}`, nil},
		{"template on process", `{"type":"process","command":["x"],"template":{}}`, []string{"driver.template"}},
		{"kubernetes image", `{"type":"kubernetes","name":"x","image":"reg.example.com/web@sha256:ab","container":"web-1"}`, nil},
		{"kubernetes bad image and container", `{"type":"kubernetes","name":"x","image":"web 1","container":"Web"}`, []string{"driver.image", "driver.container"}},
		{"kubernetes env", `{"type":"kubernetes","name":"x","image":"web:2","env":{"LOG_LEVEL":"debug","a.b-c_d":"1"}}`, nil},
		{"kubernetes env without image, bad name", `{"type":"kubernetes","name":"x","env":{"1X":"v"}}`, []string{"driver.env", "driver.env"}},
		{"kubernetes container without image", `{"type":"kubernetes","name":"x","container":"web"}`, []string{"driver.container"}},
		{"image on webhook", `{"type":"webhook","url":"http://h","secret":"s","image":"x"}`, []string{"driver.image"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s driver.Spec
			if err := json.Unmarshal([]byte(tt.spec), &s); err != nil {
				t.Fatal(err)
			}
			err := s.Validate()
			var got []string
			var verr hpa.ValidationError
			if errors.As(err, &verr) {
				for _, e := range verr {
					got = append(got, e.Field)
				}
			} else if err != nil {
				t.Fatalf("Validate() = %v, not a ValidationError", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate() names %q, want %q (%v)", got, tt.want, err)
			}
			if _, nerr := driver.New(s, driver.Deps{}); tt.want != nil && nerr == nil {
				t.Errorf("New accepted an invalid spec")
			}
		})
	}
}

// TestTemplateHash: the hash names what the instances run, so it changes
// with the template and nothing else, and two spellings of one webhook
// template hash equal once validated.
func TestTemplateHash(t *testing.T) {
	parse := func(in string) driver.Spec {
		t.Helper()
		var s driver.Spec
		if err := json.Unmarshal([]byte(in), &s); err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("Validate(%s) = %v", in, err)
		}
		return s
	}
	hash := func(in string) string { return parse(in).Workload().Hash() }
	base := hash(`{"type":"process","command":["app"],"env":{"A":"1"},"version":"1"}`)
	for _, tt := range []struct {
		name, spec string
		same       bool
	}{
		{"same", `{"type":"process","command":["app"],"env":{"A":"1"},"version":"1"}`, true},
		{"grace period is not the template", `{"type":"process","command":["app"],"env":{"A":"1"},"version":"1","gracePeriod":"3s"}`, true},
		{"version", `{"type":"process","command":["app"],"env":{"A":"1"},"version":"2"}`, false},
		{"env", `{"type":"process","command":["app"],"env":{"A":"2"},"version":"1"}`, false},
		{"command", `{"type":"process","command":["app","-x"],"env":{"A":"1"},"version":"1"}`, false},
		{"dir", `{"type":"process","command":["app"],"env":{"A":"1"},"version":"1","dir":"/tmp"}`, false},
	} {
		if got := hash(tt.spec) == base; got != tt.same {
			t.Errorf("%s: hash equal = %v, want %v", tt.name, got, tt.same)
		}
	}
	a := hash(`{"type":"webhook","url":"http://h","secret":"s","template":{"b":1.50, "a":[1,2]}}`)
	b := hash(`{"type":"webhook","url":"http://other","secret":"t","template":{"a":[1,2],"b":1.50}}`)
	if a != b {
		t.Errorf("one webhook template in two spellings hashes %s and %s", a, b)
	}
	if c := hash(`{"type":"webhook","url":"http://h","secret":"s","template":{"a":[1,2],"b":1.5}}`); c == a {
		t.Errorf("1.50 and 1.5 are kept as written, so they hash apart: got %s for both", c)
	}
	k := driver.Spec{Type: driver.TypeKubernetes, Version: "2", KubernetesSpec: driver.KubernetesSpec{Name: "x", Image: "web:2", Container: "web"}}
	if w := k.WithoutTemplate(); w.Image != "" || w.Container != "" || w.Version != "" || w.Name != "x" {
		t.Errorf("WithoutTemplate() = %+v, want the template gone and the rest kept", w)
	}
}

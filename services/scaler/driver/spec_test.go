package driver_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
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

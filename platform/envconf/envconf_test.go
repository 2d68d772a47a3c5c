package envconf_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
)

type spec struct {
	Addr     string         `envconfig:"ADDR" default:":8081"`
	Drain    time.Duration  `envconfig:"DRAIN" default:"5s"`
	Level    slog.Level     `envconfig:"LOG_LEVEL" default:"info"`
	Format   logging.Format `envconfig:"LOG_FORMAT" default:"auto"`
	Replicas int            `envconfig:"REPLICAS" default:"1"`
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // "" for success, else a substring of the one-line error
	}{
		{"defaults", nil, ""},
		{"bad duration", map[string]string{"STEWARD_DRAIN": "soon"}, `invalid STEWARD_DRAIN="soon"`},
		{"bad int", map[string]string{"STEWARD_REPLICAS": "three"}, `invalid STEWARD_REPLICAS="three"`},
		{"bad level", map[string]string{"STEWARD_LOG_LEVEL": "loud"}, `invalid STEWARD_LOG_LEVEL="loud"`},
		{"bad format", map[string]string{"STEWARD_LOG_FORMAT": "xml"}, `invalid STEWARD_LOG_FORMAT="xml": want auto, json or text`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var s spec
			err := envconf.Load(&s)
			if tc.want == "" {
				if err != nil || s.Addr != ":8081" || s.Drain != 5*time.Second {
					t.Fatalf("Load = %+v, %v; want defaults", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("Load error spans lines: %q", err)
			}
		})
	}
}

func TestUsageListsEveryVariableOnce(t *testing.T) {
	type other struct {
		Replicas int    `envconfig:"REPLICAS" default:"3" desc:"not this one: REPLICAS is listed from spec"`
		Zone     string `envconfig:"ZONE" desc:"the zone"`
	}
	var b strings.Builder
	if err := envconf.Usage(&b, &spec{}, &other{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"STEWARD_ADDR", ":8081", "STEWARD_DRAIN", "5s", "STEWARD_ZONE", "the zone"} {
		if !strings.Contains(out, want) {
			t.Errorf("Usage = %q, want it to contain %q", out, want)
		}
	}
	if n := strings.Count(out, "STEWARD_REPLICAS"); n != 1 {
		t.Errorf("Usage lists STEWARD_REPLICAS %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, "not this one") {
		t.Errorf("Usage took REPLICAS from the second spec:\n%s", out)
	}
}

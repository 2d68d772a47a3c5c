// Package compose holds the tests of deploy/compose/compose.yaml: its
// topology, read with the loader Docker Compose itself uses
// (compose-go), and, with STEWARD_TEST_DOCKER=1, the stack brought up with
// docker compose and checked through its gateway.
package compose

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// testEnv is a .env as `steward gen-env` writes it (cmd/steward's
// TestGenEnv checks the same names), with recognisable values.
var testEnv = map[string]string{
	"STEWARD_ROOT_TOKEN":     "stw_root_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"STEWARD_CONFIG_TOKEN":   "stw_config_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"STEWARD_REGISTRY_TOKEN": "stw_registry_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"STEWARD_ELECTION_TOKEN": "stw_election_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"STEWARD_SCALER_TOKEN":   "stw_scaler_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"STEWARD_GATEWAY_TOKEN":  "stw_gateway_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"STEWARD_NATS_PASSWORD":  "NATSPASSWORDAAAAAAAAAAAAAA",
	"POSTGRES_PASSWORD":      "POSTGRESPASSWORDAAAAAAAAAA",
}

// load reads compose.yaml as `docker compose` does in this folder, with
// env as its .env and nothing from the test's own environment.
func load(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	for k, v := range env {
		b.WriteString(k + "=" + v + "\n")
	}
	envFile := filepath.Join(dir, ".env")
	if err := os.WriteFile(envFile, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(wd, "compose.yaml")},
		cli.WithWorkingDirectory(wd), cli.WithEnvFiles(envFile), cli.WithDotEnv)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

var (
	roles    = []string{"config", "registry", "election", "scaler"}
	ports    = map[string]string{"gateway": "8080", "config": "8081", "registry": "8082", "election": "8083", "scaler": "8084"}
	oneShots = []string{"migrate", "auth-init"}
)

func TestTopology(t *testing.T) {
	p, err := load(t, testEnv)
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	want := []string{"nats-1", "nats-2", "nats-3", "postgres", "migrate", "auth-init", "gateway-1", "gateway-2"}
	for _, r := range roles {
		want = append(want, r+"-1", r+"-2", r+"-3")
	}
	got := p.ServiceNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	svc := func(name string) types.ServiceConfig { return p.Services[name] }
	env := func(name, key string) string {
		if v := svc(name).Environment[key]; v != nil {
			return *v
		}
		return ""
	}

	t.Run("nats", func(t *testing.T) {
		volumes := map[string]bool{}
		for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
			s := svc(n)
			if !strings.HasPrefix(s.Image, "nats:2.") {
				t.Errorf("%s image = %q, want nats:2.*", n, s.Image)
			}
			if got := env(n, "NATS_SERVER_NAME"); got != n {
				t.Errorf("%s NATS_SERVER_NAME = %q, want %q", n, got, n)
			}
			if got := env(n, "STEWARD_NATS_PASSWORD"); got != testEnv["STEWARD_NATS_PASSWORD"] {
				t.Errorf("%s STEWARD_NATS_PASSWORD = %q, want the .env's", n, got)
			}
			data := mount(s, "/data")
			if data == nil || data.Type != types.VolumeTypeVolume {
				t.Errorf("%s: /data is %+v, want a named volume", n, data)
			} else if volumes[data.Source] {
				t.Errorf("%s: volume %s is shared", n, data.Source)
			} else {
				volumes[data.Source] = true
			}
			if !slices.Contains(s.Command, "/etc/nats/nats.conf") || mount(s, "/etc/nats/nats.conf") == nil {
				t.Errorf("%s: command %v or its mounts do not give it nats.conf", n, s.Command)
			}
		}
	})

	t.Run("postgres", func(t *testing.T) {
		s := svc("postgres")
		if s.Image != "postgres:15" {
			t.Errorf("postgres image = %q, want postgres:15", s.Image)
		}
		if m := mount(s, "/var/lib/postgresql/data"); m == nil || m.Type != types.VolumeTypeVolume {
			t.Errorf("postgres data = %+v, want a named volume", m)
		}
		if got := env("postgres", "POSTGRES_PASSWORD"); got != testEnv["POSTGRES_PASSWORD"] {
			t.Errorf("POSTGRES_PASSWORD = %q, want the .env's", got)
		}
	})

	t.Run("migrate", func(t *testing.T) {
		s := svc("migrate")
		if !slices.Equal(s.Command, types.ShellCommand{"migrate"}) {
			t.Errorf("migrate command = %v, want [migrate]", s.Command)
		}
		if s.Build == nil {
			t.Errorf("migrate has no build section: up from a fresh checkout would not build the image")
		}
		if c := s.DependsOn["postgres"].Condition; c != types.ServiceConditionHealthy {
			t.Errorf("migrate waits for postgres %q, want %s", c, types.ServiceConditionHealthy)
		}
	})

	t.Run("voters", func(t *testing.T) {
		for _, r := range roles {
			var ids, voterLists []string
			for i := 1; i <= 3; i++ {
				n := r + "-" + string(rune('0'+i))
				s := svc(n)
				if !slices.Equal(s.Command, types.ShellCommand{r}) {
					t.Errorf("%s command = %v, want [%s]", n, s.Command, r)
				}
				ids = append(ids, env(n, "STEWARD_REPLICA_ID"))
				voterLists = append(voterLists, env(n, "STEWARD_VOTERS"))
				for k, want := range map[string]string{
					"STEWARD_STREAM_REPLICAS": "3",
					"STEWARD_NATS_URL":        "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222",
					"STEWARD_NATS_USER":       "steward",
					"STEWARD_NATS_PASSWORD":   testEnv["STEWARD_NATS_PASSWORD"],
					"STEWARD_DATABASE_URL":    "postgres://postgres:" + testEnv["POSTGRES_PASSWORD"] + "@postgres:5432/steward?sslmode=disable",
					"STEWARD_ADVERTISE_ADDR":  n + ":" + ports[r],
				} {
					if got := env(n, k); got != want {
						t.Errorf("%s %s = %q, want %q", n, k, got, want)
					}
				}
				for _, dep := range []string{"nats-1", "nats-2", "nats-3"} {
					if c := s.DependsOn[dep].Condition; c != types.ServiceConditionHealthy {
						t.Errorf("%s waits for %s %q, want %s", n, dep, c, types.ServiceConditionHealthy)
					}
				}
				if c := s.DependsOn["migrate"].Condition; c != types.ServiceConditionCompletedSuccessfully {
					t.Errorf("%s waits for migrate %q, want %s", n, c, types.ServiceConditionCompletedSuccessfully)
				}
			}
			if !slices.Equal(ids, []string{r + "-1", r + "-2", r + "-3"}) {
				t.Errorf("%s replica ids = %v, want %s-1..3", r, ids, r)
			}
			for i, v := range voterLists {
				if v != strings.Join(ids, ",") {
					t.Errorf("%s-%d STEWARD_VOTERS = %q, want %q (every replica's id, the same everywhere)", r, i+1, v, strings.Join(ids, ","))
				}
			}
		}
		if got := env("scaler-1", "STEWARD_ELECTION_URLS"); got != "http://election-1:8083,http://election-2:8083,http://election-3:8083" {
			t.Errorf("scaler STEWARD_ELECTION_URLS = %q, want every election replica", got)
		}
	})

	t.Run("gateways", func(t *testing.T) {
		for _, n := range []string{"gateway-1", "gateway-2"} {
			s := svc(n)
			if !slices.Equal(s.Command, types.ShellCommand{"gateway"}) {
				t.Errorf("%s command = %v, want [gateway]", n, s.Command)
			}
			if got := env(n, "STEWARD_GATEWAY_ID"); got != n {
				t.Errorf("%s STEWARD_GATEWAY_ID = %q, want %q", n, got, n)
			}
			for _, dep := range []string{"registry-1", "config-1"} {
				if c := s.DependsOn[dep].Condition; c != types.ServiceConditionHealthy {
					t.Errorf("%s waits for %s %q, want %s", n, dep, c, types.ServiceConditionHealthy)
				}
			}
		}
	})

	t.Run("auth", func(t *testing.T) {
		for name, s := range p.Services {
			if s.Image != svc("migrate").Image || name == "migrate" || name == "auth-init" {
				continue
			}
			role := strings.TrimRight(name, "-0123456789")
			for k, want := range map[string]string{
				"STEWARD_AUTH":                 "on",
				"STEWARD_AUTH_BOOTSTRAP_TOKEN": testEnv["STEWARD_ROOT_TOKEN"],
				"STEWARD_AUTH_TOKEN":           testEnv["STEWARD_"+strings.ToUpper(role)+"_TOKEN"],
				"STEWARD_AUTH_VOTERS":          "config-1,config-2,config-3",
			} {
				if got := env(name, k); got != want {
					t.Errorf("%s %s = %q, want %q", name, k, got, want)
				}
			}
		}
		want := "config=" + testEnv["STEWARD_CONFIG_TOKEN"] + ",registry=" + testEnv["STEWARD_REGISTRY_TOKEN"] +
			",election=" + testEnv["STEWARD_ELECTION_TOKEN"] + ",scaler=" + testEnv["STEWARD_SCALER_TOKEN"] +
			",gateway=" + testEnv["STEWARD_GATEWAY_TOKEN"]
		if got := env("auth-init", "STEWARD_AUTH_SERVICE_TOKENS"); got != want {
			t.Errorf("auth-init STEWARD_AUTH_SERVICE_TOKENS = %q, want %q", got, want)
		}
		if got := env("auth-init", "STEWARD_AUTH_TOKEN"); got != testEnv["STEWARD_ROOT_TOKEN"] {
			t.Errorf("auth-init STEWARD_AUTH_TOKEN = %q, want the root token", got)
		}
		for _, n := range []string{"config-1", "config-2", "config-3"} {
			if c := svc("auth-init").DependsOn[n].Condition; c != types.ServiceConditionHealthy {
				t.Errorf("auth-init waits for %s %q, want %s", n, c, types.ServiceConditionHealthy)
			}
		}
		for _, n := range []string{"registry-1", "election-1"} {
			if c := svc(n).DependsOn["auth-init"].Condition; c != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s waits for auth-init %q, want %s", n, c, types.ServiceConditionCompletedSuccessfully)
			}
		}
	})

	// Every process that stays up is restarted and health-checked (a
	// Steward role on its own /readyz); the one-shots run once.
	t.Run("health and restart", func(t *testing.T) {
		for name, s := range p.Services {
			if slices.Contains(oneShots, name) {
				if s.Restart != types.RestartPolicyNo {
					t.Errorf("%s restart = %q, want no (a one-shot)", name, s.Restart)
				}
				continue
			}
			if s.Restart != types.RestartPolicyUnlessStopped {
				t.Errorf("%s restart = %q, want %s", name, s.Restart, types.RestartPolicyUnlessStopped)
			}
			if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Test[0] != "CMD" {
				t.Errorf("%s healthcheck = %+v, want a CMD test", name, s.HealthCheck)
				continue
			}
			if role, ok := ports[strings.TrimRight(name, "-0123456789")]; ok {
				want := types.HealthCheckTest{"CMD", "steward", "probe", "http://127.0.0.1:" + role + "/readyz"}
				if !slices.Equal(s.HealthCheck.Test, want) {
					t.Errorf("%s healthcheck = %v, want %v", name, s.HealthCheck.Test, want)
				}
			}
		}
	})

	// Every wait names a condition that can be met: healthy for a
	// service with a health check, completed for a one-shot.
	t.Run("depends_on", func(t *testing.T) {
		for name, s := range p.Services {
			for dep, d := range s.DependsOn {
				want := types.ServiceConditionHealthy
				if slices.Contains(oneShots, dep) {
					want = types.ServiceConditionCompletedSuccessfully
				}
				if d.Condition != want {
					t.Errorf("%s depends on %s with %q, want %s", name, dep, d.Condition, want)
				}
			}
		}
	})

	t.Run("published ports", func(t *testing.T) {
		published := map[string]string{}
		for name, s := range p.Services {
			for _, port := range s.Ports {
				if !strings.HasPrefix(name, "gateway-") {
					t.Errorf("%s publishes %s:%s, want only the gateways published", name, port.Published, ports["gateway"])
				}
				if port.HostIP != "127.0.0.1" || port.Target != 8080 {
					t.Errorf("%s publishes %s:%s->%d, want 127.0.0.1:<port>->8080", name, port.HostIP, port.Published, port.Target)
				}
				published[name] = port.Published
			}
		}
		if published["gateway-1"] != "8080" {
			t.Errorf("gateway-1 published on %q, want 8080 by default", published["gateway-1"])
		}
	})

	t.Run("hardening", func(t *testing.T) {
		for name, s := range p.Services {
			if s.Image != svc("migrate").Image {
				continue
			}
			if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("%s: read_only %v, cap_drop %v, security_opt %v; want a read-only root, no capabilities, no-new-privileges",
					name, s.ReadOnly, s.CapDrop, s.SecurityOpt)
			}
		}
	})
}

// TestNeedsEnv checks that a stack without its .env refuses to start and
// says how to make one, instead of running with empty secrets.
func TestNeedsEnv(t *testing.T) {
	for k := range testEnv {
		env := maps.Clone(testEnv)
		delete(env, k)
		_, err := load(t, env)
		if err == nil || !strings.Contains(err.Error(), "steward gen-env") {
			t.Errorf("load without %s = %v, want an error naming steward gen-env", k, err)
		}
	}
}

func mount(s types.ServiceConfig, target string) *types.ServiceVolumeConfig {
	for i, v := range s.Volumes {
		if v.Target == target {
			return &s.Volumes[i]
		}
	}
	return nil
}

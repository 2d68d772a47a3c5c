package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/deploy/cluster/smoke"
	"github.com/stewardhq/steward/platform/freeport"
)

// TestDockerCompose brings compose.yaml up with docker compose, as a user
// does, and checks it through a published gateway: the smoke test, then
// what it wrote survives `down` and `up`. The images must be there (make
// compose-test builds them: images/build.sh). Each phase's duration is
// logged.
func TestDockerCompose(t *testing.T) {
	if os.Getenv("STEWARD_TEST_DOCKER") != "1" {
		t.Skip("STEWARD_TEST_DOCKER=1 runs the stack in docker (make compose-test)")
	}
	ctx := t.Context()
	s := newStack(t)

	s.phase("up", "up", "-d", "--wait", "--wait-timeout", "900")
	gw := "http://127.0.0.1:" + s.gatewayPort
	// The smoke test's upstream listens on the host's address on the
	// stack's network, which the gateways reach.
	bridge := s.output("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", s.project+"_default")
	upstream := net.JoinHostPort(bridge, "0")
	for i, port := range []string{s.gatewayPort, s.gateway2Port} {
		s.timed(fmt.Sprintf("smoke (gateway-%d)", i+1), func() error {
			return smoke.Run(ctx, smoke.Target{GatewayURL: "http://127.0.0.1:" + port, Token: s.root, UpstreamAddr: upstream}, t.Logf)
		})
	}

	kept := keepers(s.root)
	s.timed("write what must be kept", func() error { return kept.write(ctx, gw) })
	s.phase("down", "down")
	s.phase("up again", "up", "-d", "--wait", "--wait-timeout", "900")
	s.timed("check what was kept", func() error { return kept.check(ctx, gw) })

	// Steward's NATS user is limited to its own subjects and streams
	// (nats.conf): nothing it did was refused.
	out, err := s.compose(ctx, "logs", "--no-color", "nats-1", "nats-2", "nats-3")
	if err != nil {
		t.Fatalf("docker compose logs: %v\n%s", err, out)
	}
	if strings.Contains(out, "Violation") {
		t.Errorf("the NATS servers refused Steward something:\n%s", grep(out, "Violation"))
	}
}

// grep returns the lines of s that contain sub.
func grep(s, sub string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// stack is one compose project of the test, with its own name, ports
// and .env.
type stack struct {
	t                         *testing.T
	project, dir              string
	files                     []string
	root                      string
	gatewayPort, gateway2Port string
	phases                    []string
}

func newStack(t *testing.T) *stack {
	s := &stack{t: t, project: "steward-test", dir: t.TempDir(), files: []string{"compose.yaml"}}
	s.gatewayPort, s.gateway2Port = fmt.Sprint(freeport.Port(t)), fmt.Sprint(freeport.Port(t))
	// The real `steward gen-env`, from the image under test.
	env := s.output("run", "--rm", "steward:dev", "gen-env")
	s.root = regexp.MustCompile(`(?m)^STEWARD_ROOT_TOKEN=(\S+)$`).FindStringSubmatch(env)[1]
	// `steward auth-init` makes each role's token. Until the image has
	// it, every role uses the root token and auth-init is a no-op.
	if err := exec.Command("docker", "run", "--rm", "steward:dev", "auth-init", "--help").Run(); err != nil {
		t.Logf("steward:dev has no auth-init (%v): every role uses the root token", err)
		env = regexp.MustCompile(`(?m)^(STEWARD_(CONFIG|REGISTRY|ELECTION|SCALER|GATEWAY)_TOKEN)=\S+$`).
			ReplaceAllString(env, "${1}="+s.root)
		override := filepath.Join(s.dir, "no-auth-init.yaml")
		if err := os.WriteFile(override, []byte("services:\n  auth-init:\n    command: [\"version\"]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.files = append(s.files, override)
	}
	if err := os.WriteFile(filepath.Join(s.dir, ".env"), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the phases are logged after the last one.
	t.Cleanup(s.report)
	// Whatever happens, leave nothing behind: containers, network, volumes.
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.compose(context.Background(), "ps", "-a")
			t.Logf("docker compose ps -a:\n%s", out)
			out, _ = s.compose(context.Background(), "logs", "--no-color", "--tail", "40")
			t.Logf("docker compose logs (last 40 lines each):\n%s", out)
		}
		s.phase("down -v", "down", "-v", "--remove-orphans")
	})
	return s
}

func (s *stack) compose(ctx context.Context, args ...string) (string, error) {
	full := []string{"compose", "-p", s.project, "--env-file", filepath.Join(s.dir, ".env")}
	for _, f := range s.files {
		full = append(full, "-f", f)
	}
	cmd := exec.CommandContext(ctx, "docker", append(full, args...)...)
	cmd.Env = append(os.Environ(), "STEWARD_GATEWAY_PORT="+s.gatewayPort, "STEWARD_GATEWAY_2_PORT="+s.gateway2Port)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// phase runs one docker compose command as a timed phase.
func (s *stack) phase(name string, args ...string) {
	s.t.Helper()
	s.timed(name, func() error {
		out, err := s.compose(context.Background(), args...)
		if err != nil {
			return fmt.Errorf("docker compose %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	})
}

func (s *stack) timed(name string, f func() error) {
	s.t.Helper()
	start := time.Now()
	err := f()
	d := time.Since(start).Round(100 * time.Millisecond)
	s.phases = append(s.phases, fmt.Sprintf("%-26s %8s", name, d))
	s.t.Logf("phase %s: %s", name, d)
	if err != nil {
		s.t.Fatalf("phase %s: %v", name, err)
	}
}

func (s *stack) report() {
	s.t.Logf("phases:\n  %s", strings.Join(s.phases, "\n  "))
}

func (s *stack) output(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		s.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// kept is one of each thing that must survive a restart of the stack: a
// key, an instance, an election's leader and a scaler.
type kept struct {
	token  string
	writes []request
	checks []request
}

type request struct {
	method, path, body string
	// want is a string the answer must contain.
	want string
}

func keepers(token string) kept {
	const name = "compose-kept"
	scaler := `{"service":"compose-kept","minReplicas":1,"maxReplicas":3,
 "metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":50}}],
 "driver":{"type":"kubernetes","kind":"Deployment","name":"compose-kept","namespace":"compose-kept"}}`
	return kept{token: token,
		writes: []request{
			{"PUT", "/v1/kv/compose/kept", `"written before down"`, ""},
			{"PUT", "/v1/services/" + name + "/instances/kept-1", `{"address":"10.11.12.13","port":8080}`, ""},
			// A lease long enough to outlive the restart.
			{"POST", "/v1/elections/" + name + "/campaign", `{"candidate":"kept-1","ttl":"30m"}`, ""},
			{"PUT", "/v1/scalers/" + name, scaler, ""},
		},
		checks: []request{
			{"GET", "/v1/kv/compose/kept", "", `"written before down"`},
			{"GET", "/v1/services/" + name + "/instances", "", `"10.11.12.13"`},
			{"GET", "/v1/elections/" + name, "", `"kept-1"`},
			{"GET", "/v1/scalers/" + name, "", `"compose-kept"`},
		}}
}

func (k kept) write(ctx context.Context, gw string) error {
	for _, r := range k.writes {
		if err := k.until(ctx, gw, r); err != nil {
			return err
		}
	}
	return nil
}

func (k kept) check(ctx context.Context, gw string) error {
	for _, r := range k.checks {
		if err := k.until(ctx, gw, r); err != nil {
			return err
		}
	}
	return nil
}

// until sends r until it is answered 2xx with r.want in the body, for up
// to a minute: the gateway may not have learnt a service right after up.
func (k kept) until(ctx context.Context, gw string, r request) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, r.method, gw+r.path, strings.NewReader(r.body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+k.token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
			res.Body.Close()
			if res.StatusCode/100 == 2 && bytes.Contains(body, []byte(r.want)) && json.Valid(body) {
				return nil
			}
			last = fmt.Sprintf("%d %s", res.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: last answer %s", r.method, r.path, last)
		case <-time.After(time.Second):
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is the steward program built once for the end-to-end tests, which
// run it the way a user does: as a process, with signals.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "steward-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "steward")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func devCommand(t *testing.T, env ...string) *exec.Cmd {
	cmd := exec.Command(binary, "dev")
	cmd.Env = append(os.Environ(),
		"STEWARD_DATA_DIR="+t.TempDir(),
		"STEWARD_DEV_NATS_ADDR=127.0.0.1:0",
		"STEWARD_DEV_NATS_MONITOR_ADDR=127.0.0.1:0",
		"STEWARD_CONFIG_ADDR=127.0.0.1:0",
		"STEWARD_REGISTRY_ADDR=127.0.0.1:0",
		"STEWARD_GATEWAY_ADDR=127.0.0.1:0",
		"STEWARD_ELECTION_ADDR=127.0.0.1:0",
		"STEWARD_SCALER_ADDR=127.0.0.1:0",
		"STEWARD_LOG_FORMAT=json",
		"STEWARD_DATABASE_URL=",
	)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

var (
	monitorURL  = regexp.MustCompile(`nats monitor\s+(http://\S+/healthz)`)
	configURL   = regexp.MustCompile(`config\s+(http://\S+)`)
	registryURL = regexp.MustCompile(`registry\s+(http://\S+)`)
	electionURL = regexp.MustCompile(`election\s+(http://\S+)`)
	gatewayURL  = regexp.MustCompile(`gateway\s+(http://\S+)`)
	scalerURL   = regexp.MustCompile(`scaler\s+(http://\S+)`)
)

// TestDevStartsAndStopsOnInterrupt runs `steward dev`, waits for its ready
// banner, checks the embedded NATS answers, then sends SIGINT and expects a
// clean exit (status 0) within 5 seconds.
func TestDevStartsAndStopsOnInterrupt(t *testing.T) {
	cmd := devCommand(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	banner := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "postgres") {
				banner <- all.String()
			}
		}
	}()
	var text string
	select {
	case text = <-banner:
	case <-time.After(60 * time.Second):
		t.Fatalf("steward dev printed no ready banner in 60s; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(text, "ready") || !strings.Contains(text, "fsync on every write") {
		t.Fatalf("banner = %q, want ready with fsync on every write", text)
	}
	m := monitorURL.FindStringSubmatch(text)
	c := configURL.FindStringSubmatch(text)
	r := registryURL.FindStringSubmatch(text)
	e := electionURL.FindStringSubmatch(text)
	g := gatewayURL.FindStringSubmatch(text)
	sc := scalerURL.FindStringSubmatch(text)
	if m == nil || c == nil || r == nil || e == nil || g == nil || sc == nil {
		t.Fatalf("banner lacks the NATS monitor, config, registry, election, gateway or scaler URL:\n%s", text)
	}
	for _, u := range []string{m[1], c[1] + "/healthz", c[1] + "/readyz", r[1] + "/healthz", r[1] + "/readyz",
		e[1] + "/healthz", e[1] + "/readyz", g[1] + "/healthz", g[1] + "/readyz", sc[1] + "/healthz", sc[1] + "/readyz"} {
		// The embedded NATS server's /healthz answers 503 until JetStream
		// is current, which may be a moment after the banner.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(u)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v, status %v; want 200 within 10s", u, err, resp)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, c[1]+"/v1/kv/dev/hello", strings.NewReader(`"world"`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT through steward dev = %v, %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Post(e[1]+"/v1/elections/dev/campaign", "application/json", strings.NewReader(`{"candidate":"me","ttl":"10s"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("campaign through steward dev = %v, %v", resp, err)
	}
	resp.Body.Close()
	// The control plane is discoverable like any service.
	for _, svc := range []string{"steward-config", "steward-registry", "steward-election", "steward-gateway", "steward-scaler"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(r[1] + "/v1/services/" + svc + "/instances?status=passing")
			var list []map[string]any
			if err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&list)
				resp.Body.Close()
			}
			if len(list) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not registered and passing 10s after start", svc)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// One address serves all of Steward.
	resp, err = http.Get(g[1] + "/v1/kv/dev/hello")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/kv through the gateway = %v, %v", resp, err)
	}
	resp.Body.Close()
	// The scaler's API, through the gateway too.
	resp, err = http.Get(g[1] + "/v1/scalers")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/scalers through the gateway = %v, %v", resp, err)
	}
	resp.Body.Close()

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("steward dev after SIGINT: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("steward dev did not exit within 5s of SIGINT")
	}
	t.Logf("exited %v after SIGINT", time.Since(start).Round(time.Millisecond))
}

// TestInvalidSettingExitsWithOneLine checks that a bad STEWARD_* value
// stops the program with a non-zero status and one line naming the variable.
func TestInvalidSettingExitsWithOneLine(t *testing.T) {
	for _, env := range []string{"STEWARD_DEV_NATS_ADDR=nowhere", "STEWARD_LOG_LEVEL=loud", "STEWARD_LOG_FORMAT=xml"} {
		name := strings.SplitN(env, "=", 2)[0]
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "dev")
			cmd.Env = devCommand(t, env).Env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("steward dev with %s: err = %v, want a non-zero exit", env, err)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], name) {
				t.Fatalf("stderr = %q, want one line naming %s", stderr.String(), name)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	out, err := exec.Command(binary, "frobnicate").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown command "frobnicate"`) {
		t.Fatalf("steward frobnicate = %v, %q; want an error naming the command", err, out)
	}
}

// Package devtest runs `steward dev` for end-to-end tests, the way a user
// runs it: the steward program built once (Build), then a process per test
// on free ports (Start), its addresses read from the ready banner it
// prints. Any module of the workspace can use it: the program is built by
// its import path, not from the calling package's directory.
package devtest

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Package is the import path of the steward program.
const Package = "github.com/stewardhq/steward/cmd/steward"

// Build builds the steward program with the race detector into dir and
// returns its path. It takes no testing.TB so that TestMain can call it.
func Build(dir string) (string, error) {
	binary := filepath.Join(dir, "steward")
	out, err := exec.Command("go", "build", "-race", "-o", binary, Package).CombinedOutput()
	if err != nil {
		return "", &BuildError{Err: err, Output: out}
	}
	return binary, nil
}

// BuildError is a failed build with the compiler's output.
type BuildError struct {
	Err    error
	Output []byte
}

func (e *BuildError) Error() string {
	return "go build " + Package + ": " + e.Err.Error() + "\n" + string(e.Output)
}

// Command is `binary dev` with every listener on a free port of 127.0.0.1,
// its data in a fresh directory, JSON logs, no PostgreSQL, and env added
// last (so it overrides any of these).
func Command(t testing.TB, binary string, env ...string) *exec.Cmd {
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
	configURL   = regexp.MustCompile(`config\s+(https?://\S+)`)
	registryURL = regexp.MustCompile(`registry\s+(https?://\S+)`)
	electionURL = regexp.MustCompile(`election\s+(https?://\S+)`)
	gatewayURL  = regexp.MustCompile(`gateway\s+(https?://\S+)`)
	scalerURL   = regexp.MustCompile(`scaler\s+(https?://\S+)`)
	rootToken   = regexp.MustCompile(`root token (\S+) \(shown once`)
)

// Dev is a `steward dev` process started by a test, with the addresses
// its banner printed.
type Dev struct {
	Cmd    *exec.Cmd
	Stderr *Output
	// Monitor is the embedded NATS server's /healthz; the others are
	// base URLs.
	Monitor, Config, Registry, Election, Gateway, Scaler string
	// Root is the root token's secret when dev made one up and printed
	// it (STEWARD_AUTH=on without STEWARD_AUTH_BOOTSTRAP_TOKEN).
	Root string
}

// Output collects what a process writes while a test reads it.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Start runs Command(t, binary, env...) and waits for its ready banner;
// the process is killed when the test ends if it still runs.
func Start(t testing.TB, binary string, env ...string) *Dev {
	t.Helper()
	d := &Dev{Cmd: Command(t, binary, env...), Stderr: &Output{}}
	d.Cmd.Stderr = d.Stderr
	stdout, err := d.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Cmd.Process.Kill() })

	banner := make(chan string, 1)
	go func() {
		// The auth line follows the postgres line: the banner ends there.
		// It goes on reading, so that the process never blocks on a
		// full pipe.
		var all strings.Builder
		sent := false
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if !sent && strings.HasPrefix(strings.TrimSpace(sc.Text()), "auth") {
				banner <- all.String()
				sent = true
			}
		}
	}()
	var text string
	select {
	case text = <-banner:
	case <-time.After(60 * time.Second):
		t.Fatalf("steward dev printed no ready banner in 60s; stderr:\n%s", d.Stderr.String())
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
	d.Monitor, d.Config, d.Registry, d.Election, d.Gateway, d.Scaler = m[1], c[1], r[1], e[1], g[1], sc[1]
	if root := rootToken.FindStringSubmatch(text); root != nil {
		d.Root = root[1]
	}
	return d
}

// WaitReady waits until every URL answers 200.
func WaitReady(t testing.TB, urls ...string) {
	t.Helper()
	WaitReadyWith(t, http.DefaultClient, urls...)
}

// WaitReadyWith is WaitReady through hc.
func WaitReadyWith(t testing.TB, hc *http.Client, urls ...string) {
	t.Helper()
	for _, u := range urls {
		// The embedded NATS server's /healthz answers 503 until JetStream
		// is current, which may be a moment after the banner.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := hc.Get(u)
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
}

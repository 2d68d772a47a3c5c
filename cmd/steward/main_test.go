package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/devtest"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// binary is the steward program built once for the end-to-end tests, which
// run it the way a user does: as a process, with signals.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "steward-bin")
	if err != nil {
		panic(err)
	}
	binary, err = devtest.Build(dir)
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// devCommand, dev, startDev, waitReady and waitReadyWith are
// platform/devtest's, under the names this package's tests have always
// used.

func devCommand(t *testing.T, env ...string) *exec.Cmd { return devtest.Command(t, binary, env...) }

// dev is a `steward dev` process started by a test, with the addresses
// its banner printed.
type dev struct {
	cmd                                                  *exec.Cmd
	stderr                                               *devtest.Output
	monitor, config, registry, election, gateway, scaler string
}

// startDev runs `steward dev` with env added and waits for its ready
// banner; the process is killed when the test ends if it still runs.
func startDev(t *testing.T, env ...string) *dev {
	t.Helper()
	d := devtest.Start(t, binary, env...)
	return &dev{cmd: d.Cmd, stderr: d.Stderr, monitor: d.Monitor, config: d.Config, registry: d.Registry,
		election: d.Election, gateway: d.Gateway, scaler: d.Scaler}
}

// waitReady waits until every URL answers 200.
func waitReady(t *testing.T, urls ...string) {
	t.Helper()
	devtest.WaitReady(t, urls...)
}

// waitFollowing waits until d's services are ready and its gateway
// follows them (answers each one's list): what a reader of the README,
// or a client that talks to the gateway only, starts from.
func waitFollowing(t *testing.T, d *dev) {
	t.Helper()
	waitReady(t, d.config+"/readyz", d.registry+"/readyz", d.election+"/readyz", d.scaler+"/readyz", d.gateway+"/readyz",
		d.gateway+"/v1/services", d.gateway+"/v1/kv?prefix=/", d.gateway+"/v1/elections", d.gateway+"/v1/scalers")
}

// waitReadyWith is waitReady through hc.
func waitReadyWith(t *testing.T, hc *http.Client, urls ...string) {
	t.Helper()
	devtest.WaitReadyWith(t, hc, urls...)
}

// TestDevStartsAndStopsOnInterrupt runs `steward dev`, waits for its ready
// banner, checks the embedded NATS answers, then sends SIGINT and expects a
// clean exit (status 0) within 5 seconds.
func TestDevStartsAndStopsOnInterrupt(t *testing.T) {
	d := startDev(t)
	cmd, stderr := d.cmd, d.stderr
	waitReady(t, d.monitor, d.config+"/healthz", d.config+"/readyz", d.registry+"/healthz", d.registry+"/readyz",
		d.election+"/healthz", d.election+"/readyz", d.gateway+"/healthz", d.gateway+"/readyz", d.scaler+"/healthz", d.scaler+"/readyz")
	req, _ := http.NewRequest(http.MethodPut, d.config+"/v1/kv/dev/hello", strings.NewReader(`"world"`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT through steward dev = %v, %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Post(d.election+"/v1/elections/dev/campaign", "application/json", strings.NewReader(`{"candidate":"me","ttl":"10s"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("campaign through steward dev = %v, %v", resp, err)
	}
	resp.Body.Close()
	// The control plane is discoverable like any service.
	for _, svc := range []string{"steward-config", "steward-registry", "steward-election", "steward-gateway", "steward-scaler"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(d.registry + "/v1/services/" + svc + "/instances?status=passing")
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
	// One address serves all of Steward, each service once the gateway
	// read it in the registry's list (within about half a second).
	waitReady(t, d.gateway+"/v1/kv/dev/hello")
	// The scaler's API, through the gateway too, once the gateway follows
	// steward-scaler as well (its own watch, which may come a moment after
	// steward-config's).
	waitReady(t, d.gateway+"/v1/scalers")

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

// TestDevLimitsOnEveryListener: STEWARD_MAX_WATCHES_PER_CLIENT bounds
// the watches and blocking queries one client holds on each service (429
// problem+json with Retry-After past it), and every listener, the
// gateway's too, refuses a request with both Content-Length and
// Transfer-Encoding with 400 and closes the connection.
func TestDevLimitsOnEveryListener(t *testing.T) {
	const limit = 2
	d := startDev(t, fmt.Sprintf("STEWARD_MAX_WATCHES_PER_CLIENT=%d", limit))
	waitReady(t, d.config+"/readyz", d.registry+"/readyz", d.election+"/readyz", d.scaler+"/readyz", d.gateway+"/readyz")
	// Steward's own components watch each other from 127.0.0.1; the
	// test is a client of its own, from 127.0.0.2.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	defer client.CloseIdleConnections()
	open := func(method, url, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	refused := func(res *http.Response) {
		t.Helper()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" ||
			res.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), fmt.Sprintf(`"limit":%d`, limit)) {
			t.Fatalf("%s %s = %d (Retry-After %q) %s, want 429 problem+json with the limit",
				res.Request.Method, res.Request.URL, res.StatusCode, res.Header.Get("Retry-After"), b)
		}
	}
	for _, watch := range []string{
		d.config + "/v1/watch?prefix=/",
		d.registry + "/v1/services/steward-registry/watch",
		d.election + "/v1/elections/dev/watch",
		d.scaler + "/v1/scalers/dev/watch",
	} {
		for range limit {
			if res := open(http.MethodGet, watch, ""); res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d", watch, res.StatusCode)
			}
		}
		refused(open(http.MethodGet, watch, ""))
	}
	// Blocking queries and a waiting campaign take from the same slots.
	refused(open(http.MethodGet, d.config+"/v1/kv/dev/none?index=1&wait=10s", ""))
	refused(open(http.MethodGet, d.registry+"/v1/services?index=1000000&wait=10s", ""))
	refused(open(http.MethodGet, d.scaler+"/v1/scalers/dev?index=1000000&wait=10s", ""))
	refused(open(http.MethodPost, d.election+"/v1/elections/dev/campaign?wait=10s", `{"candidate":"me","ttl":"10s"}`))

	for _, base := range []string{d.config, d.registry, d.election, d.scaler, d.gateway} {
		webtest.AmbiguousFraming(t, strings.TrimPrefix(base, "http://"), http.MethodPost, "/v1/kv/dev/x")
	}
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
	cmd := exec.Command(binary, "frobnicate")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("steward frobnicate: err = %v, want exit status 2", err)
	}
	if !strings.Contains(stderr.String(), `unknown command "frobnicate"`) || !strings.Contains(stderr.String(), "usage: steward") {
		t.Fatalf("stderr = %q, want the unknown command named and the usage", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout = %q, want nothing", stdout.String())
	}
}

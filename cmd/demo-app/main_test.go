package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/freeport"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/services/registry"
)

// The test binary doubles as the program: with DEMO_APP_TEST_MAIN set it
// runs main, so the end-to-end tests run the real thing as a process, the
// way the scaler's process driver does, signals and all.
func TestMain(m *testing.M) {
	if os.Getenv("DEMO_APP_TEST_MAIN") != "" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// httpClient makes the tests' requests; its idle connections are closed
// when each test ends, so goleak sees no keep-alive goroutines.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// startRegistry serves a real registry replica (registry.Serve, the whole
// service) on an embedded NATS server and returns its URL.
func startRegistry(t *testing.T) string {
	t.Helper()
	nc := qlogtest.StartServer(t).Connect(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := registry.Settings{AllowLocal: true, GuardMinInstances: 3, GuardShare: 0.5, CheckConcurrency: 4, PresenceInterval: 200 * time.Millisecond, Replicated: service.Replicated{ReplicaID: "registry-0", StreamReplicas: 1, SnapshotEvery: 100_000, Process: service.Process{ShutdownTimeout: time.Second}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- registry.Serve(ctx, s, ln, nc, nil, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry.Serve: %v", err)
		}
	})
	url := "http://" + ln.Addr().String()
	webtest.WaitFor(t, 30*time.Second, "the registry to be ready", func() bool {
		res, err := httpClient.Get(url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return url
}

// app is the demo app running as a child process.
type app struct {
	cmd  *exec.Cmd
	url  string
	port int
	logs *syncBuffer
	done chan struct{} // closed when it has exited
	err  error         // Wait's result, once done
}

// wait waits up to d for the app to exit and returns its exit error.
func (a *app) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-a.done:
		return a.err
	case <-time.After(d):
		t.Fatalf("the app did not exit within %s", d)
		return nil
	}
}

// startApp runs the program with the environment the process driver
// gives it (PORT, STEWARD_INSTANCE_ID) plus env.
func startApp(t *testing.T, id string, env ...string) *app {
	t.Helper()
	port := freeport.Port(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "DEMO_APP_TEST_MAIN=1", "STEWARD_LOG_FORMAT=json", "STEWARD_LOG_LEVEL=debug",
		"PORT="+strconv.Itoa(port), "STEWARD_INSTANCE_ID="+id)
	cmd.Env = append(cmd.Env, env...)
	a := &app{cmd: cmd, url: "http://127.0.0.1:" + strconv.Itoa(port), port: port, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = a.logs, a.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.err = cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-a.done
		if t.Failed() {
			t.Logf("demo app's log:\n%s", a.logs)
		}
		httpClient.CloseIdleConnections()
	})
	webtest.WaitFor(t, 10*time.Second, "the app to answer /healthz", func() bool {
		res, err := httpClient.Get(a.url + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return a
}

// TestRegistersServesAndLeaves runs the program against a real registry:
// it registers with its metrics path, burns CPU on GET /, counts the
// requests in /metrics, and on SIGTERM leaves the registry while still
// finishing the request in flight, then exits 0.
func TestRegistersServesAndLeaves(t *testing.T) {
	regURL := startRegistry(t)
	c, err := sdk.New(regURL, sdk.WithHTTPClient(httpClient))
	if err != nil {
		t.Fatal(err)
	}
	rc := c.Services()
	a := startApp(t, "demo-1", "STEWARD_REGISTRY_URL="+regURL, "STEWARD_DEMO_SERVICE=demo-e2e", "STEWARD_DEMO_WORK=1ms", "STEWARD_VERSION=v2.1")

	var inst api.Instance
	webtest.WaitFor(t, 10*time.Second, "demo-1 passing in the registry", func() bool {
		list, _, err := rc.Instances(context.Background(), "demo-e2e", sdk.Query{Status: api.Passing})
		if err != nil || len(list) != 1 {
			return false
		}
		inst = list[0]
		return true
	})
	if inst.Id != "demo-1" || inst.Port != a.port || inst.Metadata["metricsPath"] != "/metrics" || inst.Version == nil || *inst.Version != "v2.1" {
		t.Fatalf("registered instance = id %q port %d metadata %v version %v, want demo-1, %d, metricsPath /metrics, v2.1 (STEWARD_VERSION)", inst.Id, inst.Port, inst.Metadata, inst.Version, a.port)
	}
	var check api.TTLCheck
	if inst.Check != nil {
		check, _ = inst.Check.AsTTLCheck()
	}
	if ttl, _ := time.ParseDuration(check.Ttl); ttl != sdk.AnnounceTTL {
		t.Fatalf("registered check = %+v, want a TTL check of %s", check, sdk.AnnounceTTL)
	}

	// 10 requests of 100 ms: a second of CPU, of which the process
	// collector must see at least half (it reads /proc in 10 ms ticks).
	before := scrape(t, a.url)
	const n, work = 10, 100 * time.Millisecond
	for range n {
		var got workResponse
		if status := getJSON(t, a.url+"/?work="+work.String(), &got); status != http.StatusOK {
			t.Fatalf("GET /?work=%s = %d, want 200", work, status)
		}
		if want := (workResponse{Instance: "demo-1", Version: "v2.1", Worked: "100ms"}); got != want {
			t.Fatalf("GET /?work=%s = %+v, want %+v", work, got, want)
		}
	}
	after := scrape(t, a.url)
	if got := after["demo_requests_total"] - before["demo_requests_total"]; got != n {
		t.Errorf("demo_requests_total grew by %v, want %d", got, n)
	}
	if got, want := after["process_cpu_seconds_total"]-before["process_cpu_seconds_total"], (n * work / 2).Seconds(); got < want {
		t.Errorf("process_cpu_seconds_total grew by %.3fs over %d requests of %s, want at least %.3fs", got, n, work, want)
	}
	if got := after["demo_in_flight"]; got != 0 {
		t.Errorf("demo_in_flight = %v after the requests, want 0", got)
	}

	// A second of work in flight when SIGTERM arrives: the instance must
	// leave the registry while the request still runs, and the request
	// must still be answered.
	type result struct {
		status int
		body   workResponse
	}
	slow := make(chan result, 1)
	go func() {
		var r result
		r.status = getJSONErr(a.url+"/?work=1s", &r.body)
		slow <- r
	}()
	webtest.WaitFor(t, 5*time.Second, "the slow request in flight", func() bool { return scrape(t, a.url)["demo_in_flight"] == 1 })
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 5*time.Second, "demo-1 to leave the registry", func() bool {
		list, _, err := rc.Instances(context.Background(), "demo-e2e", sdk.Query{})
		return err == nil && len(list) == 0
	})
	select {
	case r := <-slow:
		t.Fatalf("the slow request ended (%d) before the instance had left the registry", r.status)
	default:
	}
	if r := <-slow; r.status != http.StatusOK || r.body.Worked != "1s" {
		t.Fatalf("the request in flight at SIGTERM = %d %+v, want 200 and 1s of work", r.status, r.body)
	}
	if err := a.wait(t, 10*time.Second); err != nil {
		t.Fatalf("the app exited with %v after SIGTERM, want status 0", err)
	}
	// The log shows the order: registered; on SIGTERM, out of the
	// registry before the server shuts down.
	at := -1
	for _, msg := range []string{"registered in the service registry", "stopping: leaving the registry, then draining",
		"stopped announcing", "shutting down"} {
		i := strings.Index(a.logs.String(), `"msg":"`+msg+`"`)
		if i <= at {
			t.Fatalf("the log has no %q line after the previous step", msg)
		}
		at = i
	}
}

// TestRunsWithoutRegistry: an empty STEWARD_REGISTRY_URL serves without
// registering, and SIGINT stops the app with status 0.
func TestRunsWithoutRegistry(t *testing.T) {
	a := startApp(t, "solo", "STEWARD_REGISTRY_URL=")
	var got workResponse
	if status := getJSON(t, a.url+"/", &got); status != http.StatusOK || got != (workResponse{Instance: "solo", Worked: "20ms"}) {
		t.Fatalf("GET / = %d %+v, want 200 {solo 20ms}", status, got)
	}
	if err := a.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := a.wait(t, 10*time.Second); err != nil {
		t.Fatalf("the app exited with %v after SIGINT, want status 0", err)
	}
	if !strings.Contains(a.logs.String(), "not registering") {
		t.Errorf("the log does not say it is not registering:\n%s", a.logs)
	}
}

// TestBadSettingsFail: a bad value stops the program with status 1 and a
// line naming the variable.
func TestBadSettingsFail(t *testing.T) {
	for _, tc := range []struct {
		name, env, want string
	}{
		{"work not a duration", "STEWARD_DEMO_WORK=lots", "STEWARD_DEMO_WORK"},
		{"negative work", "STEWARD_DEMO_WORK=-1s", "STEWARD_DEMO_WORK"},
		{"error rate over 1", "STEWARD_DEMO_ERROR_RATE=2", "STEWARD_DEMO_ERROR_RATE"},
		{"port out of range", "PORT=70000", "PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "DEMO_APP_TEST_MAIN=1", "STEWARD_REGISTRY_URL=", tc.env)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("%s: exit = %v, want status 1; output:\n%s", tc.env, err, out)
			}
			if !strings.HasPrefix(string(out), "demo-app: ") || !strings.Contains(string(out), tc.want) {
				t.Fatalf("%s: output = %q, want one line naming %s", tc.env, out, tc.want)
			}
		})
	}
}

// scrape reads the app's /metrics as name → value for unlabelled series.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := httpClient.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// getJSON GETs url and decodes a 200 answer into v.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	status := getJSONErr(url, v)
	if status < 0 {
		t.Fatalf("GET %s failed", url)
	}
	return status
}

// getJSONErr is getJSON for another goroutine: -1 when the request failed.
func getJSONErr(url string, v any) int {
	res, err := httpClient.Get(url)
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK && json.Unmarshal(b, v) != nil {
		return -1
	}
	return res.StatusCode
}

// syncBuffer is a child's output, written by exec's copying goroutines
// and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

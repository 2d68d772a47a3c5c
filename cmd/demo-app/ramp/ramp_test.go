package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	maxReached = regexp.MustCompile(`max replicas reached: (\d+)`)
	backToMin  = regexp.MustCompile(`back to 1 replica: [\d.]+s after the load stopped`)
	// The rollout act's outcomes.
	actA       = regexp.MustCompile(`act A ended Succeeded after [\d.]+s: \d+ requests sent, 0 failed`)
	actB       = regexp.MustCompile(`act B ended Failed after [\d.]+s, rolled back to v2: .+`)
	failedStep = regexp.MustCompile(`analysis of step \d+: fail: `)
	afterB     = regexp.MustCompile(`afterwards: 4 v2 instances passing, 0 of v3`)
	removed    = regexp.MustCompile(`its processes stopped and its instances left the registry`)
)

// TestQuickDemo builds steward, the demo app and this program, and runs
// the program with -quick as `make demo` runs it: it must exit 0 having
// seen the scaler go above one replica and come back to one, and no
// demo-app process may be left once it has stopped steward dev. The
// rollout act must show act A succeeding without a failed request and
// act B failing an analysis and rolled back. It takes about 3 minutes
// with a warm build cache, so -short does not skip it.
func TestQuickDemo(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the leftover check reads /proc")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "../../steward", "..", ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	app := filepath.Join(bin, "demo-app")

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "ramp"), "-quick",
		"-steward", filepath.Join(bin, "steward"), "-app", app, "-dir", t.TempDir())
	// Killed at the deadline, it takes steward dev down with it
	// (Pdeathsig), and steward dev its processes.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 45 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("ramp -quick:\n%s", out)

	// The program checks for processes left over itself; so does the
	// test, by the binary's path, which is this test's alone.
	if pids, lerr := leftovers(app, ""); lerr != nil {
		t.Errorf("look for demo-app processes: %v", lerr)
	} else if len(pids) > 0 {
		for _, pid := range pids {
			_ = kill(pid)
		}
		t.Errorf("demo-app processes left running after the demo: %v", pids)
	}
	if err != nil {
		t.Fatalf("ramp -quick: %v (want exit 0)", err)
	}
	m := maxReached.FindSubmatch(out)
	if m == nil {
		t.Fatal("no \"max replicas reached\" in the summary")
	}
	if n, _ := strconv.Atoi(string(m[1])); n <= 1 {
		t.Errorf("max replicas reached = %d, want more than 1", n)
	}
	if !backToMin.Match(out) {
		t.Error("the summary does not show the replicas back at 1 after the load stopped")
	}
	for _, want := range []struct {
		re   *regexp.Regexp
		what string
	}{
		{actA, "act A ending Succeeded with 0 failed requests"},
		{failedStep, "a failed analysis of the canary"},
		{actB, "act B ending Failed, rolled back"},
		{afterB, "4 v2 instances passing after the rollback"},
		{removed, "the act's scaler deleted and its processes stopped"},
	} {
		if !want.re.Match(out) {
			t.Errorf("the rollout act does not show %s (%s)", want.what, want.re)
		}
	}
}

// TestBannerWatch feeds steward dev's banner in pieces, as a pipe
// delivers it, and expects the three URLs once their lines are in.
func TestBannerWatch(t *testing.T) {
	banner := "steward dev (version dev): ready, Ctrl-C to stop\n" +
		"  gateway       http://127.0.0.1:40343  /s/{service}/..., all of /v1 (Steward's API), the web console at /ui/, routes from /steward/gateway/routes/\n" +
		"  config        http://127.0.0.1:39729  /v1/kv, /v1/txn, /v1/watch, /v1/leases, /openapi.json\n" +
		"  registry      http://127.0.0.1:39263  /v1/services, /v1/registry/leases, /openapi.json\n" +
		"  election      http://127.0.0.1:43613  /v1/elections, /openapi.json\n" +
		"  scaler        http://127.0.0.1:33357  /v1/scalers, /v1/metrics, /openapi.json\n" +
		"  nats          nats://127.0.0.1:41111  JetStream in /tmp/x/nats, fsync on every write, 0 streams at start\n"
	// The scaler's is the last line it needs.
	needed := strings.Index(banner, "  nats ")
	var log strings.Builder
	b := &bannerWatch{w: &log, urls: map[string]string{}, ready: make(chan struct{})}
	for i := 0; i < len(banner); i += 7 {
		select {
		case <-b.ready:
			if i < needed {
				t.Fatalf("ready after %d bytes, before the scaler's line (%d bytes) was in", i, needed)
			}
		default:
		}
		if _, err := b.Write([]byte(banner[i:min(i+7, len(banner))])); err != nil {
			t.Fatal(err)
		}
	}
	<-b.ready
	for name, want := range map[string]string{
		"gateway": "http://127.0.0.1:40343", "registry": "http://127.0.0.1:39263", "scaler": "http://127.0.0.1:33357",
	} {
		if got := b.url(name); got != want {
			t.Errorf("url(%s) = %q, want %q", name, got, want)
		}
	}
	if log.String() != banner {
		t.Errorf("the log got %q, want the banner as written", log.String())
	}
}

func TestQuantile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{"none", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of unsorted", ms(30, 10, 20), 0.5, 20 * time.Millisecond},
		{"p99 of a hundred", ms(seq(100)...), 0.99, 99 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.in, tc.q); got != tc.want {
				t.Errorf("quantile(%v, %v) = %v, want %v", tc.in, tc.q, got, tc.want)
			}
		})
	}
}

// seq is 100, 99, ..., 1 for n = 100: unsorted on purpose.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = n - i
	}
	return s
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/sdk/api"
)

// rolloutSpec is scaler golden-rollout at one replica of the process
// driver, running `sleep` at version: the processes never register, so
// a new version's instances never become available and a rollout stays
// in progress until it is aborted or superseded.
func rolloutSpec(version string) string {
	return fmt.Sprintf(`{"name": "golden-rollout", "service": "golden-rollout", "minReplicas": 1, "maxReplicas": 1,
		"metrics": [{"name": "gateway_rps", "target": {"type": "averageValue", "value": 50}}],
		"driver": {"type": "process", "command": ["sleep", "600"], "gracePeriod": "1s", "version": %q}}`, version)
}

type rolloutJSON struct {
	ID       int64  `json:"id"`
	By       string `json:"by"`
	Phase    string `json:"phase"`
	Strategy string `json:"strategy"`
	Aborted  bool   `json:"aborted"`
	Promoted bool   `json:"promoted"`
	From     struct {
		Version string `json:"version"`
	} `json:"from"`
	To struct {
		Version string `json:"version"`
	} `json:"to"`
	Bounds struct {
		Replicas, MaxSurge, MaxUnavailable int
	} `json:"bounds"`
	Versions []struct {
		Version                   string `json:"version"`
		Running, Ready, Available int
		Draining                  int `json:"draining"`
	} `json:"versions"`
	Controls []struct {
		Op string `json:"op"`
	} `json:"controls"`
}

// running is how many instances of version r's versions say run.
func (r rolloutJSON) running(version string) int {
	for _, v := range r.Versions {
		if v.Version == version {
			return v.Running
		}
	}
	return 0
}

// testRollout drives a rollout of the process driver through the rollout
// commands: status, pause, resume, promote, abort, history; dev is the
// pid of the steward dev whose scaler runs the processes, checked to
// have none left at the end, pass or fail.
func testRollout(t *testing.T, c *ctl, dev int) {
	t.Cleanup(func() {
		c.run("scaler", "delete", "golden-rollout")
		if left := waitNoChildren(dev, "sleep", 15*time.Second); len(left) > 0 {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Errorf("steward dev still ran sleep processes %v 15s after the scaler was deleted; killed them", left)
		}
	})
	c.fails(3, "", "rollout", "status", "golden-rollout")
	c.fails(3, "", "rollout", "history", "golden-rollout")
	c.ok("scaler", "apply", "-f", file(t, "v1.json", rolloutSpec("v1")))
	// A scaler whose template never changed has no rollout yet.
	c.fails(3, "", "rollout", "status", "golden-rollout")
	if out := c.ok("rollout", "history", "golden-rollout", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("rollout history -o json before any change = %q, want []", out)
	}
	c.fails(1, "scaler golden-rollout has no rollout in progress", "rollout", "pause", "golden-rollout") // 409
	waitScaled(t, c, "golden-rollout", 1)

	c.ok("scaler", "apply", "-f", file(t, "v2.json", rolloutSpec("v2")))
	// One v2 instance above the count (maxSurge 25% of 1, rounded up),
	// none of v1 stopped (maxUnavailable rounded down to 0): it stays so.
	r := waitRollout(t, c, func(r rolloutJSON) bool { return r.running("v1") == 1 && r.running("v2") == 1 })
	if r.Phase != "Progressing" || r.Strategy != "RollingUpdate" || r.From.Version != "v1" || r.To.Version != "v2" ||
		r.Bounds.Replicas != 1 || r.Bounds.MaxSurge != 1 || r.Bounds.MaxUnavailable != 0 {
		t.Fatalf("rollout status -o json = %+v", r)
	}
	golden(t, "rollout-status", c.ok("rollout", "status", "golden-rollout"))
	if y := decodeYAML[rolloutJSON](t, c.ok("rollout", "status", "golden-rollout", "-o", "yaml")); y.ID != r.ID || y.To.Version != "v2" {
		t.Fatalf("rollout status -o yaml = %+v, want %+v", y, r)
	}

	if out := c.ok("rollout", "pause", "golden-rollout"); !strings.Contains(out, "golden-rollout   Paused ") {
		t.Fatalf("rollout pause printed %q, want the rollout Paused", out)
	}
	if got := status(t, c); got.Phase != "Paused" {
		t.Fatalf("after pause, the phase = %s", got.Phase)
	}
	c.fails(1, "the rollout of scaler golden-rollout is paused already", "rollout", "pause", "golden-rollout") // 409
	if out := c.ok("rollout", "resume", "golden-rollout"); !strings.Contains(out, "golden-rollout   Progressing ") {
		t.Fatalf("rollout resume printed %q, want the rollout Progressing", out)
	}
	c.fails(1, "is not paused", "rollout", "resume", "golden-rollout")
	if got := decode[rolloutJSON](t, c.ok("rollout", "promote", "golden-rollout", "-o", "json")); !got.Promoted || got.Phase != "Progressing" {
		t.Fatalf("rollout promote -o json = %+v, want it promoted", got)
	}
	if out := c.ok("rollout", "abort", "golden-rollout"); !strings.Contains(out, "message: aborted: rolling back to v1") {
		t.Fatalf("rollout abort printed %q, want it aborted", out)
	}
	c.fails(1, "is aborted already", "rollout", "abort", "golden-rollout")
	c.fails(1, "nothing to promote", "rollout", "promote", "golden-rollout")
	got := status(t, c)
	if !got.Aborted || len(got.Controls) != 4 || got.Controls[0].Op != "rolloutPause" || got.Controls[3].Op != "rolloutAbort" {
		t.Fatalf("after abort: %+v, want it aborted after 4 controls", got)
	}

	// A third template supersedes the aborted rollout.
	c.ok("scaler", "apply", "-f", file(t, "v3.json", rolloutSpec("v3")))
	waitRollout(t, c, func(r rolloutJSON) bool { return r.To.Version == "v3" })
	golden(t, "rollout-history", c.ok("rollout", "history", "golden-rollout"), "ID", "BY", "STARTED", "FINISHED")
	hist := decode[[]rolloutJSON](t, c.ok("rollout", "history", "golden-rollout", "-o", "json"))
	root := decode[struct {
		ID string `json:"id"`
	}](t, c.ok("auth", "whoami", "-o", "json"))
	if len(hist) != 2 || hist[0].To.Version != "v3" || hist[1].Phase != "Superseded" || hist[1].ID >= hist[0].ID || hist[0].By != root.ID {
		t.Fatalf("rollout history -o json = %+v, want v3's, then v2's Superseded, both by %s", hist, root.ID)
	}

	c.fails(2, "accepts 1 arg(s), received 0", "rollout", "status")
	c.fails(2, `unknown command "frobnicate" for "stewardctl rollout"`, "rollout", "frobnicate")
	c.fails(3, "", "rollout", "pause", "golden-none")
	c.ok("scaler", "delete", "golden-rollout")
	c.fails(3, "", "rollout", "status", "golden-rollout")
	if left := waitNoChildren(dev, "sleep", 15*time.Second); len(left) > 0 {
		t.Errorf("sleep processes %v still run 15s after the scaler was deleted", left)
	}
}

// status is the rollout of golden-rollout, as rollout status -o json says.
func status(t *testing.T, c *ctl) rolloutJSON {
	t.Helper()
	return decode[rolloutJSON](t, c.ok("rollout", "status", "golden-rollout", "-o", "json"))
}

// waitRollout polls rollout status until done says it is so, for up to
// 30s, and returns it.
func waitRollout(t *testing.T, c *ctl, done func(rolloutJSON) bool) rolloutJSON {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.run("rollout", "status", "golden-rollout", "-o", "json")
		if r.code == 0 {
			if got := decode[rolloutJSON](t, r.stdout); done(got) {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout status after 30s: exit %d, %s%s", r.code, r.stdout, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitScaled waits up to 30s for scaler name to run replicas.
func waitScaled(t *testing.T, c *ctl, name string, replicas int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := decode[struct {
			Status struct {
				CurrentReplicas int `json:"currentReplicas"`
			} `json:"status"`
		}](t, c.ok("scaler", "get", name, "-o", "json"))
		if s.Status.CurrentReplicas == replicas {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("scaler %s runs %d replicas after 30s, want %d", name, s.Status.CurrentReplicas, replicas)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitNoChildren waits up to timeout until process ppid has no child
// running the program named comm, and returns those still running then.
// It reads /proc: elsewhere than Linux it finds none.
func waitNoChildren(ppid int, comm string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := children(ppid, comm)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// children are the pids of ppid's children running comm, from /proc.
func children(ppid int, comm string) []int {
	if runtime.GOOS != "linux" {
		return nil
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // it exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if len(fields) < 2 || s[open+1:end] != comm || fields[0] == "Z" || fields[1] != strconv.Itoa(ppid) {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(s[:open])); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestStewardctlRolloutTable: a rolling update's table has a row per
// version; a canary's adds its step and each version's share of the
// traffic (the gateway's relative weights as percents), and a driver
// that reports no instances still gets a row.
func TestStewardctlRolloutTable(t *testing.T) {
	v1, v2, msg := "v1", "v2", "promoted: new instances count as available once passing"
	r := api.Rollout{Phase: api.RolloutPhaseProgressing, Strategy: api.RolloutStrategyRollingUpdate,
		From: api.RolloutVersion{Hash: "3f2a9c0d1b7e4a55", Version: &v1}, To: api.RolloutVersion{Hash: "a81c44e09d2b6f10"},
		Versions: []api.VersionStatus{{Version: &v1, Running: 3, Ready: 3, Available: 2}, {Hash: "a81c44e09d2b6f10", Running: 1, Ready: 1}},
		Message:  &msg}
	for _, tc := range []struct {
		name string
		edit func(*api.Rollout)
		want string
	}{
		{"rolling", func(*api.Rollout) {}, `
SCALER   PHASE         STRATEGY        FROM→TO       VERSION    RUNNING   READY   AVAILABLE
web      Progressing   RollingUpdate   v1→a81c44e0   v1         3         3       2
web      Progressing   RollingUpdate   v1→a81c44e0   a81c44e0   1         1       0
message: promoted: new instances count as available once passing
`},
		{"canary", func(r *api.Rollout) {
			r.Strategy, r.Message = api.RolloutStrategyCanary, nil
			r.To.Version, r.Versions[1].Version = &v2, &v2
			r.Canary = &api.CanaryStatus{Step: 2, Weights: map[string]int{"v1": 180, "v2": 20}}
		}, `
SCALER   PHASE         STRATEGY   FROM→TO   STEP   VERSION   WEIGHT   RUNNING   READY   AVAILABLE
web      Progressing   Canary     v1→v2     2      v1        90%      3         3       2
web      Progressing   Canary     v1→v2     2      v2        10%      1         1       0
`},
		{"canary before its first weight", func(r *api.Rollout) {
			r.Strategy, r.Message = api.RolloutStrategyCanary, nil
			r.To.Version, r.Versions[1].Version = &v2, &v2
			r.Canary = &api.CanaryStatus{Weights: map[string]int{}}
		}, `
SCALER   PHASE         STRATEGY   FROM→TO   STEP   VERSION   WEIGHT   RUNNING   READY   AVAILABLE
web      Progressing   Canary     v1→v2     0      v1        <none>   3         3       2
web      Progressing   Canary     v1→v2     0      v2        <none>   1         1       0
`},
		{"no instances", func(r *api.Rollout) { r.Versions = nil; r.Message = nil }, `
SCALER   PHASE         STRATEGY        FROM→TO       VERSION   RUNNING   READY    AVAILABLE
web      Progressing   RollingUpdate   v1→a81c44e0   <none>    <none>    <none>   <none>
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := r
			r.Versions = slices.Clone(r.Versions)
			tc.edit(&r)
			var b strings.Builder
			if err := rolloutTable("web", &r).write(&b); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != strings.TrimPrefix(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", got, strings.TrimPrefix(tc.want, "\n"))
			}
		})
	}
}

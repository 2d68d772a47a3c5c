package driver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/driver"
)

// newProcess returns a process driver running this test binary as the
// helper service, closed at the end of the test.
func newProcess(t *testing.T, grace time.Duration, env map[string]string) (*driver.Process, *logRecorder) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := map[string]string{"DRIVER_TEST_HELPER": "1"}
	for k, v := range env {
		e[k] = v
	}
	spec := driver.Spec{Type: driver.TypeProcess, ProcessSpec: driver.ProcessSpec{
		Command: []string{exe, "-test.run=^$"}, Env: e, GracePeriod: wire.Duration(grace)}}
	logs := &logRecorder{}
	d, err := driver.New(spec, driver.Deps{Service: "demo", Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	p := d.(*driver.Process)
	t.Cleanup(func() { p.Close() })
	return p, logs
}

// answer GETs path on the instance's port.
func answer(port int, path string) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitServing waits until every instance answers its own ID on its port.
func waitServing(t *testing.T, insts []driver.Instance) {
	t.Helper()
	for _, in := range insts {
		eventually(t, in.ID+" serving", func() bool {
			got, err := answer(in.Port, "/")
			return err == nil && got == in.ID
		})
	}
}

func ids(insts []driver.Instance) []string {
	out := make([]string, len(insts))
	for i, in := range insts {
		out[i] = in.ID
	}
	return out
}

func TestProcessScaleUpAndDown(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, logs := newProcess(t, 5*time.Second, nil)

	res, err := p.Scale(ctx, 3, 1)
	if err != nil || res.Previous != 0 || res.Replicas != 3 {
		t.Fatalf("Scale(3) = %+v, %v; want 0 → 3", res, err)
	}
	insts := p.Instances()
	if got, want := ids(insts), []string{"demo-1", "demo-2", "demo-3"}; !slices.Equal(got, want) {
		t.Fatalf("Instances() = %q, want %q", got, want)
	}
	ports := map[int]bool{}
	for _, in := range insts {
		ports[in.Port] = true
	}
	if len(ports) != 3 {
		t.Errorf("ports %v are not distinct", insts)
	}
	// Each answers its own ID on its own port: the port was free, and it
	// is the one the process got.
	waitServing(t, insts)

	res, err = p.Scale(ctx, 1, 1)
	if err != nil || res.Previous != 3 || res.Replicas != 1 {
		t.Fatalf("Scale(1) = %+v, %v; want 3 → 1", res, err)
	}
	if !strings.Contains(res.Detail, "stopped 2 (0 killed") {
		t.Errorf("Scale(1).Detail = %q, want 2 stopped gracefully", res.Detail)
	}
	if got, want := ids(p.Instances()), []string{"demo-1"}; !slices.Equal(got, want) {
		t.Errorf("after scaling down Instances() = %q, want the oldest %q", got, want)
	}
	var order []string
	for _, r := range logs.records("stopping process") {
		order = append(order, r["instance"].(string))
	}
	if want := []string{"demo-3", "demo-2"}; !slices.Equal(order, want) {
		t.Errorf("stopped %q, want newest first %q", order, want)
	}
	for _, r := range logs.records("process stopped") {
		if r["status"] != "exit 0" {
			t.Errorf("%s stopped with %v, want a graceful exit 0", r["instance"], r["status"])
		}
	}
	// Their output reached the log a line at a time, tagged.
	drained := 0
	for _, r := range logs.records("draining") {
		if r["stream"] == "stdout" && (r["instance"] == "demo-2" || r["instance"] == "demo-3") {
			drained++
		}
	}
	if drained != 2 {
		t.Errorf("%d draining lines logged, want 2 (log: %v)", drained, logs.records(""))
	}
	for _, in := range insts[1:] {
		if _, err := answer(in.Port, "/"); err == nil {
			t.Errorf("%s still answers on %d", in.ID, in.Port)
		}
	}
	if n, _ := p.Current(ctx); n != 1 {
		t.Errorf("Current() = %d, want 1", n)
	}

	res, err = p.Scale(ctx, 2, 1)
	if err != nil || res.Replicas != 2 {
		t.Fatalf("Scale(2) = %+v, %v", res, err)
	}
	if got, want := ids(p.Instances()), []string{"demo-1", "demo-4"}; !slices.Equal(got, want) {
		t.Errorf("Instances() = %q, want %q", got, want)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := p.Current(ctx); n != 0 {
		t.Errorf("after Close Current() = %d, want 0", n)
	}
	if _, err := p.Scale(ctx, 1, 1); err == nil {
		t.Error("Scale after Close succeeded")
	}
}

func TestProcessKillAfterGracePeriod(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const grace = 300 * time.Millisecond
	p, logs := newProcess(t, grace, map[string]string{"HELPER_MODE": "ignore-term"})
	if _, err := p.Scale(ctx, 1, 1); err != nil {
		t.Fatal(err)
	}
	waitServing(t, p.Instances())

	start := time.Now()
	res, err := p.Scale(ctx, 0, 1)
	took := time.Since(start)
	if err != nil || res.Replicas != 0 {
		t.Fatalf("Scale(0) = %+v, %v", res, err)
	}
	if took < grace {
		t.Errorf("Scale(0) took %v, less than the grace period %v", took, grace)
	}
	if !strings.Contains(res.Detail, "1 killed") {
		t.Errorf("Scale(0).Detail = %q, want 1 killed", res.Detail)
	}
	if len(logs.records("ignoring SIGTERM")) != 1 {
		t.Errorf("the helper did not log that it ignored SIGTERM: %v", logs.records(""))
	}
	if st := logs.records("process stopped"); len(st) != 1 || !strings.Contains(st[0]["status"].(string), "killed") {
		t.Errorf("stopped records = %v, want one killed", st)
	}
}

// A cancelled context does not wait out the grace period.
func TestProcessScaleDownContextCancelled(t *testing.T) {
	t.Parallel()
	p, _ := newProcess(t, time.Minute, map[string]string{"HELPER_MODE": "ignore-term"})
	if _, err := p.Scale(t.Context(), 1, 1); err != nil {
		t.Fatal(err)
	}
	waitServing(t, p.Instances())
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := p.Scale(ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Scale(0) took %v with a cancelled context", took)
	}
}

func TestProcessCrashIsNoticed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, logs := newProcess(t, 5*time.Second, nil)
	if _, err := p.Scale(ctx, 2, 1); err != nil {
		t.Fatal(err)
	}
	insts := p.Instances()
	waitServing(t, insts)

	_, _ = answer(insts[0].Port, "/crash")
	eventually(t, "Current to drop to 1", func() bool { n, _ := p.Current(ctx); return n == 1 })
	if got, want := ids(p.Instances()), []string{"demo-2"}; !slices.Equal(got, want) {
		t.Errorf("Instances() = %q, want %q", got, want)
	}
	eventually(t, "the crash to be logged", func() bool { return len(logs.records("process exited unexpectedly")) == 1 })
	r := logs.records("process exited unexpectedly")[0]
	if r["instance"] != "demo-1" || r["status"] != "exit status 3" || r["level"] != "WARN" {
		t.Errorf("crash record = %v, want demo-1, exit status 3, WARN", r)
	}
	if len(logs.records("crashing")) != 1 {
		t.Errorf("the helper's stderr was not logged: %v", logs.records(""))
	}
	// The next reconcile brings it back.
	if res, err := p.Scale(ctx, 2, 1); err != nil || res.Previous != 1 || res.Replicas != 2 {
		t.Errorf("Scale(2) = %+v, %v; want 1 → 2", res, err)
	}
}

func TestProcessFenced(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, _ := newProcess(t, 5*time.Second, nil)
	if _, err := p.Scale(ctx, 1, 5); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, 0} {
		if res, err := p.Scale(ctx, n, 4); !errors.Is(err, driver.ErrFenced) || res != (driver.Result{}) {
			t.Errorf("Scale(%d, token 4) after token 5 = %+v, %v; want ErrFenced", n, res, err)
		}
	}
	if got := ids(p.Instances()); !slices.Equal(got, []string{"demo-1"}) {
		t.Errorf("a fenced call changed the processes: %q", got)
	}
	if _, err := p.Scale(ctx, 2, 5); err != nil {
		t.Errorf("Scale with the same token = %v", err)
	}
	if _, err := p.Scale(ctx, 1, 6); err != nil {
		t.Errorf("Scale with a newer token = %v", err)
	}
	if _, err := p.Scale(ctx, 3, 5); !errors.Is(err, driver.ErrFenced) {
		t.Errorf("Scale with the deposed token = %v, want ErrFenced", err)
	}
	if n, _ := p.Current(ctx); n != 1 {
		t.Errorf("Current() = %d, want 1", n)
	}
}

func TestProcessStartFails(t *testing.T) {
	t.Parallel()
	d, err := driver.New(driver.Spec{Type: driver.TypeProcess, ProcessSpec: driver.ProcessSpec{
		Command: []string{"./no-such-program"}, Dir: t.TempDir()}}, driver.Deps{Service: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.(*driver.Process).Close()
	res, err := d.Scale(t.Context(), 2, 1)
	if err == nil || res.Replicas != 0 || !strings.Contains(err.Error(), "no-such-program") {
		t.Errorf("Scale = %+v, %v; want an error naming the program and 0 replicas", res, err)
	}
}

// TestProcessStartStopByID: Start runs a template under the ids given,
// with STEWARD_VERSION set, and starts an id once however often it is
// asked (also after that process died); Stop stops ids and counts one
// not running as stopped; both are fenced like Scale; Scale starts the
// template SetTemplate gave it.
func TestProcessStartStopByID(t *testing.T) {
	p, _ := newProcess(t, 2*time.Second, nil)
	ctx := t.Context()
	exe, _ := os.Executable()
	v2 := driver.Template{Version: "v2", Command: []string{exe, "-test.run=^$"}, Env: map[string]string{"DRIVER_TEST_HELPER": "1"}}
	got, err := p.Start(ctx, v2, []string{"web-a-1", "web-a-2"}, 3)
	if err != nil || !slices.Equal(got, []string{"web-a-1", "web-a-2"}) {
		t.Fatalf("Start = %v, %v", got, err)
	}
	insts := p.Instances()
	waitServing(t, insts)
	for _, in := range insts {
		if in.Version != "v2" || in.Hash != v2.Hash() {
			t.Fatalf("instance %+v, want version v2 and hash %s", in, v2.Hash())
		}
		if v, err := answer(in.Port, "/version"); err != nil || v != "v2" {
			t.Fatalf("%s /version = %q, %v: STEWARD_VERSION not set", in.ID, v, err)
		}
	}
	pids := func() []int {
		var out []int
		for _, in := range p.Instances() {
			out = append(out, in.PID)
		}
		return out
	}
	before := pids()
	if got, err := p.Start(ctx, v2, []string{"web-a-1", "web-a-2", "web-a-3"}, 3); err != nil || len(got) != 3 {
		t.Fatalf("Start again = %v, %v", got, err)
	}
	if after := pids(); len(after) != 3 || !slices.Equal(after[:2], before) {
		t.Fatalf("pids %v after starting again, want %v and one more", after, before)
	}
	_, _ = answer(insts[0].Port, "/crash")
	eventually(t, "the crashed process gone", func() bool { return len(p.Instances()) == 2 })
	if _, err := p.Start(ctx, v2, []string{"web-a-1"}, 3); err != nil || len(p.Instances()) != 2 {
		t.Fatalf("a crashed id was started again: %d running, %v", len(p.Instances()), err)
	}
	if _, err := p.Start(ctx, v2, []string{"web-a-9"}, 2); !errors.Is(err, driver.ErrFenced) {
		t.Fatalf("Start with an older token = %v, want ErrFenced", err)
	}
	if _, err := p.Stop(ctx, []string{"web-a-2"}, 2); !errors.Is(err, driver.ErrFenced) {
		t.Fatalf("Stop with an older token = %v, want ErrFenced", err)
	}
	if got, err := p.Stop(ctx, []string{"web-a-2", "web-a-1"}, 3); err != nil || len(got) != 2 {
		t.Fatalf("Stop = %v, %v", got, err)
	}
	if in := p.Instances(); len(in) != 1 || in[0].ID != "web-a-3" {
		t.Fatalf("after Stop: %+v, want web-a-3 alone", in)
	}
	v3 := v2
	v3.Version = "v3"
	p.SetTemplate(v3)
	if _, err := p.Scale(ctx, 2, 3); err != nil {
		t.Fatal(err)
	}
	in := p.Instances()
	if len(in) != 2 || in[1].Version != "v3" || in[0].Version != "v2" {
		t.Fatalf("after Scale: %+v, want web-a-3 (v2) and a v3", in)
	}
}

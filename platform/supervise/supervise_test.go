package supervise

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestKillRestartShutdown: a killed process stays down, exits nobody
// caused are reported and restarted, Shutdown ends it for good; each
// start leaves a header in the log.
func TestKillRestartShutdown(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep program")
	}
	log := filepath.Join(t.TempDir(), "p.log")
	var mu sync.Mutex
	var exits []Exit
	p := &Process{Name: "p", Path: sleep, Args: []string{"30"}, LogPath: log, OnExit: func(e Exit) {
		mu.Lock()
		exits = append(exits, e)
		mu.Unlock()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	starts := func() int { return strings.Count(Tail(log, 100), "==== supervise: start") }
	waitFor(t, "the first start", func() bool { return starts() == 1 && p.Signal(0) == nil })

	p.Kill()
	time.Sleep(300 * time.Millisecond)
	if got := starts(); got != 1 {
		t.Errorf("starts after Kill = %d, want 1 (held down)", got)
	}
	p.Restart()
	waitFor(t, "the start after Restart", func() bool { return starts() == 2 })

	// An exit nobody caused: reported, then started again a second later.
	waitFor(t, "the second process", func() bool { return p.Signal(0) == nil })
	time.Sleep(100 * time.Millisecond)
	_ = p.Signal(syscall.SIGTERM)
	waitFor(t, "the restart after an unexpected exit", func() bool { return starts() == 3 })
	mu.Lock()
	if len(exits) != 1 || exits[0].Proc != "p" {
		t.Errorf("exits = %+v, want one of p", exits)
	}
	mu.Unlock()

	cancel()
	p.Shutdown()
	<-done
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

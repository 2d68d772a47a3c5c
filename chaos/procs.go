package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxRestarts bounds how often the supervisor restarts one process that
// exited on its own.
const maxRestarts = 30

// exitRecord is a process exit the suite did not cause.
type exitRecord struct {
	Proc   string
	At     time.Time
	Status string
	Tail   string // the last lines of its log
}

// proc is one supervised process inside a node's namespace. The supervisor
// restarts it when it exits on its own (counted and reported); the nemesis
// kills, stops and restarts it on purpose.
type proc struct {
	name    string // config-0, nats-1, gateway-0, ...
	role    string // config, registry, election, scaler, gateway, nats
	node    int
	path    string
	args    []string
	env     []string
	logPath string
	onExit  func(exitRecord)

	mu       sync.Mutex
	cmd      *exec.Cmd
	pid      int
	expected bool          // the next exit is the suite's doing
	down     bool          // held down by the nemesis until up is closed
	up       chan struct{} // closed when a held-down process may start again
	stopped  bool          // SIGSTOPped
	starts   int
	exited   chan struct{} // closed when the current process exited
}

// start launches the process (ip netns exec replaces itself with the
// program, so the pid is the program's).
func (p *proc) start() error {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "==== chaos: start %d of %s at %s ====\n", p.starts+1, p.name, time.Now().Format(time.RFC3339Nano))
	args := append([]string{"netns", "exec", nsName(p.node), p.path}, p.args...)
	cmd := exec.Command("ip", args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a Ctrl-C at the terminal reaches only the
	// suite, which then stops everything in order; and killed with the
	// suite if the suite dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	p.mu.Lock()
	p.cmd, p.pid, p.stopped = cmd, cmd.Process.Pid, false
	p.starts++
	p.exited = make(chan struct{})
	p.mu.Unlock()
	return nil
}

// supervise runs the process until ctx ends.
func (p *proc) supervise(ctx context.Context) {
	restarts := 0
	for ctx.Err() == nil {
		if err := p.start(); err != nil {
			p.onExit(exitRecord{Proc: p.name, At: time.Now(), Status: "start failed: " + err.Error()})
			return
		}
		p.mu.Lock()
		cmd, exited := p.cmd, p.exited
		p.mu.Unlock()
		err := cmd.Wait()
		p.mu.Lock()
		expected := p.expected
		p.expected = false
		up := p.up
		down := p.down
		close(exited)
		p.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if !expected {
			status := "exit 0"
			if err != nil {
				status = err.Error()
			}
			p.onExit(exitRecord{Proc: p.name, At: time.Now(), Status: status, Tail: tail(p.logPath, 6)})
			restarts++
			if restarts > maxRestarts {
				return
			}
			if !sleepCtx(ctx, time.Second) {
				return
			}
		}
		if down {
			select {
			case <-ctx.Done():
				return
			case <-up:
			}
		}
	}
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid == 0 {
		return errors.New(p.name + " never started")
	}
	return syscall.Kill(p.pid, sig)
}

// kill sends SIGKILL and holds the process down until restart.
func (p *proc) kill() {
	p.mu.Lock()
	p.expected, p.down, p.up = true, true, make(chan struct{})
	exited := p.exited
	p.mu.Unlock()
	_ = p.signal(syscall.SIGKILL)
	<-exited
}

// restart lets a killed process start again.
func (p *proc) restart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		p.down = false
		close(p.up)
	}
}

// pause and resume are SIGSTOP and SIGCONT.
func (p *proc) pause() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	_ = p.signal(syscall.SIGSTOP)
}

func (p *proc) resume() {
	p.mu.Lock()
	p.stopped = false
	p.mu.Unlock()
	_ = p.signal(syscall.SIGCONT)
}

// term stops the process gracefully (SIGTERM, SIGKILL after grace) and
// starts it again at once: one step of a rolling restart.
func (p *proc) term(grace time.Duration) {
	p.mu.Lock()
	p.expected = true
	exited := p.exited
	p.mu.Unlock()
	_ = p.signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.signal(syscall.SIGKILL)
		<-exited
	}
}

// shutdown kills the process for good (the supervisor's ctx is already
// done); a stopped process is killed too.
func (p *proc) shutdown() {
	p.mu.Lock()
	p.expected = true
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return
	}
	_ = p.signal(syscall.SIGTERM)
	_ = p.signal(syscall.SIGCONT)
	select {
	case <-exited:
	case <-time.After(3 * time.Second):
		_ = p.signal(syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sleepCtx sleeps for d or until ctx ends; it reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

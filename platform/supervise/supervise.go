// Package supervise runs the child processes of the harnesses that start
// Steward as its operators do, each role a process of its own (make chaos,
// make cluster): every process logs to its own file, is started again
// when it exits on its own (counted and reported), and can be killed and
// held down, paused, or stopped gracefully on purpose.
package supervise

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

// DefaultMaxRestarts bounds how often a process that exits on its own is
// started again when Process.MaxRestarts is 0.
const DefaultMaxRestarts = 30

// Exit is a process exit its owner did not cause.
type Exit struct {
	Proc   string
	At     time.Time
	Status string
	Tail   string // the last lines of its log
}

// Process is one supervised process. Fill the exported fields, then call
// Run; the other methods act on the process Run started.
type Process struct {
	Name    string // config-0, nats-1, gateway-0, ...
	Path    string
	Args    []string
	Env     []string
	LogPath string // stdout and stderr, appended to, one header line per start
	// OnExit is told of every exit the owner did not cause (nil: nobody).
	OnExit func(Exit)
	// MaxRestarts bounds the restarts after such exits (0:
	// DefaultMaxRestarts).
	MaxRestarts int

	mu       sync.Mutex
	cmd      *exec.Cmd
	pid      int
	expected bool          // the next exit is the owner's doing
	down     bool          // held down by Kill until Restart
	up       chan struct{} // closed when a held-down process may start again
	starts   int
	exited   chan struct{} // closed when the current process exited
}

// start launches the process.
func (p *Process) start() error {
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "==== supervise: start %d of %s at %s ====\n", p.starts+1, p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a Ctrl-C at the terminal reaches only the
	// owner, which then stops everything in order; and killed with the
	// owner if the owner dies (where the system can).
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	p.mu.Lock()
	p.cmd, p.pid = cmd, cmd.Process.Pid
	p.starts++
	p.exited = make(chan struct{})
	p.mu.Unlock()
	return nil
}

// Run runs the process until ctx ends, starting it again after an exit
// the owner did not cause (a second later), and after Kill once Restart
// is called.
func (p *Process) Run(ctx context.Context) {
	limit := p.MaxRestarts
	if limit == 0 {
		limit = DefaultMaxRestarts
	}
	restarts := 0
	for ctx.Err() == nil {
		if err := p.start(); err != nil {
			p.report(Exit{Proc: p.Name, At: time.Now(), Status: "start failed: " + err.Error()})
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
			p.report(Exit{Proc: p.Name, At: time.Now(), Status: status, Tail: Tail(p.LogPath, 6)})
			restarts++
			if restarts > limit {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
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

func (p *Process) report(e Exit) {
	if p.OnExit != nil {
		p.OnExit(e)
	}
}

// Signal sends sig to the running process.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid == 0 {
		return errors.New(p.Name + " never started")
	}
	return syscall.Kill(p.pid, sig)
}

// Kill sends SIGKILL, waits for the exit and holds the process down until
// Restart.
func (p *Process) Kill() {
	p.mu.Lock()
	p.expected, p.down, p.up = true, true, make(chan struct{})
	exited := p.exited
	p.mu.Unlock()
	_ = p.Signal(syscall.SIGKILL)
	if exited != nil {
		<-exited
	}
}

// Restart lets a killed process start again.
func (p *Process) Restart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		p.down = false
		close(p.up)
	}
}

// Pause and Resume are SIGSTOP and SIGCONT.
func (p *Process) Pause() { _ = p.Signal(syscall.SIGSTOP) }

func (p *Process) Resume() { _ = p.Signal(syscall.SIGCONT) }

// Term stops the process gracefully (SIGTERM, SIGKILL after grace); Run
// starts it again at once: one step of a rolling restart.
func (p *Process) Term(grace time.Duration) {
	p.mu.Lock()
	p.expected = true
	exited := p.exited
	p.mu.Unlock()
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Signal(syscall.SIGKILL)
		<-exited
	}
}

// Shutdown ends the process for good once Run's ctx is done: SIGTERM (and
// SIGCONT, should it be paused), SIGKILL after 3 s. A held-down process
// is let go, so that Run returns.
func (p *Process) Shutdown() {
	p.Restart()
	p.mu.Lock()
	p.expected = true
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	_ = p.Signal(syscall.SIGCONT)
	select {
	case <-exited:
	case <-time.After(3 * time.Second):
		_ = p.Signal(syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// Tail returns the last n lines of a file.
func Tail(path string, n int) string {
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

package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Process runs a service's replicas as local processes: what `steward
// dev` scales. It forgets them when it stops; a new scaler leader starts
// its own.
type Process struct {
	spec   ProcessSpec
	grace  time.Duration
	svc    string
	log    *slog.Logger
	fence  fence
	scaleM sync.Mutex // serialises Scale and Close; held across a stop's wait

	mu     sync.Mutex // guards the fields below; never held while waiting
	procs  []*proc    // running, oldest first
	seq    int
	closed bool
	wg     sync.WaitGroup // the wait goroutines
}

// proc is one running replica.
type proc struct {
	Instance
	cmd      *exec.Cmd
	stopping bool          // set under Process.mu before it is signalled
	done     chan struct{} // closed when it has exited
	err      error         // its exit status, once done
}

// Instance is one running replica, as the registry would know it.
type Instance struct {
	ID   string `json:"id"`
	Port int    `json:"port"`
	PID  int    `json:"pid"`
}

// NewProcess returns a process driver; New validates the spec first.
func NewProcess(spec ProcessSpec, deps Deps) *Process {
	deps.defaults()
	grace := spec.GracePeriod.Std()
	if grace == 0 {
		grace = DefaultGracePeriod
	}
	return &Process{spec: spec, grace: grace, svc: deps.Service, log: deps.Logger.With("driver", TypeProcess, "service", deps.Service)}
}

// OwnsReplicas says nobody but this driver starts or stops the
// processes, so zero running is its starting point, not someone's
// decision to scale the service to zero.
func (p *Process) OwnsReplicas() bool { return true }

// Current counts the running processes; one that exited on its own is
// no longer counted.
func (p *Process) Current(context.Context) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.procs), nil
}

// Instances lists the running processes, oldest first.
func (p *Process) Instances() []Instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Instance, len(p.procs))
	for i, pr := range p.procs {
		out[i] = pr.Instance
	}
	return out
}

// Scale starts processes or stops the newest ones (SIGTERM, then SIGKILL
// after the grace period, or at once if ctx ends) until replicas run, and
// returns when the stopped ones have exited.
func (p *Process) Scale(ctx context.Context, replicas int, token int64) (Result, error) {
	if replicas < 0 {
		return Result{}, fmt.Errorf("process driver: replicas %d is negative", replicas)
	}
	p.scaleM.Lock()
	defer p.scaleM.Unlock()
	if err := p.fence.admit(token); err != nil {
		return Result{}, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return Result{}, errors.New("process driver: closed")
	}
	prev := len(p.procs)
	var victims []*proc
	if replicas < prev {
		// Newest first: the oldest have warmed up and are known good.
		for i := prev - 1; i >= replicas; i-- {
			victims = append(victims, p.procs[i])
			p.procs[i].stopping = true
		}
		p.procs = p.procs[:replicas]
	}
	p.mu.Unlock()

	res := Result{Previous: prev}
	if len(victims) > 0 {
		killed := p.stop(ctx, victims)
		res.Detail = fmt.Sprintf("stopped %d (%d killed after the grace period)", len(victims), killed)
	}
	for started := 0; prev+started < replicas; started++ {
		if err := p.start(); err != nil {
			res.Replicas, _ = p.Current(ctx)
			res.Detail = fmt.Sprintf("started %d of %d", started, replicas-prev)
			return res, err
		}
		res.Detail = fmt.Sprintf("started %d", started+1)
	}
	res.Replicas, _ = p.Current(ctx)
	return res, nil
}

// Close stops every process, each given its grace period.
func (p *Process) Close() error {
	p.scaleM.Lock()
	defer p.scaleM.Unlock()
	p.mu.Lock()
	p.closed = true
	victims := make([]*proc, 0, len(p.procs))
	for i := len(p.procs) - 1; i >= 0; i-- {
		p.procs[i].stopping = true
		victims = append(victims, p.procs[i])
	}
	p.procs = nil
	p.mu.Unlock()
	p.stop(context.Background(), victims)
	p.wg.Wait()
	return nil
}

// start runs one more process on a free port.
func (p *Process) start() error {
	p.mu.Lock()
	inUse := make(map[int]bool, len(p.procs))
	for _, pr := range p.procs {
		inUse[pr.Port] = true
	}
	p.mu.Unlock()
	port, err := freePort(inUse)
	if err != nil {
		return fmt.Errorf("process driver: %w", err)
	}
	p.mu.Lock()
	p.seq++
	id := fmt.Sprintf("%s-%d", p.svc, p.seq)
	p.mu.Unlock()

	cmd := exec.Command(p.spec.Command[0], p.spec.Command[1:]...)
	cmd.Dir = p.spec.Dir
	cmd.Env = os.Environ()
	for k, v := range p.spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(port), "STEWARD_INSTANCE_ID="+id)
	log := p.log.With("instance", id, "port", port)
	stdout, stderr := &lineLogger{log: log, stream: "stdout"}, &lineLogger{log: log, stream: "stderr"}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A grandchild holding the pipes open must not keep Wait from
	// returning once the process itself has gone.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("process driver: start %s: %w", p.spec.Command[0], err)
	}
	pr := &proc{Instance: Instance{ID: id, Port: port, PID: cmd.Process.Pid}, cmd: cmd, done: make(chan struct{})}
	log.Info("process started", "pid", pr.PID)

	p.mu.Lock()
	p.procs = append(p.procs, pr)
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		err := cmd.Wait()
		stdout.flush()
		stderr.flush()
		p.mu.Lock()
		pr.err = err
		unexpected := !pr.stopping
		if unexpected {
			for i, q := range p.procs {
				if q == pr {
					p.procs = append(p.procs[:i], p.procs[i+1:]...)
					break
				}
			}
		}
		p.mu.Unlock()
		if unexpected {
			log.Warn("process exited unexpectedly", "pid", pr.PID, "status", exitStatus(err))
		}
		close(pr.done)
	}()
	return nil
}

// stop signals the victims in order, waits for them all and returns how
// many had to be killed.
func (p *Process) stop(ctx context.Context, victims []*proc) (killed int) {
	for _, pr := range victims {
		p.log.Info("stopping process", "instance", pr.ID, "pid", pr.PID)
		if err := pr.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.log.Warn("SIGTERM failed", "instance", pr.ID, "err", err)
		}
	}
	timer := time.NewTimer(p.grace)
	defer timer.Stop()
	deadline := timer.C
	for _, pr := range victims {
		select {
		case <-pr.done:
		case <-deadline:
			deadline = closedTimeChan
		case <-ctx.Done():
			deadline = closedTimeChan
		}
		select {
		case <-pr.done:
		default:
			killed++
			p.log.Warn("process did not stop within the grace period: killing it", "instance", pr.ID, "pid", pr.PID, "grace", p.grace)
			_ = pr.cmd.Process.Kill()
			<-pr.done
		}
		p.log.Info("process stopped", "instance", pr.ID, "pid", pr.PID, "status", exitStatus(pr.err))
	}
	return killed
}

var closedTimeChan = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

func exitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// freePort asks the kernel for a port no one holds and none of ours was
// given (one may not have bound it yet). Another program could take it
// before the process binds it; the process then fails, is noticed, and
// the next reconcile starts another.
func freePort(inUse map[int]bool) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !inUse[port] {
			return port, nil
		}
	}
	return 0, errors.New("find a free port: the kernel kept offering ports in use")
}

// lineLogger logs a process's output a line at a time. exec.Cmd calls
// Write from one goroutine per stream; flush runs after Wait.
type lineLogger struct {
	log    *slog.Logger
	stream string
	mu     sync.Mutex
	buf    []byte
}

const maxLine = 64 << 10

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > maxLine { // a runaway line is logged in pieces
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
	return len(b), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}

func (l *lineLogger) emit(line []byte) {
	l.log.Info(string(bytes.TrimSuffix(line, []byte("\r"))), "stream", l.stream)
}

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
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Process runs a service's replicas as local processes: what `steward
// dev` scales. It forgets them when it stops; a new scaler leader starts
// its own.
//
// Each process runs one template (Template): Scale starts the current
// one (SetTemplate), Start a given one under ids the caller names. Start
// and Stop are idempotent per id: an id started once is never started
// again, even after it exited, so a leader that resumes its
// predecessor's recorded intent cannot start an instance twice.
type Process struct {
	spec   ProcessSpec
	tmpl   Template // guarded by mu
	grace  time.Duration
	svc    string
	log    *slog.Logger
	fence  fence
	scaleM sync.Mutex // serialises Scale and Close; held across a stop's wait

	mu    sync.Mutex // guards the fields below; never held while waiting
	procs []*proc    // running, oldest first
	seq   int
	// started holds every id ever started.
	started map[string]bool
	closed  bool
	wg      sync.WaitGroup // the wait goroutines
}

// proc is one running replica.
type proc struct {
	Instance
	cmd      *exec.Cmd
	stopping bool          // set under Process.mu before it is signalled
	done     chan struct{} // closed when it has exited
	err      error         // its exit status, once done
}

// Instance is one running replica, as the registry would know it, and
// the template it runs.
type Instance struct {
	ID      string `json:"id"`
	Port    int    `json:"port"`
	PID     int    `json:"pid"`
	Version string `json:"version,omitempty"`
	Hash    string `json:"hash"`
}

// NewProcess returns a process driver; New validates the spec first.
func NewProcess(spec ProcessSpec, deps Deps) *Process {
	deps.defaults()
	grace := spec.GracePeriod.Std()
	if grace == 0 {
		grace = DefaultGracePeriod
	}
	return &Process{spec: spec, grace: grace, svc: deps.Service, log: deps.Logger.With("driver", TypeProcess, "service", deps.Service),
		tmpl: Spec{Type: TypeProcess, ProcessSpec: spec}.Workload(), started: map[string]bool{}}
}

// SetTemplate sets what Scale starts from now on; the processes running
// keep theirs.
func (p *Process) SetTemplate(t Template) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tmpl = t
}

// Start starts one process of t for each id not started before, and
// returns the ids that run t now or did (those started before included),
// in the order given. It stops at the first failure.
func (p *Process) Start(ctx context.Context, t Template, ids []string, token int64) ([]string, error) {
	p.scaleM.Lock()
	defer p.scaleM.Unlock()
	if err := p.fence.admit(token); err != nil {
		return nil, err
	}
	var done []string
	for _, id := range ids {
		if ctx.Err() != nil {
			return done, ctx.Err()
		}
		p.mu.Lock()
		closed, again := p.closed, p.started[id]
		p.mu.Unlock()
		if closed {
			return done, errors.New("process driver: closed")
		}
		if !again {
			if err := p.start(t, id); err != nil {
				return done, err
			}
		}
		done = append(done, id)
	}
	return done, nil
}

// Stop stops the named processes (SIGTERM, then SIGKILL after the grace
// period, or at once if ctx ends) and returns when they have exited. An
// id not running counts as stopped.
func (p *Process) Stop(ctx context.Context, ids []string, token int64) ([]string, error) {
	p.scaleM.Lock()
	defer p.scaleM.Unlock()
	if err := p.fence.admit(token); err != nil {
		return nil, err
	}
	p.mu.Lock()
	var victims []*proc
	p.procs = slices.DeleteFunc(p.procs, func(pr *proc) bool {
		if slices.Contains(ids, pr.ID) {
			pr.stopping = true
			victims = append(victims, pr)
			return true
		}
		return false
	})
	p.mu.Unlock()
	p.stop(ctx, victims)
	return ids, nil
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
	p.mu.Lock()
	tmpl := p.tmpl
	p.mu.Unlock()
	for started := 0; prev+started < replicas; started++ {
		p.mu.Lock()
		p.seq++
		id := fmt.Sprintf("%s-%d", p.svc, p.seq)
		p.mu.Unlock()
		if err := p.start(tmpl, id); err != nil {
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

// start runs one more process of t, named id, on a free port.
func (p *Process) start(t Template, id string) error {
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
	if len(t.Command) == 0 || t.Command[0] == "" {
		return errors.New("process driver: the template has no command")
	}
	cmd := exec.Command(t.Command[0], t.Command[1:]...)
	cmd.Dir = t.Dir
	cmd.Env = os.Environ()
	for k, v := range t.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(port), "STEWARD_INSTANCE_ID="+id)
	if t.Version != "" {
		cmd.Env = append(cmd.Env, "STEWARD_VERSION="+t.Version)
	}
	log := p.log.With("instance", id, "port", port)
	stdout, stderr := &lineLogger{log: log, stream: "stdout"}, &lineLogger{log: log, stream: "stderr"}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A grandchild holding the pipes open must not keep Wait from
	// returning once the process itself has gone.
	cmd.WaitDelay = time.Second
	p.mu.Lock()
	p.started[id] = true
	p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("process driver: start %s: %w", t.Command[0], err)
	}
	pr := &proc{Instance: Instance{ID: id, Port: port, PID: cmd.Process.Pid, Version: t.Version, Hash: t.Hash()}, cmd: cmd, done: make(chan struct{})}
	log.Info("process started", "pid", pr.PID, "version", t.Version)

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

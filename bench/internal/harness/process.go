package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A service child is bench re-executed under a subcommand to run one
// replica of a service alone in a process, so that its memory and CPU can
// be measured without the NATS server or the clients that load it: the
// parent runs those and talks to the child over TCP.
//
// The child prints one JSON line {"addr": ...} once the replica is ready,
// then answers each line on stdin, "stats" or "gc" (runtime.GC first), with
// a JSON line of childStats. It stops when stdin closes.

// ChildStats is the child's memory and CPU as it reports them.
type ChildStats struct {
	RSS        int64 `json:"rss_bytes"`      // VmRSS
	HWM        int64 `json:"peak_rss_bytes"` // VmHWM
	HeapInuse  int64 `json:"heap_inuse_bytes"`
	Goroutines int   `json:"goroutines"`
	// CPU is the process's user + system CPU time so far (getrusage).
	CPU time.Duration `json:"cpu_ns"`
}

// AnswerStats is the child's side of the protocol: it answers requests on
// in until in closes.
func AnswerStats(in io.Reader, enc *json.Encoder) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "gc":
			runtime.GC()
		case "stats":
		default:
			return fmt.Errorf("unknown request %q on stdin", sc.Text())
		}
		var s ChildStats
		var err error
		if s.RSS, s.HWM, err = ReadRSS(); err != nil {
			return err
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.HeapInuse, s.Goroutines = int64(ms.HeapInuse), runtime.NumGoroutine()
		if s.CPU, err = SelfCPU(); err != nil {
			return err
		}
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	return sc.Err()
}

// SelfCPU is this process's user + system CPU time so far (getrusage).
func SelfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// ServiceChild is the parent's handle on a child process running a replica.
type ServiceChild struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser
	out   *bufio.Reader
	URL   string
}

// StartChild re-executes bench with args (the subcommand first) and waits
// for the child to say where it serves.
func StartChild(ctx context.Context, args ...string) (*ServiceChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &ServiceChild{Cmd: cmd, Stdin: stdin, out: bufio.NewReader(stdout)}
	var hello struct{ Addr string }
	if err := c.readJSON(&hello); err != nil {
		c.Stop()
		return nil, fmt.Errorf("child %s did not start: %w", args[0], err)
	}
	c.URL = "http://" + hello.Addr
	return c, nil
}

func (c *ServiceChild) readJSON(v any) error {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read the child's answer: %w", err)
	}
	return json.Unmarshal(line, v)
}

// Stats asks the child for its memory and CPU, after a runtime.GC with gc.
func (c *ServiceChild) Stats(gc bool) (ChildStats, error) {
	req := "stats\n"
	if gc {
		req = "gc\n"
	}
	var s ChildStats
	if _, err := io.WriteString(c.Stdin, req); err != nil {
		return s, fmt.Errorf("ask the child: %w", err)
	}
	return s, c.readJSON(&s)
}

// Stop closes the child's stdin and waits for it to exit.
func (c *ServiceChild) Stop() error {
	c.Stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.Cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = c.Cmd.Process.Kill()
		return fmt.Errorf("the child did not stop within 30s; killed: %v", <-done)
	}
}

// WaitReady polls url/readyz until it answers 200, serving ends (done
// receives), or a minute passes.
func WaitReady(ctx context.Context, url string, done chan error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz answered %s", resp.Status)
		}
		last = err
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("serving returned before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("not ready within a minute: %v", last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ReadRSS returns VmRSS and VmHWM of this process from /proc/self/status.
func ReadRSS() (rss, hwm int64, err error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s %q: %w", name, val, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("VmRSS or VmHWM missing from /proc/self/status")
	}
	return rss, hwm, nil
}

// RaiseFileLimit raises this process's RLIMIT_NOFILE soft limit to the
// hard limit (child processes inherit it), for the watch fan-out's
// thousands of connections. It returns the soft limit in force afterwards.
func RaiseFileLimit() (soft uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return lim.Cur, fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d): %w", lim.Max, err)
		}
		lim = want
	} else {
		// Setting it (to what it already is) also tells the Go runtime
		// not to restore the lower limit it started with for children.
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur, nil
}

// ParseServiceChild parses the command line of a child process that serves
// a service: the NATS server's URL, the CPU profile to write and what own
// adds. It starts the profile; the child calls stopProfile as it exits.
func ParseServiceChild(name string, args []string, stderr io.Writer, own func(*flag.FlagSet)) (natsURL *string, stopProfile func(), err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL = fs.String("url", "", "NATS server URL")
	own(fs)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process to this file")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	stopProfile, err = StartCPUProfile(*cpuProfile)
	if err != nil {
		return nil, nil, err
	}
	return natsURL, stopProfile, nil
}

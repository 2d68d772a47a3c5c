package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
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

// childStats is the child's memory and CPU as it reports them.
type childStats struct {
	RSS        int64 `json:"rss_bytes"`      // VmRSS
	HWM        int64 `json:"peak_rss_bytes"` // VmHWM
	HeapInuse  int64 `json:"heap_inuse_bytes"`
	Goroutines int   `json:"goroutines"`
	// CPU is the process's user + system CPU time so far (getrusage).
	CPU time.Duration `json:"cpu_ns"`
}

// answerStats is the child's side of the protocol: it answers requests on
// in until in closes.
func answerStats(in io.Reader, enc *json.Encoder) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "gc":
			runtime.GC()
		case "stats":
		default:
			return fmt.Errorf("unknown request %q on stdin", sc.Text())
		}
		var s childStats
		var err error
		if s.RSS, s.HWM, err = readRSS(); err != nil {
			return err
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.HeapInuse, s.Goroutines = int64(ms.HeapInuse), runtime.NumGoroutine()
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return fmt.Errorf("getrusage: %w", err)
		}
		s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	return sc.Err()
}

// serviceChild is the parent's handle on a child process running a replica.
type serviceChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	url   string
}

// startChild re-executes bench with args (the subcommand first) and waits
// for the child to say where it serves.
func startChild(ctx context.Context, args ...string) (*serviceChild, error) {
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
	c := &serviceChild{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	var hello struct{ Addr string }
	if err := c.readJSON(&hello); err != nil {
		c.stop()
		return nil, fmt.Errorf("child %s did not start: %w", args[0], err)
	}
	c.url = "http://" + hello.Addr
	return c, nil
}

func (c *serviceChild) readJSON(v any) error {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read the child's answer: %w", err)
	}
	return json.Unmarshal(line, v)
}

// stats asks the child for its memory and CPU, after a runtime.GC with gc.
func (c *serviceChild) stats(gc bool) (childStats, error) {
	req := "stats\n"
	if gc {
		req = "gc\n"
	}
	var s childStats
	if _, err := io.WriteString(c.stdin, req); err != nil {
		return s, fmt.Errorf("ask the child: %w", err)
	}
	return s, c.readJSON(&s)
}

// stop closes the child's stdin and waits for it to exit.
func (c *serviceChild) stop() error {
	c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		return fmt.Errorf("the child did not stop within 30s; killed: %v", <-done)
	}
}

// waitReady polls url/readyz until it answers 200, serving ends (done
// receives), or a minute passes.
func waitReady(ctx context.Context, url string, done chan error) error {
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

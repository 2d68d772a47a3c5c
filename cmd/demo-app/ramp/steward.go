package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// devProcess is `steward dev` running as a child.
type devProcess struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when it has exited; err is then set
	err     error

	gateway, registry, scaler string
}

// bannerLine matches the lines of steward dev's banner the demo needs.
var bannerLine = regexp.MustCompile(`^\s+(gateway|registry|scaler)\s+(http://\S+)`)

// startDev runs `steward dev` with every address on 127.0.0.1:0, so that
// it never clashes with a Steward already running, and waits for its
// banner. Its output goes to steward.log in dir.
func startDev(ctx context.Context, binary, dir string) (*devProcess, error) {
	logPath := filepath.Join(dir, "steward.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	banner := &bannerWatch{w: logFile, urls: map[string]string{}, ready: make(chan struct{})}
	cmd := exec.Command(binary, "dev")
	cmd.Env = append(os.Environ(),
		"STEWARD_DATA_DIR="+dir,
		"STEWARD_DEV_NATS_ADDR=127.0.0.1:0",
		"STEWARD_DEV_NATS_MONITOR_ADDR=127.0.0.1:0",
		"STEWARD_CONFIG_ADDR=127.0.0.1:0",
		"STEWARD_REGISTRY_ADDR=127.0.0.1:0",
		"STEWARD_GATEWAY_ADDR=127.0.0.1:0",
		"STEWARD_ELECTION_ADDR=127.0.0.1:0",
		"STEWARD_SCALER_ADDR=127.0.0.1:0",
		"STEWARD_DATABASE_URL=", // a PostgreSQL in the environment is not the demo's
		"STEWARD_LOG_FORMAT=text",
	)
	cmd.Stdout, cmd.Stderr = banner, logFile
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	d := &devProcess{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		logFile.Close()
		close(d.exited)
	}()

	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	select {
	case <-banner.ready:
		d.gateway, d.registry, d.scaler = banner.url("gateway"), banner.url("registry"), banner.url("scaler")
		return d, nil
	case <-d.exited:
		return nil, fmt.Errorf("steward dev exited before it was ready (%v); its log, %s, ends:\n%s", d.err, logPath, tail(logPath, 20))
	case <-timer.C:
		err = fmt.Errorf("steward dev printed no banner within 60 s; see %s", logPath)
	case <-ctx.Done():
		err = ctx.Err()
	}
	d.stop(10 * time.Second)
	return nil, err
}

// stop sends SIGINT and waits up to timeout for steward dev to exit (it
// stops the driver's processes on the way out), then kills it. It returns
// how long the exit took and the exit error, if any.
func (d *devProcess) stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-d.exited:
		return time.Since(start), d.err
	case <-timer.C:
		_ = d.cmd.Process.Kill()
		<-d.exited
		return time.Since(start), fmt.Errorf("steward dev did not exit within %v of SIGINT: killed", timeout)
	}
}

// bannerWatch writes steward dev's stdout to the log and picks the URLs
// out of the banner; ready closes once it has all three.
type bannerWatch struct {
	w     io.Writer
	mu    sync.Mutex
	buf   []byte
	urls  map[string]string
	done  bool
	ready chan struct{}
}

func (b *bannerWatch) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.buf = append(b.buf, p...)
		for {
			i := bytes.IndexByte(b.buf, '\n')
			if i < 0 {
				break
			}
			if m := bannerLine.FindSubmatch(b.buf[:i]); m != nil {
				b.urls[string(m[1])] = string(m[2])
			}
			b.buf = b.buf[i+1:]
		}
		if len(b.urls) == 3 {
			b.done, b.buf = true, nil
			close(b.ready)
		}
	}
	return b.w.Write(p)
}

func (b *bannerWatch) url(name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.urls[name]
}

// tail returns the last n lines of a file, for an error message.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

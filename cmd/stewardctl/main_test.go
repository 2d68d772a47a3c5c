package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stewardhq/steward/platform/devtest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with what the commands print")

// steward and stewardctl are the programs the tests run, built once, as
// users run them: processes, with signals and exit statuses.
var steward, stewardctl string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "stewardctl-test")
	if err != nil {
		panic(err)
	}
	steward, err = devtest.Build(dir)
	if err == nil {
		stewardctl = filepath.Join(dir, "stewardctl")
		var out []byte
		out, err = exec.Command("go", "build", "-race", "-o", stewardctl, ".").CombinedOutput()
		if err != nil {
			err = errors.New(string(out))
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ctl runs stewardctl against one steward dev.
type ctl struct {
	t   *testing.T
	env []string
}

// result is what one run of stewardctl did.
type result struct {
	stdout, stderr string
	code           int
}

// environment is this process's environment without STEWARD_*, and env.
func environment(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STEWARD_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// command is stewardctl with args, its input stdin, in c's environment.
func (c *ctl) command(stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(stewardctl, args...)
	cmd.Env = environment(c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// runIn runs stewardctl args with stdin and waits up to 30s for it.
func (c *ctl) runIn(stdin string, args ...string) result {
	c.t.Helper()
	cmd := c.command(stdin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		c.t.Fatalf("stewardctl %s did not exit in 30s", strings.Join(args, " "))
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		c.t.Fatal(err)
	}
	return r
}

func (c *ctl) run(args ...string) result {
	c.t.Helper()
	return c.runIn("", args...)
}

// ok runs stewardctl args and returns its output, failing the test
// unless it exits 0.
func (c *ctl) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("stewardctl %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs stewardctl args and checks that it exits with code and says
// want on stderr as "stewardctl: ...".
func (c *ctl) fails(code int, want string, args ...string) {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code || !strings.HasPrefix(r.stderr, "stewardctl: ") || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("stewardctl %s = exit %d, stderr %q; want exit %d saying %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	if r.stdout != "" {
		c.t.Fatalf("stewardctl %s printed %q on stdout, want nothing", strings.Join(args, " "), r.stdout)
	}
}

// stream is a stewardctl that runs until it is interrupted.
type stream struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *devtest.Output
	stderr *devtest.Output
	done   chan error
}

// start runs stewardctl args in the background.
func (c *ctl) start(args ...string) *stream {
	c.t.Helper()
	s := &stream{t: c.t, cmd: c.command("", args...), stdout: &devtest.Output{}, stderr: &devtest.Output{}, done: make(chan error, 1)}
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	c.t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	return s
}

// waitFor waits until the stream printed a line containing want, calling
// poke every half second meanwhile (a write it should see, repeated in
// case the stream had not begun yet) if poke is not nil.
func (s *stream) waitFor(want string, poke func()) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(s.stdout.String(), want) {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s printed %q, stderr %q; want a line with %q", s.cmd.Args, s.stdout.String(), s.stderr.String(), want)
		}
		if poke != nil {
			poke()
		}
		select {
		case err := <-s.done:
			s.t.Fatalf("%s exited (%v) before printing %q; stdout %q, stderr %q", s.cmd.Args, err, want, s.stdout.String(), s.stderr.String())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// interrupt sends SIGINT, as Ctrl-C does, and checks that the program
// exits 0 within 5s.
func (s *stream) interrupt() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		s.t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("%s after SIGINT: %v; stderr %q", s.cmd.Args, err, s.stderr.String())
		}
	case <-time.After(5 * time.Second):
		s.t.Fatalf("%s did not exit within 5s of SIGINT", s.cmd.Args)
	}
}

// golden compares out, a table, with testdata/name.golden, after putting
// "*" in the columns volatile names (revisions, times: what changes from
// run to run); -update rewrites the file.
func golden(t *testing.T, name, out string, volatile ...string) {
	t.Helper()
	got := maskColumns(out, volatile...)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s:\n%s\nwant (%s):\n%s", name, got, path, want)
	}
}

// maskColumns replaces the cells of the columns named in a table's
// header line with "*" and aligns the table again. A column starts where
// its header word starts: headers are single words, tabwriter pads every
// cell to the column's width. Lines shorter than the last column's start
// (a footer) are kept as they are.
func maskColumns(out string, names ...string) string {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(names) == 0 || len(lines) == 0 {
		return out
	}
	header := lines[0]
	var starts []int
	mask := map[int]bool{}
	for i := range header {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ') {
			word, _, _ := strings.Cut(header[i:], " ")
			mask[len(starts)] = slices.Contains(names, word)
			starts = append(starts, i)
		}
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	var footer []string
	for _, line := range lines {
		if len(line) < starts[len(starts)-1] {
			footer = append(footer, line)
			continue
		}
		cells := make([]string, len(starts))
		for i, start := range starts {
			end := len(line)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			cells[i] = strings.TrimSpace(line[start:end])
			if mask[i] && line != header {
				cells[i] = "*"
			}
		}
		tw.Write([]byte(strings.Join(cells, "\t") + "\n"))
	}
	tw.Flush()
	for _, f := range footer {
		b.WriteString(f + "\n")
	}
	return b.String()
}

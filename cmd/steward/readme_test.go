package main

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadme runs every ```sh block of README.md, in order, against one
// fresh `steward dev`, each block in a bash session of its own (so the
// variables a block captures carry over to its later commands), and
// checks that every curl answers the status its comment starts with.
// The README's ports 8080-8084 stand for the dev's; a block fenced
// ```sh no-run (make, Docker) is skipped.
func TestReadme(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	for _, tool := range []string{"curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's examples need %s: %v", tool, err)
		}
	}
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```sh block to run")
	}

	// The examples run stewardctl as a reader who ran make build does.
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "stewardctl"), "github.com/stewardhq/steward/cmd/stewardctl").CombinedOutput(); err != nil {
		t.Fatalf("building stewardctl: %v\n%s", err, out)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	d := startDev(t)
	// Stopped with SIGINT, not killed: the scaler's process driver then
	// stops the processes an example made it start.
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
	// A reader starts with a dev that is up and whose gateway follows
	// Steward's own services; so does the test.
	waitFollowing(t, d)
	ports := map[string]string{}
	for fixed, base := range map[string]string{"8080": d.gateway, "8081": d.config, "8082": d.registry, "8083": d.election, "8084": d.scaler} {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		ports[fixed] = u.Port()
	}

	for _, b := range blocks {
		if b.noRun {
			t.Logf("README.md:%d: skipped (```sh no-run)", b.line)
			continue
		}
		runReadmeBlock(t, b, ports)
	}
}

// readmeBlock is one fenced ```sh block of the README.
type readmeBlock struct {
	line     int // of the opening fence
	noRun    bool
	commands []readmeCommand
}

// readmeCommand is one command of a block, which may span lines (a
// trailing backslash, a quote left open).
type readmeCommand struct {
	line int    // of its first line
	text string // as written, without the fence's indentation
	want int    // the status its comment starts with; 0 without one
}

var (
	fenceOpen  = regexp.MustCompile("^(\\s*)```sh(?:\\s+(.*))?$")
	fenceClose = regexp.MustCompile("^\\s*```\\s*$")
	statusNote = regexp.MustCompile(`^#\s*([1-5][0-9][0-9])\b`)
	curlWord   = regexp.MustCompile(`(^|[\s(|&;])curl\s`)
	fixedPort  = regexp.MustCompile(`\b(808[0-4])\b`)
)

// readmeBlocks finds the ```sh blocks of a Markdown text and splits each
// into commands. A command with a curl must say the status it expects,
// and only one curl may run in it, so that a status cannot be misread.
func readmeBlocks(md string) ([]readmeBlock, error) {
	var blocks []readmeBlock
	var err error
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		m := fenceOpen.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		b := readmeBlock{line: i + 1}
		switch info := strings.TrimSpace(m[2]); info {
		case "":
		case "no-run":
			b.noRun = true
		default:
			return nil, fmt.Errorf("README.md:%d: fence info %q, want none or no-run", i+1, info)
		}
		indent := m[1]
		var body []string
		for i++; i < len(lines) && !fenceClose.MatchString(lines[i]); i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		if i == len(lines) {
			return nil, fmt.Errorf("README.md:%d: ```sh block never closed", b.line)
		}
		if !b.noRun {
			if b.commands, err = splitCommands(body, b.line+1); err != nil {
				return nil, err
			}
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// splitCommands joins the lines of a block into commands and reads each
// one's trailing comment. It knows as much of bash's quoting as the
// README uses: single and double quotes, backslash escapes outside
// single quotes, and a # that starts a word outside quotes.
func splitCommands(lines []string, first int) ([]readmeCommand, error) {
	var cmds []readmeCommand
	var cur []string
	var comment string
	start := 0
	var single, double bool
	for n, line := range lines {
		if len(cur) == 0 {
			start = first + n
			if strings.TrimSpace(line) == "" {
				continue
			}
		}
		cur = append(cur, line)
		escaped := false
		for j := 0; j < len(line); j++ {
			c := line[j]
			switch {
			case escaped:
				escaped = false
			case single:
				single = c != '\''
			case c == '\\':
				escaped = true
			case double:
				double = c != '"'
			case c == '\'':
				single = true
			case c == '"':
				double = true
			case c == '#' && (j == 0 || line[j-1] == ' ' || line[j-1] == '\t'):
				comment = line[j:]
				j = len(line)
			}
		}
		if single || double || escaped {
			continue // the command goes on on the next line
		}
		text := strings.Join(cur, "\n")
		c := readmeCommand{line: start, text: text}
		if m := statusNote.FindStringSubmatch(comment); m != nil {
			c.want, _ = strconv.Atoi(m[1])
		}
		code := strings.TrimSuffix(text, comment)
		switch curls := len(curlWord.FindAllString(code, -1)); {
		case curls > 1:
			return nil, fmt.Errorf("README.md:%d: %d curls in one command; one, with its status in a comment", start, curls)
		case curls == 1 && c.want == 0:
			return nil, fmt.Errorf("README.md:%d: a curl without the status it answers in its comment (# 200 ...)", start)
		case curls == 0 && c.want != 0:
			return nil, fmt.Errorf("README.md:%d: a status comment on a command with no curl", start)
		case strings.Contains(code, " -N ") && !strings.Contains(code, "--max-time"):
			return nil, fmt.Errorf("README.md:%d: a stream (-N) without --max-time would hold the block", start)
		}
		cmds = append(cmds, c)
		cur, comment = nil, ""
	}
	if len(cur) > 0 {
		return nil, fmt.Errorf("README.md:%d: a command left unfinished (open quote or trailing backslash)", start)
	}
	return cmds, nil
}

// readmeShell runs before a block's commands. curl becomes a function
// that calls the real one with a default timeout, silenced progress and
// the response headers dumped aside, and records the status it answered
// next to the one the README line wants; the body still goes where the
// README sends it (the terminal, a pipe, a variable). It works as well
// in a pipeline, a $(...) and a background job, which run it in a
// subshell. set -euo pipefail makes a failing jq or an unset variable
// end the block.
const readmeShell = `set -euo pipefail
readme_line=0 readme_want=0
curl() {
	local hdr rc=0 status
	hdr=$(mktemp)
	command curl -sS --max-time 10 -D "$hdr" "$@" || rc=$?
	status=$(awk '/^HTTP\//{s=$2} END{print s+0}' "$hdr")
	rm -f "$hdr"
	echo "$readme_line $readme_want $status $rc" >>"$README_RESULTS"
}
`

// runReadmeBlock runs a block's commands in one bash and checks every
// curl's status.
func runReadmeBlock(t *testing.T, b readmeBlock, ports map[string]string) {
	t.Helper()
	var script strings.Builder
	script.WriteString(readmeShell)
	want := map[int]readmeCommand{}
	for _, c := range b.commands {
		text := fixedPort.ReplaceAllStringFunc(c.text, func(p string) string { return ports[p] })
		if c.want != 0 {
			want[c.line] = c
			fmt.Fprintf(&script, "readme_line=%d readme_want=%d\n", c.line, c.want)
		}
		script.WriteString(text + "\n")
	}
	script.WriteString("wait\n")

	results := filepath.Join(t.TempDir(), "results")
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Env = append(os.Environ(), "README_RESULTS="+results)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("README.md:%d: %d commands in %v", b.line, len(b.commands), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("README.md:%d: the block ended with %v; the script:\n%s\noutput:\n%s", b.line, err, script.String(), out)
	}

	seen := map[int]bool{}
	f, err := os.Open(results)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if f != nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var line, wantStatus, got, rc int
			if _, err := fmt.Sscan(sc.Text(), &line, &wantStatus, &got, &rc); err != nil {
				t.Fatalf("results line %q: %v", sc.Text(), err)
			}
			c, ok := want[line]
			if !ok {
				t.Errorf("README.md:%d: a curl ran with no status of its own to check", line)
				continue
			}
			if seen[line] {
				t.Errorf("README.md:%d: curl ran twice", line)
			}
			seen[line] = true
			// A stream ends by --max-time (curl's status 28) once its
			// headers came.
			timedOut := rc == 28 && strings.Contains(c.text, "--max-time")
			if got != c.want || (rc != 0 && !timedOut) {
				t.Errorf("README.md:%d: status %d (curl exit %d), want %d:\n%s\noutput of the block:\n%s", line, got, rc, c.want, c.text, out)
			}
		}
	}
	for line, c := range want {
		if !seen[line] {
			t.Errorf("README.md:%d: never ran:\n%s", line, c.text)
		}
	}
}

// TestReadmeCommands: how a block splits into commands, what status each
// wants, and what the rules refuse.
func TestReadmeCommands(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block string
		want  []readmeCommand // nil: an error
	}{
		{"one line", "curl localhost:8081/x   # 200: read",
			[]readmeCommand{{line: 1, text: "curl localhost:8081/x   # 200: read", want: 200}}},
		{"a quote open over lines", "curl --json '{\n  \"a\": 1}'   # 201\n\nX=1",
			[]readmeCommand{{line: 1, text: "curl --json '{\n  \"a\": 1}'   # 201", want: 201}, {line: 4, text: "X=1"}}},
		{"a backslash", "curl -X PUT \\\n  localhost:8082/y   # 412",
			[]readmeCommand{{line: 1, text: "curl -X PUT \\\n  localhost:8082/y   # 412", want: 412}}},
		{"a # inside quotes", "curl -H 'X: #1' \"u#v\" localhost/#x   # 200",
			[]readmeCommand{{line: 1, text: "curl -H 'X: #1' \"u#v\" localhost/#x   # 200", want: 200}}},
		{"a capture", "T=$(curl -s u | jq .token)  # 200",
			[]readmeCommand{{line: 1, text: "T=$(curl -s u | jq .token)  # 200", want: 200}}},
		{"no status", "curl localhost:8081/x   # read", nil},
		{"a status without curl", "wait   # 200", nil},
		{"two curls", "curl a && curl b   # 200", nil},
		{"an endless stream", "curl -N localhost:8081/watch   # 200", nil},
		{"left open", "curl --json '{   # 200", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitCommands(strings.Split(tc.block, "\n"), 1)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("splitCommands(%q) = %+v, want an error", tc.block, got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("splitCommands(%q) = %+v, %v, want %+v", tc.block, got, err, tc.want)
			}
		})
	}
}

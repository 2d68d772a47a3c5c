package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestLogDump writes entries through a real qlog log (binary frames), an
// old JSON batch and a message that is neither onto the same stream, and
// runs `steward log dump` on it: one line per entry with every field, the
// undecodable message as a line of its own, --from, and --follow until
// interrupted.
func TestLogDump(t *testing.T) {
	srv := qlogtest.StartServer(t)
	nc := srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := qlog.Open(ctx, qlog.Config{Service: "dumptest", ReplicaID: "r0", Conn: nc}, qlogtest.NewRegisters())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	propose := func(cmd []byte, key string) {
		t.Helper()
		if _, err := l.Propose(ctx, cmd, qlog.ProposeOptions{IdempotencyKey: key}); err != nil {
			t.Fatalf("Propose(%s): %v", cmd, err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(data string) {
		t.Helper()
		if _, err := js.Publish(ctx, "steward.dumptest.log", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	propose(qlogtest.Put("a", "<1>"), "idem-1") // seq 1
	propose(qlogtest.Put("b", "2"), "")         // seq 2
	publish(`{"entries":[{"id":"old.1","p":"r9","t":1700000000000000001,"k":"k9","c":{"op":"put","key":"c","value":"3"}}]}`)
	publish("not a batch") // seq 4

	dump := func(t *testing.T, args ...string) []map[string]any {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"log", "dump"}, args...)...)
		cmd.Env = append(os.Environ(), "STEWARD_NATS_URL="+srv.URL())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("steward log dump %v: %v\n%s", args, err, stderr.String())
		}
		return parseLines(t, out)
	}

	lines := dump(t, "dumptest")
	if len(lines) != 4 {
		t.Fatalf("steward log dump printed %d lines, want 4: %v", len(lines), lines)
	}
	for i, want := range []struct {
		seq      float64
		id       string // a prefix
		proposer string
		key      string
		cmd      string // the command, compacted
	}{
		{1, "", "r0", "idem-1", `{"op":"put","key":"a","value":"<1>"}`},
		{2, "", "r0", "", `{"op":"put","key":"b","value":"2"}`},
		{3, "old.1", "r9", "k9", `{"op":"put","key":"c","value":"3"}`},
	} {
		got := lines[i]
		cmd, _ := json.Marshal(got["cmd"])
		if got["seq"] != want.seq || !strings.HasPrefix(fmt.Sprint(got["id"]), want.id) || got["id"] == "" ||
			got["proposer"] != want.proposer || got["key"] != want.key || !jsonEqual(cmd, []byte(want.cmd)) {
			t.Errorf("line %d = %v, want seq %v, id %q..., proposer %s, key %q, cmd %s", i, got, want.seq, want.id, want.proposer, want.key, want.cmd)
		}
		for _, f := range []string{"msg_time", "time"} {
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got[f])); err != nil {
				t.Errorf("line %d: %s = %v, want an RFC 3339 time", i, f, got[f])
			}
		}
	}
	if got := lines[2]["time"]; got != "2023-11-14T22:13:20.000000001Z" {
		t.Errorf("the JSON batch's entry time = %v, want 2023-11-14T22:13:20.000000001Z", got)
	}
	if got := lines[3]; got["seq"] != 4.0 || got["bytes"] != float64(len("not a batch")) || got["skipped"] != true || got["error"] == nil || got["id"] != nil {
		t.Errorf("the undecodable message's line = %v, want seq 4, its 11 bytes, skipped, an error and no entry", got)
	}

	if lines := dump(t, "--from", "3", "dumptest"); len(lines) != 2 || lines[0]["seq"] != 3.0 {
		t.Errorf("steward log dump --from 3 = %v, want the lines of sequences 3 and 4", lines)
	}
	if lines := dump(t, "dumptest", "--from=9"); len(lines) != 0 {
		t.Errorf("steward log dump --from past the end = %v, want nothing", lines)
	}

	t.Run("follow", func(t *testing.T) {
		cmd := exec.Command(binary, "log", "dump", "dumptest", "--from", "4", "--follow")
		cmd.Env = append(os.Environ(), "STEWARD_NATS_URL="+srv.URL())
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		read := bufio.NewScanner(stdout)
		next := func() map[string]any {
			t.Helper()
			if !read.Scan() {
				t.Fatalf("--follow ended: %v", read.Err())
			}
			return parseLines(t, read.Bytes())[0]
		}
		if got := next(); got["seq"] != 4.0 {
			t.Fatalf("first line of --follow from 4 = %v, want sequence 4", got)
		}
		propose(qlogtest.Put("d", "4"), "")
		if got := next(); got["seq"] != 5.0 || got["proposer"] != "r0" {
			t.Fatalf("the line of an entry proposed while following = %v, want sequence 5 from r0", got)
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("steward log dump --follow after SIGINT = %v, want exit 0", err)
		}
	})
}

func TestLogDumpUsage(t *testing.T) {
	for _, args := range [][]string{{"log"}, {"log", "show", "config"}, {"log", "dump"}, {"log", "dump", "a", "b"}, {"log", "dump", "--from", "0", "config"}, {"log", "dump", "--bogus", "config"}} {
		err := exec.Command(binary, args...).Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("steward %s = %v, want exit status 2", strings.Join(args, " "), err)
		}
	}
	srv := qlogtest.StartServer(t)
	cmd := exec.Command(binary, "log", "dump", "nosuch")
	cmd.Env = append(os.Environ(), "STEWARD_NATS_URL="+srv.URL())
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "no log stream STEWARD_NOSUCH") {
		t.Errorf("steward log dump nosuch = %v, %q; want exit 1 naming the stream", err, out)
	}

	// A stream whose messages were all purged holds nothing to read;
	// the dump must not wait for the next message.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(srv.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: qlog.StreamName("purged"), Subjects: []string{"steward.purged.log"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "steward.purged.log", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	cmd = exec.CommandContext(ctx, binary, "log", "dump", "purged")
	cmd.Env = append(os.Environ(), "STEWARD_NATS_URL="+srv.URL())
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("steward log dump of a purged stream = %v, %q; want nothing, exit 0", err, out)
	}
}

// parseLines decodes JSON lines.
func parseLines(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for line := range strings.Lines(string(out)) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

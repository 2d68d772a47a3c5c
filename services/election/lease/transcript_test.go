package lease_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/election/lease"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txt with the machine's output")

// epoch is log time zero of the transcripts; times in them are offsets.
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// step is one transcript command: log time and the command.
type step struct {
	at  time.Duration
	cmd lease.Command
	due bool // a "due" line: list the expire commands due at `at`
}

// parseStep reads "<at> <op> <name> [candidate] [key=value ...]" or
// "<at> due". Keys: ttl, hold, token, since, value, waiter.
func parseStep(line string) (step, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return step{}, fmt.Errorf("want <at> <op> ...")
	}
	at, err := time.ParseDuration(f[0])
	if err != nil {
		return step{}, err
	}
	if f[1] == "due" {
		return step{at: at, due: true}, nil
	}
	if len(f) < 3 {
		return step{}, fmt.Errorf("want <at> <op> <name> ...")
	}
	s := step{at: at, cmd: lease.Command{Op: f[1], Name: f[2]}}
	for _, arg := range f[3:] {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			s.cmd.Candidate = arg
			continue
		}
		switch k {
		case "ttl", "hold":
			d, err := time.ParseDuration(v)
			if err != nil {
				return step{}, err
			}
			if k == "ttl" {
				s.cmd.TTL = d
			} else {
				s.cmd.Hold = d
			}
		case "token", "since":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return step{}, err
			}
			if k == "token" {
				s.cmd.Token = n
			} else {
				s.cmd.Since = n
			}
		case "value":
			s.cmd.Value = json.RawMessage(v)
		case "waiter":
			s.cmd.Waiter = v
		default:
			return step{}, fmt.Errorf("unknown key %q", k)
		}
	}
	return s, nil
}

// player applies transcript steps to a machine at consecutive revisions.
type player struct {
	m   *lease.Machine
	rev int64
}

func (p *player) apply(s step) ([]byte, []qlog.Event) {
	p.rev++
	cmd, _ := json.Marshal(s.cmd)
	return p.m.Apply(qlog.Entry{Revision: p.rev, Time: epoch.Add(s.at), Proposer: "t", Cmd: cmd})
}

// renderLeadership shows a leadership compactly, expiry as an offset.
func renderLeadership(l *lease.Leadership) string {
	if l == nil {
		return "none"
	}
	s := fmt.Sprintf("%s term=%d token=%d ttl=%s expires=%s queue=%d", l.Leader, l.Term, l.Token, l.TTL, l.ExpiresAt.Sub(epoch), l.Queue)
	if len(l.Value) > 0 {
		s += " value=" + string(l.Value)
	}
	return s
}

func render(p *player, s step) string {
	var b strings.Builder
	if s.due {
		for _, c := range p.m.Due(epoch.Add(s.at)) {
			fmt.Fprintf(&b, "  expire %s\n", c)
		}
		if b.Len() == 0 {
			b.WriteString("  nothing due\n")
		}
		return b.String()
	}
	raw, events := p.apply(s)
	var res lease.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Sprintf("  undecodable result %s\n", raw)
	}
	fmt.Fprintf(&b, "  rev %d: %s", p.rev, res.Status)
	if res.Position > 0 {
		fmt.Fprintf(&b, " position=%d", res.Position)
	}
	if res.Leader != nil {
		fmt.Fprintf(&b, "; leader %s", renderLeadership(res.Leader))
	}
	if res.Detail != "" {
		fmt.Fprintf(&b, "; %s", res.Detail)
	}
	b.WriteString("\n")
	for _, ev := range events {
		var l lease.Leadership
		_ = json.Unmarshal(ev.Data, &l)
		fmt.Fprintf(&b, "  event %s %s: %s\n", ev.Type, ev.Key, renderLeadership(&l))
	}
	return b.String()
}

// TestTranscripts replays testdata/*.txt: each command line is followed by
// the machine's answer, indented; -update rewrites the answers.
func TestTranscripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			p := &player{m: lease.New()}
			var out strings.Builder
			sc := bufio.NewScanner(bytes.NewReader(data))
			for n := 1; sc.Scan(); n++ {
				line := sc.Text()
				if strings.HasPrefix(line, "  ") {
					continue // an answer: regenerated below
				}
				out.WriteString(line + "\n")
				if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
					continue
				}
				s, err := parseStep(line)
				if err != nil {
					t.Fatalf("%s:%d: %v", file, n, err)
				}
				out.WriteString(render(p, s))
			}
			if *update {
				if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got := out.String(); got != string(data) {
				t.Errorf("%s differs (go test -run TestTranscripts -update rewrites it); got:\n%s", file, got)
			}
		})
	}
}

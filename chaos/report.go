package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stewardhq/steward/platform/supervise"
)

// ack records an acknowledged config write, for the stall measurements.
func (s *suite) ack(at time.Time) {
	s.mu.Lock()
	s.acks = append(s.acks, at)
	s.mu.Unlock()
}

// stall is the longest time within [from, to] in which no config write was
// acknowledged.
func (s *suite) stall(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.acks, from, func(a, t time.Time) int { return a.Compare(t) })
	prev, worst := from, time.Duration(0)
	for ; i < len(s.acks) && !s.acks[i].After(to); i++ {
		worst = max(worst, s.acks[i].Sub(prev))
		prev = s.acks[i]
	}
	return max(worst, to.Sub(prev))
}

// recovery is the time from a fault's heal until every config replica
// acknowledged a write sent after it; ok is false if one never did within
// the fault's recovery window.
func (s *suite) recovery(cfg *configWorkload, f faultRecord) (time.Duration, bool) {
	var worst time.Duration
	for node := range s.c.nodes() {
		at, ok := cfg.firstAckAfter(node, f.Healed)
		if !ok || at.After(f.End) {
			return f.End.Sub(f.Healed), false
		}
		worst = max(worst, at.Sub(f.Healed))
	}
	return worst, true
}

// faultAt names the fault under way at t (from its start to the end of its
// recovery window), or says none was.
func (s *suite) faultAt(t time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if !t.Before(f.Start) && !t.After(f.End) {
			return fmt.Sprintf("during %s on %s, +%s into it", f.Kind, f.Target, ms(t.Sub(f.Start)))
		}
	}
	if s.current != nil && !t.Before(s.current.Start) {
		return fmt.Sprintf("during %s on %s, +%s into it", s.current.Kind, s.current.Target, ms(t.Sub(s.current.Start)))
	}
	for i := len(s.faults) - 1; i >= 0; i-- {
		if f := s.faults[i]; t.After(f.End) && t.Sub(f.Healed) < 15*time.Second {
			return fmt.Sprintf("no fault under way; %s on %s healed %s before", f.Kind, f.Target, ms(t.Sub(f.Healed)))
		}
	}
	return "no fault under way"
}

// workloadLine is one workload's row.
type workloadLine struct {
	name string
	counts
}

// result is what the run found.
type result struct {
	started    time.Time
	duration   time.Duration
	workloads  []workloadLine
	faults     []faultRecord
	errors500  []serverError
	exits      []supervise.Exit
	violations int
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

// write prints the table.
func (r *result) write(w io.Writer, s *suite, cfg *configWorkload) {
	fmt.Fprintf(w, "Steward chaos run %s, workloads and nemesis for %s, seed %d\nrun directory %s\n\n",
		r.started.UTC().Format(time.RFC3339), r.duration.Round(time.Second), s.o.seed, s.o.runDir)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\toperations\tok\tfailed\tunknown\tviolations\t")
	for _, l := range r.workloads {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", l.name, l.Ops, l.OK, l.Failed, l.Unknown, l.Violations)
	}
	tw.Flush()
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\tcount\tstall worst\tstall median\trecovery worst\trecovery median\tnot recovered\t")
	for _, kind := range faultKinds() {
		var stalls, recs []time.Duration
		failed := 0
		for _, f := range r.faults {
			if f.Kind != kind {
				continue
			}
			stalls = append(stalls, s.stall(f.Start, f.End))
			d, ok := s.recovery(cfg, f)
			if !ok {
				failed++
			}
			recs = append(recs, d)
		}
		if len(stalls) == 0 {
			fmt.Fprintf(tw, "%s\t0\t-\t-\t-\t-\t-\t\n", kind)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t\n", kind, len(stalls), ms(slices.Max(stalls)), ms(median(stalls)), ms(slices.Max(recs)), ms(median(recs)), failed)
	}
	tw.Flush()
	fmt.Fprintln(w)

	fmt.Fprintf(w, "faults in order (start, kind, target, held, recovery):\n")
	for _, f := range r.faults {
		d, ok := s.recovery(cfg, f)
		rec := ms(d)
		if !ok {
			rec = "not within " + ms(d)
		}
		fmt.Fprintf(w, "  +%-8s %-20s %-55s held %-7s stall %-7s recovery %s", ms(f.Start.Sub(r.started)), f.Kind, f.Target, ms(f.Healed.Sub(f.Start)), ms(s.stall(f.Start, f.End)), rec)
		if f.Note != "" {
			fmt.Fprintf(w, "  [%s]", f.Note)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "HTTP 500 responses seen by clients: %d\n", len(r.errors500))
	causes := s.serverCauses(r.errors500)
	for _, e := range r.errors500 {
		fmt.Fprintf(w, "  +%s %s %s: %s", ms(e.At.Sub(r.started)), e.Method, e.URL, strings.TrimSpace(e.Body))
		if c := causes[requestID(e.Body)]; c != "" {
			fmt.Fprintf(w, " [server log: %s]", c)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "processes that exited on their own (restarted by the harness): %d\n", len(r.exits))
	for _, e := range r.exits {
		fmt.Fprintf(w, "  +%s %s: %s: %s\n", ms(e.At.Sub(r.started)), e.Proc, e.Status, lastLine(e.Tail))
	}
	for _, l := range r.workloads {
		for _, n := range l.Notes {
			fmt.Fprintf(w, "%s: %s\n", l.name, n)
		}
	}
	verdict := "PASS"
	if r.violations > 0 || len(r.errors500) > 0 {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\n%s: %d violations, %d HTTP 500s\n", verdict, r.violations, len(r.errors500))
}

// requestID is a problem document's requestId.
func requestID(body string) string {
	var p struct {
		RequestID string `json:"requestId"`
	}
	_ = json.Unmarshal([]byte(body), &p)
	return p.RequestID
}

// serverCauses finds, in the processes' logs, the error each 500's request
// failed with (its "request failed" line), by request id.
func (s *suite) serverCauses(errs []serverError) map[string]string {
	want := map[string]bool{}
	for _, e := range errs {
		if id := requestID(e.Body); id != "" {
			want[id] = true
		}
	}
	out := map[string]string{}
	if len(want) == 0 {
		return out
	}
	for _, p := range s.c.procs {
		f, err := os.Open(p.LogPath)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, `msg="request failed"`) {
				continue
			}
			_, rest, ok := strings.Cut(line, "request_id=")
			if !ok {
				continue
			}
			id, _, _ := strings.Cut(rest, " ")
			if want[id] {
				if _, errText, ok := strings.Cut(line, " err="); ok {
					out[id] = p.Name + ": " + strings.Trim(errText, `"`)
				}
			}
		}
		f.Close()
	}
	return out
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// save writes the table to the run directory and to out.
func (r *result) save(out io.Writer, s *suite, cfg *configWorkload) {
	var b strings.Builder
	r.write(&b, s, cfg)
	path := filepath.Join(s.o.runDir, "table.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		s.logf("write %s: %v", path, err)
	}
	fmt.Fprint(out, "\n"+b.String())
	fmt.Fprintf(out, "(saved in %s)\n", path)
}

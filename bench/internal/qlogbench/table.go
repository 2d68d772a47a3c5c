package qlogbench

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stewardhq/steward/bench/internal/harness"
)

// PrintMode prints one durability mode: every row, then qlog and etcd side
// by side, then the targets.
func PrintMode(out io.Writer, cfg harness.Config, rep *harness.ModeReport) {
	n := cfg.Clients
	fmt.Fprintf(out, "\n== Mode %s: %s ==\n\n", rep.Mode.ID, rep.Mode.Title)
	harness.PrintRows(out, rep)
	fmt.Fprintf(out, "  each qlog row has its own log; each replica and the etcd client have one connection, shared by all\n"+
		"  their proposers/clients; the 3-voter rows run three replicas (r0, r1, r2) in this process. The floor's async\n"+
		"  publish and Propose with %d proposers spread over 3 voters alternate their runs (each after its own warm-up,\n"+
		"  the order rotated every run) when measured together; every other row's runs follow one another.\n", n)

	// Side by side: the same workload on qlog and on etcd.
	cell := func(key string) (string, string) {
		s, ok, _ := rep.Get(key)
		if !ok {
			return "—", ""
		}
		return harness.Rate(s.Rate()) + "/s", harness.Dur(s.P50)
	}
	fmt.Fprintf(out, "\nside by side: ops/s and p50\n")
	t := harness.NewTable("l rr rr rr")
	t.Add("", "qlog 1 voter", "", "qlog 3 voters", "", "etcd 1 node", "")
	line := func(name string, keys ...string) {
		cells := []string{name}
		for _, k := range keys {
			a, b := cell(k)
			cells = append(cells, a, b)
		}
		t.Add(cells...)
	}
	line("write, 1 client", harness.RowQ1x1, harness.RowQ3x1, harness.RowEPut1)
	line(fmt.Sprintf("write, %d clients (3 voters: spread)", n), harness.RowQ1xN, harness.RowQ3xNSpread, harness.RowEPutN)
	line(fmt.Sprintf("linearizable read, %d clients", n), harness.RowQLin, "", harness.RowELin)
	line(fmt.Sprintf("serializable read, %d clients", n), harness.RowQSer, "", harness.RowESer)
	t.Write(out)

	fmt.Fprintf(out, "\ntargets (mode %s)\n", rep.Mode.ID)
	t = harness.NewTable("l r l l")
	ratio := func(name, num, den string, f func(a, b harness.RunStats) float64, asPercent bool, cmp string, target float64, note string) {
		a, okA, failA := rep.Get(num)
		b, okB, failB := rep.Get(den)
		if !okA || !okB {
			why := "not measured"
			if failA || failB {
				why = "not judged: a row failed"
			}
			t.Add(name, "—", "", why)
			return
		}
		v := f(a, b)
		met := v <= target
		if cmp == "≥" {
			met = v >= target
		}
		shown, want := fmt.Sprintf("%.2f×", v), fmt.Sprintf("target %s %.1f×", cmp, target)
		if asPercent {
			shown, want = fmt.Sprintf("%.0f%%", 100*v), fmt.Sprintf("target %s %.0f%%", cmp, 100*target)
		}
		res := harness.Verdict(met)
		if target == 0 { // a reference, no target
			want, res = "", ""
		}
		if failA || failB {
			res += " (runs that completed; a row failed)"
		}
		if note != "" {
			res = strings.TrimSpace(res + " " + note)
		}
		t.Add(name, shown, want, res)
	}
	p50 := func(a, b harness.RunStats) float64 { return float64(a.P50) / float64(b.P50) }
	tput := func(a, b harness.RunStats) float64 { return a.Rate() / b.Rate() }
	ratio("Propose p50 (1 voter, 1 proposer) / JetStream sync publish p50", harness.RowQ1x1, harness.RowSync, p50, false, "≤", 4, "")
	ratio("  same / JetStream sync publish + ordered-consumer receive p50", harness.RowQ1x1, harness.RowSyncEcho, p50, false, "≤", 0, "reference: the path a proposal takes")
	ratio(fmt.Sprintf("Propose ops/s (3 voters, %d proposers spread) / etcd Put ops/s (%d clients)", n, n), harness.RowQ3xNSpread, harness.RowEPutN, tput, false, "≥", 1, "")
	ratio(fmt.Sprintf("  same with all %d proposers on r0", n), harness.RowQ3xNOne, harness.RowEPutN, tput, false, "≥", 1, "")
	asyncNote := ""
	if rep.Mode.NATSSync {
		asyncNote = "(the target is for fsync off; for reference only)"
	}
	ratio(fmt.Sprintf("Propose ops/s (3 voters, %d proposers spread) / JetStream async publish ops/s", n), harness.RowQ3xNSpread, harness.RowAsync, tput, true, "≥", 0.4, asyncNote)
	ratio(fmt.Sprintf("  same with all %d proposers on r0", n), harness.RowQ3xNOne, harness.RowAsync, tput, true, "≥", 0.4, asyncNote)
	t.Write(out)
}

// ExtraReport holds the measurements that are not per durability mode.
type ExtraReport struct {
	Cold    *coldReport
	ColdErr error
	Mem     *memReport
	MemErr  error
}

func PrintExtra(out io.Writer, cfg harness.Config, x ExtraReport) {
	fmt.Fprintf(out, "\n== Cold start and memory ==\n")
	if x.ColdErr != nil {
		fmt.Fprintf(out, "\ncold start: FAILED: %v\n", x.ColdErr)
	}
	if x.MemErr != nil {
		fmt.Fprintf(out, "\nmemory: FAILED: %v\n", x.MemErr)
	}
	if c := x.Cold; c != nil {
		fmt.Fprintf(out, "\ncold start, NATS fsync on every write: %s entries of %d-byte values in %s stream messages, filled in %s;\n"+
			"  snapshot at revision %d: %s, saved in %s\n",
			harness.Count(c.entries), cfg.ValueSize, harness.Count(int(c.streamMsgs)), c.fillTook.Round(time.Millisecond),
			c.snapRev, harness.Mib(int64(c.snapBytes)), c.snapTook.Round(time.Millisecond))
		t := harness.NewTable("l r l l l")
		fromSnap := harness.MedianDuration(c.fromSnapshot)
		t.Add("qlog.Open + WaitReady, fresh replica, from the snapshot", harness.Dur(fromSnap), "runs: "+harness.Durs(c.fromSnapshot), "target < 1s", harness.Verdict(fromSnap < time.Second))
		t.Add("qlog.Open + WaitReady, fresh replica, replaying every entry", harness.Dur(harness.MedianDuration(c.replayAll)), "runs: "+harness.Durs(c.replayAll), "", "")
		t.Write(out)
	}
	if m := x.Mem; m != nil {
		fmt.Fprintf(out, "\nmemory of a replica in a child process (NATS, fsync off, runs in the parent):\n"+
			"  %s puts of %d-byte values (unique keys) applied through Propose in %s; revision %d, %s registers\n",
			harness.Count(m.Entries), cfg.MemValueSize, (time.Duration(m.FillMillis) * time.Millisecond).Round(time.Second), m.Revision, harness.Count(m.Registers))
		t := harness.NewTable("l r l l")
		t.Add("VmRSS after the last entry applied", harness.Mib(m.RSSBytes), "target < 1 GiB", harness.Verdict(m.RSSBytes < 1<<30))
		t.Add("VmHWM (peak RSS)", harness.Mib(m.PeakRSSBytes), "", "")
		t.Add("VmRSS after runtime.GC", harness.Mib(m.RSSAfterGC), "", "")
		t.Add("Go heap in use after runtime.GC", harness.Mib(m.HeapInuse), "", "")
		t.Write(out)
	}
}

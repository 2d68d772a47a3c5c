package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"
)

// printMode prints one durability mode: every row, then qlog and etcd side
// by side, then the targets.
func printMode(out io.Writer, cfg config, rep *modeReport) {
	n := cfg.clients
	fmt.Fprintf(out, "\n== Mode %s: %s ==\n\n", rep.mode.id, rep.mode.title)
	printRows(out, rep)
	fmt.Fprintf(out, "  %s\n", rep.load)
	fmt.Fprintf(out, "  each qlog row has its own log; each replica and the etcd client have one connection, shared by all\n"+
		"  their proposers/clients; the 3-voter rows run three replicas (r0, r1, r2) in this process.\n")

	// Side by side: the same workload on qlog and on etcd.
	cell := func(key string) (string, string) {
		s, ok, _ := rep.get(key)
		if !ok {
			return "—", ""
		}
		return rate(s.rate()) + "/s", dur(s.p50)
	}
	fmt.Fprintf(out, "\nside by side: ops/s and p50\n")
	t := newTable("l rr rr rr")
	t.add("", "qlog 1 voter", "", "qlog 3 voters", "", "etcd 1 node", "")
	line := func(name string, keys ...string) {
		cells := []string{name}
		for _, k := range keys {
			a, b := cell(k)
			cells = append(cells, a, b)
		}
		t.add(cells...)
	}
	line("write, 1 client", rowQ1x1, rowQ3x1, rowEPut1)
	line(fmt.Sprintf("write, %d clients (3 voters: spread)", n), rowQ1xN, rowQ3xNSpread, rowEPutN)
	line(fmt.Sprintf("linearizable read, %d clients", n), rowQLin, "", rowELin)
	line(fmt.Sprintf("serializable read, %d clients", n), rowQSer, "", rowESer)
	t.write(out)

	fmt.Fprintf(out, "\ntargets (mode %s)\n", rep.mode.id)
	t = newTable("l r l l")
	ratio := func(name, num, den string, f func(a, b runStats) float64, asPercent bool, cmp string, target float64, note string) {
		a, okA, failA := rep.get(num)
		b, okB, failB := rep.get(den)
		if !okA || !okB {
			why := "not measured"
			if failA || failB {
				why = "not judged: a row failed"
			}
			t.add(name, "—", "", why)
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
		res := verdict(met)
		if target == 0 { // a reference, no target
			want, res = "", ""
		}
		if failA || failB {
			res += " (runs that completed; a row failed)"
		}
		if note != "" {
			res = strings.TrimSpace(res + " " + note)
		}
		t.add(name, shown, want, res)
	}
	p50 := func(a, b runStats) float64 { return float64(a.p50) / float64(b.p50) }
	tput := func(a, b runStats) float64 { return a.rate() / b.rate() }
	ratio("Propose p50 (1 voter, 1 proposer) / JetStream sync publish p50", rowQ1x1, rowSync, p50, false, "≤", 4, "")
	ratio("  same / JetStream sync publish + ordered-consumer receive p50", rowQ1x1, rowSyncEcho, p50, false, "≤", 0, "reference: the path a proposal takes")
	ratio(fmt.Sprintf("Propose ops/s (3 voters, %d proposers spread) / etcd Put ops/s (%d clients)", n, n), rowQ3xNSpread, rowEPutN, tput, false, "≥", 1, "")
	ratio(fmt.Sprintf("  same with all %d proposers on r0", n), rowQ3xNOne, rowEPutN, tput, false, "≥", 1, "")
	asyncNote := ""
	if rep.mode.natsSync {
		asyncNote = "(the target is for fsync off; for reference only)"
	}
	ratio(fmt.Sprintf("Propose ops/s (3 voters, %d proposers spread) / JetStream async publish ops/s", n), rowQ3xNSpread, rowAsync, tput, true, "≥", 0.4, asyncNote)
	ratio(fmt.Sprintf("  same with all %d proposers on r0", n), rowQ3xNOne, rowAsync, tput, true, "≥", 0.4, asyncNote)
	t.write(out)
}

// printRows prints every row of a report: its median run, the spread of
// its runs and why it failed, if it did.
func printRows(out io.Writer, rep *modeReport) {
	t := newTable("ll rrr rr l")
	t.add("", "", "ops/s", "p50", "p99", "runs: ops/s min–max", "errors", "")
	var failures []string
	for _, r := range rep.rows {
		cells := []string{r.group, r.name, "—", "—", "—", "—", "none", r.note}
		if med, ok := r.res.median(); ok {
			lo, hi := r.res.spread()
			cells = []string{r.group, r.name, rate(med.rate()), dur(med.p50), dur(med.p99),
				fmt.Sprintf("%d× %s–%s", len(r.res.completed()), rate(lo), rate(hi)), "none", r.note}
		}
		if err := r.res.failure(); err != nil {
			failures = append(failures, fmt.Sprintf("  [%d] %s %s: %v", len(failures)+1, r.group, r.name, err))
			cells[6] = fmt.Sprintf("FAILED [%d]", len(failures))
		}
		t.add(cells...)
	}
	t.write(out)
	for _, f := range failures {
		fmt.Fprintln(out, f)
	}
}

// table is a plain text table; align has one letter per column, l or r,
// and a space where a wider gap separates column groups.
type table struct {
	align []byte
	gap   []bool
	rows  [][]string
}

func newTable(align string) *table {
	t := &table{}
	for i := 0; i < len(align); i++ {
		if align[i] == ' ' {
			t.gap[len(t.gap)-1] = true
			continue
		}
		t.align = append(t.align, align[i])
		t.gap = append(t.gap, false)
	}
	return t
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(out io.Writer) {
	width := make([]int, len(t.align))
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if t.align[i] == 'r' {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
			if i < len(r)-1 {
				b.WriteString("  ")
				if t.gap[i] {
					b.WriteString("  ")
				}
			}
		}
		fmt.Fprintln(out, strings.TrimRight(b.String(), " "))
	}
}

// extraReport holds the measurements that are not per durability mode.
type extraReport struct {
	cold    *coldReport
	coldErr error
	mem     *memReport
	memErr  error
}

func printExtra(out io.Writer, cfg config, x extraReport) {
	fmt.Fprintf(out, "\n== Cold start and memory ==\n")
	if x.coldErr != nil {
		fmt.Fprintf(out, "\ncold start: FAILED: %v\n", x.coldErr)
	}
	if x.memErr != nil {
		fmt.Fprintf(out, "\nmemory: FAILED: %v\n", x.memErr)
	}
	if c := x.cold; c != nil {
		fmt.Fprintf(out, "\ncold start, NATS fsync on every write: %s entries of %d-byte values in %s stream messages, filled in %s;\n"+
			"  snapshot at revision %d: %s, saved in %s\n",
			count(c.entries), cfg.valueSize, count(int(c.streamMsgs)), c.fillTook.Round(time.Millisecond),
			c.snapRev, mib(int64(c.snapBytes)), c.snapTook.Round(time.Millisecond))
		t := newTable("l r l l l")
		fromSnap := medianDuration(c.fromSnapshot)
		t.add("qlog.Open + WaitReady, fresh replica, from the snapshot", dur(fromSnap), "runs: "+durs(c.fromSnapshot), "target < 1s", verdict(fromSnap < time.Second))
		t.add("qlog.Open + WaitReady, fresh replica, replaying every entry", dur(medianDuration(c.replayAll)), "runs: "+durs(c.replayAll), "", "")
		t.write(out)
	}
	if m := x.mem; m != nil {
		fmt.Fprintf(out, "\nmemory of a replica in a child process (NATS, fsync off, runs in the parent):\n"+
			"  %s puts of %d-byte values (unique keys) applied through Propose in %s; revision %d, %s registers\n",
			count(m.Entries), cfg.memValueSize, (time.Duration(m.FillMillis) * time.Millisecond).Round(time.Second), m.Revision, count(m.Registers))
		t := newTable("l r l l")
		t.add("VmRSS after the last entry applied", mib(m.RSSBytes), "target < 1 GiB", verdict(m.RSSBytes < 1<<30))
		t.add("VmHWM (peak RSS)", mib(m.PeakRSSBytes), "", "")
		t.add("VmRSS after runtime.GC", mib(m.RSSAfterGC), "", "")
		t.add("Go heap in use after runtime.GC", mib(m.HeapInuse), "", "")
		t.write(out)
	}
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "NOT met"
}

func rate(r float64) string { return count(int(r + 0.5)) }

// count formats n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// dur formats d with three significant digits.
func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2fµs", float64(d)/float64(time.Microsecond))
	case d < 100*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func durs(ds []time.Duration) string {
	var out []string
	for _, d := range ds {
		out = append(out, dur(d))
	}
	return strings.Join(out, " ")
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// machine describes where the numbers come from.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s/%s, %d CPUs (%s), %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpu, runtime.Version())
}

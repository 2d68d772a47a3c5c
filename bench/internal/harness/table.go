package harness

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"
)

// PrintRows prints every row of a report: its median run, the spread of
// its runs and why it failed, if it did; then the CPU load while measuring.
func PrintRows(out io.Writer, rep *ModeReport) {
	t := NewTable("ll rrr rr l")
	t.Add("", "", "ops/s", "p50", "p99", "runs: ops/s min–max", "errors", "")
	var failures []string
	for _, r := range rep.Rows {
		cells := []string{r.Group, r.Name, "—", "—", "—", "—", "none", r.Note}
		if med, ok := r.Res.median(); ok {
			lo, hi := r.Res.spread()
			cells = []string{r.Group, r.Name, Rate(med.Rate()), Dur(med.P50), Dur(med.P99),
				fmt.Sprintf("%d× %s–%s", len(r.Res.completed()), Rate(lo), Rate(hi)), "none", r.Note}
		}
		if err := r.Res.Failure(); err != nil {
			failures = append(failures, fmt.Sprintf("  [%d] %s %s: %v", len(failures)+1, r.Group, r.Name, err))
			cells[6] = fmt.Sprintf("FAILED [%d]", len(failures))
		}
		t.Add(cells...)
	}
	t.Write(out)
	for _, f := range failures {
		fmt.Fprintln(out, f)
	}
	fmt.Fprintf(out, "  %s\n", rep.Load)
}

// table is a plain text table; align has one letter per column, l or r,
// and a space where a wider gap separates column groups.
type table struct {
	align []byte
	gap   []bool
	rows  [][]string
}

func NewTable(align string) *table {
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

func (t *table) Add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) Write(out io.Writer) {
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

func Verdict(met bool) string {
	if met {
		return "met"
	}
	return "NOT met"
}

func Rate(r float64) string { return Count(int(r + 0.5)) }

// Count formats n with thousands separators.
func Count(n int) string {
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

// Dur formats d with three significant digits.
func Dur(d time.Duration) string {
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

func Durs(ds []time.Duration) string {
	var out []string
	for _, d := range ds {
		out = append(out, Dur(d))
	}
	return strings.Join(out, " ")
}

func Mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// Machine describes where the numbers come from.
func Machine() string {
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

// PrintHeading prints a section's heading and, when the section failed
// before it measured anything (measured is false), why; it reports whether
// there is a report to print under it.
func PrintHeading(out io.Writer, title string, measured bool, err error) bool {
	fmt.Fprintf(out, "\n== %s ==\n\n", title)
	if !measured {
		fmt.Fprintf(out, "  FAILED: %v\n", err)
		return false
	}
	return true
}

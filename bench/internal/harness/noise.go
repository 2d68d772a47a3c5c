package harness

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// CPUSample is the machine's and this process's CPU time so far, in clock
// ticks, from /proc. Two samples tell how much of the machine other
// processes used in between: benchmarks on a shared machine are only as
// good as that number is small, so the tables print it.
type CPUSample struct {
	Busy, Total, Self uint64
	Ok                bool
}

// SampleCPU samples the machine and this process; the CPU time of the
// processes in children (this process's own, still running: the kernel
// counts a child's time in its parent only once it was waited for) counts
// as this process's.
func SampleCPU(children ...int) CPUSample {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUSample{}
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return CPUSample{}
	}
	var s CPUSample
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return CPUSample{}
		}
		s.Total += n
		if i != 3 && i != 4 {
			s.Busy += n
		}
	}
	self, ok := procCPU("self")
	if !ok {
		return CPUSample{}
	}
	for _, pid := range children {
		t, ok := procCPU(strconv.Itoa(pid))
		if !ok {
			return CPUSample{}
		}
		self += t
	}
	s.Self, s.Ok = self, true
	return s
}

// procCPU returns a process's user + system CPU time in clock ticks, from
// /proc/<pid>/stat.
func procCPU(pid string) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// The fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime and stime fields 14 and 15.
	_, rest, ok := strings.Cut(string(b), ") ")
	g := strings.Fields(rest)
	if !ok || len(g) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseUint(g[11], 10, 64)
	st, err2 := strconv.ParseUint(g[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return ut + st, true
}

// Load describes the CPU use between two samples: this process's and the
// other processes', as shares of the whole machine.
func Load(a, b CPUSample) string { return LoadOf(a, b, "this process") }

// LoadOf is load with who naming what the samples' own share covers.
func LoadOf(a, b CPUSample, who string) string {
	if !a.Ok || !b.Ok || b.Total <= a.Total {
		return "machine load unknown (no /proc)"
	}
	total := float64(b.Total - a.Total)
	self := float64(b.Self-a.Self) / total
	others := float64(b.Busy-a.Busy)/total - self
	return fmt.Sprintf("CPU use while measuring: %s %.0f%%, other processes %.0f%% of the machine's %d CPUs",
		who, 100*self, 100*max(others, 0), runtime.NumCPU())
}

// LoadAverage returns the 1, 5 and 15 minute load averages, or "".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// NetfilterTables lists the netfilter tables loaded in this network
// namespace ("ip nat", "ip filter", ...), from nft or, without it,
// iptables-save; known is false when neither could be run. A nat table
// (dockerd loads one) turns on connection tracking, which every loopback
// packet of every row then pays for.
func NetfilterTables() (tables []string, known bool) {
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil {
		for line := range strings.SplitSeq(string(out), "\n") {
			if name, ok := strings.CutPrefix(strings.TrimSpace(line), "table "); ok {
				tables = append(tables, name)
			}
		}
		return tables, true
	}
	for _, family := range []struct{ cmd, name string }{{"iptables-save", "ip"}, {"ip6tables-save", "ip6"}} {
		out, err := exec.Command(family.cmd).Output()
		if err != nil {
			continue
		}
		known = true
		for line := range strings.SplitSeq(string(out), "\n") {
			if name, ok := strings.CutPrefix(line, "*"); ok {
				tables = append(tables, family.name+" "+strings.TrimSpace(name))
			}
		}
	}
	return tables, known
}

package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// cpuSample is the machine's and this process's CPU time so far, in clock
// ticks, from /proc. Two samples tell how much of the machine other
// processes used in between: benchmarks on a shared machine are only as
// good as that number is small, so the tables print it.
type cpuSample struct {
	busy, total, self uint64
	ok                bool
}

// sampleCPU samples the machine and this process; the CPU time of the
// processes in children (this process's own, still running: the kernel
// counts a child's time in its parent only once it was waited for) counts
// as this process's.
func sampleCPU(children ...int) cpuSample {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuSample{}
	}
	var s cpuSample
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuSample{}
		}
		s.total += n
		if i != 3 && i != 4 {
			s.busy += n
		}
	}
	self, ok := procCPU("self")
	if !ok {
		return cpuSample{}
	}
	for _, pid := range children {
		t, ok := procCPU(strconv.Itoa(pid))
		if !ok {
			return cpuSample{}
		}
		self += t
	}
	s.self, s.ok = self, true
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

// load describes the CPU use between two samples: this process's and the
// other processes', as shares of the whole machine.
func load(a, b cpuSample) string { return loadOf(a, b, "this process") }

// loadOf is load with who naming what the samples' own share covers.
func loadOf(a, b cpuSample, who string) string {
	if !a.ok || !b.ok || b.total <= a.total {
		return "machine load unknown (no /proc)"
	}
	total := float64(b.total - a.total)
	self := float64(b.self-a.self) / total
	others := float64(b.busy-a.busy)/total - self
	return fmt.Sprintf("CPU use while measuring: %s %.0f%%, other processes %.0f%% of the machine's %d CPUs",
		who, 100*self, 100*max(others, 0), runtime.NumCPU())
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "".
func loadAverage() string {
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

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
)

// memChildCommand is the subcommand under which bench re-executes itself
// to measure a replica's memory alone: the child process holds the qlog
// replica and its state machine, and talks to the parent's NATS server
// over TCP, so the server's own memory is not counted.
const memChildCommand = "memchild"

// memReport is what the child prints on stdout, as JSON.
type memReport struct {
	Entries      int   `json:"entries"`
	Registers    int   `json:"registers"`
	Revision     int64 `json:"revision"`
	FillMillis   int64 `json:"fill_ms"`
	RSSBytes     int64 `json:"rss_bytes"`      // VmRSS right after the last entry applied
	PeakRSSBytes int64 `json:"peak_rss_bytes"` // VmHWM over the child's life
	RSSAfterGC   int64 `json:"rss_after_gc_bytes"`
	HeapInuse    int64 `json:"heap_inuse_after_gc_bytes"`
}

// runMemory starts a NATS server (fsync off: the fill is faster and the
// replica's memory does not depend on it) and a child process that applies
// memEntries small puts through a qlog Log.
func runMemory(ctx context.Context, log *slog.Logger, cfg config) (*memReport, error) {
	var rep memReport
	err := withNATS(cfg, "mem", false, func(ns *natsServer) error {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		args := append([]string{memChildCommand,
			"-url", ns.url,
			"-entries", strconv.Itoa(cfg.memEntries),
			"-value-size", strconv.Itoa(cfg.memValueSize),
			"-proposers", strconv.Itoa(cfg.proposers)}, cfg.tuning.args()...)
		cmd := exec.CommandContext(ctx, exe, args...)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		log.Info("memory: applying entries in a child process", "entries", cfg.memEntries,
			"value_size", cfg.memValueSize, "proposers", cfg.proposers)
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("child process: %w", err)
		}
		if took := time.Since(start); took > 3*time.Minute {
			log.Warn("memory: applying the entries took more than 3 minutes; -mem-entries makes the count smaller",
				"took", took.Round(time.Second))
		}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			return fmt.Errorf("child's report %q: %w", out.String(), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &rep, nil
}

// runMemChild is the child: it opens a single-voter log with a Registers
// state machine, proposes the puts, checks they all applied and reports
// its memory.
func runMemChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(memChildCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "NATS server URL")
	entries := fs.Int("entries", 1_000_000, "puts to apply")
	valueSize := fs.Int("value-size", 32, "value size")
	proposers := fs.Int("proposers", 256, "concurrent proposers")
	var tune qlogTuning
	tune.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("process", memChildCommand)
	ns := &natsServer{url: *url}
	g, err := openGroup(ctx, log, ns, "mem", 1, tune, nil)
	if err != nil {
		return err
	}
	defer g.close()
	start := time.Now()
	if err := fill(ctx, log, g.logs[0], *entries, *proposers, "m", string(filler(*valueSize))); err != nil {
		return err
	}
	rep := memReport{Entries: *entries, FillMillis: time.Since(start).Milliseconds()}
	rep.RSSBytes, rep.PeakRSSBytes, err = readRSS()
	if err != nil {
		return err
	}
	err = g.logs[0].Read(ctx, qlog.Serializable, func(rev int64) error {
		rep.Registers, rep.Revision = g.sms[0].Len(), rev
		return nil
	})
	if err != nil {
		return err
	}
	if rep.Registers != *entries {
		return fmt.Errorf("the state machine holds %d registers, want %d", rep.Registers, *entries)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rep.HeapInuse = int64(ms.HeapInuse)
	if rep.RSSAfterGC, _, err = readRSS(); err != nil {
		return err
	}
	log.Info("memory measured", "rss_mib", rep.RSSBytes>>20, "peak_rss_mib", rep.PeakRSSBytes>>20,
		"heap_inuse_after_gc_mib", rep.HeapInuse>>20)
	return json.NewEncoder(stdout).Encode(rep)
}

// readRSS returns VmRSS and VmHWM of this process from /proc/self/status.
func readRSS() (rss, hwm int64, err error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s %q: %w", name, val, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("VmRSS or VmHWM missing from /proc/self/status")
	}
	return rss, hwm, nil
}

package qlogbench

import (
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
	"time"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/platform/qlog"
)

// MemChildCommand is the subcommand under which bench re-executes itself
// to measure a replica's memory alone: the child process holds the qlog
// replica and its state machine, and talks to the parent's NATS server
// over TCP, so the server's own memory is not counted.
const MemChildCommand = "memchild"

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

// RunMemory starts a NATS server (fsync off: the fill is faster and the
// replica's memory does not depend on it) and a child process that applies
// memEntries small puts through a qlog Log.
func RunMemory(ctx context.Context, log *slog.Logger, cfg harness.Config) (*memReport, error) {
	var rep memReport
	err := harness.WithNATS(cfg, "mem", false, func(ns *harness.NATSServer) error {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		args := append([]string{MemChildCommand,
			"-url", ns.URL,
			"-entries", strconv.Itoa(cfg.MemEntries),
			"-value-size", strconv.Itoa(cfg.MemValueSize),
			"-proposers", strconv.Itoa(cfg.Proposers)}, cfg.Tuning.Args()...)
		cmd := exec.CommandContext(ctx, exe, args...)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		log.Info("memory: applying entries in a child process", "entries", cfg.MemEntries,
			"value_size", cfg.MemValueSize, "proposers", cfg.Proposers)
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

// RunMemChild is the child: it opens a single-voter log with a Registers
// state machine, proposes the puts, checks they all applied and reports
// its memory.
func RunMemChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(MemChildCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "NATS server URL")
	entries := fs.Int("entries", 1_000_000, "puts to apply")
	valueSize := fs.Int("value-size", 32, "value size")
	proposers := fs.Int("proposers", 256, "concurrent proposers")
	var tune harness.QlogTuning
	tune.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("process", MemChildCommand)
	ns := &harness.NATSServer{URL: *url}
	g, err := openGroup(ctx, log, ns, "mem", 1, tune, nil)
	if err != nil {
		return err
	}
	defer g.Close()
	start := time.Now()
	if err := fill(ctx, log, g.Logs[0], *entries, *proposers, "m", string(harness.Filler(*valueSize))); err != nil {
		return err
	}
	rep := memReport{Entries: *entries, FillMillis: time.Since(start).Milliseconds()}
	rep.RSSBytes, rep.PeakRSSBytes, err = harness.ReadRSS()
	if err != nil {
		return err
	}
	err = g.Logs[0].Read(ctx, qlog.Serializable, func(rev int64) error {
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
	if rep.RSSAfterGC, _, err = harness.ReadRSS(); err != nil {
		return err
	}
	log.Info("memory measured", "rss_mib", rep.RSSBytes>>20, "peak_rss_mib", rep.PeakRSSBytes>>20,
		"heap_inuse_after_gc_mib", rep.HeapInuse>>20)
	return json.NewEncoder(stdout).Encode(rep)
}

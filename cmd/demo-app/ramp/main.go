// Command ramp is `make demo`: it starts `steward dev`, puts a scaler with
// the process driver on the demo app, sends a load ramp through the
// gateway and prints, every two seconds, the load, the latency and the
// replica count as the scaler takes it up and back down. Then comes the
// rollout act (rollout.go): a second scaler runs 4 demo-app processes at
// v1 under a light load; act A rolls them to v2 (RollingUpdate), act B
// sends a v3 that fails 5% of its requests as a canary, which its first
// analysis fails and the scaler rolls back; the act's scaler is deleted.
// At the end it stops `steward dev` with SIGINT, which stops the demo
// app's processes through the driver, and checks that none is left.
//
//	go run ./cmd/demo-app/ramp -steward bin/steward -app bin/demo-app [-quick]
//
// It exits non-zero when the scaler did not scale up, did not come back
// down to minReplicas, or left a process behind, or when act A did not
// succeed without a failed request or act B did not end Failed, rolled
// back to 4 passing v2 instances: the demo exists to show those things,
// so their absence is a failure, not a quiet line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ramp:", err)
		stop()
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	steward, app string
	// dir is steward dev's data directory and where its log goes; empty
	// makes a new temporary one, which is kept for the log.
	dir   string
	quick bool
	// work is the CPU time one request burns in the demo app.
	work time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("ramp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.steward, "steward", "bin/steward", "the steward binary (make build)")
	fs.StringVar(&o.app, "app", "bin/demo-app", "the demo-app binary (make build)")
	fs.StringVar(&o.dir, "dir", "", "steward dev's data directory, where its log goes too (default: a new temporary directory)")
	fs.BoolVar(&o.quick, "quick", false, "a shorter ramp (about 90 s) and shorter canary pauses in the rollout act")
	fs.DurationVar(&o.work, "work", 10*time.Millisecond, "CPU time each request burns in the demo app (STEWARD_DEMO_WORK)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.work <= 0 {
		return o, errors.New("-work must be positive")
	}
	// The driver runs the app from steward dev's working directory, and
	// the leftover check matches the path: both want it absolute.
	var err error
	for _, p := range []*string{&o.steward, &o.app} {
		if *p, err = filepath.Abs(*p); err != nil {
			return o, err
		}
		if _, err := os.Stat(*p); err != nil {
			return o, fmt.Errorf("%w (run make build first)", err)
		}
	}
	return o, nil
}

// phase is one step of the load: rate requests per second (0: none) for
// dur. The last phase is the cool-down, which ends early once the
// service is back at minReplicas.
type phase struct {
	rate float64
	dur  time.Duration
}

// The schedules are tuned on a 2-core machine. A request costs about
// 10.5 ms of CPU (the 10 ms burn and the HTTP around it), so 15 requests
// per second per replica and 0.15 cores per replica ask for about the
// same count; the rates sit between replica boundaries (20, 40 and 65
// rps ask for 2, 3 and 5 replicas; 25 and 55 for 2 and 4), so that a
// little noise does not add one. The peak leaves more than a core for
// Steward and the load generator.
var (
	fullPhases = []phase{
		{0, 20 * time.Second},
		{20, 40 * time.Second},
		{40, 40 * time.Second},
		{65, 40 * time.Second},
		{0, 60 * time.Second},
	}
	quickPhases = []phase{
		{0, 6 * time.Second},
		{25, 24 * time.Second},
		{55, 24 * time.Second},
		{0, 40 * time.Second},
	}
)

// The scaler the demo puts. The scale-down window is HPA's 300 s cut to
// 20 s, so that the way down fits in the demo.
const (
	scalerName      = "demo"
	service         = "demo"
	minReplicas     = 1
	maxReplicas     = 8
	syncPeriod      = 2 * time.Second
	rpsTarget       = 15.0 // gateway_rps per replica
	cpuTarget       = 0.15 // process_cpu_seconds_total:rate (cores) per replica
	scaleDownWindow = 20 * time.Second
	gracePeriod     = 5 * time.Second
)

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	phases := fullPhases
	if o.quick {
		phases = quickPhases
	}
	return demo(ctx, o, phases, stdout)
}

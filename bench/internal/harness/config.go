package harness

import (
	"flag"
	"fmt"
	"github.com/stewardhq/steward/platform/qlog"
	"os"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the command line.
type Config struct {
	Settings
	Clients      int
	HTTPClient   string // the load's HTTP transport: HTTPClientSDK or HTTPClientNetHTTP
	ValueSize    int
	Modes        []string
	Only         []string
	ColdEntries  int
	MemEntries   int
	MemValueSize int
	Proposers    int // for the fill phases
	Tmp          string
	CPUProfile   string
	Rows         *regexp.Regexp
	Tuning       QlogTuning
	// the config section
	Watchers           int
	WatchPuts          int
	WatchAuth          string // off, on or both
	ConfigMemKeys      int
	ConfigMemValueSize int
	// the election section
	ElectionTrials int
	ElectionTTL    time.Duration
	// the registry section
	RegInstances int
	RegServices  int
	RegStop      int
	RegTTL       time.Duration
	RegEvery     time.Duration
	RegDuration  time.Duration
	// the gateway section
	Gateway GatewayConfig
	// the scaler section
	Scaler ScalerConfig
	// the cluster section
	ClusterServers string
	// the cluster3 section
	Cluster3WatchPuts int
}

func SplitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (c Config) Enabled(section string) bool { return slices.Contains(c.Only, section) }

// ConfigPart reports whether a part of the config section runs.
func (c Config) ConfigPart(part string) bool { return c.Enabled("config") || c.Enabled(part) }

// StartCPUProfile writes a CPU profile of this process to path until stop
// is called, and then the allocations since the process started (pprof's
// allocs profile) to path.allocs; an empty path profiles nothing.
func StartCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if a, err := os.Create(path + ".allocs"); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
	}, nil
}

// TempDir makes a fresh directory for one server's data.
func TempDir(cfg Config, pattern string) (string, error) {
	return os.MkdirTemp(cfg.Tmp, "steward-bench-"+pattern+"-")
}

// GatewayConfig is the section's command line.
type GatewayConfig struct {
	Duration, RateDuration, Warmup time.Duration
	Runs, Connections, Rate        int
	LoadWorkers                    int
	Profile, Env, Baseline         string
	CaddyVersion                   string
}

// The scaler section runs the scaler service (scaler.Serve, one replica,
// with a registry and an election service beside it, all in this process
// on one embedded NATS server with fsync on every write, as steward dev
// runs them) and a webhook receiver of its own, and measures
//
//   - reaction: load pushed every second to POST /v1/metrics as the
//     gateway sends it (gateway_rps, a service-wide total, against an
//     averageValue target of 10 per replica), steady at the target for 2
//     replicas, then at a random point of the sync cycle a step to 4× the
//     load; the time runs from the first push of the stepped value until
//     the receiver gets the driver's POST. Each trial has a fresh scaler
//     (its own service and receiver path), sync periods 1 s and 15 s.
//   - behaviour on a series: a 10-minute load series (ramp up, a noisy
//     plateau with a spike, ramp down), run live compressed in time with
//     the scaler's windows and policy periods compressed alike; the replica
//     count over time as the receiver saw it, beside the same series, as
//     pushed, replayed through hpa.Simulate, through an HPA
//     reference written apart from Steward's autoscale (hparef.go), and
//     through a naive controller without tolerance, stabilization or
//     policies.

// ScalerConfig is the section's flags.
type ScalerConfig struct {
	TrialsFast, TrialsSlow int
	Wave                   int
	Compress               int
}

// QlogTuning overrides qlog's group-commit bounds, to try other settings
// than the defaults; zero keeps a default.
type QlogTuning struct {
	maxInFlight int
	maxBatch    int
	linger      time.Duration
}

func (t *QlogTuning) Flags(fs *flag.FlagSet) {
	fs.IntVar(&t.maxInFlight, "qlog-max-in-flight", 0, "qlog Config.MaxInFlight (0: qlog's default)")
	fs.IntVar(&t.maxBatch, "qlog-max-batch", 0, "qlog Config.MaxBatch (0: qlog's default)")
	fs.DurationVar(&t.linger, "qlog-linger", 0, "qlog Config.Linger (0: qlog's default)")
}

// Args renders the settings as flags, for the memory child process.
func (t QlogTuning) Args() []string {
	return []string{"-qlog-max-in-flight", strconv.Itoa(t.maxInFlight), "-qlog-max-batch", strconv.Itoa(t.maxBatch),
		"-qlog-linger", t.linger.String()}
}

func (t QlogTuning) Apply(c *qlog.Config) {
	c.MaxInFlight, c.MaxBatch, c.Linger = t.maxInFlight, t.maxBatch, t.linger
}

func (t QlogTuning) String() string {
	var set []string
	if t.maxInFlight != 0 {
		set = append(set, fmt.Sprintf("MaxInFlight=%d", t.maxInFlight))
	}
	if t.maxBatch != 0 {
		set = append(set, fmt.Sprintf("MaxBatch=%d", t.maxBatch))
	}
	if t.linger != 0 {
		set = append(set, fmt.Sprintf("Linger=%s", t.linger))
	}
	if len(set) == 0 {
		return "qlog's defaults"
	}
	return strings.Join(set, ", ") + " (the rest qlog's defaults)"
}

// RegistryPart reports whether a part of the registry section runs.
func (c Config) RegistryPart(part string) bool { return c.Enabled("registry") || c.Enabled(part) }

// SignedDur is dur for durations that may be negative.
func SignedDur(d time.Duration) string {
	if d < 0 {
		return "−" + Dur(-d)
	}
	if d == 0 {
		return "0"
	}
	return Dur(d)
}

package harness

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Mode is a durability setting shared by every server in one table.
type Mode struct {
	ID, Title  string
	NATSSync   bool // NATS SyncAlways
	etcdNoSync bool // etcd UnsafeNoFsync
}

var ModeByID = map[string]Mode{
	"A": {ID: "A", Title: "fsync on every write (NATS SyncAlways=true; etcd default, fsync on commit)", NATSSync: true},
	"B": {ID: "B", Title: "fsync off (NATS SyncAlways=false; etcd UnsafeNoFsync=true)", etcdNoSync: true},
}

// Row keys, for the ratios and the side-by-side view.
const (
	RowSync       = "sync"
	RowSyncEcho   = "sync-echo"
	RowAsync      = "async"
	RowQ1x1       = "q1x1"
	RowQ1xN       = "q1xN"
	RowQ3x1       = "q3x1"
	RowQ3xNSpread = "q3xN-spread"
	RowQ3xNOne    = "q3xN-one"
	RowQLin       = "qlin"
	RowQSer       = "qser"
	RowQLin3x1    = "qlin3x1"
	RowQLin3      = "qlin3"
	RowEPut1      = "eput1"
	RowEPutN      = "eputN"
	RowELin       = "elin"
	RowESer       = "eser"
)

type Row struct {
	Key, Group, Name string
	Res              Result
	Note             string
}

type ModeReport struct {
	Mode Mode
	Rows []Row
	Load string // CPU use by this and other processes while measuring
}

// Get returns a row's median run; ok is false when the row was not
// measured or no run of it completed, failed when a run of it failed.
func (r *ModeReport) Get(key string) (s RunStats, ok, failed bool) {
	for _, x := range r.Rows {
		if x.Key == key {
			s, ok = x.Res.median()
			return s, ok, x.Res.Failure() != nil
		}
	}
	return RunStats{}, false, false
}

// Cells are a row's median ops/s, p50 and p99, or dashes.
func (r *ModeReport) Cells(key string) []string {
	s, ok, _ := r.Get(key)
	if !ok {
		return []string{"—", "—", "—"}
	}
	return []string{Rate(s.Rate()), Dur(s.P50), Dur(s.P99)}
}

// Ratio is row num's throughput over row den's; ok is false when either
// has no median run.
func (r *ModeReport) Ratio(num, den string) (v float64, ok bool) {
	a, okA, _ := r.Get(num)
	b, okB, _ := r.Get(den)
	if !okA || !okB || b.Rate() == 0 {
		return 0, false
	}
	return a.Rate() / b.Rate(), true
}

// AddPair adds a side-by-side line to t: name, our row's cells, their
// row's cells and the ratio of the throughputs.
func (r *ModeReport) AddPair(t *table, name, ours, theirs string) {
	row := append([]string{name}, r.Cells(ours)...)
	row = append(row, r.Cells(theirs)...)
	v := "—"
	if x, ok := r.Ratio(ours, theirs); ok {
		v = fmt.Sprintf("%.2f×", x)
	}
	t.Add(append(row, v)...)
}

// ReadKey is the register (and etcd key) the read rows read.
const ReadKey = "bench-read-key"

func (r *ModeReport) Add(log *slog.Logger, x Row) {
	r.Rows = append(r.Rows, x)
	var rates []string
	for _, s := range x.Res.completed() {
		rates = append(rates, fmt.Sprintf("%.0f", s.Rate()))
	}
	attrs := []any{"mode", r.Mode.ID, "row", x.Group + " " + x.Name, "ops_per_s", strings.Join(rates, "/")}
	if med, ok := x.Res.median(); ok {
		attrs = append(attrs, "p50", med.P50.Round(time.Microsecond), "p99", med.P99.Round(time.Microsecond))
	}
	if err := x.Res.Failure(); err != nil {
		log.Error("row failed", append(attrs, "err", err)...)
		return
	}
	log.Info("measured", attrs...)
}

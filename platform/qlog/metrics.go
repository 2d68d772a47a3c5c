package qlog

import (
	"github.com/prometheus/client_golang/prometheus"
)

// logMetrics is the log's own health, for Prometheus: how far the replica
// applied and how far behind the stream it is, how long writes wait for
// JetStream and for the voters, how large the batches are, how reads fare
// and how often the consumer had to be replaced. Register it with
// Log.Collector.
type logMetrics struct {
	quorumWait   prometheus.Histogram
	publish      prometheus.Histogram
	publishErrs  *prometheus.CounterVec
	batchEntries prometheus.Histogram
	batchBytes   prometheus.Histogram
	readIndex    prometheus.Histogram
	readErrs     prometheus.Counter
	consumers    prometheus.Counter
	snapshots    prometheus.Histogram
	entryAge     prometheus.Histogram
	gauges       []prometheus.Collector
}

func newLogMetrics(l *Log) *logMetrics {
	labels := prometheus.Labels{"service": l.cfg.Service, "replica": l.cfg.ReplicaID}
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "steward", Subsystem: "qlog", Name: name,
			Help: help, ConstLabels: labels, Buckets: buckets})
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "steward", Subsystem: "qlog", Name: name,
			Help: help, ConstLabels: labels}, f)
	}
	seconds := prometheus.ExponentialBuckets(0.0001, 2.5, 14) // 100µs .. ~15 min
	m := &logMetrics{
		quorumWait: hist("quorum_wait_seconds",
			"Time a proposal waited, after this replica applied it, for a majority of voters to apply it.", seconds),
		publish: hist("publish_seconds", "Time JetStream took to acknowledge a batch (all attempts).", seconds),
		publishErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "steward", Subsystem: "qlog",
			Name: "publish_failures_total", ConstLabels: labels,
			Help: "Batches that were never acknowledged: refused (never stored) or unknown (may have been stored)."},
			[]string{"outcome"}),
		batchEntries: hist("batch_entries", "Entries per published batch (group commit).", prometheus.ExponentialBuckets(1, 2, 11)),
		batchBytes:   hist("batch_bytes", "Bytes per published batch.", prometheus.ExponentialBuckets(64, 4, 10)),
		readIndex: hist("read_index_seconds",
			"Time a linearizable read waited for its read index (stream leader and voter majority).", seconds),
		readErrs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "steward", Subsystem: "qlog",
			Name: "read_index_failures_total", ConstLabels: labels, Help: "Read-index rounds that failed."}),
		consumers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "steward", Subsystem: "qlog",
			Name: "consumer_restarts_total", ConstLabels: labels,
			Help: "Times the replica replaced its stream consumer (lost server, missed heartbeats, lost delivery)."}),
		snapshots: hist("snapshot_seconds", "Time to store a snapshot in the snapshot store.", seconds),
		entryAge: hist("entry_age_seconds",
			"Age of each applied batch's oldest entry: this replica's clock minus the proposer's stamp (commit delay plus clock offset).", seconds),
	}
	m.gauges = []prometheus.Collector{
		gauge("applied_revision", "The last revision this replica applied.", func() float64 { return float64(l.Revision()) }),
		gauge("applied_sequence", "The last stream sequence this replica applied.", func() float64 {
			l.mu.RLock()
			defer l.mu.RUnlock()
			return float64(l.seq)
		}),
		gauge("stream_last_sequence", "The stream's last sequence, as the stream leader last said (read index, watchdog).",
			func() float64 { return float64(l.streamLast.Load()) }),
		gauge("apply_lag", "Stream messages the replica has not applied yet: stream_last_sequence minus applied_sequence, at least 0.",
			func() float64 {
				l.mu.RLock()
				seq := l.seq
				l.mu.RUnlock()
				return float64(max(int64(l.streamLast.Load())-int64(seq), 0))
			}),
		gauge("ready", "1 when the replica caught up with the log and serves, else 0.", func() float64 { return b2f(l.Ready() == nil) }),
		gauge("failed", "1 when the replica fail-stopped (see its log for why).", func() float64 { return b2f(l.failed.Load() != nil) }),
		gauge("voter", "1 when this replica is a voter, 0 for an observer.", func() float64 { return b2f(l.voter) }),
		gauge("expiry_held", "1 while RunExpiry proposes nothing: this replica saw the log stall, or another replica reported a stall it saw end, within the expiry grace.",
			func() float64 { return b2f(l.stalledWithin(l.cfg.ExpiryGrace)) }),
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collector returns the log's metrics (steward_qlog_*, labelled with the
// service and the replica) for a Prometheus registry.
func (l *Log) Collector() prometheus.Collector { return l.metrics }

func (m *logMetrics) all() []prometheus.Collector {
	return append([]prometheus.Collector{m.quorumWait, m.publish, m.publishErrs, m.batchEntries, m.batchBytes,
		m.readIndex, m.readErrs, m.consumers, m.snapshots, m.entryAge}, m.gauges...)
}

// Describe implements prometheus.Collector.
func (m *logMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *logMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all() {
		c.Collect(ch)
	}
}

package qlogbench

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// logFaults counts what a group's replicas recovered from, from their
// metrics: a row that had to is not a clean measurement.
type logFaults struct {
	consumerRestarts, publishFailures, readIndexFailures float64
	err                                                  error
}

func (g *Group) Faults() logFaults {
	var f logFaults
	for _, l := range g.Logs {
		reg := prometheus.NewRegistry()
		if f.err = reg.Register(l.Collector()); f.err != nil {
			return f
		}
		families, err := reg.Gather()
		if f.err = err; err != nil {
			return f
		}
		for _, mf := range families {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			switch mf.GetName() {
			case "steward_qlog_consumer_restarts_total":
				f.consumerRestarts += sum
			case "steward_qlog_publish_failures_total":
				f.publishFailures += sum
			case "steward_qlog_read_index_failures_total":
				f.readIndexFailures += sum
			}
		}
	}
	return f
}

// Since describes what happened after before, or "" when nothing did.
func (f logFaults) Since(before logFaults) string {
	if f.err != nil || before.err != nil {
		return fmt.Sprintf("log metrics unknown: %v", errors.Join(f.err, before.err))
	}
	var out []string
	for _, x := range []struct {
		n    float64
		what string
	}{
		{f.consumerRestarts - before.consumerRestarts, "consumer restarts"},
		{f.publishFailures - before.publishFailures, "publish failures"},
		{f.readIndexFailures - before.readIndexFailures, "read-index failures"},
	} {
		if x.n > 0 {
			out = append(out, fmt.Sprintf("%.0f %s", x.n, x.what))
		}
	}
	return strings.Join(out, ", ")
}

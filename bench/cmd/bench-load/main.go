// Command bench-load is the gateway section's fixed-rate load generator:
// vegeta's attacker (an open loop: requests leave at the rate whether or
// not earlier ones were answered) sending GET -url at -rate for
// -duration. It prints one JSON line with exact nearest-rank percentiles
// of every request's latency (vegeta's own report estimates them).
//
// Its workers are bounded (-max-workers): if they are all waiting, the
// rate falls behind, which the report's rate shows.
//
// It brings its own http.Client because vegeta's binds every connection
// to 0.0.0.0:0 before connecting, and a bind cannot reuse a port in
// TIME_WAIT: after a proxy that churns connections, loopback's ephemeral
// ports run out for it while connect alone still finds one.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/stewardhq/steward/bench/internal/loadreport"
)

func main() {
	url := flag.String("url", "", "the URL to GET")
	rate := flag.Int("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	workers := flag.Uint64("max-workers", 64, "the most workers (each a request at a time, on its own connection) vegeta may add to its initial 10 to keep the rate; 0: no bound")
	flag.Parse()
	if *url == "" || *rate < 1 {
		fmt.Fprintln(os.Stderr, "bench-load: -url and a positive -rate are needed")
		os.Exit(2)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 10_000,
		DisableCompression:  true,
	}}
	opts := []func(*vegeta.Attacker){vegeta.Client(hc), vegeta.MaxBody(0)}
	if *workers > 0 {
		// Unbounded, a proxy that falls behind draws ever more workers
		// and connections onto the CPU it shares with them, and the run
		// measures that spiral rather than the proxy.
		opts = append(opts, vegeta.Workers(min(vegeta.DefaultWorkers, *workers)), vegeta.MaxWorkers(*workers))
	}
	atk := vegeta.NewAttacker(opts...)
	targeter := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: *url})
	pacer := vegeta.ConstantPacer{Freq: *rate, Per: time.Second}
	var rep loadreport.Report
	lat := make([]time.Duration, 0, int(float64(*rate)*duration.Seconds())+1)
	var first, last time.Time
	seen := map[string]bool{}
	for res := range atk.Attack(targeter, pacer, *duration, "bench") {
		// Results come as they are answered: the span is of send times.
		if first.IsZero() || res.Timestamp.Before(first) {
			first = res.Timestamp
		}
		if res.Timestamp.After(last) {
			last = res.Timestamp
		}
		lat = append(lat, res.Latency)
		switch {
		case res.Code >= 200 && res.Code < 300:
			rep.OK++
		case res.Error != "" && !seen[res.Error] && len(seen) < 5:
			seen[res.Error] = true
			rep.Errors = append(rep.Errors, res.Error)
		case res.Error == "" && !seen[fmt.Sprint(res.Code)] && len(seen) < 5:
			seen[fmt.Sprint(res.Code)] = true
			rep.Errors = append(rep.Errors, fmt.Sprintf("status %d", res.Code))
		}
	}
	rep.Requests = len(lat)
	if span := last.Sub(first).Seconds(); rep.Requests > 1 && span > 0 {
		rep.Rate = float64(rep.Requests-1) / span
	}
	rep.SetLatencies(lat)
	_ = json.NewEncoder(os.Stdout).Encode(rep)
}

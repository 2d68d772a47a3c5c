package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// every is how often the demo prints a line: the scaler's sync period,
// so that each line can show a new decision.
const every = syncPeriod

// demo runs the whole demo: steward dev, the scaler, the ramp, the
// summary, the rollout act and the shutdown.
func demo(ctx context.Context, o options, phases []phase, out io.Writer) (err error) {
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "steward-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(out, "starting %s dev, every address on 127.0.0.1:0\n", o.steward)
	dev, err := startDev(ctx, o.steward, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "steward dev is up: gateway %s, registry %s, scaler %s\n", dev.gateway, dev.registry, dev.scaler)
	fmt.Fprintf(out, "  its log (and the demo app's output): %s\n", dev.logPath)
	a := newAPI(dev.registry, dev.scaler)
	rep := &report{api: a, out: out, phases: phases, work: o.work, seen: map[int64]bool{}, seenUsage: map[string]float64{}}
	// Whatever happens from here, steward dev is stopped and the demo
	// app's processes are looked for.
	defer func() { err = errors.Join(err, rep.shutdown(dev, o.app)) }()

	if err := a.putScaler(ctx, scalerName, scalerSpec(o.app, dev.registry, o.work)); err != nil {
		return err
	}
	fmt.Fprintf(out, "scaler %q: service %q, %d to %d replicas, a decision every %v\n", scalerName, service, minReplicas, maxReplicas, syncPeriod)
	fmt.Fprintf(out, "  driver: process, runs %s with STEWARD_DEMO_WORK=%v (CPU per request) and GOMAXPROCS=1 (one core per replica)\n", o.app, o.work)
	fmt.Fprintf(out, "  targets per replica: gateway_rps %g/s (sent by the gateway every 5 s), process_cpu_seconds_total:rate %g cores (scraped from /metrics)\n", rpsTarget, cpuTarget)
	fmt.Fprintf(out, "  scale-down stabilization window %v: HPA's default is 300 s, the demo shortens it so the way down fits\n", scaleDownWindow)

	rep.setup = time.Now()
	if err := rep.waitFirst(ctx, dev.gateway); err != nil {
		return err
	}
	err = rep.ramp(ctx, dev.gateway)
	if ctx.Err() != nil {
		return err
	}
	return errors.Join(err, runRolloutAct(ctx, a, out, o, dev))
}

// report follows the scaler and prints what happens.
type report struct {
	api    *api
	out    io.Writer
	phases []phase
	work   time.Duration
	setup  time.Time // when the scaler was put
	t0     time.Time // when the ramp started

	starts    []time.Duration // when each phase started, since t0
	seen      map[int64]bool  // decisions whose actuation was printed
	events    []scaleEvent    // during the ramp
	driverErr string
	maxSeen   int
	// backDown: at the last look the scaler had scaled up and was back
	// at minReplicas, and the registry had only that many passing.
	backDown bool
	// seenUsage is the highest usage the scaler's decisions showed per
	// metric: the proof that each source (the gateway's signals, the
	// scrape) reached it.
	seenUsage map[string]float64
}

// scaleEvent is one actuation that changed the replica count.
type scaleEvent struct {
	at       time.Duration // since t0
	from, to int
}

// waitFirst waits for the scaler to start the first replica and for the
// gateway to route to it.
func (r *report) waitFirst(ctx context.Context, gateway string) error {
	fmt.Fprintf(r.out, "waiting for the scaler to start the first replica...\n")
	deadline := time.Now().Add(45 * time.Second)
	for {
		r.actuations(ctx)
		n, err := r.api.passing(ctx)
		if err == nil && n >= minReplicas && r.routes(ctx, gateway) {
			fmt.Fprintf(r.out, "  %d passing in the registry and answering through the gateway after %.1fs\n", n, time.Since(r.setup).Seconds())
			return nil
		}
		if time.Now().After(deadline) {
			last := "none"
			st, serr := r.api.scalerStatus(ctx)
			if serr != nil {
				last = serr.Error()
			} else if d := st.Status.LastDecision; d != nil {
				last = fmt.Sprintf("%d → %d: %s", d.CurrentReplicas, d.DesiredReplicas, d.Reason)
			}
			passing := fmt.Sprint(n)
			if err != nil {
				passing = err.Error()
			}
			return fmt.Errorf("no replica of %s answered through the gateway within 45 s (passing in the registry: %s; driverError: %q)\n"+
				"  the scaler's last decision: %s\n  GET /v1/scalers/%s/decisions?limit=5:\n%s",
				service, passing, st.Status.DriverError, last, scalerName, r.api.rawDecisions(ctx, 5))
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func (r *report) routes(ctx context.Context, gateway string) bool {
	return answers(ctx, r.api, gateway+"/s/"+service+"/")
}

// answers reports whether a GET of url is answered 200.
func answers(ctx context.Context, a *api, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// ramp runs the phases, printing a line every tick, and the summary.
func (r *report) ramp(ctx context.Context, gateway string) error {
	gen := newLoadGen(gateway + "/s/" + service + "/")
	lctx, stopLoad := context.WithCancel(ctx)
	genDone := make(chan struct{})
	go func() { defer close(genDone); gen.run(lctx) }()
	defer func() { stopLoad(); <-genDone }()

	var plan []string
	for i, p := range r.phases {
		switch {
		case i == len(r.phases)-1:
			plan = append(plan, fmt.Sprintf("then no load until back at %d replica (at most %v)", minReplicas, p.dur))
		case p.rate == 0:
			plan = append(plan, fmt.Sprintf("%v idle", p.dur))
		default:
			plan = append(plan, fmt.Sprintf("%v at %g rps", p.dur, p.rate))
		}
	}
	fmt.Fprintf(r.out, "load through the gateway (GET %s/s/%s/, fixed rate): %s\n\n", gateway, service, strings.Join(plan, ", "))
	fmt.Fprintf(r.out, "%6s %5s %8s %7s %8s %9s %8s  %s\n", "time", "load", "offered", "served", "p50", "replicas", "passing", "last decision")

	r.t0 = time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	phase, phaseEnd := 0, r.t0.Add(r.phases[0].dur)
	r.startPhase(ctx, gen, 0)
	last := r.t0
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(r.out, "interrupted\n")
			r.summary(gen)
			return errors.New("interrupted")
		case now := <-tick.C:
			w := gen.take()
			r.line(ctx, now, now.Sub(last), r.phases[phase].rate, w)
			last = now
			// Ticks fall on phase boundaries, give or take the scheduler.
			if now.Add(every / 2).After(phaseEnd) {
				phase++
				if phase == len(r.phases) {
					r.summary(gen)
					return r.verdict()
				}
				phaseEnd = phaseEnd.Add(r.phases[phase].dur)
				r.startPhase(ctx, gen, phase)
			}
			if phase == len(r.phases)-1 && r.backDown {
				r.summary(gen)
				return r.verdict()
			}
		}
	}
}

func (r *report) startPhase(ctx context.Context, gen *loadGen, i int) {
	p := r.phases[i]
	r.starts = append(r.starts, time.Since(r.t0))
	at := r.starts[i].Seconds()
	switch {
	case i == len(r.phases)-1:
		fmt.Fprintf(r.out, "-- %3.0fs: load stops; waiting for the scale-down window (%v) to pass\n", at, scaleDownWindow)
	case p.rate == 0:
		fmt.Fprintf(r.out, "-- %3.0fs: no load\n", at)
	default:
		fmt.Fprintf(r.out, "-- %3.0fs: %g requests per second (%.2g cores of work at %v each)\n", at, p.rate, p.rate*r.work.Seconds(), r.work)
	}
	gen.setRate(ctx, p.rate)
}

// phaseSpan is when phase i started and ended, since t0 (the end of a
// phase not over is the end of time).
func (r *report) phaseSpan(i int) (start, end time.Duration) {
	end = time.Duration(math.MaxInt64)
	if i+1 < len(r.starts) {
		end = r.starts[i+1]
	}
	return r.starts[i], end
}

// line prints one tick: the load over the last window, the scaler's
// counts, the registry's and the last decision.
func (r *report) line(ctx context.Context, now time.Time, span time.Duration, rate float64, w window) {
	r.actuations(ctx)
	st, err := r.api.scalerStatus(ctx)
	replicas, reason := "?", ""
	if err != nil {
		reason = "scaler: " + err.Error()
	} else {
		s := st.Status
		replicas = fmt.Sprintf("%d → %d", s.CurrentReplicas, s.DesiredReplicas)
		r.maxSeen = max(r.maxSeen, s.CurrentReplicas)
		if d := s.LastDecision; d != nil {
			reason = d.Reason
			for _, m := range d.Metrics {
				if m.Error == "" {
					r.seenUsage[m.Name] = max(r.seenUsage[m.Name], m.Usage)
				}
			}
		}
		if s.DriverError != r.driverErr {
			if s.DriverError != "" {
				fmt.Fprintf(r.out, "  ! driver error: %s\n", s.DriverError)
			}
			r.driverErr = s.DriverError
		}
		r.backDown = r.maxSeen > minReplicas && s.CurrentReplicas == minReplicas && s.DesiredReplicas == minReplicas
	}
	passing := "?"
	if n, err := r.api.passing(ctx); err == nil {
		passing = fmt.Sprint(n)
		// Back down means the extra replicas have left the registry too.
		r.backDown = r.backDown && n == minReplicas
	} else {
		r.backDown = false
	}
	secs := span.Seconds()
	p50 := "-"
	if len(w.latency) > 0 {
		p50 = ms(quantile(w.latency, 0.5))
	}
	fmt.Fprintf(r.out, "%5.0fs %5g %8.1f %7.1f %8s %9s %8s  %s", now.Sub(r.t0).Seconds(), rate,
		float64(w.offered)/secs, float64(w.served)/secs, p50, replicas, passing, truncate(reason, 80))
	if w.failed > 0 || w.dropped > 0 {
		fmt.Fprintf(r.out, "  [%d failed, %d not sent: %s]", w.failed, w.dropped, truncate(w.lastFailure, 60))
	}
	fmt.Fprintln(r.out)
}

// actuations prints the actuations among the newest decisions not
// printed yet, oldest first, and records those that changed the count.
func (r *report) actuations(ctx context.Context) {
	// Ten decisions cover twenty seconds at a 2 s sync period: two looks
	// are 2 s apart, more only when the machine stalls.
	ds, err := r.api.decisions(ctx, 10)
	if err != nil {
		return
	}
	slices.Reverse(ds)
	for _, d := range ds {
		act := d.Actuation
		if act == nil || r.seen[d.Revision] {
			continue
		}
		r.seen[d.Revision] = true
		when := "setup"
		at := act.At.Sub(r.t0)
		if !r.t0.IsZero() {
			when = fmt.Sprintf("%.1fs", at.Seconds())
		}
		switch {
		case act.Error != "":
			fmt.Fprintf(r.out, "  ! %6s driver failed to scale to %d: %s\n", when, d.DesiredReplicas, act.Error)
		case act.Result != nil && act.Result.Replicas != act.Result.Previous:
			res := act.Result
			mark := "▲"
			if res.Replicas < res.Previous {
				mark = "▼"
			}
			fmt.Fprintf(r.out, "  %s %6s scaled %d → %d (%s): %s\n", mark, when, res.Previous, res.Replicas, res.Detail, d.Reason)
			r.maxSeen = max(r.maxSeen, res.Replicas)
			if !r.t0.IsZero() {
				r.events = append(r.events, scaleEvent{at: at, from: res.Previous, to: res.Replicas})
			}
		}
	}
}

// summary prints what the ramp showed.
func (r *report) summary(gen *loadGen) {
	up, down := 0, 0
	for _, e := range r.events {
		if e.to > e.from {
			up++
		} else {
			down++
		}
	}
	fmt.Fprintf(r.out, "\nsummary\n")
	fmt.Fprintf(r.out, "  max replicas reached: %d (minReplicas %d, maxReplicas %d)\n", r.maxSeen, minReplicas, maxReplicas)
	fmt.Fprintf(r.out, "  scale changes: %d (%d up, %d down)\n", len(r.events), up, down)
	fmt.Fprintf(r.out, "  from each load step to the first scale-up:\n")
	for i := 1; i < len(r.starts); i++ {
		prev, p := r.phases[i-1], r.phases[i]
		if p.rate <= prev.rate {
			continue
		}
		start, end := r.phaseSpan(i)
		found := "none during the step"
		for _, e := range r.events {
			if e.to > e.from && e.at >= start && e.at < end {
				found = fmt.Sprintf("%.1fs (%d → %d)", (e.at - start).Seconds(), e.from, e.to)
				break
			}
		}
		fmt.Fprintf(r.out, "    %4.0fs  %3g → %3g rps: %s\n", start.Seconds(), prev.rate, p.rate, found)
	}
	fmt.Fprintf(r.out, "  highest usage per replica the scaler saw: gateway_rps %.1f (the gateway's signal, every 5 s), process_cpu_seconds_total:rate %.2f (scraped)\n",
		r.seenUsage["gateway_rps"], r.seenUsage["process_cpu_seconds_total:rate"])
	back := "not back"
	if last := len(r.phases) - 1; len(r.starts) > last { // the load stopped
		stop, _ := r.phaseSpan(last)
		for _, e := range r.events {
			if e.to == minReplicas && e.at >= stop {
				back = fmt.Sprintf("%.1fs after the load stopped (the window is %v)", (e.at - stop).Seconds(), scaleDownWindow)
				break
			}
		}
	}
	fmt.Fprintf(r.out, "  back to %d replica: %s\n", minReplicas, back)
	t := gen.totals()
	fmt.Fprintf(r.out, "  requests: %d sent, %d served, %d failed, %d not sent (%d in flight at most); latency p50 %s, p99 %s\n",
		t.offered-t.dropped, t.served, t.failed, t.dropped, maxInFlight, ms(quantile(t.latency, 0.5)), ms(quantile(t.latency, 0.99)))
}

// verdict returns an error if the ramp did not show the scaler going up
// and coming back down, with the scaler's own account of why not.
func (r *report) verdict() error {
	var errs []error
	up := slices.ContainsFunc(r.events, func(e scaleEvent) bool { return e.to > e.from })
	if !up {
		errs = append(errs, errors.New("the scaler never scaled up"))
	}
	if !r.backDown {
		errs = append(errs, fmt.Errorf("the scaler did not come back down to %d replica", minReplicas))
	}
	for _, m := range []string{"gateway_rps", "process_cpu_seconds_total:rate"} {
		if r.seenUsage[m] <= 0 {
			errs = append(errs, fmt.Errorf("the scaler never saw %s above zero under load", m))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(r.out, "\nthe scaler's last decisions (GET /v1/scalers/%s/decisions?limit=5):\n%s\n", scalerName, r.api.rawDecisions(context.Background(), 5))
	}
	return errors.Join(errs...)
}

// shutdown stops steward dev with SIGINT, which stops the demo app's
// processes through the driver, and looks for any left running.
func (r *report) shutdown(dev *devProcess, app string) error {
	fmt.Fprintf(r.out, "\nstopping steward dev (SIGINT)...\n")
	took, err := dev.stop(30 * time.Second)
	if err != nil {
		fmt.Fprintf(r.out, "  steward dev: %v (log: %s)\n", err, dev.logPath)
	} else {
		fmt.Fprintf(r.out, "  steward dev exited cleanly after %.1fs\n", took.Seconds())
	}
	if !canCheckLeftovers {
		fmt.Fprintf(r.out, "  demo-app processes left: not checked (needs /proc)\n")
		return err
	}
	pids, lerr := leftovers(app, "STEWARD_REGISTRY_URL="+dev.registry)
	if lerr != nil {
		return errors.Join(err, fmt.Errorf("look for demo-app processes: %w", lerr))
	}
	if len(pids) == 0 {
		fmt.Fprintf(r.out, "  demo-app processes left: none\n")
		return err
	}
	fmt.Fprintf(r.out, "  demo-app processes left: %v; killing them\n", pids)
	for _, pid := range pids {
		_ = kill(pid)
	}
	return errors.Join(err, fmt.Errorf("steward dev left %d demo-app process(es) running: %v", len(pids), pids))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

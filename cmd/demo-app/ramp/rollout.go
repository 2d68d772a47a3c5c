package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// The rollout act, after the ramp: a second scaler runs the demo app at a
// fixed count under a light steady load through the gateway, and its
// template is changed twice. Act A rolls v1 to v2 with the default
// RollingUpdate strategy: no request may fail. Act B sends v3, which
// answers a share of its requests 500, as a canary: its first analysis
// must fail and the scaler must roll it back by itself.
const (
	rolloutScaler   = "shop"
	rolloutService  = "shop"
	rolloutReplicas = 4
	rolloutRate     = 30.0                 // requests per second, all through the act
	rolloutWork     = 2 * time.Millisecond // light: the act is about versions, not load
	badErrorRate    = 0.05                 // v3's share of 500s
	maxErrorRate    = 0.01                 // the canary analysis' threshold
	minRequests     = 20                   // and the fewest requests it judges
	// analysisWindow stays at 10 s in -quick too: the gateway pushes its
	// signals every 5 s, and a shorter window often holds one push or none.
	analysisWindow = 10 * time.Second
	rolloutLook    = 500 * time.Millisecond // how often the act looks at the rollout
	rolloutWithin  = 2 * time.Minute        // how long a change may take
)

// rolloutAct runs the act and keeps what its verdict needs.
type rolloutAct struct {
	api           *api
	out           io.Writer
	app, registry string
	gateway       string
	pause         time.Duration // of each canary pause step
	gen           *loadGen

	rolling, canary  rolloutView // how each change ended
	rollingWin       window      // the clients' requests during act A
	v2After, v3After int         // passing after act B's rollback
}

// runRolloutAct runs the act on steward dev and returns what went wrong
// with it. The scaler is deleted at the end whatever happened.
func runRolloutAct(ctx context.Context, a *api, out io.Writer, o options, dev *devProcess) (err error) {
	r := &rolloutAct{api: a, out: out, app: o.app, registry: dev.registry, gateway: dev.gateway, pause: 10 * time.Second}
	if o.quick {
		r.pause = 5 * time.Second
	}
	fmt.Fprintf(out, "\nrollout act: scaler %q, service %q, %d demo-app processes at v1 (minReplicas = maxReplicas: no autoscaling), %g rps through the gateway (GET %s/s/%s/)\n",
		rolloutScaler, rolloutService, rolloutReplicas, rolloutRate, dev.gateway, rolloutService)
	if err := a.putScaler(ctx, rolloutScaler, r.spec("v1", 0, nil)); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.remove(ctx)) }()
	start := time.Now()
	if err := r.waitFor(ctx, fmt.Sprintf("%d v1 instances passing", rolloutReplicas), time.Minute, func() bool {
		return r.passingAt(ctx, "v1") == rolloutReplicas
	}); err != nil {
		return err
	}
	if err := r.waitFor(ctx, "the gateway answering "+rolloutService, 30*time.Second, func() bool {
		return answers(ctx, a, dev.gateway+"/s/"+rolloutService+"/")
	}); err != nil {
		return err
	}
	fmt.Fprintf(out, "  %d v1 instances passing and answering through the gateway after %.1fs\n", rolloutReplicas, time.Since(start).Seconds())

	r.gen = newLoadGen(dev.gateway + "/s/" + rolloutService + "/")
	lctx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan struct{})
	go func() { defer close(loaded); r.gen.run(lctx) }()
	defer func() { stopLoad(); <-loaded }()
	r.gen.setRate(ctx, rolloutRate)
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}

	if err := r.actA(ctx); err != nil {
		return err
	}
	if err := r.actB(ctx); err != nil {
		return err
	}
	return r.verdict()
}

// spec is the act's scaler at version: errorRate is the share of
// requests it answers 500, strategy nil the default (RollingUpdate).
func (r *rolloutAct) spec(version string, errorRate float64, strategy map[string]any) map[string]any {
	driver := processDriver(r.app, r.registry, rolloutService, rolloutWork)
	driver["version"] = version
	if errorRate > 0 {
		driver["env"].(map[string]string)["STEWARD_DEMO_ERROR_RATE"] = fmt.Sprint(errorRate)
	}
	spec := map[string]any{
		"service":     rolloutService,
		"minReplicas": rolloutReplicas,
		"maxReplicas": rolloutReplicas,
		"syncPeriod":  "1s",
		// A target no load here reaches: the count stays where it is.
		"metrics": []any{map[string]any{"name": "gateway_rps", "target": map[string]any{"type": "averageValue", "value": 1000}}},
		"driver":  driver,
	}
	if strategy != nil {
		spec["strategy"] = strategy
	}
	return spec
}

// actA rolls v1 to v2 with the default strategy.
func (r *rolloutAct) actA(ctx context.Context) error {
	fmt.Fprintf(r.out, "\nact A: v1 → v2 with the default strategy, RollingUpdate (per version: running/ready/available instances)\n")
	r.gen.take()
	start := time.Now()
	if err := r.api.putScaler(ctx, rolloutScaler, r.spec("v2", 0, nil)); err != nil {
		return err
	}
	ro, err := r.follow(ctx, "v2", start, nil)
	if err != nil {
		return err
	}
	r.rolling, r.rollingWin = ro, r.gen.take()
	w := r.rollingWin
	fmt.Fprintf(r.out, "  act A ended %s after %.1fs: %d requests sent, %d failed%s\n",
		ro.Phase, took(ro, start).Seconds(), w.offered-w.dropped, w.failed, failures(w))
	return nil
}

// actB sends v3, which fails badErrorRate of its requests, as a canary.
func (r *rolloutAct) actB(ctx context.Context) error {
	steps := []any{
		map[string]any{"setWeight": 25}, map[string]any{"pause": r.pause.String()},
		map[string]any{"setWeight": 50}, map[string]any{"pause": r.pause.String()},
	}
	names := []string{"setWeight 25", "pause " + r.pause.String(), "setWeight 50", "pause " + r.pause.String()}
	strategy := map[string]any{"type": "Canary", "canary": map[string]any{
		"steps":    steps,
		"analysis": map[string]any{"window": analysisWindow.String(), "maxErrorRate": maxErrorRate, "minRequests": minRequests},
	}}
	fmt.Fprintf(r.out, "\nact B: v2 → v3, which answers %g%% of its requests 500, as a Canary: %s;\n", badErrorRate*100, strings.Join(names, ", "))
	fmt.Fprintf(r.out, "  each step judged on the gateway's signals of v3 over %v (error rate at most %g%%, at least %d requests)\n", analysisWindow, maxErrorRate*100, minRequests)
	r.gen.take()
	start := time.Now()
	if err := r.api.putScaler(ctx, rolloutScaler, r.spec("v3", badErrorRate, strategy)); err != nil {
		return err
	}
	ro, err := r.follow(ctx, "v3", start, names)
	if err != nil {
		return err
	}
	r.canary = ro
	if err := sleep(ctx, 2*time.Second); err != nil { // the answers in flight come in
		return err
	}
	w := r.gen.take()
	fmt.Fprintf(r.out, "  act B ended %s after %.1fs", ro.Phase, took(ro, start).Seconds())
	if ro.Phase == "Failed" {
		fmt.Fprintf(r.out, ", rolled back to v2")
	}
	fmt.Fprintf(r.out, ": %s\n", ro.Failure)
	if c := ro.Canary; c != nil && c.Budget != nil {
		fmt.Fprintf(r.out, "  error budget v3 spent (as the gateway counted): %d requests, %d failed\n", c.Budget.Requests, c.Budget.Failures)
	}
	if a, ok := failedAnalysis(ro); ok {
		if last := r.gen.lastAnswerFrom("v3"); !last.IsZero() {
			fmt.Fprintf(r.out, "  last answer from v3 %v after the failed analysis\n", last.Sub(a.At).Round(time.Millisecond))
		}
	}
	fmt.Fprintf(r.out, "  clients during act B: %d requests sent, %d failed%s\n",
		w.offered-w.dropped, w.failed, failures(w))
	// The old instances were never stopped: they pass throughout.
	_ = r.waitFor(ctx, "", 15*time.Second, func() bool {
		r.v2After, r.v3After = r.passingAt(ctx, "v2"), r.passingAt(ctx, "v3")
		return r.v2After == rolloutReplicas && r.v3After == 0
	})
	fmt.Fprintf(r.out, "  afterwards: %d v2 instances passing, %d of v3\n", r.v2After, r.v3After)
	return nil
}

// follow looks at the rollout to version every rolloutLook until it
// ends, printing a line whenever it changes and each new analysis;
// steps names a canary's steps.
func (r *rolloutAct) follow(ctx context.Context, version string, start time.Time, steps []string) (rolloutView, error) {
	var (
		last string
		ro   rolloutView
		err  error
	)
	seen := map[string]bool{}
	deadline := start.Add(rolloutWithin)
	for {
		ro, err = r.api.rollout(ctx, rolloutScaler)
		if err == nil && ro.To.Version == version {
			at := time.Since(start).Seconds()
			if s := describe(ro, steps); s != last {
				fmt.Fprintf(r.out, "  %5.1fs %s\n", at, s)
				last = s
			}
			if c := ro.Canary; c != nil {
				for _, a := range c.Analyses {
					if key := fmt.Sprint(a.Step, a.At); !seen[key] {
						seen[key] = true
						fmt.Fprintf(r.out, "  %5.1fs   analysis of step %d: %s: %s\n", at, a.Step, a.Verdict, a.Message)
					}
				}
			}
			if ro.Phase != "Progressing" && ro.Phase != "Paused" {
				return ro, nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("last seen: %s", describe(ro, steps))
			}
			return ro, fmt.Errorf("the rollout to %s did not end within %v: %w", version, rolloutWithin, err)
		}
		if err := sleep(ctx, rolloutLook); err != nil {
			return ro, err
		}
	}
}

// describe is one line of a rollout's state: phase, a canary's step and
// weights, each version's instances, the message.
func describe(ro rolloutView, steps []string) string {
	var b strings.Builder
	b.WriteString(ro.Phase)
	if c := ro.Canary; c != nil {
		step := "done"
		if c.Step < len(steps) {
			step = steps[c.Step]
		}
		fmt.Fprintf(&b, ", step %d (%s), weights %s", c.Step, step, percentages(c.Weights))
	}
	b.WriteString(":")
	if len(ro.Versions) == 0 {
		b.WriteString(" no instances observed yet")
	}
	versions := slices.Clone(ro.Versions)
	slices.SortFunc(versions, func(x, y versionStatus) int { return strings.Compare(x.Version, y.Version) })
	for _, v := range versions {
		fmt.Fprintf(&b, " %s %d/%d/%d", v.Version, v.Running, v.Ready, v.Available)
		if v.Draining > 0 {
			fmt.Fprintf(&b, " (%d draining)", v.Draining)
		}
	}
	if ro.Message != "" {
		fmt.Fprintf(&b, "; %s", ro.Message)
	}
	return b.String()
}

// percentages prints relative weights as shares of their sum.
func percentages(weights map[string]int) string {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	if sum == 0 {
		return "none"
	}
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(weights)) {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", v, float64(weights[v])*100/float64(sum)))
	}
	return strings.Join(parts, " / ")
}

// failedAnalysis is the rollout's last failed analysis, if any.
func failedAnalysis(ro rolloutView) (analysisRun, bool) {
	if ro.Canary == nil {
		return analysisRun{}, false
	}
	for _, a := range slices.Backward(ro.Canary.Analyses) {
		if a.Verdict == "fail" {
			return a, true
		}
	}
	return analysisRun{}, false
}

// took is how long the rollout ran by the scaler's clock, or since the
// change was sent when it does not say.
func took(ro rolloutView, sent time.Time) time.Duration {
	if ro.FinishedAt.IsZero() || ro.StartedAt.IsZero() {
		return time.Since(sent)
	}
	return ro.FinishedAt.Sub(ro.StartedAt)
}

// failures names the last failure of a window that had any.
func failures(w window) string {
	if w.failed == 0 {
		return ""
	}
	return fmt.Sprintf(" (last: %s)", truncate(w.lastFailure, 60))
}

// verdict returns what the act did not show.
func (r *rolloutAct) verdict() error {
	var errs []error
	if r.rolling.Phase != "Succeeded" {
		errs = append(errs, fmt.Errorf("act A: the rolling update ended %s, want Succeeded", r.rolling.Phase))
	}
	if w := r.rollingWin; w.failed > 0 {
		errs = append(errs, fmt.Errorf("act A: %d requests failed during the rolling update (last: %s), want none", w.failed, w.lastFailure))
	}
	if r.canary.Phase != "Failed" {
		errs = append(errs, fmt.Errorf("act B: the canary ended %s, want Failed", r.canary.Phase))
	}
	if _, ok := failedAnalysis(r.canary); !ok {
		errs = append(errs, errors.New("act B: no analysis of the canary failed"))
	}
	if r.v2After != rolloutReplicas || r.v3After != 0 {
		errs = append(errs, fmt.Errorf("act B: %d v2 and %d v3 instances passing after the rollback, want %d and none", r.v2After, r.v3After, rolloutReplicas))
	}
	return errors.Join(errs...)
}

// remove deletes the act's scaler and waits for its processes to stop
// and its instances to leave the registry.
func (r *rolloutAct) remove(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 45*time.Second)
	defer cancel()
	fmt.Fprintf(r.out, "\ndeleting scaler %q (the process driver stops its processes)...\n", rolloutScaler)
	start := time.Now()
	if err := r.api.deleteScaler(ctx, rolloutScaler); err != nil {
		return err
	}
	left := func() int {
		list, err := r.api.passingInstances(ctx, rolloutService)
		if err != nil || len(list) > 0 {
			return -1
		}
		return len(r.processes())
	}
	if err := r.waitFor(ctx, "the act's processes to stop and leave the registry", 30*time.Second, func() bool { return left() == 0 }); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "  its processes stopped and its instances left the registry after %.1fs\n", time.Since(start).Seconds())
	return nil
}

// processes are the act's demo-app processes (none found without /proc).
func (r *rolloutAct) processes() []int {
	ours, _ := leftovers(r.app, "STEWARD_REGISTRY_URL="+r.registry)
	act, _ := leftovers(r.app, "STEWARD_DEMO_SERVICE="+rolloutService)
	var both []int
	for _, pid := range act {
		if slices.Contains(ours, pid) {
			both = append(both, pid)
		}
	}
	return both
}

// passingAt counts the service's passing instances of version (-1 when
// the registry does not answer).
func (r *rolloutAct) passingAt(ctx context.Context, version string) int {
	list, err := r.api.passingInstances(ctx, rolloutService)
	if err != nil {
		return -1
	}
	n := 0
	for _, in := range list {
		if in.Version != nil && *in.Version == version {
			n++
		}
	}
	return n
}

// waitFor looks every 250 ms until ok or within has passed.
func (r *rolloutAct) waitFor(ctx context.Context, what string, within time.Duration, ok func() bool) error {
	for deadline := time.Now().Add(within); !ok(); {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, within)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

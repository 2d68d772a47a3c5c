package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/stewardhq/steward/platform/supervise"
)

// suite is one run: the cluster, the clients' shared recorders and the
// nemesis's record of faults.
type suite struct {
	c     *cluster
	o     options
	logf  func(string, ...any)
	start time.Time // the history's zero

	mu        sync.Mutex
	errors500 []serverError
	faults    []faultRecord
	current   *faultRecord // the fault under way, until it is in faults
	acks      []time.Time  // every acknowledged config write, in order of acknowledgement
}

// serverError is a 500 a client saw.
type serverError struct {
	At     time.Time
	Method string
	URL    string
	Body   string
}

func newSuite(c *cluster, o options, logf func(string, ...any)) *suite {
	return &suite{c: c, o: o, logf: logf, start: time.Now()}
}

// reply is what a client call came back with. err is set when no response
// came (its outcome unknown, unless refused says the request never left).
type reply struct {
	status  int
	header  http.Header
	body    []byte
	err     error
	refused bool // the connection was refused: the server never saw the request
}

// String says what came back, briefly: the status and the start of the
// body, or the error.
func (r reply) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	body := string(r.body)
	if len(body) > 160 {
		body = body[:160] + "..."
	}
	return fmt.Sprintf("%d %s", r.status, body)
}

// definite reports whether the call's outcome is known: a response that is
// neither a timeout (504) nor another 5xx that may hide a stored write.
func (r reply) definite() bool {
	return r.err == nil && r.status < 500
}

// do sends one request and records any 500 with its body.
func (s *suite) do(ctx context.Context, method, url string, header map[string]string, body []byte, timeout time.Duration) reply {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, method, url, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, url, nil)
	}
	if err != nil {
		return reply{err: err}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		return reply{err: err, refused: errors.Is(err, syscall.ECONNREFUSED) || isDialError(err)}
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
	if resp.StatusCode == http.StatusInternalServerError {
		s.mu.Lock()
		s.errors500 = append(s.errors500, serverError{At: time.Now(), Method: method, URL: url, Body: string(b)})
		s.mu.Unlock()
		s.logf("HTTP 500 from %s %s: %s", method, url, b)
	}
	return r
}

// isDialError reports whether the request failed before a connection was
// made, so the server cannot have seen it.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// smoke checks that every service answers through every replica and both
// gateways: a put on each config replica read back from every other, a
// registration, an election, a scaler, and the gateways' view of Steward.
func (s *suite) smoke(ctx context.Context) error {
	var errs []error
	check := func(what string, r reply, want int) {
		if r.err != nil || r.status != want {
			errs = append(errs, fmt.Errorf("%s: %d %s %v", what, r.status, r.body, r.err))
		}
	}
	n := s.c.nodes()
	for i := range n {
		v := fmt.Sprintf(`"smoke-%d"`, i)
		check(fmt.Sprintf("put on config-%d", i), s.do(ctx, http.MethodPut, s.c.url("config", i)+"/v1/kv/chaos/smoke/"+fmt.Sprint(i), nil, []byte(v), 10*time.Second), 200)
		for j := range n {
			r := s.do(ctx, http.MethodGet, s.c.url("config", j)+"/v1/kv/chaos/smoke/"+fmt.Sprint(i), nil, nil, 10*time.Second)
			check(fmt.Sprintf("get from config-%d", j), r, 200)
			if r.status == 200 && !bytes.Contains(r.body, []byte(v)) {
				errs = append(errs, fmt.Errorf("config-%d: smoke/%d = %s, want value %s", j, i, r.body, v))
			}
		}
	}
	reg := fmt.Sprintf(`{"address":%q,"port":9,"check":{"ttl":"30s"}}`, s.c.net.bridgeIP)
	check("register", s.do(ctx, http.MethodPut, s.c.url("registry", 0)+"/v1/services/chaos-smoke/instances/smoke-1", nil, []byte(reg), 10*time.Second), 200)
	check("list instances", s.do(ctx, http.MethodGet, s.c.url("registry", 1)+"/v1/services/chaos-smoke/instances", nil, nil, 10*time.Second), 200)
	check("campaign", s.do(ctx, http.MethodPost, s.c.url("election", 2)+"/v1/elections/chaos-smoke/campaign", nil, []byte(`{"candidate":"smoke","ttl":"5s"}`), 10*time.Second), 200)
	check("scalers", s.do(ctx, http.MethodGet, s.c.url("scaler", 0)+"/v1/scalers", nil, nil, 10*time.Second), 200)
	// A gateway learns steward-registry's instances from the registry's
	// own registration, which may come a moment after both are ready.
	for i := range gatewayNodes {
		check(fmt.Sprintf("gateway-%d /v1/services", i), s.eventually(ctx, 20*time.Second, func() reply {
			return s.do(ctx, http.MethodGet, s.c.url(gatewayRole, i)+"/v1/services", nil, nil, 10*time.Second)
		}), 200)
	}
	if exits := s.c.unexpectedExits(); len(exits) > 0 {
		s.logf("smoke: %d unexpected process exits (restarted): %v", len(exits), exitNames(exits))
	}
	if len(s.errors500) > 0 {
		errs = append(errs, fmt.Errorf("%d HTTP 500s", len(s.errors500)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("smoke: %w", err)
	}
	s.logf("smoke: every service answered on every node and through both gateways")
	return nil
}

// eventually repeats call every 250 ms until it answers 200 or limit
// passes, and returns the last reply.
func (s *suite) eventually(ctx context.Context, limit time.Duration, call func() reply) reply {
	deadline := time.Now().Add(limit)
	for {
		r := call()
		if (r.err == nil && r.status == http.StatusOK) || time.Now().After(deadline) || !sleepCtx(ctx, 250*time.Millisecond) {
			return r
		}
	}
}

func exitNames(exits []supervise.Exit) []string {
	var out []string
	for _, e := range exits {
		out = append(out, e.Proc+" ("+e.Status+")")
	}
	return out
}

// run runs the workloads and the nemesis for the run's duration, heals
// everything, lets the cluster recover, checks, and prints the table. It
// fails on any violation or any HTTP 500.
func (s *suite) run(ctx context.Context, out io.Writer) error {
	res := &result{}
	wctx, stopWorkloads := context.WithCancel(ctx)
	defer stopWorkloads()
	var wg sync.WaitGroup
	cfg := newConfigWorkload(s)
	elect := newElectionWorkload(s)
	reg := newRegistryWorkload(s)
	gw, err := newGatewayWorkload(s)
	if err != nil {
		return fmt.Errorf("gateway upstreams: %w", err)
	}
	defer gw.close()
	sc, err := newScalerWorkload(s)
	if err != nil {
		return fmt.Errorf("webhook receiver: %w", err)
	}
	defer sc.close()
	if err := gw.register(ctx); err != nil {
		return err
	}
	if err := sc.setup(ctx); err != nil {
		return err
	}
	s.start = time.Now()
	cfg.run(wctx, &wg)
	elect.run(wctx, &wg)
	reg.run(wctx, &wg)
	gw.run(wctx, &wg)
	sc.run(wctx, &wg)

	s.nemesis(ctx, s.start.Add(s.o.duration), cfg)
	stopWorkloads()
	wg.Wait()
	res.started, res.duration = s.start, time.Since(s.start)
	s.healAll(context.WithoutCancel(ctx))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.logf("workloads stopped after %s; waiting for every replica to be ready", res.duration.Round(time.Second))
	readyBy := time.Now().Add(60 * time.Second)
	for !s.c.allReady(ctx) && time.Now().Before(readyBy) && sleepCtx(ctx, 500*time.Millisecond) {
	}

	cfg.finalReads(ctx)
	cfgLine := cfg.check(s.o.runDir)
	cfg.compareReplicas(ctx, &cfgLine)
	res.workloads = append(res.workloads,
		workloadLine{"config", cfgLine},
		workloadLine{"election", elect.check(s.o.runDir)},
		workloadLine{"gateway", gw.check()},
		workloadLine{"registry", reg.check(ctx)},
		workloadLine{"scaler", sc.check(ctx)},
	)

	s.mu.Lock()
	slices.SortFunc(s.acks, func(a, b time.Time) int { return a.Compare(b) })
	res.faults = slices.Clone(s.faults)
	res.errors500 = slices.Clone(s.errors500)
	s.mu.Unlock()
	res.exits = s.c.unexpectedExits()
	for _, l := range res.workloads {
		res.violations += l.Violations
	}
	res.save(out, s, cfg)
	if res.violations > 0 || len(res.errors500) > 0 {
		return fmt.Errorf("%d violations, %d HTTP 500s (table above, logs in %s)", res.violations, len(res.errors500), filepath.Join(s.o.runDir, "logs"))
	}
	return nil
}

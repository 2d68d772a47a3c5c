// Package smoke checks a running Steward through one gateway, as a user
// does: a key put, read and watched, an instance registered and
// discovered, an election won, a scaler created, and a request routed by
// a route document to an upstream the check serves itself. It imports
// only the standard library, so that every deployment's test (the process
// cluster, compose, Helm) can run the same check.
//
// Each step retries what is eventually consistent (a replica that was
// just killed, a gateway that has not seen a service yet) until its own
// deadline, and fails naming the step and the last answer it saw.
package smoke

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Target is the deployment under test and how to reach it.
type Target struct {
	// GatewayURL is the gateway's base URL, e.g. http://127.0.0.1:8080.
	GatewayURL string
	// Token is the bearer secret every request carries; empty with auth
	// off. It needs write access to kv (/smoke/ and the route document),
	// services, elections and scalers: the root token does.
	Token string
	// HTTP carries every request; nil is a client of Run's own.
	HTTP *http.Client
	// Upstream is the listener the check serves its upstream on; Run
	// closes it. Nil: Run listens on UpstreamAddr (127.0.0.1:0 if empty)
	// and registers the address it got.
	Upstream net.Listener
	// UpstreamAddr, with Upstream set, is the host:port the gateway
	// reaches the upstream at, registered in the registry: an IP address
	// (for containers, one on their network, e.g. the bridge's gateway
	// with Upstream listening on 0.0.0.0). Empty: Upstream's address.
	// A loopback address needs STEWARD_REGISTRY_ALLOW_LOCAL=true.
	UpstreamAddr string
	// Name names what the run creates (key prefix, service, election,
	// scaler, route); empty is "smoke-" and random hex, so runs against
	// the same deployment do not meet.
	Name string
	// StepTimeout bounds each step, retries included (default 60s).
	StepTimeout time.Duration
	// BeforeStep, when set, is called with each step's name before the
	// step starts: a test injects its faults there, so that they land
	// while the run is under way.
	BeforeStep func(step string)
}

// DefaultStepTimeout is a step's deadline when Target.StepTimeout is 0.
// It is long enough to ride out a replica's restart and a NATS server's
// loss (stream leader elections take a few seconds).
const DefaultStepTimeout = 60 * time.Second

// requestTimeout bounds one request, so that a connection to a killed
// process does not hold a step.
const requestTimeout = 5 * time.Second

// The steps, in the order Run takes them (Target.BeforeStep's names).
const (
	StepPutKey   = "put key"
	StepGetKey   = "get key"
	StepWatchKey = "watch key"
	StepRegister = "register instance"
	StepDiscover = "discover instance"
	StepElection = "win election"
	StepScaler   = "create scaler"
	StepRoute    = "route request"
)

// Run performs every step in order and returns the first failure, joined
// with any failure to clean up what the run created. logf receives one
// line per step (nil: no log).
func Run(ctx context.Context, t Target, logf func(string, ...any)) error {
	r, err := newRun(t, logf)
	if err != nil {
		return err
	}
	defer r.up.close()
	if t.HTTP == nil {
		defer r.http.CloseIdleConnections()
	}
	start := time.Now()
	r.logf("smoke %s: gateway %s, upstream %s", r.name, r.t.GatewayURL, r.up.addr)
	steps := []struct {
		name string
		do   func(context.Context) error
	}{
		{StepPutKey, r.putKey},
		{StepGetKey, r.getKey},
		{StepWatchKey, r.watchKey},
		{StepRegister, r.register},
		{StepDiscover, r.discover},
		{StepElection, r.campaign},
		{StepScaler, r.createScaler},
		{StepRoute, r.route},
	}
	var failed error
	for _, s := range steps {
		if r.t.BeforeStep != nil {
			r.t.BeforeStep(s.name)
		}
		began := time.Now()
		sctx, cancel := context.WithTimeout(ctx, r.t.StepTimeout)
		err := s.do(sctx)
		cancel()
		if err != nil {
			failed = fmt.Errorf("smoke %s: step %q failed after %s: %w", r.name, s.name, time.Since(began).Round(time.Millisecond), err)
			break
		}
		r.logf("smoke %s: %s ok (%s)", r.name, s.name, time.Since(began).Round(time.Millisecond))
	}
	cleanup := r.cleanup(ctx)
	if failed == nil && cleanup == nil {
		r.logf("smoke %s: passed in %s", r.name, time.Since(start).Round(time.Millisecond))
	}
	return errors.Join(failed, cleanup)
}

// run is one smoke run's state.
type run struct {
	t    Target
	http *http.Client
	logf func(string, ...any)
	name string
	up   *upstream

	key         string // the key put, read and watched
	keyRev      int64  // its modRevision after the first put
	candidate   string
	token       int64 // the election's fencing token once won
	instanceID  string
	routeKey    string // the route document's config key
	created     []undo // what cleanup removes, in order of creation
	upstreamHit atomic.Int64
}

// undo removes one thing the run created.
type undo struct {
	what   string
	method string
	path   string
	body   string
}

func newRun(t Target, logf func(string, ...any)) (*run, error) {
	if t.GatewayURL == "" {
		return nil, errors.New("smoke: Target.GatewayURL is empty")
	}
	if t.HTTP == nil {
		// A transport of its own, whose connections Run closes at the end.
		t.HTTP = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if t.StepTimeout <= 0 {
		t.StepTimeout = DefaultStepTimeout
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if t.Name == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		t.Name = "smoke-" + hex.EncodeToString(b[:])
	}
	r := &run{t: t, http: t.HTTP, logf: logf, name: t.Name}
	r.key = "/smoke/" + r.name + "/key"
	r.candidate = r.name + "-candidate"
	r.instanceID = r.name + "-0"
	r.routeKey = "/steward/gateway/routes/" + r.name
	up, err := startUpstream(t.Upstream, t.UpstreamAddr, r.name, &r.upstreamHit)
	if err != nil {
		return nil, fmt.Errorf("smoke: upstream: %w", err)
	}
	r.up = up
	return r, nil
}

func (r *run) putKey(ctx context.Context) error {
	return r.until(ctx, http.MethodPut, "/v1/kv"+r.key, `"one"`, func(res reply) (bool, error) {
		var e struct {
			ModRevision int64 `json:"modRevision"`
		}
		if err := res.decode(&e); err != nil || e.ModRevision <= 0 {
			return false, fmt.Errorf("put answered %s, want an entry with a modRevision", res)
		}
		r.keyRev = e.ModRevision
		r.created = append(r.created, undo{what: "key", method: http.MethodDelete, path: "/v1/kv" + r.key})
		return true, nil
	})
}

func (r *run) getKey(ctx context.Context) error {
	return r.until(ctx, http.MethodGet, "/v1/kv"+r.key, "", func(res reply) (bool, error) {
		var e struct {
			Value       string `json:"value"`
			ModRevision int64  `json:"modRevision"`
		}
		if err := res.decode(&e); err != nil || e.Value != "one" || e.ModRevision < r.keyRev {
			// A linearizable read never goes back: a bug, not a wait.
			return false, fmt.Errorf("get %s = %s, want value \"one\" at revision %d or later", r.key, res, r.keyRev)
		}
		return true, nil
	})
}

// watchKey opens a watch from the revision after the first put, makes the
// next change and waits for it on the stream. A stream that breaks is
// opened again from the same revision, so the change cannot be missed.
func (r *run) watchKey(ctx context.Context) error {
	path := "/v1/watch?key=" + r.key + "&fromRevision=" + strconv.FormatInt(r.keyRev+1, 10)
	put := false
	change := func(ctx context.Context) error {
		if put {
			return nil
		}
		put = true
		return r.until(ctx, http.MethodPut, "/v1/kv"+r.key, `"two"`, nil)
	}
	seen := "nothing"
	for attempt := 1; ; attempt++ {
		found, what, err := r.watchOnce(ctx, path, change)
		if err != nil || found {
			return err
		}
		seen = what
		if !pause(ctx, attempt) {
			return fmt.Errorf("no put of \"two\" on %s within the step's deadline (%d streams); last seen: %s", r.key, attempt, seen)
		}
	}
}

func (r *run) register(ctx context.Context) error {
	host, port, err := net.SplitHostPort(r.up.addr)
	if err != nil {
		return err
	}
	path := "/v1/services/" + r.name + "/instances/" + r.instanceID
	body := fmt.Sprintf(`{"address":%q,"port":%s,"tags":["smoke"]}`, host, port)
	if err := r.until(ctx, http.MethodPut, path, body, nil); err != nil {
		return err
	}
	r.created = append(r.created, undo{what: "instance", method: http.MethodDelete, path: path})
	return nil
}

func (r *run) discover(ctx context.Context) error {
	return r.until(ctx, http.MethodGet, "/v1/services/"+r.name+"/instances?status=passing", "", func(res reply) (bool, error) {
		var list []struct {
			ID      string `json:"id"`
			Address string `json:"address"`
			Port    int    `json:"port"`
			Status  string `json:"status"`
		}
		if err := res.decode(&list); err != nil {
			return false, fmt.Errorf("instances: %s: %w", res, err)
		}
		for _, in := range list {
			if in.ID == r.instanceID && net.JoinHostPort(in.Address, strconv.Itoa(in.Port)) == r.up.addr && in.Status == "passing" {
				return true, nil
			}
		}
		return false, nil
	})
}

// campaign wins a new election. A campaign retried after an answer that
// was lost finds the candidate leading already, which the service
// answers as a win too.
func (r *run) campaign(ctx context.Context) error {
	body := fmt.Sprintf(`{"candidate":%q,"ttl":"60s","value":{"smoke":%q}}`, r.candidate, r.name)
	err := r.until(ctx, http.MethodPost, "/v1/elections/"+r.name+"/campaign", body, func(res reply) (bool, error) {
		var won struct {
			Token int64 `json:"token"`
		}
		if err := res.decode(&won); err != nil || won.Token <= 0 {
			return false, fmt.Errorf("campaign answered %s, want a token", res)
		}
		r.token = won.Token
		return true, nil
	})
	if err != nil {
		return err
	}
	r.created = append(r.created, undo{what: "leadership", method: http.MethodPost, path: "/v1/elections/" + r.name + "/resign",
		body: fmt.Sprintf(`{"candidate":%q,"token":%d}`, r.candidate, r.token)})
	return r.until(ctx, http.MethodGet, "/v1/elections/"+r.name, "", func(res reply) (bool, error) {
		var el struct {
			Leader string `json:"leader"`
			Token  int64  `json:"token"`
		}
		if err := res.decode(&el); err != nil || el.Leader != r.candidate || el.Token != r.token {
			return false, fmt.Errorf("election %s = %s, want leader %s with token %d", r.name, res, r.candidate, r.token)
		}
		return true, nil
	})
}

// createScaler puts a scaler whose driver needs no secret: the
// kubernetes driver names a workload that exists nowhere, so whatever
// the control loop decides acts on nothing (and fails, logged by the
// scaler) until cleanup deletes it.
func (r *run) createScaler(ctx context.Context) error {
	spec := fmt.Sprintf(`{"service":%q,"minReplicas":1,"maxReplicas":3,
 "metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":50}}],
 "driver":{"type":"kubernetes","kind":"Deployment","name":%q,"namespace":"steward-smoke"}}`, r.name, r.name)
	path := "/v1/scalers/" + r.name
	if err := r.until(ctx, http.MethodPut, path, spec, nil); err != nil {
		return err
	}
	r.created = append(r.created, undo{what: "scaler", method: http.MethodDelete, path: path})
	return r.until(ctx, http.MethodGet, path, "", func(res reply) (bool, error) {
		var sc struct {
			Spec struct {
				Service     string `json:"service"`
				MaxReplicas int    `json:"maxReplicas"`
			} `json:"spec"`
		}
		if err := res.decode(&sc); err != nil || sc.Spec.Service != r.name || sc.Spec.MaxReplicas != 3 {
			return false, fmt.Errorf("scaler %s = %s, want service %s and maxReplicas 3", r.name, res, r.name)
		}
		return true, nil
	})
}

// route declares a route document sending /<name>/ to the registered
// service, then asks the gateway for /<name>/hello until the upstream
// answers it (the gateway applies documents as they change, and routes a
// newly registered service within about half a second; until then it
// answers 404 or 503).
func (r *run) route(ctx context.Context) error {
	doc := fmt.Sprintf(`{"match":{"pathPrefix":"/%s/"},"service":%q,"stripPrefix":true,"timeout":"5s","retry":{"attempts":2,"perTryTimeout":"2s"}}`, r.name, r.name)
	if err := r.until(ctx, http.MethodPut, "/v1/kv"+r.routeKey, doc, nil); err != nil {
		return err
	}
	r.created = append(r.created, undo{what: "route", method: http.MethodDelete, path: "/v1/kv" + r.routeKey})
	want := r.up.answer("/hello")
	before := r.upstreamHit.Load()
	// Through the route, not the /s/ prefix: this checks that the route
	// document reached the gateway as well as discovery.
	return r.until(ctx, http.MethodGet, "/"+r.name+"/hello", "", func(res reply) (bool, error) {
		if string(res.body) != want {
			return false, nil
		}
		if r.upstreamHit.Load() == before {
			return false, fmt.Errorf("the gateway answered %s without the upstream seeing a request", res)
		}
		return true, nil
	})
}

// cleanup removes what the run created, newest first, even when ctx has
// ended (within its own 30 s). 404 counts as removed: a retried delete
// whose first answer was lost.
func (r *run) cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	for i := len(r.created) - 1; i >= 0; i-- {
		u := r.created[i]
		err := r.eventually(ctx, func(ctx context.Context) (bool, string, error) {
			res, err := r.do(ctx, u.method, u.path, u.body)
			switch {
			case err != nil:
				return false, err.Error(), nil
			case res.status/100 == 2 || res.status == http.StatusNotFound:
				return true, "", nil
			default:
				return false, res.String(), res.permanent()
			}
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("smoke %s: clean up the %s (%s %s): %w", r.name, u.what, u.method, u.path, err))
		}
	}
	return errors.Join(errs...)
}

// until sends one request until it is answered 2xx and check (nil: any
// 2xx) reports done. A network error, a 5xx or a 404 is retried, as is a
// 2xx that check does not take yet; a status that retrying cannot change
// (400, 403, ...) or an error from check fails at once.
func (r *run) until(ctx context.Context, method, path, body string, check func(reply) (bool, error)) error {
	return r.eventually(ctx, func(ctx context.Context) (bool, string, error) {
		res, err := r.do(ctx, method, path, body)
		switch {
		case err != nil:
			return false, err.Error(), nil
		case res.status/100 != 2:
			return false, res.String(), res.permanent()
		case check == nil:
			return true, "", nil
		}
		done, err := check(res)
		return done, res.String(), err
	})
}

// eventually calls try until it reports done or a permanent error, or ctx
// ends; the error then says how many attempts it made and the last
// answer it saw.
func (r *run) eventually(ctx context.Context, try func(context.Context) (done bool, seen string, err error)) error {
	seen := "nothing"
	for attempt := 1; ; attempt++ {
		done, what, err := try(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if what != "" {
			seen = what
		}
		if !pause(ctx, attempt) {
			return fmt.Errorf("not done within the step's deadline (%d attempts); last seen: %s", attempt, seen)
		}
	}
}

// pause waits before the next attempt, from 100 ms growing to 1 s; it
// reports false when ctx ended first.
func pause(ctx context.Context, attempt int) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, time.Second)):
		return true
	}
}

package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/stewardhq/steward/gateway/balancer"
)

var (
	errNoInstance = errors.New("no instance available")
	errPending    = errors.New("too many requests waiting for upstream headers")
)

// balancing is the ReverseProxy's transport: each attempt goes to an
// instance the balancer picks, and a failed attempt is retried on another
// instance when that is safe and the budget allows.
type balancing Proxy

func (b *balancing) RoundTrip(req *http.Request) (*http.Response, error) {
	p := (*Proxy)(b)
	x := req.Context().Value(exchangeKey{}).(*exchange)
	defer func() { x.svc.retrying.Add(-x.budgeted); x.budgeted = 0 }()
	var tried [4]*balancer.Endpoint
	exclude := tried[:0]
	for attempt := 0; ; attempt++ {
		ep := x.pool.Pick(balancer.Request{Policy: policy(x), HashKey: x.hashKey, Zone: x.zone, Version: x.version, Exclude: exclude})
		if ep == nil {
			return nil, errNoInstance
		}
		out := req
		if attempt > 0 {
			out = req.Clone(req.Context())
			out.Body = http.NoBody
			if len(x.replay) > 0 {
				out.Body = io.NopCloser(bytes.NewReader(x.replay))
			}
		}
		out.URL.Scheme, out.URL.Host = ep.Scheme(), ep.HostPort()
		resp, latency, cancel, err := p.try(out, x, ep)
		if err == errPending {
			// The gateway's own limit, per service: the instance saw
			// nothing (no Start, so no Done), and another would be
			// refused the same.
			return nil, err
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		x.svc.versions.series(ep.Instance().Version, time.Now).record(attemptOutcome(x.Context, status, err), latency)
		failed := err != nil || resp.StatusCode >= 500
		if attempt < x.retries && p.retryable(x, out, resp, err) && p.budget(x, err) {
			if resp != nil {
				_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
				_ = resp.Body.Close()
			}
			cancel()
			ep.Done(latency, true)
			exclude = append(exclude, ep)
			p.m.retry(x.route.Service)
			continue
		}
		if err != nil {
			cancel()
			ep.Done(latency, true)
			return nil, err
		}
		x.upstream, x.tries = ep, attempt+1
		end := attemptEnd{cancel: cancel, ep: ep, latency: latency, failed: failed}
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
			resp.Body = &upgradedBody{ReadWriteCloser: rwc, end: end}
		} else {
			// ReverseProxy asks once per exchange and closes the body
			// before it returns.
			x.tracked = trackedBody{ReadCloser: resp.Body, end: end}
			resp.Body = &x.tracked
		}
		return resp, nil
	}
}

func policy(x *exchange) string {
	if x.route.LoadBalancer != nil {
		return x.route.LoadBalancer.Policy
	}
	return ""
}

// try makes one attempt. The returned cancel ends the attempt's context;
// it must be called once the response body is done with.
func (p *Proxy) try(out *http.Request, x *exchange, ep *balancer.Endpoint) (*http.Response, time.Duration, context.CancelFunc, error) {
	if x.svc.pending.Add(1) > p.cfg.MaxPending {
		x.svc.pending.Add(-1)
		p.m.overflow(x.route.Service, "pending")
		return nil, 0, noCancel, errPending
	}
	// Only a per-try timeout needs a context of the attempt's own (and a
	// copy of the request to carry it); otherwise the attempt runs in
	// the request's context and has nothing to cancel.
	cancel, sent := context.CancelFunc(noCancel), out
	var timer *time.Timer
	if x.perTry > 0 {
		var ctx context.Context
		ctx, cancel = context.WithCancel(out.Context())
		sent = out.WithContext(ctx)
		// The per-try timeout bounds the wait for response headers, not
		// the body: a stream may run as long as the route allows.
		timer = time.AfterFunc(x.perTry, cancel)
	}
	ep.Start()
	start := time.Now()
	resp, err := p.upstream.RoundTrip(sent)
	latency := time.Since(start)
	x.svc.pending.Add(-1)
	if timer != nil && !timer.Stop() && err != nil && out.Context().Err() == nil {
		err = context.DeadlineExceeded // the per-try timeout fired
	}
	return resp, latency, cancel, err
}

// budget decides whether a retry may go ahead. A connection that was never
// made costs the upstreams nothing, so retrying it elsewhere amplifies no
// load and needs no budget; any other retry takes one from the service's
// budget, given back when the retry is answered.
func (p *Proxy) budget(x *exchange, err error) bool {
	if err != nil && connectFailure(err) {
		return true
	}
	if !x.svc.retryAllowed(p.cfg.RetryBudget, p.cfg.MinRetries) {
		p.m.overflow(x.route.Service, "retry-budget")
		return false
	}
	x.budgeted++
	return true
}

// retryable: a connection that was never made can be retried for any
// request, since the upstream saw nothing; any other failure (an error or
// 502, 503, 504) only for an idempotent request. Either way the body must
// be replayable.
func (p *Proxy) retryable(x *exchange, out *http.Request, resp *http.Response, err error) bool {
	if x.replay == nil || out.Context().Err() != nil {
		return false
	}
	if err != nil {
		return connectFailure(err) || x.canRetry
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return x.canRetry
	}
	return false
}

// connectFailure reports an error dialing: the request never left.
func connectFailure(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func noCancel() {}

// attemptEnd ends an attempt that was answered, once the proxy is done
// with the answer's body: it releases the attempt's context and tells the
// endpoint how it went.
type attemptEnd struct {
	cancel  context.CancelFunc
	ep      *balancer.Endpoint
	latency time.Duration
	failed  bool
}

func (a attemptEnd) done() { a.cancel(); a.ep.Done(a.latency, a.failed) }

// trackedBody ends the attempt when the proxy is done with the body.
type trackedBody struct {
	io.ReadCloser
	end    attemptEnd
	closed bool
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	if !b.closed {
		b.closed = true
		b.end.done()
	}
	return err
}

// upgradedBody is a switched-protocol connection (WebSocket): the proxy
// writes to it, so it must stay an io.ReadWriteCloser.
type upgradedBody struct {
	io.ReadWriteCloser
	end    attemptEnd
	closed bool
}

func (b *upgradedBody) Close() error {
	err := b.ReadWriteCloser.Close()
	if !b.closed {
		b.closed = true
		b.end.done()
	}
	return err
}

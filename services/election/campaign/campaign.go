// Package campaign is the Go client of Steward's election service: it
// campaigns for an election, waits in line until it wins, renews the
// lease at TTL/3, and resigns when the caller's context ends.
//
//	c := client.New([]string{"http://localhost:8083"}, nil)
//	l, err := c.Campaign(ctx, "scaler", "scaler-1", client.Options{TTL: 10 * time.Second})
//	if err != nil { ... }
//	for {
//		select {
//		case <-l.Done(): // no longer the leader (l.Err says why)
//		case job := <-work:
//			// Send l.Fence() with every write, as X-Steward-Fence to the
//			// config service, so that a write made after a pause the
//			// leader did not notice is refused.
//		}
//	}
//
// Leadership is never certain in a distributed system: a process can be
// paused between checking Done and writing. Done closes when the lease
// may have lapsed by this process's clock (the TTL after the request that
// won or last renewed it was sent), which is never later than the service
// ends it if clocks run at the same rate; fencing tokens cover the rest.
package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/stewardhq/steward/sdk/replicas"
)

// Errors that end a leadership (Leadership.Err) or a campaign.
var (
	// ErrNotLeader: the service says this candidate and token do not lead
	// (the lease lapsed there, or someone resigned it).
	ErrNotLeader = errors.New("election: no longer the leader")
	// ErrLapsed: no renewal was confirmed within the TTL, so the lease may
	// have lapsed; the service may have elected someone else.
	ErrLapsed = errors.New("election: the lease lapsed before a renewal was confirmed")
	// ErrResigned: the leadership ended by Resign or by the campaign's
	// context ending.
	ErrResigned = errors.New("election: resigned")
	// ErrTaken: someone else leads and Options.NoWait was set.
	ErrTaken = errors.New("election: someone else leads")
)

// Client talks to one election service through any of its replicas: a
// request that fails to reach one (or that one answers 5xx) goes to the
// next (platform/replicas).
type Client struct {
	// Token, if set, is sent as Authorization: Bearer on every call: the
	// secret of a token with elections write on the names campaigned for
	// (STEWARD_AUTH_TOKEN), when the service has auth on.
	Token string

	replicas *replicas.Set
	hc       *http.Client
}

// New returns a client of the replicas at endpoints (base URLs such as
// http://localhost:8083). hc nil means http.DefaultClient.
func New(endpoints []string, hc *http.Client) *Client {
	return &Client{replicas: replicas.New(endpoints), hc: hc}
}

// Options qualify a campaign.
type Options struct {
	// TTL is the lease, 1s to 1h; default 10s. Renewals go every TTL/3.
	TTL time.Duration
	// Value is what the leader advertises (any JSON value, or nil).
	Value any
	// NoWait makes Campaign return ErrTaken at once when someone else
	// leads, instead of waiting in line.
	NoWait bool
}

// Leadership is a won election. Its renewal goroutine runs until Done
// closes.
type Leadership struct {
	c         *Client
	name      string
	candidate string
	ttl       time.Duration
	term      int64
	token     int64
	value     json.RawMessage

	done     chan struct{}      // closed when the leadership ended (err says why)
	halt     context.CancelFunc // stops the renewals (Resign), a renewal in flight too
	finished chan struct{}      // closed when the renewal goroutine returned

	mu       sync.Mutex
	err      error
	deadline time.Time // by this process's clock
}

// Name is the election's name.
func (l *Leadership) Name() string { return l.name }

// Token is the fencing token: send it with every write made as leader.
func (l *Leadership) Token() int64 { return l.token }

// Term counts the election's leaderships; this is the Term-th.
func (l *Leadership) Term() int64 { return l.term }

// Fence is the X-Steward-Fence header value for the config service:
// <election>:<token>.
func (l *Leadership) Fence() string { return fmt.Sprintf("%s:%d", l.name, l.token) }

// Value is what the leader advertises.
func (l *Leadership) Value() json.RawMessage { return l.value }

// Done is closed when this process must stop acting as leader.
func (l *Leadership) Done() <-chan struct{} { return l.done }

// Err says why Done closed (ErrNotLeader, ErrLapsed, ErrResigned), nil
// while it is open.
func (l *Leadership) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Deadline is when the lease may lapse by this process's clock unless a
// renewal is confirmed: the TTL after the last confirmed request was sent.
func (l *Leadership) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Campaign campaigns for election name as candidate (an ID no other
// process campaigning for name uses) and returns once it leads, waiting
// in line as long as ctx lets it (unless opts.NoWait). The leadership
// lasts until ctx ends (then it resigns), Resign is called, or a renewal
// fails; Done says when.
func (c *Client) Campaign(ctx context.Context, name, candidate string, opts Options) (*Leadership, error) {
	if opts.TTL == 0 {
		opts.TTL = 10 * time.Second
	}
	var value json.RawMessage
	if opts.Value != nil {
		b, err := json.Marshal(opts.Value)
		if err != nil {
			return nil, fmt.Errorf("election: value: %w", err)
		}
		value = b
	}
	body, err := json.Marshal(map[string]any{"candidate": candidate, "ttl": opts.TTL.String(), "value": value})
	if err != nil {
		return nil, err
	}
	path := "/v1/elections/" + url.PathEscape(name) + "/campaign"
	if !opts.NoWait {
		// Long enough that waiting costs few requests; short enough that a
		// wait cut by a proxy or a replica restart is soon campaigned again.
		path += "?wait=1m"
	}
	backoff := newBackoff()
	for {
		sent := time.Now()
		var won leadershipJSON
		err := c.post(ctx, path, body, &won)
		var se *StatusError
		switch {
		case err == nil:
			l := &Leadership{c: c, name: name, candidate: candidate, ttl: opts.TTL, term: won.Term, token: won.Token,
				value: won.Value, deadline: sent.Add(opts.TTL), done: make(chan struct{}), finished: make(chan struct{})}
			if time.Since(sent) > opts.TTL/3 {
				// It waited in line: the lease began at the handover, some
				// time after sent, so sent+TTL says little. A renewal now
				// starts a deadline this process can trust.
				if err := l.renew(ctx, time.Now().Add(opts.TTL)); err != nil {
					if errors.Is(err, ErrNotLeader) || ctx.Err() != nil {
						if ctx.Err() != nil {
							return nil, ctx.Err()
						}
						continue // it lapsed already; campaign again
					}
				}
			}
			rctx, halt := context.WithCancel(ctx)
			l.halt = halt
			go l.run(ctx, rctx)
			return l, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &se) && se.Status == http.StatusConflict:
			if opts.NoWait {
				return nil, fmt.Errorf("%w: %s", ErrTaken, se.Detail)
			}
			if time.Since(sent) > time.Second {
				backoff.reset() // the wait ended: campaign again at once
				continue
			}
			// Refused at once (the line is full): do not hammer.
			if err := backoff.sleep(ctx); err != nil {
				return nil, err
			}
		case errors.As(err, &se) && se.Status < 500:
			return nil, err
		default:
			if err := backoff.sleep(ctx); err != nil {
				return nil, err
			}
		}
	}
}

// Resign ends the leadership: it stops the renewals and tells the service,
// which elects the first candidate in line in the same revision. Done is
// closed when it returns.
func (l *Leadership) Resign(ctx context.Context) error {
	l.halt()
	<-l.finished
	return l.resign(ctx)
}

func (l *Leadership) resign(ctx context.Context) error {
	err := l.tokenOp(ctx, "resign", nil)
	if errors.Is(err, ErrNotLeader) {
		err = nil // over already
	}
	return err
}

// run renews every TTL/3 until the leadership ends: ctx is the
// campaign's (its end resigns), rctx ends with it or when Resign halts
// the renewals.
func (l *Leadership) run(ctx, rctx context.Context) {
	defer close(l.finished)
	timer := time.NewTimer(l.ttl / 3)
	defer timer.Stop()
	for {
		select {
		case <-rctx.Done():
			if ctx.Err() != nil {
				// The caller is done leading: let the next candidate lead
				// now rather than after the TTL.
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(l.ttl, 5*time.Second))
				_ = l.resign(sctx)
				cancel()
			}
			l.end(ErrResigned)
			return
		case <-timer.C:
		}
		sent := time.Now()
		err := l.renew(rctx, l.Deadline())
		switch {
		case err == nil:
			// Every TTL/3 from the last renewal's sending, however long it
			// took to confirm: two more tries fit before the deadline.
			timer.Reset(time.Until(sent.Add(l.ttl / 3)))
		case rctx.Err() != nil:
			timer.Reset(0) // ended: see above
		case errors.Is(err, ErrNotLeader):
			l.end(err)
			return
		case !time.Now().Before(l.Deadline()):
			l.end(ErrLapsed)
			return
		default:
			// Transient (a replica restarting, NATS away): try again soon,
			// while the lease may still hold.
			timer.Reset(min(l.ttl/10, time.Until(l.Deadline())))
		}
	}
}

// renew sends one renewal, given up at by (the local deadline: a renewal
// that lands later is moot), and moves the deadline when it is confirmed.
func (l *Leadership) renew(ctx context.Context, by time.Time) error {
	sent := time.Now()
	rctx, cancel := context.WithDeadline(ctx, by)
	defer cancel()
	var lj leadershipJSON
	if err := l.tokenOp(rctx, "renew", &lj); err != nil {
		return err
	}
	l.mu.Lock()
	l.deadline = sent.Add(l.ttl)
	l.mu.Unlock()
	return nil
}

func (l *Leadership) end(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	close(l.done)
}

// tokenOp posts renew or resign for this leadership.
func (l *Leadership) tokenOp(ctx context.Context, op string, out any) error {
	body, _ := json.Marshal(map[string]any{"candidate": l.candidate, "token": l.token})
	err := l.c.post(ctx, "/v1/elections/"+url.PathEscape(l.name)+"/"+op, body, out)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusConflict {
		return fmt.Errorf("%w: %s", ErrNotLeader, se.Detail)
	}
	return err
}

type leadershipJSON struct {
	Leader string          `json:"leader"`
	Term   int64           `json:"term"`
	Token  int64           `json:"token"`
	Value  json.RawMessage `json:"value"`
}

// StatusError is an answer other than 200: the problem the service sent.
type StatusError struct {
	Status int
	Detail string
}

func (e *StatusError) Error() string { return fmt.Sprintf("election: %d: %s", e.Status, e.Detail) }

// post sends body to path on the replica in use, moving on to the next
// ones while it cannot be reached or answers 5xx, and decodes a 200 into
// out. ctx bounds it: a renewal's deadline, a campaign's wait.
func (c *Client) post(ctx context.Context, path string, body []byte, out any) error {
	res, err := c.replicas.Do(ctx, c.hc, replicas.Limits{}, func(ctx context.Context, base string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		return req, nil
	})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		var p struct{ Detail string }
		_ = json.Unmarshal(data, &p)
		return &StatusError{Status: res.StatusCode, Detail: p.Detail}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("election: decode answer: %w", err)
	}
	return nil
}

// backoff spaces retries after transient failures: 50ms doubling to 2s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }
func (b *backoff) reset()  { b.d = 50 * time.Millisecond }
func (b *backoff) next() time.Duration {
	d := b.d
	b.d = min(2*b.d, 2*time.Second)
	return d
}

func (b *backoff) sleep(ctx context.Context) error {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

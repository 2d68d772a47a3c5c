package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stewardhq/steward/sdk/api"
)

// Elections is the election service: leader election with leases and
// fencing tokens.
//
//	l, err := c.Elections().Campaign(ctx, "scaler", "scaler-1", sdk.CampaignOptions{TTL: 10 * time.Second})
//	if err != nil { ... }
//	for {
//		select {
//		case <-l.Done(): // no longer the leader (l.Err says why)
//		case job := <-work:
//			// Write with sdk.WithFence(l.Fence()), so that a write made
//			// after a pause the leader did not notice is refused.
//		}
//	}
//
// Leadership is never certain in a distributed system: a process can be
// paused between checking Done and writing. Done closes when the lease
// may have lapsed by this process's clock (the TTL after the request that
// won or last renewed it was sent), which is never later than the service
// ends it if clocks run at the same rate; fencing tokens cover the rest.
type Elections struct{ c *Client }

// Elections is the election service.
func (c *Client) Elections() Elections { return Elections{c} }

// Errors that end a leadership (Leadership.Err) or a campaign. ErrTaken
// and ErrNotLeader wrap the service's answer too (an Error, 409).
var (
	// ErrNotLeader: the service says this candidate and token do not lead
	// (the lease lapsed there, or someone resigned it).
	ErrNotLeader = errors.New("steward: no longer the leader")
	// ErrLapsed: no renewal was confirmed within the TTL, so the lease may
	// have lapsed; the service may have elected someone else.
	ErrLapsed = errors.New("steward: the lease lapsed before a renewal was confirmed")
	// ErrResigned: the leadership ended by Resign or by the campaign's
	// context ending.
	ErrResigned = errors.New("steward: resigned")
	// ErrTaken: someone else leads and CampaignOptions.NoWait was set.
	ErrTaken = errors.New("steward: someone else leads")
)

// List is every election someone leads, by name.
func (e Elections) List(ctx context.Context) ([]api.Leadership, error) {
	return collect(func(after *string) ([]api.Leadership, *string, error) {
		page, err := decode[api.ElectionListResponse](e.c.api.ListElections(ctx, &api.ListElectionsParams{After: after}))
		if err != nil {
			return nil, nil, err
		}
		return page.Items, page.Next, nil
	})
}

// Get reads election name's leadership; ErrNotFound when no one leads.
func (e Elections) Get(ctx context.Context, name string) (*api.Leadership, error) {
	return decode[api.Leadership](e.c.api.GetElection(ctx, name, &api.GetElectionParams{}))
}

// Renew renews the leadership of candidate with token for its TTL;
// ErrNotLeader when they do not lead. A Leadership renews itself: this is
// for a leadership held outside this process (a CLI).
func (e Elections) Renew(ctx context.Context, name, candidate string, token int64) (*api.Leadership, error) {
	l, err := decode[api.Leadership](e.c.api.Renew(ctx, name, &api.RenewParams{}, api.TokenRequest{Candidate: candidate, Token: token}))
	return l, notLeader(err)
}

// Resign ends the leadership of candidate with token; the service elects
// the first candidate in line in the same revision. ErrNotLeader when
// they do not lead.
func (e Elections) Resign(ctx context.Context, name, candidate string, token int64) error {
	return notLeader(check(e.c.api.Resign(ctx, name, &api.ResignParams{}, api.TokenRequest{Candidate: candidate, Token: token})))
}

// notLeader is err, marked ErrNotLeader when it is the service's 409.
func notLeader(err error) error {
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	return err
}

// ElectionEvent is one change an election's watch saw. A handover is two
// events at one revision: resigned or expired, then elected.
type ElectionEvent struct {
	// Type is current (the leadership as the watch began), elected,
	// resigned or expired (the leadership that ended), or vacant (no one
	// led as the watch began).
	Type string
	// Leadership is the leadership the event is about; nil when vacant.
	Leadership *api.Leadership
}

// Observe follows election name: its leadership as it is (a current or a
// vacant event), then every change, with no gap and no repeat across
// disconnects and endpoints, until ctx ends or the caller stops ranging.
func (e Elections) Observe(ctx context.Context, name string) iter.Seq2[ElectionEvent, error] {
	return func(yield func(ElectionEvent, error) bool) {
		events := e.c.stream(ctx, func(ctx context.Context, lastID string) (*http.Response, error) {
			return e.c.api.WatchElection(ctx, name, &api.WatchElectionParams{}, streamEditors(lastID))
		})
		for ev, err := range events {
			if err != nil {
				yield(ElectionEvent{}, err)
				return
			}
			out := ElectionEvent{Type: ev.Type}
			if ev.Type != "vacant" {
				out.Leadership = new(api.Leadership)
				if err := json.Unmarshal(ev.Data, out.Leadership); err != nil {
					yield(ElectionEvent{}, fmt.Errorf("steward: election event %s: %w", ev.Type, err))
					return
				}
			}
			if !yield(out, nil) {
				return
			}
		}
	}
}

// CampaignOptions qualify a campaign.
type CampaignOptions struct {
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
	e         Elections
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

// Fence is the fence of writes made as leader (WithFence), the
// X-Steward-Fence header: <election>:<token>.
func (l *Leadership) Fence() string { return l.name + ":" + strconv.FormatInt(l.token, 10) }

// Value is what the leader advertises, nil if nothing.
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

// campaignWait is how long one campaign request waits in line: long
// enough that waiting costs few requests, short enough that a wait cut by
// a proxy or a replica restart is soon campaigned again.
const campaignWait = "1m"

// Campaign campaigns for election name as candidate (an ID no other
// process campaigning for name uses) and returns once it leads, waiting
// in line as long as ctx lets it (unless opts.NoWait). The leadership
// lasts until ctx ends (then it resigns), Resign is called, or a renewal
// fails; Done says when.
func (e Elections) Campaign(ctx context.Context, name, candidate string, opts CampaignOptions) (*Leadership, error) {
	if opts.TTL == 0 {
		opts.TTL = 10 * time.Second
	}
	req := api.CampaignRequest{Candidate: candidate, Ttl: opts.TTL.String()}
	if opts.Value != nil {
		b, err := json.Marshal(opts.Value)
		if err != nil {
			return nil, fmt.Errorf("steward: campaign value: %w", err)
		}
		req.Value = new(api.ElectionJSONValue)
		if err := req.Value.UnmarshalJSON(b); err != nil {
			return nil, err
		}
	}
	p := &api.CampaignParams{}
	if !opts.NoWait {
		w := campaignWait
		p.Wait = &w
	}
	backoff := newBackoff()
	for {
		sent := time.Now()
		won, err := decode[api.Leadership](e.c.api.Campaign(ctx, name, p, req))
		switch {
		case err == nil:
			l := &Leadership{e: e, name: name, candidate: candidate, ttl: opts.TTL, term: won.Term, token: won.Token,
				deadline: sent.Add(opts.TTL), done: make(chan struct{}), finished: make(chan struct{})}
			if won.Value != nil {
				l.value, _ = won.Value.MarshalJSON()
			}
			if time.Since(sent) > opts.TTL/3 {
				// It waited in line: the lease began at the handover, some
				// time after sent, so sent+TTL says little. A renewal now
				// starts a deadline this process can trust.
				if err := l.renew(ctx, time.Now().Add(opts.TTL)); err != nil {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					if errors.Is(err, ErrNotLeader) {
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
		case errors.Is(err, ErrConflict):
			if opts.NoWait {
				return nil, fmt.Errorf("%w: %w", ErrTaken, err)
			}
			if time.Since(sent) > time.Second {
				backoff.reset() // the wait ended: campaign again at once
				continue
			}
			// Refused at once (the line is full): do not hammer.
			if err := backoff.sleep(ctx); err != nil {
				return nil, err
			}
		case isClientError(err):
			return nil, err
		default:
			if err := backoff.sleep(ctx); err != nil {
				return nil, err
			}
		}
	}
}

// isClientError reports whether err is an answer 4xx: asking again will
// not change it.
func isClientError(err error) bool {
	var se *Error
	return errors.As(err, &se) && se.Status >= 400 && se.Status < 500
}

// Resign ends the leadership: it stops the renewals and tells the service,
// which elects the first candidate in line in the same revision. Done is
// closed when it returns; a leadership that was over already resigns
// without error.
func (l *Leadership) Resign(ctx context.Context) error {
	l.halt()
	<-l.finished
	return l.resign(ctx)
}

func (l *Leadership) resign(ctx context.Context) error {
	err := l.e.Resign(ctx, l.name, l.candidate, l.token)
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
	if _, err := l.e.Renew(rctx, l.name, l.candidate, l.token); err != nil {
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

// Package replicas is how a client reaches a replicated Steward service
// through any of its replicas, as etcd's clientv3 does with its endpoint
// list: a call goes to the replica in use and moves on to the next one
// when that one cannot be reached, answers 5xx or does not answer in
// time; a replica that answers stays in use. Every client of a Steward
// service (registry, config, election) fails over through a Set, so that
// the rule is written once.
//
// Moving on is safe because every replica applies the same log: an index
// or revision one replica returned means the same state on another, so a
// blocking query or a watch resumes there from where it was.
package replicas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Set is the base URLs of one service's replicas and the one in use.
type Set struct {
	urls []string
	cur  atomic.Uint32
}

// Parse makes a Set of a comma-separated list of base URLs (as the
// STEWARD_*_URL settings hold them); blanks and trailing slashes are
// dropped.
func Parse(list string) *Set {
	return New(strings.Split(list, ","))
}

// New makes a Set of base URLs such as http://registry-1:8082.
func New(urls []string) *Set {
	s := &Set{}
	for _, u := range urls {
		if u = strings.TrimSuffix(strings.TrimSpace(u), "/"); u != "" {
			s.urls = append(s.urls, u)
		}
	}
	return s
}

// URLs are the replicas' base URLs, in the order given.
func (s *Set) URLs() []string { return s.urls }

// URL is the base URL of the replica in use, "" in an empty Set.
func (s *Set) URL() string {
	if len(s.urls) == 0 {
		return ""
	}
	return s.urls[int(s.cur.Load())%len(s.urls)]
}

// Failed moves on from base, if it is still the replica in use: a
// caller that found it unreachable outside Do (a stream that broke) says
// so, and the next call starts at the next replica. Concurrent callers
// that saw the same failure move on once.
func (s *Set) Failed(base string) {
	if len(s.urls) == 0 {
		return
	}
	i := s.cur.Load()
	if s.urls[int(i)%len(s.urls)] == base {
		s.cur.CompareAndSwap(i, i+1)
	}
}

// Limits bound how long one replica is given before the next is tried.
type Limits struct {
	// Answer bounds the wait for a replica's response headers; 0: only
	// ctx bounds it. A blocking query gives its wait and a margin.
	Answer time.Duration
	// Idle, for a stream, bounds the silence between two reads of the
	// body once it is open (Steward's event streams send a heartbeat
	// comment every 15 s); past it the body's Read fails and the replica
	// is left. 0: no bound.
	Idle time.Duration
}

// NewRequest makes the request for one replica's base URL; ctx is that
// attempt's, and a body must be made afresh for each attempt.
type NewRequest func(ctx context.Context, base string) (*http.Request, error)

// Do sends the request newReq makes to the replica in use, and to the
// next ones in turn, each once, while a replica cannot be reached,
// answers 5xx, or exceeds lim. It returns the first other answer (the
// caller closes its body), else the last failure: the last 5xx answer or
// error. An error of ctx ends it at once. The attempt's context lasts
// until the body is closed.
func (s *Set) Do(ctx context.Context, hc *http.Client, lim Limits, newReq NewRequest) (*http.Response, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if len(s.urls) == 0 {
		return nil, errNoReplica
	}
	var last error
	var lastRes *http.Response
	start := s.cur.Load()
	for n := range uint32(len(s.urls)) {
		i := start + n
		res, err := s.attempt(ctx, hc, lim, i, newReq)
		if ctx.Err() != nil {
			if res != nil {
				res.Body.Close()
			}
			if lastRes != nil {
				lastRes.Body.Close()
			}
			return nil, ctx.Err()
		}
		if err == nil && res.StatusCode < 500 {
			if lastRes != nil {
				lastRes.Body.Close()
			}
			return res, nil
		}
		if lastRes != nil {
			lastRes.Body.Close()
		}
		last, lastRes = err, res
		s.cur.CompareAndSwap(i, i+1)
	}
	if lastRes != nil {
		return lastRes, nil
	}
	return nil, last
}

var errNoReplica = errors.New("replicas: no replica URL configured")

// attempt sends one request to replica i under lim.
func (s *Set) attempt(ctx context.Context, hc *http.Client, lim Limits, i uint32, newReq NewRequest) (*http.Response, error) {
	base := s.urls[int(i)%len(s.urls)]
	actx, cancel := context.WithCancel(ctx)
	req, err := newReq(actx, base)
	if err != nil {
		cancel()
		return nil, err
	}
	var timer *time.Timer
	if lim.Answer > 0 {
		timer = time.AfterFunc(lim.Answer, cancel)
	}
	res, err := hc.Do(req)
	if timer != nil && !timer.Stop() {
		// Too late, or cut off by the timer (then the body is too).
		if err == nil {
			res.Body.Close()
		}
		cancel()
		return nil, fmt.Errorf("replicas: %s did not answer within %s", base, lim.Answer)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	b := &body{rc: res.Body, cancel: cancel}
	if lim.Idle > 0 {
		b.idle, b.timer = lim.Idle, time.AfterFunc(lim.Idle, func() { s.Failed(base); cancel() })
	}
	res.Body = b
	return res, nil
}

// body ends its attempt's context when closed, and restarts the idle
// timer with every read.
type body struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	idle   time.Duration
	timer  *time.Timer
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if b.timer != nil && n > 0 {
		b.timer.Reset(b.idle)
	}
	return n, err
}

func (b *body) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.rc.Close()
	b.cancel()
	return err
}

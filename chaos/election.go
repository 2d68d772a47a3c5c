package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The election workload: candidates campaign (waiting in line), renew,
// resign and write to the config service fenced with their token; some,
// once deposed, try a write with their old token. Checked: tokens are
// unique and follow real time, leases (as the service reported them) never
// overlap, and a stale fenced write is refused.
const (
	elections          = 2
	candidatesPerElect = 3
	electionTTL        = 3 * time.Second
	fencePrefix        = "/chaos/fence/"
)

// leadership is one term as its candidate learnt of it.
type leadership struct {
	Name, Candidate string
	Token, Term     int64
	Start           time.Time // log time it began: the first reported expiresAt - TTL
	Expires         time.Time // the latest expiresAt acknowledged by a campaign or renew
	CampaignCall    time.Time
	CampaignRet     time.Time
	ResignCall      time.Time // zero: no resign was sent
	ResignAcked     bool
	// Certain: the candidate had no earlier campaign that ended without
	// a 200, so this leadership began after CampaignCall. (A campaign by
	// the holder answers its running leadership, which an earlier request
	// may have won unbeknown to the client: a timeout, or a 409.)
	Certain bool
}

// leadershipJSON is the service's Leadership.
type leadershipJSON struct {
	Name      string    `json:"name"`
	Leader    string    `json:"leader"`
	Term      int64     `json:"term"`
	Token     int64     `json:"token"`
	TTL       string    `json:"ttl"`
	ExpiresAt time.Time `json:"expiresAt"`
}

type electionWorkload struct {
	s *suite

	mu          sync.Mutex
	counts      counts
	leaderships []*leadership
	// fenceAcked is, per election, the highest token a fenced config write
	// was acknowledged with, and when.
	fenceAcked map[string]fenceAck
	staleTried int
	events     []string // every answer a candidate got, for the run directory
}

// note keeps one line of the election history.
func (w *electionWorkload) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, time.Now().Format("15:04:05.000000")+" "+fmt.Sprintf(format, args...))
}

// answer is a reply in one line: status and body, or the error.
func answer(r reply) string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(string(r.body)))
}

type fenceAck struct {
	token int64
	at    time.Time
}

func newElectionWorkload(s *suite) *electionWorkload {
	return &electionWorkload{s: s, fenceAcked: map[string]fenceAck{}}
}

func (w *electionWorkload) run(ctx context.Context, wg *sync.WaitGroup) {
	for e := range elections {
		for c := range candidatesPerElect {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.candidate(ctx, fmt.Sprintf("chaos-e%d", e), fmt.Sprintf("cand-%d-%d", e, c), uint64(e*10+c))
			}()
		}
	}
}

// tally counts one call by its reply.
func (w *electionWorkload) tally(r reply, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts.tally(r, ok)
}

func (w *electionWorkload) violation(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts.Violations++
	w.counts.Notes = append(w.counts.Notes, fmt.Sprintf(format, args...))
	w.s.logf("election: VIOLATION: "+format, args...)
}

func (w *electionWorkload) candidate(ctx context.Context, name, cand string, seed uint64) {
	rng := rand.New(rand.NewPCG(uint64(w.s.o.seed), 0xe1ec+seed))
	url := func() string {
		node := rng.IntN(w.s.c.nodes())
		return w.s.c.url("election", node) + "/v1/elections/" + name
	}
	uncertain := false // an earlier campaign ended without a 200
	for ctx.Err() == nil {
		body := fmt.Sprintf(`{"candidate":%q,"ttl":%q}`, cand, electionTTL)
		call := time.Now()
		u := url()
		r := w.s.do(ctx, http.MethodPost, u+"/campaign?wait=5s", nil, []byte(body), opTimeout)
		ret := time.Now()
		w.note("%s campaign via %s (sent %s): %s", cand, u, call.Format("15:04:05.000000"), answer(r))
		if ctx.Err() != nil && r.err != nil {
			return // the run ended under it
		}
		if r.err != nil || r.status != http.StatusOK {
			uncertain = true
			w.tally(r, r.status == http.StatusConflict)
			sleepCtx(ctx, time.Duration(rng.IntN(500))*time.Millisecond)
			continue
		}
		w.tally(r, true)
		var lj leadershipJSON
		if err := json.Unmarshal(r.body, &lj); err != nil || lj.Token == 0 {
			w.violation("campaign answered 200 with %q", r.body)
			continue
		}
		l := w.won(name, cand, lj, call, ret, !uncertain)
		uncertain = false
		w.lead(ctx, rng, url, l)
	}
}

// won records a leadership, or the renewal a repeated campaign is.
func (w *electionWorkload) won(name, cand string, lj leadershipJSON, call, ret time.Time, certain bool) *leadership {
	ttl, _ := time.ParseDuration(lj.TTL)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.leaderships {
		if l.Name == name && l.Token == lj.Token {
			if l.Candidate != cand || l.Term != lj.Term {
				w.counts.Violations++
				w.counts.Notes = append(w.counts.Notes, fmt.Sprintf("token %d of %s given to %s (term %d) and %s (term %d)", lj.Token, name, l.Candidate, l.Term, cand, lj.Term))
			}
			if lj.ExpiresAt.After(l.Expires) {
				l.Expires = lj.ExpiresAt
			}
			return l
		}
	}
	l := &leadership{Name: name, Candidate: cand, Token: lj.Token, Term: lj.Term, Start: lj.ExpiresAt.Add(-ttl), Expires: lj.ExpiresAt, CampaignCall: call, CampaignRet: ret, Certain: certain}
	w.leaderships = append(w.leaderships, l)
	return l
}

// lead holds a leadership for a while: a fenced write, renewals every
// TTL/3, another fenced write, then a resign; sometimes, once deposed, a
// write with the old token.
func (w *electionWorkload) lead(ctx context.Context, rng *rand.Rand, url func() string, l *leadership) {
	w.fencedWrite(ctx, rng, l)
	hold := time.Duration(1000+rng.IntN(3000)) * time.Millisecond
	until := time.Now().Add(hold)
	for time.Now().Before(until) && ctx.Err() == nil {
		if !sleepCtx(ctx, electionTTL/3) {
			break
		}
		body := fmt.Sprintf(`{"candidate":%q,"token":%d}`, l.Candidate, l.Token)
		u, sent := url(), time.Now()
		r := w.s.do(ctx, http.MethodPost, u+"/renew", nil, []byte(body), electionTTL)
		w.note("%s renew %d via %s (sent %s): %s", l.Candidate, l.Token, u, sent.Format("15:04:05.000000"), answer(r))
		w.tally(r, r.err == nil && r.status == http.StatusOK)
		switch {
		case r.err == nil && r.status == http.StatusOK:
			var lj leadershipJSON
			if json.Unmarshal(r.body, &lj) == nil {
				w.mu.Lock()
				if lj.ExpiresAt.After(l.Expires) {
					l.Expires = lj.ExpiresAt
				}
				w.mu.Unlock()
			}
		case r.err == nil && r.status == http.StatusConflict:
			until = time.Time{} // deposed
		}
		w.mu.Lock()
		lapsed := time.Now().After(l.Expires)
		w.mu.Unlock()
		if lapsed {
			break
		}
	}
	w.fencedWrite(ctx, rng, l)
	body := fmt.Sprintf(`{"candidate":%q,"token":%d}`, l.Candidate, l.Token)
	call := time.Now()
	u := url()
	r := w.s.do(context.WithoutCancel(ctx), http.MethodPost, u+"/resign", nil, []byte(body), opTimeout)
	w.note("%s resign %d via %s (sent %s): %s", l.Candidate, l.Token, u, call.Format("15:04:05.000000"), answer(r))
	w.tally(r, r.err == nil && (r.status == http.StatusOK || r.status == http.StatusConflict))
	w.mu.Lock()
	l.ResignCall = call
	l.ResignAcked = r.err == nil && r.status == http.StatusOK
	w.mu.Unlock()
	if rng.IntN(2) == 0 {
		w.staleWrite(ctx, rng, l)
	}
}

// fencedWrite puts the election's fence key with the leadership's token.
func (w *electionWorkload) fencedWrite(ctx context.Context, rng *rand.Rand, l *leadership) reply {
	node := rng.IntN(w.s.c.nodes())
	hdr := map[string]string{"X-Steward-Fence": l.Name + ":" + strconv.FormatInt(l.Token, 10)}
	body, _ := json.Marshal(fmt.Sprintf("%s-%d", l.Candidate, l.Token))
	r := w.s.do(ctx, http.MethodPut, w.s.c.url("config", node)+"/v1/kv"+fencePrefix+l.Name, hdr, body, opTimeout)
	w.note("%s fenced write with %s on config-%d: %s", l.Candidate, hdr["X-Steward-Fence"], node, answer(r))
	ok := r.err == nil && (r.status == http.StatusOK || r.status == http.StatusConflict)
	w.tally(r, ok)
	if r.err == nil && r.status == http.StatusOK {
		w.mu.Lock()
		if a := w.fenceAcked[l.Name]; l.Token > a.token {
			w.fenceAcked[l.Name] = fenceAck{token: l.Token, at: time.Now()}
		}
		w.mu.Unlock()
	}
	return r
}

// staleWrite waits (up to 10 s) for a newer leader's fenced write to be
// acknowledged, then writes with l's old token: the config service must
// refuse it with 409.
func (w *electionWorkload) staleWrite(ctx context.Context, rng *rand.Rand, l *leadership) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		newer := w.fenceAcked[l.Name]
		w.mu.Unlock()
		if newer.token > l.Token {
			w.mu.Lock()
			w.staleTried++
			w.mu.Unlock()
			r := w.fencedWrite(ctx, rng, l)
			if r.err == nil && r.status == http.StatusOK {
				w.violation("a write fenced with %s's stale token %d on %s was accepted after token %d's write was acknowledged", l.Candidate, l.Token, l.Name, newer.token)
			}
			return
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// check judges the leaderships; the history goes to
// election-history.txt in runDir.
func (w *electionWorkload) check(runDir string) counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = os.WriteFile(filepath.Join(runDir, "election-history.txt"), []byte(strings.Join(w.events, "\n")+"\n"), 0o644)
	c := w.counts
	ls := slices.Clone(w.leaderships)
	slices.SortFunc(ls, func(a, b *leadership) int { return int(a.Token - b.Token) })
	// Tokens follow real time: a leadership won before another's campaign
	// was sent has the smaller token (across elections too: tokens are the
	// service's log revisions), unless that campaign answered a leadership
	// an earlier request may have won (not Certain).
	for _, a := range ls {
		for _, b := range ls {
			if b.Certain && a.CampaignRet.Before(b.CampaignCall) && a.Token >= b.Token {
				c.Violations++
				c.Notes = append(c.Notes, fmt.Sprintf("token %d (%s, %s) was won before %s's campaign for token %d was sent", a.Token, a.Candidate, a.Name, b.Candidate, b.Token))
			}
		}
	}
	// Leases of one election do not overlap, as the service reported them:
	// each begins no earlier than the end of the one before (its last
	// acknowledged expiry, or when its resignation was sent).
	byName := map[string][]*leadership{}
	for _, l := range ls {
		byName[l.Name] = append(byName[l.Name], l)
	}
	for _, name := range slices.Sorted(mapKeys(byName)) {
		terms := byName[name]
		for i := 1; i < len(terms); i++ {
			a, b := terms[i-1], terms[i]
			if b.Term <= a.Term {
				c.Violations++
				c.Notes = append(c.Notes, fmt.Sprintf("%s: token %d has term %d, not after token %d's term %d", name, b.Token, b.Term, a.Token, a.Term))
			}
			end := a.Expires
			if !a.ResignCall.IsZero() && a.ResignCall.Before(end) {
				end = a.ResignCall
			}
			if b.Start.Before(end) {
				c.Violations++
				c.Notes = append(c.Notes, fmt.Sprintf("%s: %s's lease (token %d) began at %s, %s before %s's (token %d) ended at %s",
					name, b.Candidate, b.Token, b.Start.Format("15:04:05.000000"), end.Sub(b.Start), a.Candidate, a.Token, end.Format("15:04:05.000000")))
			}
		}
	}
	c.Notes = append(c.Notes, fmt.Sprintf("%d leaderships over %d elections, %d stale fenced writes tried (all must be refused)", len(ls), len(byName), w.staleTried))
	return c
}

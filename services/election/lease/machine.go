package lease

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/envelope"
)

// Machine is the state of every election. Apply mutates it; the query
// methods (Get, List, Due) must be called inside qlog.Log.Read, which
// excludes Apply.
type Machine struct {
	elections map[string]*election
	// deadlines indexes every lease and every place in line for expiry;
	// rebuilt from elections on Restore.
	deadlines *qlog.Expiries
}

// election is one named election. An election keeps its record (and so
// its term count) after its last leader went, like the config service
// keeps the newest fencing token of a name.
type election struct {
	Term   int64     `json:"term"`
	Leader *holder   `json:"leader,omitempty"`
	Queue  []*waiter `json:"queue,omitempty"`
}

type holder struct {
	Candidate string          `json:"candidate"`
	Token     int64           `json:"token"`
	Value     json.RawMessage `json:"value,omitempty"`
	TTL       time.Duration   `json:"ttl"`
	ExpiresAt int64           `json:"expiresAt"`        // Unix nanoseconds of log time
	Renewed   int64           `json:"renewed"`          // revision of the win or the last renewal
	Waiter    string          `json:"waiter,omitempty"` // the waiting request it was won through
}

type waiter struct {
	Candidate string          `json:"candidate"`
	Value     json.RawMessage `json:"value,omitempty"`
	TTL       time.Duration   `json:"ttl"`
	Hold      time.Duration   `json:"hold"`
	HeldUntil int64           `json:"heldUntil"`        // Unix nanoseconds of log time
	Renewed   int64           `json:"renewed"`          // revision of the campaign or the last keep
	Waiter    string          `json:"waiter,omitempty"` // the request waiting in this place
}

// New returns an empty state.
func New() *Machine {
	return &Machine{elections: map[string]*election{}, deadlines: qlog.NewExpiries()}
}

// Deadline IDs: the leader's lease of an election and each place in its
// line. Names and candidates never contain NUL (ValidateName,
// ValidateCandidate), so the IDs cannot collide.
func leaderID(name string) string            { return "L\x00" + name }
func waiterID(name, candidate string) string { return "W\x00" + name + "\x00" + candidate }

// applying carries one entry through Apply.
type applying struct {
	rev    int64
	now    int64  // log time, Unix nanoseconds
	by     string // the command's token id, for its events
	events []qlog.Event
}

// Apply implements qlog.StateMachine.
func (m *Machine) Apply(e qlog.Entry) ([]byte, []qlog.Event) {
	a := &applying{rev: e.Revision, now: e.Time.UnixNano()}
	out := envelope.Apply(e.Cmd, func(c *Command) Result { return m.apply(a, c) },
		func(p envelope.Problem) Result { return Result{Status: Invalid, Problem: p} })
	return out, a.events
}

func (m *Machine) apply(a *applying, c *Command) Result {
	a.by = c.By
	el := m.elections[c.Name]
	if el == nil {
		if c.Op != "campaign" {
			return m.unknown(c)
		}
		el = &election{}
		m.elections[c.Name] = el
	}
	// Every command sees the election as it is at its log time: a lease
	// past its deadline is over even if no expire command ended it yet.
	if c.Op == "expire" {
		// The precondition the proposer saw (this deadline, not renewed
		// since, due at log time) decides the status; settle ends what is
		// due either way.
		id := leaderID(c.Name)
		if c.Candidate != "" {
			id = waiterID(c.Name, c.Candidate)
		}
		due := m.deadlines.Expired(id, c.Since, time.Unix(0, a.now))
		m.settle(a, c.Name, el)
		if !due {
			return noop(c)
		}
		return Result{Status: Expired, Leader: m.view(c.Name, el)}
	}
	m.settle(a, c.Name, el)
	switch c.Op {
	case "campaign":
		return m.campaign(a, c, el)
	case "renew":
		if !leads(el, c.Candidate, c.Token) {
			return m.notLeader(c, el)
		}
		el.Leader.ExpiresAt = a.now + int64(el.Leader.TTL)
		el.Leader.Renewed = a.rev
		// A renewal comes from a client that knows it leads: no waiting
		// request that gave up may take the leadership for its own now.
		el.Leader.Waiter = ""
		m.deadlines.Set(leaderID(c.Name), time.Unix(0, el.Leader.ExpiresAt), a.rev)
		return Result{Status: Renewed, Leader: m.view(c.Name, el)}
	case "resign":
		if !leads(el, c.Candidate, c.Token) {
			return m.notLeader(c, el)
		}
		if c.Waiter != "" && el.Leader.Waiter != c.Waiter {
			// A waiting request giving up a leadership its client never
			// learnt of; another request (or a renewal) has answered for
			// it since, so it is not this request's to give up.
			return m.notLeader(c, el)
		}
		m.endLeadership(a, c.Name, el, EventResigned)
		return Result{Status: Resigned, Leader: m.view(c.Name, el)}
	case "keep", "withdraw":
		if el.Leader != nil && el.Leader.Candidate == c.Candidate && el.Leader.Waiter == c.Waiter {
			// It won while this request was waiting: tell the request.
			return Result{Status: Elected, Leader: m.view(c.Name, el)}
		}
		i := slices.IndexFunc(el.Queue, func(w *waiter) bool { return w.Candidate == c.Candidate && w.Waiter == c.Waiter })
		if i < 0 {
			return absent(c, m.view(c.Name, el))
		}
		if c.Op == "withdraw" {
			m.removeWaiter(c.Name, el, i)
			return Result{Status: Withdrawn, Leader: m.view(c.Name, el)}
		}
		w := el.Queue[i]
		w.HeldUntil, w.Renewed = a.now+int64(w.Hold), a.rev
		m.deadlines.Set(waiterID(c.Name, w.Candidate), time.Unix(0, w.HeldUntil), a.rev)
		return Result{Status: Queued, Leader: m.view(c.Name, el), Position: i + 1}
	}
	return unknownOp(c)
}

// unknown answers a command on an election that has no record.
func (m *Machine) unknown(c *Command) Result {
	switch c.Op {
	case "renew", "resign":
		return notLeader(c, nil)
	case "keep", "withdraw":
		return absent(c, nil)
	case "expire":
		return noop(c)
	}
	return unknownOp(c)
}

// The refusals, each with the fault a client sees and words that name the
// command's election and candidate.

func unknownOp(c *Command) Result {
	return Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "unknown op %q", c.Op)}
}

func notLeader(c *Command, l *Leadership) Result {
	return Result{Status: NotLeader, Leader: l,
		Problem: envelope.Refuse(fault.Conflict, "candidate %s with token %d does not lead %s", c.Candidate, c.Token, c.Name)}
}

func absent(c *Command, l *Leadership) Result {
	return Result{Status: Absent, Leader: l,
		Problem: envelope.Refuse(fault.Conflict, "candidate %s has no place in line for %s", c.Candidate, c.Name)}
}

func noop(c *Command) Result {
	return Result{Status: Noop, Problem: envelope.Refuse(fault.PreconditionFailed, "nothing of election %s was due", c.Name)}
}

func leads(el *election, candidate string, token int64) bool {
	return el.Leader != nil && el.Leader.Candidate == candidate && el.Leader.Token == token
}

func (m *Machine) notLeader(c *Command, el *election) Result {
	return notLeader(c, m.view(c.Name, el))
}

func (m *Machine) campaign(a *applying, c *Command, el *election) Result {
	switch {
	case el.Leader == nil:
		// settle leaves no line without a leader, so nobody is passed over.
		m.elect(a, c.Name, el, &waiter{Candidate: c.Candidate, Value: c.Value, TTL: c.TTL, Waiter: c.Waiter})
		return Result{Status: Elected, Leader: m.view(c.Name, el)}
	case el.Leader.Candidate == c.Candidate:
		// A campaign by the holder (a retry whose answer was lost) is a
		// renewal with the TTL it asks for; the token stays. This request
		// now answers for the leadership: an earlier waiting request of
		// the same candidate that gave up must not resign what this one
		// is about to tell its client it holds.
		el.Leader.Waiter = c.Waiter
		el.Leader.TTL = c.TTL
		el.Leader.ExpiresAt = a.now + int64(c.TTL)
		el.Leader.Renewed = a.rev
		m.deadlines.Set(leaderID(c.Name), time.Unix(0, el.Leader.ExpiresAt), a.rev)
		return Result{Status: Elected, Leader: m.view(c.Name, el)}
	case c.Hold <= 0:
		return Result{Status: Taken, Leader: m.view(c.Name, el),
			Problem: envelope.Refuse(fault.Conflict, "election %s is led by %s", c.Name, el.Leader.Candidate)}
	}
	w := &waiter{Candidate: c.Candidate, Value: c.Value, TTL: c.TTL, Hold: c.Hold, HeldUntil: a.now + int64(c.Hold), Renewed: a.rev, Waiter: c.Waiter}
	i := slices.IndexFunc(el.Queue, func(q *waiter) bool { return q.Candidate == c.Candidate })
	switch {
	case i >= 0:
		el.Queue[i] = w // a repeated campaign keeps its place
	case len(el.Queue) >= MaxQueue:
		return Result{Status: QueueFull, Leader: m.view(c.Name, el),
			Problem: envelope.Refuse(fault.Conflict, "election %s is led by %s and its line is full: %d candidates already wait", c.Name, el.Leader.Candidate, len(el.Queue))}
	default:
		el.Queue = append(el.Queue, w)
		i = len(el.Queue) - 1
	}
	m.deadlines.Set(waiterID(c.Name, w.Candidate), time.Unix(0, w.HeldUntil), a.rev)
	return Result{Status: Queued, Leader: m.view(c.Name, el), Position: i + 1}
}

// settle ends what is due at the entry's log time: places in line whose
// hold lapsed, then a lapsed lease, whose end hands over to the head of
// the line.
func (m *Machine) settle(a *applying, name string, el *election) {
	el.Queue = slices.DeleteFunc(el.Queue, func(w *waiter) bool {
		if w.HeldUntil <= a.now {
			m.deadlines.Remove(waiterID(name, w.Candidate))
			return true
		}
		return false
	})
	if el.Leader != nil && el.Leader.ExpiresAt <= a.now {
		m.endLeadership(a, name, el, EventExpired)
	}
}

// endLeadership ends the current leadership with an event of type typ and
// elects the head of the line, in the same entry.
func (m *Machine) endLeadership(a *applying, name string, el *election, typ string) {
	a.event(typ, name, m.view(name, el))
	el.Leader = nil
	m.deadlines.Remove(leaderID(name))
	if len(el.Queue) > 0 {
		w := el.Queue[0]
		m.removeWaiter(name, el, 0)
		m.elect(a, name, el, w)
	}
}

// elect makes w's candidate the leader, remembering which request won.
func (m *Machine) elect(a *applying, name string, el *election, w *waiter) {
	el.Term++
	el.Leader = &holder{Candidate: w.Candidate, Token: a.rev, Value: w.Value, TTL: w.TTL, ExpiresAt: a.now + int64(w.TTL), Renewed: a.rev, Waiter: w.Waiter}
	m.deadlines.Set(leaderID(name), time.Unix(0, el.Leader.ExpiresAt), a.rev)
	a.event(EventElected, name, m.view(name, el))
}

func (m *Machine) removeWaiter(name string, el *election, i int) {
	m.deadlines.Remove(waiterID(name, el.Queue[i].Candidate))
	el.Queue = slices.Delete(el.Queue, i, i+1)
}

func (a *applying) event(typ, name string, l *Leadership) {
	data, _ := json.Marshal(EventData{Leadership: l, By: a.by})
	a.events = append(a.events, qlog.Event{Type: typ, Key: name, Data: data})
}

// view returns the election's leadership as clients see it, nil when
// nobody leads.
func (m *Machine) view(name string, el *election) *Leadership {
	h := el.Leader
	if h == nil {
		return nil
	}
	return &Leadership{Name: name, Leader: h.Candidate, Term: el.Term, Token: h.Token, Value: h.Value,
		TTL: h.TTL.String(), ExpiresAt: time.Unix(0, h.ExpiresAt).UTC(), Queue: len(el.Queue)}
}

// Get returns the leadership of name, nil when nobody leads.
func (m *Machine) Get(name string) *Leadership {
	if el := m.elections[name]; el != nil {
		return m.view(name, el)
	}
	return nil
}

// List returns up to limit leaderships of elections named after after,
// in name order, and whether more follow.
func (m *Machine) List(after string, limit int) ([]Leadership, bool) {
	names := make([]string, 0, len(m.elections))
	for name, el := range m.elections {
		if name > after && el.Leader != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	more := len(names) > limit
	names = names[:min(len(names), limit)]
	out := make([]Leadership, len(names))
	for i, name := range names {
		out[i] = *m.view(name, m.elections[name])
	}
	return out, more
}

// dueBatch bounds the expire commands proposed per round.
const dueBatch = 256

// Due returns the expire commands for the leases and places in line whose
// deadline passed by now; give it to qlog.Log.RunExpiry.
func (m *Machine) Due(now time.Time) [][]byte {
	var cmds [][]byte
	for _, d := range m.deadlines.Due(now, dueBatch) {
		c := Command{Op: "expire", Since: d.NotRenewedSince}
		kind, rest := d.ID[0], d.ID[2:]
		c.Name = rest
		if kind == 'W' {
			for i := 0; i < len(rest); i++ {
				if rest[i] == 0 {
					c.Name, c.Candidate = rest[:i], rest[i+1:]
					break
				}
			}
		}
		b, _ := json.Marshal(c)
		cmds = append(cmds, b)
	}
	return cmds
}

// snapshot is the encoded state. encoding/json writes map keys sorted, so
// equal states give equal bytes.
type snapshot struct {
	Elections map[string]*election `json:"elections"`
}

// Snapshot implements qlog.StateMachine.
func (m *Machine) Snapshot(w io.Writer) error {
	return json.NewEncoder(w).Encode(snapshot{Elections: m.elections})
}

// Restore implements qlog.StateMachine.
func (m *Machine) Restore(r io.Reader) error {
	var s snapshot
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("lease: restore: %w", err)
	}
	if s.Elections == nil {
		s.Elections = map[string]*election{}
	}
	m.elections = s.Elections
	m.deadlines = qlog.NewExpiries()
	for name, el := range m.elections {
		if h := el.Leader; h != nil {
			m.deadlines.Set(leaderID(name), time.Unix(0, h.ExpiresAt), h.Renewed)
		}
		for _, w := range el.Queue {
			m.deadlines.Set(waiterID(name, w.Candidate), time.Unix(0, w.HeldUntil), w.Renewed)
		}
	}
	return nil
}

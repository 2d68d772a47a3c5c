package lease_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/election/lease"
)

// randomLog makes n entries of every command kind on a few elections and
// candidates, at log times that advance irregularly, with the expire
// commands a replica would have proposed from Due mixed in.
func randomLog(seed uint64, n int) []qlog.Entry {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	names := []string{"a", "b", "c"}
	cands := []string{"c1", "c2", "c3", "c4", "c5"}
	ops := []string{"campaign", "campaign", "renew", "resign", "keep", "withdraw", "expire"}
	shadow := lease.New() // proposes from the state a replica would see
	var entries []qlog.Entry
	at := epoch
	tokens := map[string]int64{}
	for rev := int64(1); rev <= int64(n); rev++ {
		at = at.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		c := lease.Command{Op: ops[rng.IntN(len(ops))], Name: names[rng.IntN(len(names))], Candidate: cands[rng.IntN(len(cands))]}
		switch c.Op {
		case "campaign":
			c.TTL = time.Duration(1+rng.IntN(3)) * time.Second
			if rng.IntN(2) == 0 {
				c.Hold = time.Duration(500+rng.IntN(2000)) * time.Millisecond
			}
			if rng.IntN(3) == 0 {
				c.Value = json.RawMessage(fmt.Sprintf(`{"n":%d}`, rev))
			}
		case "renew", "resign":
			c.Token = tokens[c.Name]
			if rng.IntN(4) == 0 {
				c.Token = rng.Int64N(rev) // mostly stale
			}
		case "expire":
			if due := shadow.Due(at); len(due) > 0 {
				if err := json.Unmarshal(due[rng.IntN(len(due))], &c); err != nil {
					panic(err)
				}
			} else {
				c.Since = rng.Int64N(rev)
			}
		}
		cmd, _ := json.Marshal(c)
		e := qlog.Entry{Revision: rev, Time: at, Proposer: "r", Cmd: cmd}
		_, evs := shadow.Apply(e)
		for _, ev := range evs {
			if ev.Type == lease.EventElected {
				var l lease.Leadership
				_ = json.Unmarshal(ev.Data, &l)
				tokens[l.Name] = l.Token
			}
		}
		entries = append(entries, e)
	}
	return entries
}

func snapshotBytes(t *testing.T, m *lease.Machine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReplayIsDeterministic applies one log to two machines, and to a
// third restored from a snapshot halfway, and requires the same result and
// events for every entry and byte-identical snapshots.
func TestReplayIsDeterministic(t *testing.T) {
	for seed := range uint64(20) {
		entries := randomLog(seed, 600)
		a, b := lease.New(), lease.New()
		var c *lease.Machine
		for i, e := range entries {
			if i == len(entries)/2 {
				c = lease.New()
				if err := c.Restore(bytes.NewReader(snapshotBytes(t, b))); err != nil {
					t.Fatal(err)
				}
			}
			ra, ea := a.Apply(e)
			rb, eb := b.Apply(e)
			if !bytes.Equal(ra, rb) || fmt.Sprint(ea) != fmt.Sprint(eb) {
				t.Fatalf("seed %d rev %d: %s %v vs %s %v", seed, e.Revision, ra, ea, rb, eb)
			}
			if c != nil {
				rc, ec := c.Apply(e)
				if !bytes.Equal(ra, rc) || fmt.Sprint(ea) != fmt.Sprint(ec) {
					t.Fatalf("seed %d rev %d after restore: %s %v, want %s %v", seed, e.Revision, rc, ec, ra, ea)
				}
			}
		}
		sa, sb, sc := snapshotBytes(t, a), snapshotBytes(t, b), snapshotBytes(t, c)
		if !bytes.Equal(sa, sb) || !bytes.Equal(sa, sc) {
			t.Fatalf("seed %d: snapshots differ:\n%s\n%s\n%s", seed, sa, sb, sc)
		}
		end := entries[len(entries)-1].Time.Add(10 * time.Second)
		if da, dc := fmt.Sprint(a.Due(end)), fmt.Sprint(c.Due(end)); da != dc {
			t.Fatalf("seed %d: deadlines after restore %s, want %s", seed, dc, da)
		}
	}
}

// TestElectionInvariants checks, over random logs, what the service
// promises: every leadership's token is the revision it began at, so
// tokens strictly increase; an election has at most one leader at a time
// (every elected event follows the end of the previous leadership); and
// nobody waits in line of an election nobody leads.
func TestElectionInvariants(t *testing.T) {
	for seed := range uint64(20) {
		m := lease.New()
		leader := map[string]*lease.Leadership{}
		lastToken := int64(0)
		elections := 0
		for _, e := range randomLog(seed+100, 800) {
			_, evs := m.Apply(e)
			for _, ev := range evs {
				var l lease.Leadership
				if err := json.Unmarshal(ev.Data, &l); err != nil {
					t.Fatal(err)
				}
				switch ev.Type {
				case lease.EventElected:
					if cur := leader[ev.Key]; cur != nil {
						t.Fatalf("seed %d rev %d: %s elected while %s (token %d) leads", seed, e.Revision, l.Leader, cur.Leader, cur.Token)
					}
					if l.Token != e.Revision || l.Token <= lastToken {
						t.Fatalf("seed %d rev %d: token %d, previous %d", seed, e.Revision, l.Token, lastToken)
					}
					lastToken = l.Token
					leader[ev.Key] = &l
					elections++
				case lease.EventResigned, lease.EventExpired:
					if cur := leader[ev.Key]; cur == nil || cur.Token != l.Token {
						t.Fatalf("seed %d rev %d: %s of token %d, but %v leads", seed, e.Revision, ev.Type, l.Token, cur)
					}
					leader[ev.Key] = nil
				}
			}
			for _, name := range []string{"a", "b", "c"} {
				got := m.Get(name)
				if (got == nil) != (leader[name] == nil) || got != nil && got.Token != leader[name].Token {
					t.Fatalf("seed %d rev %d: Get(%s) = %v, events say %v", seed, e.Revision, name, got, leader[name])
				}
				if got == nil {
					continue
				}
				// The election the entry names was settled at its log
				// time: a lapsed lease cannot have survived it.
				var c lease.Command
				_ = json.Unmarshal(e.Cmd, &c)
				if c.Name == name && !got.ExpiresAt.After(e.Time) {
					t.Fatalf("seed %d rev %d: %s leads with a lease that lapsed at %s, log time %s", seed, e.Revision, got.Leader, got.ExpiresAt, e.Time)
				}
			}
		}
		if elections < 20 {
			t.Fatalf("seed %d: only %d leaderships began; the log does not exercise handover", seed, elections)
		}
	}
}

func TestListPages(t *testing.T) {
	p := &player{m: lease.New()}
	for _, name := range []string{"b", "a", "d", "c"} {
		p.apply(step{cmd: lease.Command{Op: "campaign", Name: name, Candidate: "x", TTL: time.Second}})
	}
	p.apply(step{cmd: lease.Command{Op: "resign", Name: "c", Candidate: "x", Token: 4}})
	got, more := p.m.List("", 2)
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" || !more {
		t.Fatalf("List(\"\", 2) = %v, %v", got, more)
	}
	got, more = p.m.List("b", 2)
	if len(got) != 1 || got[0].Name != "d" || more {
		t.Fatalf("List(b, 2) = %v, %v; want d alone (c has no leader)", got, more)
	}
}

func TestQueueIsBounded(t *testing.T) {
	p := &player{m: lease.New()}
	p.apply(step{cmd: lease.Command{Op: "campaign", Name: "q", Candidate: "leader", TTL: time.Hour}})
	for i := range lease.MaxQueue {
		p.apply(step{cmd: lease.Command{Op: "campaign", Name: "q", Candidate: fmt.Sprint(i), TTL: time.Second, Hold: time.Hour}})
	}
	raw, _ := p.apply(step{cmd: lease.Command{Op: "campaign", Name: "q", Candidate: "one-more", TTL: time.Second, Hold: time.Hour}})
	var res lease.Result
	_ = json.Unmarshal(raw, &res)
	if res.Status != lease.QueueFull || res.Leader == nil || res.Leader.Queue != lease.MaxQueue {
		t.Fatalf("campaign into a full line = %s", raw)
	}
}

package catalog

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// machine applies commands to a store with a log clock the test moves.
type machine struct {
	t     *testing.T
	s     *Machine
	rev   int64
	now   time.Time
	log   []qlog.Entry
	evs   []qlog.Event
	guard *Guard
}

func newMachine(t *testing.T) *machine {
	return &machine{t: t, s: New(), now: t0, guard: &Guard{MinInstances: 3, Share: 0.5}}
}

func (m *machine) apply(c Command) Result {
	m.t.Helper()
	m.rev++
	b, err := json.Marshal(c)
	if err != nil {
		m.t.Fatal(err)
	}
	e := qlog.Entry{Revision: m.rev, Time: m.now, Cmd: b}
	m.log = append(m.log, e)
	out, evs := m.s.Apply(e)
	m.evs = append(m.evs, evs...)
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		m.t.Fatal(err)
	}
	return r
}

func (m *machine) advance(d time.Duration) { m.now = m.now.Add(d) }

// expireDue proposes what DueExpiries asks for, as RunExpiry would.
func (m *machine) expireDue() {
	m.t.Helper()
	for _, b := range m.s.DueExpiries(m.now, m.guard) {
		var c Command
		if err := json.Unmarshal(b, &c); err != nil {
			m.t.Fatal(err)
		}
		m.apply(c)
	}
}

func (m *machine) register(svc, id string, check *Check) Result {
	m.t.Helper()
	return m.apply(Command{Op: "register", Service: svc, ID: id,
		Register: &Registration{Address: "10.0.0.1", Port: 80, Check: check}})
}

func (m *machine) status(svc, id string) Status {
	m.t.Helper()
	inst := m.s.Instance(svc, id)
	if inst == nil {
		return ""
	}
	return inst.Status
}

func ttl(d time.Duration) *Check { return &Check{TTL: Duration(d)} }

func TestTTLExpiry(t *testing.T) {
	m := newMachine(t)
	m.register("web", "a", &Check{TTL: Duration(10 * time.Second), DeregisterAfter: Duration(time.Minute)})
	if got := m.status("web", "a"); got != Passing {
		t.Fatalf("status after register = %q, want passing", got)
	}
	m.advance(9 * time.Second)
	m.expireDue()
	if got := m.status("web", "a"); got != Passing {
		t.Fatalf("status before the TTL = %q, want passing", got)
	}
	// An expiry computed before a heartbeat, applied after it, is a no-op.
	m.advance(2 * time.Second)
	stale := m.s.DueExpiries(m.now, m.guard)
	if len(stale) != 1 {
		t.Fatalf("DueExpiries = %d commands, want 1", len(stale))
	}
	if r := m.apply(Command{Op: "heartbeat", Service: "web", ID: "a"}); r.Outcome != OK {
		t.Fatalf("heartbeat = %+v", r)
	}
	var c Command
	_ = json.Unmarshal(stale[0], &c)
	if r := m.apply(c); r.Applied != 0 {
		t.Fatalf("expiry raced by a heartbeat applied %d items, want 0", r.Applied)
	}
	if got := m.status("web", "a"); got != Passing {
		t.Fatalf("status after the raced expiry = %q, want passing", got)
	}
	// A heartbeat a little late, within the grace, still counts.
	m.advance(10*time.Second + Grace(10*time.Second) - time.Millisecond)
	m.expireDue()
	if got := m.status("web", "a"); got != Passing {
		t.Fatalf("status within the grace after the TTL = %q, want passing", got)
	}
	m.apply(Command{Op: "heartbeat", Service: "web", ID: "a"})
	m.advance(10*time.Second + Grace(10*time.Second))
	m.expireDue()
	if got := m.status("web", "a"); got != Critical {
		t.Fatalf("status after a missed TTL = %q, want critical", got)
	}
	m.advance(59 * time.Second)
	m.expireDue()
	if got := m.status("web", "a"); got != Critical {
		t.Fatalf("status before deregisterAfter = %q, want critical", got)
	}
	m.advance(time.Second)
	m.expireDue()
	if got := m.status("web", "a"); got != "" {
		t.Fatalf("status after deregisterAfter = %q, want deregistered", got)
	}
}

func TestHeartbeatRecoversAndReports(t *testing.T) {
	m := newMachine(t)
	m.register("web", "a", ttl(5*time.Second))
	m.advance(6 * time.Second)
	m.expireDue()
	if got := m.status("web", "a"); got != Critical {
		t.Fatalf("status = %q, want critical", got)
	}
	if r := m.apply(Command{Op: "heartbeat", Service: "web", ID: "a", Report: &Report{Status: Warning, Output: "disk 91%"}}); r.Instance.Status != Warning || r.Instance.Output != "disk 91%" {
		t.Fatalf("heartbeat with warning = %+v", r.Instance)
	}
	if r := m.apply(Command{Op: "heartbeat", Service: "web", ID: "nope"}); r.Outcome != NotFound {
		t.Fatalf("heartbeat of an unknown instance = %q, want notFound", r.Outcome)
	}
	m.register("web", "b", nil)
	if r := m.apply(Command{Op: "heartbeat", Service: "web", ID: "b"}); r.Outcome != Conflict {
		t.Fatalf("heartbeat of an instance without a TTL check = %q, want conflict", r.Outcome)
	}
}

func TestReregisterKeepsHealth(t *testing.T) {
	m := newMachine(t)
	chk := &Check{HTTP: "http://10.0.0.1/health", Interval: Duration(time.Second), Timeout: Duration(time.Second)}
	first := m.register("web", "a", chk).Instance
	if first.Status != Critical {
		t.Fatalf("an active check starts %q, want critical until probed", first.Status)
	}
	m.apply(Command{Op: "report", Items: []Item{{Service: "web", ID: "a", Since: first.CheckRevision, Report: &Report{Status: Passing}}}, Guard: m.guard})
	again := m.apply(Command{Op: "register", Service: "web", ID: "a",
		Register: &Registration{Address: "10.0.0.2", Port: 81, Check: chk, Tags: []string{"v2"}}}).Instance
	if again.Status != Passing || again.CreateRevision != first.CreateRevision || again.Address != "10.0.0.2" {
		t.Fatalf("re-register with the same check = %+v, want passing, same createRevision, new address", again)
	}
	// A report about the check before it was redefined is ignored.
	chk2 := *chk
	chk2.Interval = Duration(2 * time.Second)
	redefined := m.register("web", "a", &chk2).Instance
	if redefined.Status != Critical {
		t.Fatalf("re-register with a new check = %q, want critical until probed", redefined.Status)
	}
	if r := m.apply(Command{Op: "report", Items: []Item{{Service: "web", ID: "a", Since: first.CheckRevision, Report: &Report{Status: Passing}}}}); r.Applied != 0 {
		t.Fatalf("a report about the old check applied %d, want 0", r.Applied)
	}
}

func TestGuard(t *testing.T) {
	tests := []struct {
		name      string
		instances int
		fail      []string // expire together
		protected bool
		critical  int
	}{
		{"one of four fails", 4, []string{"i0"}, false, 1},
		{"half of four fail", 4, []string{"i0", "i1"}, false, 2},
		{"three of four fail", 4, []string{"i0", "i1", "i2"}, true, 0},
		{"both of two fail: too small to guard", 2, []string{"i0", "i1"}, false, 2},
		{"all of three fail", 3, []string{"i0", "i1", "i2"}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t)
			for i := range tt.instances {
				m.register("web", "i"+string(rune('0'+i)), ttl(5*time.Second))
			}
			m.advance(3 * time.Second)
			for i := range tt.instances {
				id := "i" + string(rune('0'+i))
				if !contains(tt.fail, id) {
					m.apply(Command{Op: "heartbeat", Service: "web", ID: id})
				}
			}
			m.advance(3 * time.Second)
			m.expireDue()
			svc := m.s.Services()[0]
			critical := svc.Instances - svc.Passing
			if svc.Protected != tt.protected || critical != tt.critical {
				t.Fatalf("protected, critical = %v, %d; want %v, %d", svc.Protected, critical, tt.protected, tt.critical)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestGuardUndoesRecentFlips: failures that arrive one by one within a
// window are judged together, and the ones already applied are undone.
func TestGuardUndoesRecentFlips(t *testing.T) {
	m := newMachine(t)
	chk := &Check{TCP: "10.0.0.1:80", Interval: Duration(5 * time.Second), Timeout: Duration(time.Second)}
	revs := map[string]int64{}
	for _, id := range []string{"a", "b", "c", "d"} {
		revs[id] = m.register("web", id, chk).Instance.CheckRevision
		m.apply(Command{Op: "report", Guard: m.guard, Items: []Item{{Service: "web", ID: id, Since: revs[id], Report: &Report{Status: Passing}}}})
	}
	fail := func(id string) {
		m.apply(Command{Op: "report", Guard: m.guard, Items: []Item{{Service: "web", ID: id, Since: revs[id], Report: &Report{Status: Critical, Output: "refused"}}}})
	}
	fail("a")
	m.advance(time.Second)
	fail("b")
	if m.status("web", "a") != Critical || m.status("web", "b") != Critical {
		t.Fatal("two of four failing must be applied")
	}
	m.advance(time.Second)
	fail("c")
	for _, id := range []string{"a", "b", "c"} {
		inst := m.s.Instance("web", id)
		if inst.Status != Passing || inst.Held == nil || inst.Held.Status != Critical {
			t.Fatalf("instance %s = %s held %+v, want passing with critical held", id, inst.Status, inst.Held)
		}
	}
	if !m.s.Services()[0].Protected {
		t.Fatal("service not protected after three of four failed within a window")
	}
	// Two recover: one of four held is within the share, so the guard
	// lifts and the remaining failure is applied.
	m.apply(Command{Op: "report", Guard: m.guard, Items: []Item{
		{Service: "web", ID: "a", Since: revs["a"], Report: &Report{Status: Passing}},
		{Service: "web", ID: "b", Since: revs["b"], Report: &Report{Status: Passing}},
	}})
	if m.s.Services()[0].Protected {
		t.Fatal("protection did not lift when the share fell back")
	}
	if got := m.status("web", "c"); got != Critical {
		t.Fatalf("the remaining failure = %q, want critical once the guard lifts", got)
	}
}

func TestGuardSpreadFailuresPass(t *testing.T) {
	m := newMachine(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		m.register("web", id, ttl(5*time.Second))
	}
	// a, b, c stop heartbeating ten seconds apart: separate failures.
	for _, id := range []string{"a", "b", "c"} {
		for _, other := range []string{"a", "b", "c", "d"} {
			if other != id && m.status("web", other) != Critical {
				m.apply(Command{Op: "heartbeat", Service: "web", ID: other})
			}
		}
		m.advance(6 * time.Second)
		m.expireDue()
		m.advance(4 * time.Second)
		for _, other := range []string{"a", "b", "c", "d"} {
			if m.status("web", other) != Critical {
				m.apply(Command{Op: "heartbeat", Service: "web", ID: other})
			}
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		if got := m.status("web", id); got != Critical {
			t.Fatalf("%s = %q, want critical: failures a window apart are not a mass failure", id, got)
		}
	}
	if m.s.Services()[0].Protected {
		t.Fatal("protected after failures spread over three windows")
	}
}

func TestClearProtection(t *testing.T) {
	m := newMachine(t)
	for _, id := range []string{"a", "b", "c"} {
		m.register("web", id, ttl(5*time.Second))
	}
	m.advance(6 * time.Second)
	m.expireDue()
	if !m.s.Services()[0].Protected {
		t.Fatal("not protected")
	}
	m.apply(Command{Op: "clear", Service: "web"})
	if s := m.s.Services()[0]; s.Protected || s.Passing != 0 {
		t.Fatalf("after clear: %+v, want unprotected with every held result applied", s)
	}
}

func TestLeaseBoundInstances(t *testing.T) {
	m := newMachine(t)
	l := m.apply(Command{Op: "grant", TTL: Duration(10 * time.Second)}).Lease
	if r := m.apply(Command{Op: "register", Service: "web", ID: "a", Lease: l.ID, Register: &Registration{Address: "10.0.0.1", Port: 80}}); r.Outcome != OK {
		t.Fatalf("register with lease = %+v", r)
	}
	if r := m.apply(Command{Op: "register", Service: "web", ID: "b", Lease: 999, Register: &Registration{Address: "10.0.0.1", Port: 80}}); r.Outcome != LeaseNotFound {
		t.Fatalf("register with an unknown lease = %q, want leaseNotFound", r.Outcome)
	}
	m.advance(8 * time.Second)
	m.apply(Command{Op: "keepalive", Lease: l.ID})
	m.advance(8 * time.Second)
	m.expireDue()
	if m.status("web", "a") != Passing {
		t.Fatal("instance gone although its lease was kept alive")
	}
	m.advance(3 * time.Second)
	m.expireDue()
	if m.status("web", "a") != "" || m.s.Lease(l.ID) != nil {
		t.Fatal("lease expiry did not deregister its instance")
	}
	if len(m.s.Services()) != 0 {
		t.Fatalf("services = %+v, want none", m.s.Services())
	}
}

// TestDeterminism replays a log with every kind of command twice, through
// a snapshot in the middle once, and compares the snapshots byte for byte.
func TestDeterminism(t *testing.T) {
	m := newMachine(t)
	l := m.apply(Command{Op: "grant", TTL: Duration(20 * time.Second)}).Lease
	for i := range 12 {
		id := "i" + string(rune('a'+i))
		chk := ttl(5 * time.Second)
		if i%3 == 0 {
			chk.DeregisterAfter = Duration(10 * time.Second)
		}
		m.apply(Command{Op: "register", Service: []string{"web", "api"}[i%2], ID: id, Lease: int64(i%2) * l.ID,
			Register: &Registration{Address: "10.0.0.1", Port: 80 + i, Tags: []string{"t"}, Metadata: map[string]string{"k": id, "a": "b"}, Check: chk}})
	}
	for range 6 {
		m.advance(3 * time.Second)
		m.apply(Command{Op: "heartbeat", Service: "web", ID: "ia"})
		m.expireDue()
	}
	m.apply(Command{Op: "clear", Service: "api"})
	m.apply(Command{Op: "revoke", Lease: l.ID})

	snap := func(s *Machine) []byte {
		var b bytes.Buffer
		if err := s.Snapshot(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	replay := func(entries []qlog.Entry) *Machine {
		s := New()
		for _, e := range entries {
			s.Apply(e)
		}
		return s
	}
	want := snap(m.s)
	if got := snap(replay(m.log)); !bytes.Equal(got, want) {
		t.Fatalf("replay differs:\n%s\nwant\n%s", got, want)
	}
	half := len(m.log) / 2
	first := replay(m.log[:half])
	restored := New()
	if err := restored.Restore(bytes.NewReader(snap(first))); err != nil {
		t.Fatal(err)
	}
	for _, e := range m.log[half:] {
		restored.Apply(e)
	}
	if got := snap(restored); !bytes.Equal(got, want) {
		t.Fatalf("restore then replay differs:\n%s\nwant\n%s", got, want)
	}
}

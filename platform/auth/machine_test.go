package auth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// applyAt applies c as the next entry of m at log time at.
func applyAt(t *testing.T, m *auth.Machine, c auth.Command, at time.Time) (auth.Result, []qlog.Event) {
	t.Helper()
	cmd, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	rev := int64(len(m.Audit(auth.MaxAudit))) + 1 // good enough for tests: revisions only label audit entries
	out, evs := m.Apply(qlog.Entry{Revision: rev, Time: at, Proposer: "r1", Cmd: cmd})
	var res auth.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("result %s does not decode: %v", out, err)
	}
	return res, evs
}

func mustApply(t *testing.T, m *auth.Machine, c auth.Command) auth.Result {
	t.Helper()
	res, _ := applyAt(t, m, c, epoch)
	if res.Status != auth.Applied {
		t.Fatalf("Apply(%+v) = %+v, want applied", c, res)
	}
	return res
}

func snapshotOf(t *testing.T, m *auth.Machine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func role(name string, rules ...auth.Rule) *auth.Role { return &auth.Role{Name: name, Rules: rules} }

func token(id, secret string, roles ...string) auth.Command {
	return auth.Command{Op: auth.OpCreateToken, ID: id, Roles: roles, Hash: auth.HashSecret(secret)}
}

// TestCommands runs one history; every step names the outcome it expects,
// a status or the fault kind of a refusal.
func TestCommands(t *testing.T) {
	reader := role("app-reader", rule(auth.KV, "/app/", auth.Read))
	admin := role("admin", rule(auth.AuthAdmin, "", auth.Write))
	steps := []struct {
		name string
		cmd  auth.Command
		raw  string // instead of cmd
		want string // a Status, or a fault kind's slug
	}{
		{"put role", auth.Command{Op: auth.OpPutRole, Role: reader}, "", "applied"},
		{"put role again replaces", auth.Command{Op: auth.OpPutRole, Role: reader}, "", "applied"},
		{"put admin", auth.Command{Op: auth.OpPutRole, Role: admin}, "", "applied"},
		{"put invalid role", auth.Command{Op: auth.OpPutRole, Role: role("x", rule("disk", "", auth.Read))}, "", "invalid"},
		{"put root", auth.Command{Op: auth.OpPutRole, Role: role("root", rule(auth.KV, "", auth.Read))}, "", "invalid"},
		{"put no role", auth.Command{Op: auth.OpPutRole}, "", "invalid"},
		{"token with unknown role", token("tok_1", "s1", "nope"), "", "not-found"},
		{"token without roles", token("tok_1", "s1"), "", "invalid"},
		{"token with bad id", token("1", "s1", "app-reader"), "", "invalid"},
		{"token with bad hash", auth.Command{Op: auth.OpCreateToken, ID: "tok_1", Roles: []string{"root"}, Hash: "x"}, "", "invalid"},
		{"token", token("tok_1", "s1", "app-reader"), "", "applied"},
		{"admin token", token("tok_2", "s2", "admin"), "", "applied"},
		{"duplicate id", token("tok_1", "s3", "app-reader"), "", "conflict"},
		{"duplicate secret", token("tok_3", "s1", "app-reader"), "", "conflict"},
		{"delete role in use", auth.Command{Op: auth.OpDeleteRole, Name: "app-reader"}, "", "conflict"},
		{"delete root", auth.Command{Op: auth.OpDeleteRole, Name: "root"}, "", "invalid"},
		{"delete unknown role", auth.Command{Op: auth.OpDeleteRole, Name: "nope"}, "", "not-found"},
		{"change by a token without auth write", auth.Command{Op: auth.OpRevokeToken, By: "tok_1", ID: "tok_2"}, "", "forbidden"},
		{"change by an unknown token", auth.Command{Op: auth.OpRevokeToken, By: "tok_9", ID: "tok_2"}, "", "unauthorized"},
		{"revoke by admin", auth.Command{Op: auth.OpRevokeToken, By: "tok_2", ID: "tok_1"}, "", "applied"},
		{"revoke again", auth.Command{Op: auth.OpRevokeToken, By: "tok_2", ID: "tok_1"}, "", "not-found"},
		{"delete role no longer in use", auth.Command{Op: auth.OpDeleteRole, By: "tok_2", Name: "app-reader"}, "", "applied"},
		{"unknown op", auth.Command{Op: "grant"}, "", "invalid"},
		{"undecodable", auth.Command{}, `{"op":`, "invalid"},
		{"bootstrap after tokens were issued", auth.Bootstrap(auth.NewSecret()), "", "skipped"},
	}
	m := auth.New()
	for i, s := range steps {
		cmd, _ := json.Marshal(s.cmd)
		if s.raw != "" {
			cmd = []byte(s.raw)
		}
		out, evs := m.Apply(qlog.Entry{Revision: int64(i + 1), Time: epoch, Cmd: cmd})
		var res auth.Result
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("%s: result %s does not decode", s.name, out)
		}
		got := string(res.Status)
		if res.Status == auth.Refused {
			got = res.Fault
		}
		if got != s.want {
			t.Errorf("%s: Apply = %s (%s), want %s", s.name, got, res.Detail, s.want)
		}
		if (res.Status == auth.Applied) != (len(evs) == 1) {
			t.Errorf("%s: events %v for a result %s", s.name, evs, res.Status)
		}
		if strings.Contains(string(out), auth.HashSecret("s1")) || strings.Contains(fmt.Sprint(evs), auth.HashSecret("s1")) {
			t.Errorf("%s: a result or event shows a token's hash: %s %v", s.name, out, evs)
		}
	}
	audit := m.Audit(100)
	if len(audit) != 7 || audit[0].Op != auth.OpDeleteRole || audit[0].By != "tok_2" || audit[0].Revision != 22 || !audit[0].Time.Equal(epoch) {
		t.Errorf("Audit = %+v, want 7 changes, the last a deleteRole by tok_2 at revision 22", audit)
	}
	if audit[len(audit)-1].By != auth.System {
		t.Errorf("Audit's first change by %q, want %q", audit[len(audit)-1].By, auth.System)
	}
}

func TestBootstrap(t *testing.T) {
	m := auth.New()
	secret := auth.NewSecret()
	boot := auth.Bootstrap(secret)
	if res, _ := applyAt(t, m, boot, epoch); res.Status != auth.Applied || res.Token.Roles[0] != auth.RootRole || !res.Token.ExpiresAt.IsZero() {
		t.Fatalf("bootstrap = %+v, want a root token that never expires", res)
	}
	// Every replica proposes it on every start: only the first counts.
	for _, c := range []auth.Command{boot, auth.Bootstrap(secret), auth.Bootstrap(auth.NewSecret())} {
		if res, _ := applyAt(t, m, c, epoch); res.Status != auth.Skipped || res.Fault != "" {
			t.Errorf("bootstrap again = %+v, want skipped without a fault", res)
		}
	}
	p, err := m.Authenticate(secret, epoch.Add(10*366*24*time.Hour))
	if err != nil || !p.Allowed(auth.AuthAdmin, "", auth.Write) {
		t.Fatalf("Authenticate(bootstrap secret) = %+v, %v, want root", p, err)
	}
	// Revoking every token does not let a restart bring a root token back.
	mustApply(t, m, auth.Command{Op: auth.OpRevokeToken, ID: p.ID})
	if res, _ := applyAt(t, m, auth.Bootstrap(secret), epoch); res.Status != auth.Skipped {
		t.Errorf("bootstrap after revoking every token = %+v, want skipped", res)
	}
	if len(m.Tokens()) != 0 {
		t.Errorf("Tokens = %v, want none", m.Tokens())
	}
}

func TestAuthenticate(t *testing.T) {
	m := auth.New()
	mustApply(t, m, auth.Command{Op: auth.OpPutRole, Role: role("r", rule(auth.KV, "/app/", auth.Read))})
	req := auth.TokenRequest{Description: "ci", Roles: []string{"r"}, TTL: "24h"}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	cmd, secret := auth.CreateToken("", req)
	if strings.Contains(fmt.Sprint(cmd), secret) {
		t.Fatalf("command %+v carries the secret", cmd)
	}
	created := mustApply(t, m, cmd).Token
	expires := epoch.Add(24 * time.Hour)
	if !created.ExpiresAt.Equal(expires) || !created.CreatedAt.Equal(epoch) {
		t.Fatalf("token %+v: want created at log time %s, expiring 24h later", created, epoch)
	}
	revoked, revokedSecret := auth.CreateToken("", req)
	mustApply(t, m, revoked)
	mustApply(t, m, auth.Command{Op: auth.OpRevokeToken, ID: revoked.ID})

	tests := []struct {
		name   string
		secret string
		now    time.Time
		ok     bool
	}{
		{"valid", secret, epoch, true},
		{"an instant before expiry", secret, expires.Add(-time.Nanosecond), true},
		{"at ExpiresAt", secret, expires, false},
		{"after expiry", secret, expires.Add(time.Hour), false},
		{"unknown", auth.NewSecret(), epoch, false},
		{"empty", "", epoch, false},
		{"hash given as the secret", auth.HashSecret(secret), epoch, false},
		{"revoked", revokedSecret, epoch, false},
	}
	for _, tt := range tests {
		p, err := m.Authenticate(tt.secret, tt.now)
		if tt.ok {
			if err != nil || p.ID != cmd.ID || p.Description != "ci" || !p.Allowed(auth.KV, "/app/x", auth.Read) {
				t.Errorf("%s: Authenticate = %+v, %v; want %s", tt.name, p, err, cmd.ID)
			}
			continue
		}
		if fault.KindOf(err) != fault.Unauthorized || p.ID != "" {
			t.Errorf("%s: Authenticate = %+v, %v; want an unauthorized fault", tt.name, p, err)
		}
	}
	// A role's change reaches tokens that hold it at once.
	mustApply(t, m, auth.Command{Op: auth.OpPutRole, Role: role("r", rule(auth.KV, "/other/", auth.Write))})
	if p, _ := m.Authenticate(secret, epoch); p.Allowed(auth.KV, "/app/x", auth.Read) || !p.Allowed(auth.KV, "/other/x", auth.Write) {
		t.Errorf("rules after the role changed = %v", p.Rules)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	m := auth.New()
	for _, e := range randomLog(1, 300) {
		m.Apply(e)
	}
	cmd, secret := auth.CreateToken("", auth.TokenRequest{Roles: []string{"root"}, TTL: "1h"})
	mustApply(t, m, cmd)
	snap := snapshotOf(t, m)
	if bytes.Contains(snap, []byte(secret)) || !bytes.Contains(snap, []byte(cmd.Hash)) {
		t.Fatalf("snapshot must hold hashes and no secrets: %s", snap)
	}
	restored := auth.New()
	if err := restored.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if again := snapshotOf(t, restored); !bytes.Equal(snap, again) {
		t.Fatalf("snapshot after restore differs:\n%s\n%s", snap, again)
	}
	if p, err := restored.Authenticate(secret, epoch); err != nil || p.ID != cmd.ID {
		t.Errorf("Authenticate after restore = %+v, %v", p, err)
	}
	if err := restored.Restore(strings.NewReader("{")); err == nil {
		t.Error("Restore of a truncated snapshot succeeded")
	}
}

// TestReplayIsDeterministic applies one log to two machines, the second
// seeing log times in another time zone, and to a third restored from a
// snapshot halfway, and requires the same results and events for every
// entry and byte-identical snapshots.
func TestReplayIsDeterministic(t *testing.T) {
	entries := randomLog(7, 2000)
	a, b, c := auth.New(), auth.New(), auth.New()
	zone := time.FixedZone("elsewhere", 5*3600+1800)
	for i, e := range entries {
		if i == len(entries)/2 {
			if err := c.Restore(bytes.NewReader(snapshotOf(t, a))); err != nil {
				t.Fatal(err)
			}
		}
		ra, ea := a.Apply(e)
		e.Time = e.Time.In(zone)
		rb, eb := b.Apply(e)
		if !bytes.Equal(ra, rb) || fmt.Sprint(ea) != fmt.Sprint(eb) {
			t.Fatalf("entry %d: results differ: %s %v / %s %v", e.Revision, ra, ea, rb, eb)
		}
		if i >= len(entries)/2 {
			if rc, ec := c.Apply(e); !bytes.Equal(ra, rc) || fmt.Sprint(ea) != fmt.Sprint(ec) {
				t.Fatalf("entry %d: restored machine answered %s, want %s", e.Revision, rc, ra)
			}
		}
	}
	sa, sb, sc := snapshotOf(t, a), snapshotOf(t, b), snapshotOf(t, c)
	if !bytes.Equal(sa, sb) || !bytes.Equal(sa, sc) {
		t.Fatalf("snapshots differ:\n%s\n%s\n%s", sa, sb, sc)
	}
	if len(a.Tokens()) == 0 || len(a.Roles()) < 2 {
		t.Fatalf("the random log made %d tokens and %d roles: it tests too little", len(a.Tokens()), len(a.Roles()))
	}
}

func TestAuditBounded(t *testing.T) {
	m := auth.New()
	const n = auth.MaxAudit + 10
	for i := 1; i <= n; i++ {
		cmd, _ := json.Marshal(auth.Command{Op: auth.OpPutRole, Role: role(fmt.Sprint("r", i%3), rule(auth.KV, "", auth.Read))})
		m.Apply(qlog.Entry{Revision: int64(i), Time: epoch.Add(time.Duration(i) * time.Second), Cmd: cmd})
	}
	all := m.Audit(n)
	if len(all) != auth.MaxAudit || all[0].Revision != n || all[len(all)-1].Revision != n-auth.MaxAudit+1 {
		t.Fatalf("Audit(%d) holds %d, revisions %d to %d; want the newest %d, newest first", n, len(all), all[0].Revision, all[len(all)-1].Revision, auth.MaxAudit)
	}
	if got := m.Audit(3); len(got) != 3 || got[2].Revision != n-2 || !got[0].Time.Equal(epoch.Add(n*time.Second)) {
		t.Errorf("Audit(3) = %+v", got)
	}
	if got := m.Audit(-1); len(got) != 0 {
		t.Errorf("Audit(-1) = %v, want none", got)
	}
}

// randomLog makes n entries of every command kind over a few roles and
// tokens, some refused, at log times that advance irregularly.
func randomLog(seed uint64, n int) []qlog.Entry {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	roleNames := []string{"a", "b", "c", "root"}
	resources := auth.Resources()
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	var entries []qlog.Entry
	at := epoch
	for rev := int64(1); rev <= int64(n); rev++ {
		at = at.Add(time.Duration(rng.IntN(3600)) * time.Second)
		id := fmt.Sprintf("tok_%d", rng.IntN(20))
		var c auth.Command
		switch rng.IntN(6) {
		case 0, 1:
			res := resources[rng.IntN(len(resources))]
			prefix := ""
			if res == auth.KV || res == auth.Services {
				prefix = pick([]string{"", "/app/", "/app", "x"})
			}
			c = auth.Command{Op: auth.OpPutRole, Role: role(pick(roleNames), rule(res, prefix, auth.Access(pick([]string{"read", "write"}))))}
		case 2:
			c = auth.Command{Op: auth.OpDeleteRole, Name: pick(roleNames)}
		case 3:
			c = token(id, fmt.Sprint("secret", rng.IntN(30)), pick(roleNames))
			c.TTL = time.Duration(rng.IntN(3)) * time.Hour
			c.Description = pick([]string{"", "ci", "ops"})
		case 4:
			c = auth.Command{Op: auth.OpRevokeToken, ID: id}
		case 5:
			c = auth.Bootstrap(fmt.Sprint("secret", rng.IntN(30)))
			c.ID = id
		}
		if rng.IntN(5) == 0 {
			c.By = fmt.Sprintf("tok_%d", rng.IntN(20))
		}
		cmd, _ := json.Marshal(c)
		entries = append(entries, qlog.Entry{Revision: rev, Time: at, Proposer: "r", Cmd: cmd})
	}
	return entries
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/stewardhq/steward/platform/devtest"
)

// root is the secret of the dev's root token.
const root = "stewardctl-test-root-token-0123456789abcdef"

// TestStewardctl runs every command group against one `steward dev` with
// auth on, through its gateway, as a user would: STEWARD_ENDPOINT and
// STEWARD_TOKEN in the environment, the real program, its exit status.
// The subtests share the dev and run in order; their keys, services,
// elections, scalers, rollouts and routes are their own.
func TestStewardctl(t *testing.T) {
	d := devtest.Start(t, steward, "STEWARD_AUTH=on", "STEWARD_AUTH_BOOTSTRAP_TOKEN="+root)
	devtest.WaitReady(t, d.Config+"/readyz", d.Registry+"/readyz", d.Election+"/readyz", d.Scaler+"/readyz", d.Gateway+"/readyz")
	c := &ctl{t: t, env: []string{"STEWARD_ENDPOINT=" + d.Gateway, "STEWARD_TOKEN=" + root}}
	// The gateway routes each service once it follows it in the registry.
	for _, args := range [][]string{{"kv", "ls", "/none/"}, {"scaler", "ls"}, {"election", "ls"}, {"svc", "ls"}} {
		waitOK(t, c, args...)
	}

	for _, tc := range []struct {
		name string
		test func(*testing.T, *ctl)
	}{
		{"usage", testUsage},
		{"kv", testKV},
		{"kv watch", testKVWatch},
		{"kv txn", testKVTxn},
		{"lease", testLease},
		{"svc", testSvc},
		{"election", testElection},
		{"scaler", testScaler},
		{"rollout", func(t *testing.T, c *ctl) { testRollout(t, c, d.Cmd.Process.Pid) }},
		{"routes", testRoutes},
		{"auth", testAuth},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, &ctl{t: t, env: c.env}) })
	}
}

// waitOK runs stewardctl args until it exits 0, for up to 10s.
func waitOK(t *testing.T, c *ctl, args ...string) {
	t.Helper()
	for range 100 {
		if c.run(args...).code == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.ok(args...) // fails, saying why
}

// decode parses out as JSON (-o json) into a new T.
func decode[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	return v
}

// decodeYAML parses out as YAML (-o yaml) into a new T.
func decodeYAML[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := yaml.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	return v
}

// file writes content to a file of the test's and returns its path.
func file(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type entry struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	ModRevision int64           `json:"modRevision"`
	Version     int64           `json:"version"`
	Lease       int64           `json:"lease"`
}

func testUsage(t *testing.T, c *ctl) {
	c.fails(2, "unknown flag: --bogus", "kv", "get", "/x", "--bogus")
	c.fails(2, `unknown command "frobnicate"`, "frobnicate")
	c.fails(2, `unknown command "frobnicate" for "stewardctl kv"`, "kv", "frobnicate")
	c.fails(2, "accepts 1 arg(s), received 0", "kv", "get")
	c.fails(2, `-o "xml": want table, json or yaml`, "kv", "get", "/x", "-o", "xml")
	c.fails(2, "is not JSON", "kv", "put", "/x", "not-json")
	c.fails(2, "invalid argument", "kv", "put", "/x", "1", "--if-revision", "many")
	c.fails(2, "is not an http:// or https:// URL", "--endpoint", "ftp://host", "kv", "get", "/x")
	c.fails(2, "give a KEY or --prefix", "kv", "watch")
	c.fails(2, "campaign needs --candidate", "election", "campaign", "e")
	// Calls fail over between the endpoints given: one that refuses
	// connections, then the gateway.
	gateway := strings.TrimPrefix(c.env[0], "STEWARD_ENDPOINT=")
	c.ok("--endpoint", "http://127.0.0.1:1,"+gateway, "kv", "ls", "/none/")
	// A bad token is Steward's 401, an error; --token beats STEWARD_TOKEN.
	c.fails(1, "unknown or revoked token", "--token", "nobody", "kv", "get", "/x")

	if out := c.ok("version"); !strings.HasPrefix(out, "stewardctl ") {
		t.Errorf("version = %q", out)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if out := c.ok("completion", shell); !strings.Contains(out, "stewardctl") {
			t.Errorf("completion %s = %.80q..., want a script for stewardctl", shell, out)
		}
	}
	// Cobra's completion of a command's words, as a shell asks for it.
	if out := c.ok("__complete", "sc"); !strings.Contains(out, "scaler") {
		t.Errorf("__complete sc = %q, want scaler", out)
	}
	help := c.ok("--help")
	if !strings.Contains(help, "3 not found, 4 precondition failed") {
		t.Errorf("--help = %q, want the exit statuses", help)
	}
	if strings.Contains(help, root) {
		t.Errorf("--help prints STEWARD_TOKEN's secret: %q", help)
	}
}

func testKV(t *testing.T, c *ctl) {
	// Keys with slashes, one with an escaped slash that stays literal.
	c.ok("kv", "put", "/golden/db/url", `"postgres://db/app"`)
	c.ok("kv", "put", "golden/limits", `{"rps": 100, "burst": 200}`)
	c.ok("kv", "put", "/golden/a%2Fb", `true`)
	golden(t, "kv-get", c.ok("kv", "get", "/golden/db/url"), "REVISION")
	golden(t, "kv-ls", c.ok("kv", "ls", "/golden/"), "REVISION")
	if keys := c.ok("kv", "ls", "/golden/", "--keys-only", "--page-size", "1"); strings.Count(keys, "/golden/") != 3 || strings.Contains(keys, "postgres") {
		t.Errorf("kv ls --keys-only in pages of 1 = %q, want the 3 keys without values", keys)
	}

	got := decode[entry](t, c.ok("kv", "get", "/golden/limits", "-o", "json"))
	if got.Key != "/golden/limits" || compact(got.Value) != `{"rps":100,"burst":200}` || got.ModRevision == 0 {
		t.Fatalf("kv get -o json = %+v", got)
	}
	y := decodeYAML[entry](t, c.ok("kv", "get", "golden/limits", "-o", "yaml"))
	if y.Key != got.Key || y.ModRevision != got.ModRevision {
		t.Fatalf("kv get -o yaml = %+v, want %+v", y, got)
	}
	list := decode[[]entry](t, c.ok("kv", "ls", "/golden/", "-o", "json"))
	if len(list) != 3 || list[0].Key != "/golden/a%2Fb" {
		t.Fatalf("kv ls -o json = %+v, want 3 keys, /golden/a%%2Fb first", list)
	}

	// Compare-and-swap: 4 when the key moved on, 0 when it did not.
	rev := strconv.FormatInt(got.ModRevision, 10)
	c.ok("kv", "put", "/golden/limits", `{"rps": 50}`, "--if-revision", rev)
	c.fails(4, "precondition failed", "kv", "put", "/golden/limits", `{"rps": 10}`, "--if-revision", rev)
	c.fails(4, "key exists", "kv", "put", "/golden/limits", `{}`, "--if-revision", "0")
	c.fails(4, "precondition failed", "kv", "del", "/golden/limits", "--if-revision", rev)
	if v := decode[entry](t, c.ok("kv", "get", "/golden/limits", "-o", "json")); compact(v.Value) != `{"rps":50}` {
		t.Fatalf("after a CAS that lost, the value = %s, want the winner's", v.Value)
	}
	golden(t, "kv-history", c.ok("kv", "history", "golden/limits"), "REVISION") // the leading slash is optional
	if old := decode[entry](t, c.ok("kv", "get", "/golden/limits", "--revision", rev, "-o", "json")); old.ModRevision != got.ModRevision {
		t.Fatalf("kv get --revision %s = %+v", rev, old)
	}

	// The value from a file, YAML converted to JSON, and from stdin.
	c.ok("kv", "put", "/golden/from-file", "-f", file(t, "v.yaml", "replicas: 3\nzones: [a, b]\n"))
	if v := decode[entry](t, c.ok("kv", "get", "/golden/from-file", "-o", "json")); compact(v.Value) != `{"replicas":3,"zones":["a","b"]}` {
		t.Fatalf("the value put from YAML = %s", v.Value)
	}
	if r := c.runIn(`"from stdin"`, "kv", "put", "/golden/stdin", "-f", "-", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"from stdin"`) {
		t.Fatalf("kv put -f - = %+v", r)
	}

	// Not found is 3, for a read and a delete.
	c.fails(3, "not found", "kv", "get", "/golden/missing")
	c.fails(3, "not found", "kv", "del", "/golden/missing")
	c.ok("kv", "del", "/golden/stdin")
	if out := decode[map[string]int64](t, c.ok("kv", "del", "--prefix", "/golden/", "-o", "json")); out["deleted"] != 4 {
		t.Fatalf("kv del --prefix = %v, want 4 deleted", out)
	}
	if out := decode[[]entry](t, c.ok("kv", "ls", "/golden/", "-o", "json")); len(out) != 0 {
		t.Fatalf("after del --prefix, kv ls = %+v", out)
	}
}

func testKVWatch(t *testing.T, c *ctl) {
	c.ok("kv", "put", "/watched/before", `"old"`)
	w := c.start("kv", "watch", "--prefix", "/watched/")
	// The watch starts after the current revision, so a put lands in it
	// only once it began: put until one shows.
	n := 0
	w.waitFor("/watched/k\t", func() {
		n++
		c.ok("kv", "put", "/watched/k", strconv.Itoa(n))
	})
	c.ok("kv", "del", "/watched/k")
	w.waitFor("delete\t/watched/k", nil)
	w.interrupt()
	if strings.Contains(w.stdout.String(), "before") {
		t.Errorf("kv watch printed %q, the change before it began", w.stdout.String())
	}

	// One key, as JSON lines, from a revision: every change since.
	first := decode[entry](t, c.ok("kv", "get", "/watched/before", "-o", "json"))
	c.ok("kv", "put", "/watched/before", `"new"`)
	w = c.start("kv", "watch", "/watched/before", "--from-revision", strconv.FormatInt(first.ModRevision, 10), "-o", "json")
	w.waitFor(`"new"`, nil)
	w.interrupt()
	lines := strings.Split(strings.TrimSpace(w.stdout.String()), "\n")
	type event struct {
		Type  string `json:"type"`
		Entry entry  `json:"entry"`
	}
	if len(lines) != 2 || decode[event](t, lines[0]).Entry.ModRevision != first.ModRevision || decode[event](t, lines[1]).Type != "put" {
		t.Fatalf("kv watch --from-revision -o json = %q, want the two puts", lines)
	}
}

func testKVTxn(t *testing.T, c *ctl) {
	c.ok("kv", "put", "/txn/flag", `"on"`)
	txn := file(t, "txn.yaml", `
compare:
- {key: /txn/flag, target: value, op: "==", value: "on"}
success:
- put: {key: /txn/out, value: {"chosen": "success"}}
- get: {key: /txn/flag}
failure:
- get: {key: /txn/missing}
`)
	golden(t, "kv-txn-success", c.ok("kv", "txn", "-f", txn), "REVISION")
	c.ok("kv", "put", "/txn/flag", `"off"`)
	golden(t, "kv-txn-failure", c.ok("kv", "txn", "-f", txn), "REVISION")
	res := decode[struct {
		Succeeded bool  `json:"succeeded"`
		Revision  int64 `json:"revision"`
	}](t, c.ok("kv", "txn", "-f", txn, "-o", "json"))
	if res.Succeeded || res.Revision == 0 {
		t.Fatalf("kv txn -o json = %+v, want the failure branch at a revision", res)
	}
	c.fails(2, "txn needs -f FILE", "kv", "txn")
	c.fails(1, "", "kv", "txn", "-f", file(t, "bad.json", `{"compare": [{"key": "/txn/flag", "target": "colour", "op": "==", "value": 1}]}`))
}

func testLease(t *testing.T, c *ctl) {
	lease := decode[struct {
		ID  int64  `json:"id"`
		TTL string `json:"ttl"`
	}](t, c.ok("lease", "grant", "1m", "-o", "json"))
	if lease.ID == 0 || lease.TTL != "1m0s" {
		t.Fatalf("lease grant -o json = %+v", lease)
	}
	id := strconv.FormatInt(lease.ID, 10)
	c.ok("kv", "put", "/leased/session", `"s"`, "--lease", id)
	golden(t, "lease-get", c.ok("lease", "get", id), "ID", "EXPIRES")
	if ls := c.ok("lease", "ls", "/leased/"); !strings.Contains(ls, id+" ") || !strings.Contains(ls, "/leased/session") {
		t.Errorf("lease ls = %q, want lease %s with its key", ls, id)
	}
	if out := c.ok("lease", "keepalive", id, "--once"); !strings.HasPrefix(out, id+"\t1m0s\t") {
		t.Errorf("lease keepalive --once = %q", out)
	}
	keep := c.start("lease", "keepalive", id)
	keep.waitFor(id+"\t1m0s\t", nil)
	keep.interrupt()
	c.ok("lease", "revoke", id)
	c.fails(3, "not found", "kv", "get", "/leased/session")
	c.fails(3, "", "lease", "get", id)
	c.fails(2, "want a positive integer", "lease", "get", "x")
}

func testSvc(t *testing.T, c *ctl) {
	c.ok("svc", "register", "web", "web-1", "--address", "127.0.0.1", "--port", "9000", "--tag", "v1", "--tag", "blue", "--ttl", "1m")
	c.ok("svc", "register", "web", "web-2", "-f", file(t, "web-2.yaml", "address: 127.0.0.1\nport: 9001\nversion: \"1.1\"\nzone: a\n"))
	golden(t, "svc-get", c.ok("svc", "get", "web"))
	c.ok("svc", "heartbeat", "web", "web-1")
	in := decodeYAML[struct {
		ID     string   `json:"id"`
		Tags   []string `json:"tags"`
		Status string   `json:"status"`
	}](t, c.ok("svc", "get", "web", "web-1", "-o", "yaml"))
	if in.ID != "web-1" || len(in.Tags) != 2 || in.Status != "passing" {
		t.Fatalf("svc get web web-1 -o yaml = %+v", in)
	}
	ls := c.ok("svc", "ls")
	if !strings.Contains(ls, "steward-config") {
		t.Errorf("svc ls = %q, want Steward's own services", ls)
	}
	// NAME INSTANCES PASSING WARNING CRITICAL PROTECTED TAGS
	if i := strings.Index(ls, "\nweb "); i < 0 || strings.Join(strings.Fields(strings.SplitN(ls[i+1:], "\n", 2)[0]), " ") != "web 2 2 0 0 false blue,v1" {
		t.Errorf("svc ls = %q, want the row web 2 2 0 0 false blue,v1", ls)
	}

	w := c.start("svc", "watch", "web")
	w.waitFor("web-1=passing,web-2=passing", nil)
	c.ok("svc", "deregister", "web", "web-2")
	w.waitFor("\tweb-1=passing\n", nil)
	w.interrupt()

	c.fails(3, "not registered", "svc", "deregister", "web", "web-2")
	c.fails(3, "", "svc", "get", "web", "web-2")
	c.fails(2, "one check at most", "svc", "register", "web", "web-3", "--address", "127.0.0.1", "--port", "1", "--ttl", "1s", "--tcp", "127.0.0.1:1")
	c.fails(2, "not both", "svc", "register", "web", "web-3", "--port", "1", "-f", file(t, "x.json", "{}"))
	c.ok("svc", "deregister", "web", "web-1")
}

func testElection(t *testing.T, c *ctl) {
	lead := c.start("election", "campaign", "golden-election", "--candidate", "a", "--value", `{"addr":"10.0.0.7"}`, "-o", "json")
	lead.waitFor(`"fence":"golden-election:`, nil)
	held := decode[struct {
		Token int64  `json:"token"`
		Fence string `json:"fence"`
	}](t, strings.TrimSpace(lead.stdout.String()))

	obs := c.start("election", "observe", "golden-election")
	obs.waitFor("current\tgolden-election\ta\t", nil)
	golden(t, "election-get", c.ok("election", "get", "golden-election"), "TERM", "TOKEN", "EXPIRES")
	if ls := c.ok("election", "ls"); !strings.Contains(ls, "golden-election") {
		t.Errorf("election ls = %q", ls)
	}
	c.fails(1, "led by a", "election", "campaign", "golden-election", "--candidate", "b", "--no-wait")
	// The leader's fence lets it write.
	c.ok("kv", "put", "/elected/state", `"x"`, "--fence", held.Fence)

	// Ctrl-C resigns: nobody leads at once, not a TTL later.
	lead.interrupt()
	if !strings.Contains(lead.stdout.String(), `"resigned":`+strconv.FormatInt(held.Token, 10)) {
		t.Errorf("campaign printed %q, want its resignation", lead.stdout.String())
	}
	obs.waitFor("resigned\tgolden-election\ta\t", nil)
	obs.interrupt()
	c.fails(3, "nobody leads", "election", "get", "golden-election")

	// A leadership held elsewhere, resigned from here.
	lead = c.start("election", "campaign", "golden-election", "--candidate", "c", "-o", "json")
	lead.waitFor(`"fence"`, nil)
	again := decode[struct {
		Token int64 `json:"token"`
	}](t, strings.TrimSpace(lead.stdout.String()))
	// Once the new leader wrote with its fence, the old one's is refused.
	c.ok("kv", "put", "/elected/state", `"c"`, "--fence", "golden-election:"+strconv.FormatInt(again.Token, 10))
	c.fails(1, "", "kv", "put", "/elected/state", `"a"`, "--fence", held.Fence)
	c.ok("election", "resign", "golden-election", "--candidate", "c", "--token", strconv.FormatInt(again.Token, 10))
	c.fails(3, "nobody leads", "election", "get", "golden-election")
	// The campaign learns it lost at its next renewal (a third of 10s).
	select {
	case err := <-lead.done:
		if err == nil {
			t.Errorf("campaign after losing its leadership exited 0")
		}
	case <-time.After(15 * time.Second):
		t.Errorf("campaign still runs 15s after its leadership was resigned")
	}
}

const webScaler = `
name: golden-web
service: golden-web
minReplicas: 1
maxReplicas: 4
metrics:
- name: gateway_rps
  target: {type: averageValue, value: 50}
driver:
  type: webhook
  url: http://127.0.0.1:9/scale
  secret: a-secret-the-webhook-checks-signatures-with
`

func testScaler(t *testing.T, c *ctl) {
	c.ok("scaler", "apply", "-f", file(t, "web.yaml", webScaler))
	// The name from the flag, the spec as JSON.
	spec, err := yaml.YAMLToJSON([]byte(strings.Replace(webScaler, "name: golden-web\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	c.ok("scaler", "apply", "--name", "golden-api", "-f", file(t, "api.json", strings.Replace(string(spec), `"service":"golden-web"`, `"service":"golden-api"`, 1)))
	c.fails(2, "differ", "scaler", "apply", "--name", "other", "-f", file(t, "web.yaml", webScaler))
	c.fails(1, "invalid spec", "scaler", "apply", "--name", "bad", "-f", file(t, "bad.json", `{"service": "x", "maxReplicas": 0, "metrics": [], "driver": {"type": "process"}}`))

	golden(t, "scaler-ls", c.ok("scaler", "ls"), "CURRENT", "DESIRED")
	s := decodeYAML[struct {
		Name        string `json:"name"`
		ModRevision int64  `json:"modRevision"`
		Spec        struct {
			MaxReplicas int    `json:"maxReplicas"`
			SyncPeriod  string `json:"syncPeriod"`
		} `json:"spec"`
	}](t, c.ok("scaler", "get", "golden-web", "-o", "yaml"))
	if s.Name != "golden-web" || s.Spec.MaxReplicas != 4 || s.Spec.SyncPeriod != "15s" {
		t.Fatalf("scaler get -o yaml = %+v, want the spec with defaults", s)
	}
	stale := strconv.FormatInt(s.ModRevision-1, 10)
	c.fails(4, "", "scaler", "apply", "-f", file(t, "web.yaml", webScaler), "--if-revision", stale)
	c.ok("scaler", "apply", "-f", file(t, "web.yaml", webScaler), "--if-revision", strconv.FormatInt(s.ModRevision, 10))

	if out := decode[struct {
		Items []struct {
			Reason string `json:"reason"`
		} `json:"items"`
	}](t, c.ok("scaler", "decisions", "golden-web", "-o", "json")); out.Items == nil {
		t.Errorf("scaler decisions -o json has no items list")
	}
	sim := file(t, "sim.json", `{"series": {"replicas": 1, "points": [
		{"at": "2026-01-01T00:00:00Z", "metrics": {"gateway_rps": 40}},
		{"at": "2026-01-01T00:00:30Z", "metrics": {"gateway_rps": 400}},
		{"at": "2026-01-01T00:01:00Z", "metrics": {"gateway_rps": 400}}]}}`)
	golden(t, "scaler-simulate", c.ok("scaler", "simulate", "golden-web", "-f", sim))

	c.ok("scaler", "delete", "golden-web")
	c.ok("scaler", "rm", "golden-api")
	c.fails(3, "", "scaler", "get", "golden-web")
	c.fails(3, "", "scaler", "delete", "golden-web")
}

func testRoutes(t *testing.T, c *ctl) {
	c.ok("routes", "apply", "-f", file(t, "api.yaml", `
name: golden-api
match: {pathPrefix: /golden-api/}
service: golden-api
stripPrefix: true
timeout: 10s
`))
	c.ok("routes", "apply", "--name", "golden-web", "-f", file(t, "web.json", `{"match": {"pathPrefix": "/golden-web/", "host": "web.example"}, "service": "golden-web"}`))
	golden(t, "routes-ls", c.ok("routes", "ls"))
	stored := decode[struct {
		Key   string         `json:"key"`
		Value map[string]any `json:"value"`
	}](t, c.ok("routes", "get", "golden-api", "-o", "json"))
	if stored.Key != "/steward/gateway/routes/golden-api" || stored.Value["service"] != "golden-api" || stored.Value["name"] != nil {
		t.Fatalf("routes get -o json = %+v, want the document without its name under the routes prefix", stored)
	}
	// The config service stores any JSON; the gateway refuses this one,
	// and apply says why.
	r := c.runIn(`{"match": {"pathPrefix": "no-slash"}, "service": "golden-api"}`, "routes", "apply", "--name", "golden-bad", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "the gateway rejected route golden-bad") || !strings.Contains(r.stderr, "must start with '/'") {
		t.Fatalf("routes apply of an invalid route = %+v, want exit 1 with the gateway's reason", r)
	}
	st := decode[struct {
		Routes   []struct{ Name string } `json:"routes"`
		Rejected []struct{ Name string } `json:"rejected"`
	}](t, c.ok("routes", "ls", "-o", "json"))
	if len(st.Routes) != 2 || len(st.Rejected) != 1 || st.Rejected[0].Name != "golden-bad" {
		t.Fatalf("routes ls -o json = %+v", st)
	}
	for _, name := range []string{"golden-api", "golden-web", "golden-bad"} {
		c.ok("routes", "rm", name)
	}
	c.fails(3, "not found", "routes", "rm", "golden-api")
	c.fails(2, "no name", "routes", "apply", "-f", file(t, "x.json", `{"service": "x"}`))
}

func testAuth(t *testing.T, c *ctl) {
	c.ok("auth", "role", "put", "golden-reader", "--rule", "kv:/golden-auth/:read", "--rule", "elections::read")
	c.ok("auth", "role", "put", "golden-writer", "-f", file(t, "w.yaml", "rules:\n- {resource: kv, prefix: /golden-auth/, access: write}\n"))
	golden(t, "auth-role-ls", c.ok("auth", "role", "ls"))
	c.fails(2, "want RESOURCE:PREFIX:ACCESS", "auth", "role", "put", "x", "--rule", "kv")

	issued := decode[struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}](t, c.ok("auth", "token", "create", "--role", "golden-reader", "--description", "golden", "--ttl", "24h", "-o", "json"))
	if issued.ID == "" || issued.Secret == "" {
		t.Fatalf("auth token create -o json = %+v", issued)
	}
	golden(t, "auth-token-get", c.ok("auth", "token", "get", issued.ID), "ID", "CREATED", "EXPIRES")
	if ls := c.ok("auth", "token", "ls"); !strings.Contains(ls, issued.ID) || strings.Contains(ls, issued.Secret) {
		t.Errorf("auth token ls = %q, want the token without its secret", ls)
	}

	reader := &ctl{t: t, env: []string{c.env[0], "STEWARD_TOKEN=" + issued.Secret}}
	if who := reader.ok("auth", "whoami"); !strings.Contains(who, issued.ID) || !strings.Contains(who, "roles: golden-reader") {
		t.Errorf("auth whoami = %q", who)
	}
	c.ok("kv", "put", "/golden-auth/x", `1`)
	reader.ok("kv", "get", "/golden-auth/x")
	reader.fails(1, "may not write", "kv", "put", "/golden-auth/x", `2`)

	c.ok("auth", "token", "revoke", issued.ID)
	reader.fails(1, "unknown or revoked token", "kv", "get", "/golden-auth/x")
	audit := c.ok("auth", "audit", "--limit", "10")
	for _, op := range []string{"putRole", "createToken", "revokeToken"} {
		if !strings.Contains(audit, op) {
			t.Errorf("auth audit = %q, want %s", audit, op)
		}
	}
	c.ok("auth", "role", "rm", "golden-writer")
	c.fails(3, "", "auth", "role", "get", "golden-writer")
	c.fails(3, "", "auth", "token", "get", "tok_0000000000000000")
}

package route_test

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway/route"
	"github.com/stewardhq/steward/platform/fault"
)

// minimal is the smallest valid document; the cases below add to it.
const minimal = `{"match":{"pathPrefix":"/api/"},"service":"web"}`

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want route.Route // Name is filled in from the case
	}{
		{"minimal", minimal, route.Route{Match: route.Match{PathPrefix: "/api/"}, Service: "web"}},
		{"root prefix", `{"match":{"pathPrefix":"/"},"service":"web"}`,
			route.Route{Match: route.Match{PathPrefix: "/"}, Service: "web"}},
		{"every field", `{
			"match":{"pathPrefix":"/api","host":"api.example.com","headers":{"X-Env":"canary"}},
			"service":"web-2","rewritePrefix":"/v2/","timeout":"1m30s",
			"retry":{"attempts":5,"perTryTimeout":"250ms"},
			"loadBalancer":{"policy":"ring-hash","hashCookie":"session"},
			"rateLimit":{"rps":0.5,"burst":1,"key":"header:X-User"},
			"split":[{"version":"1.0","weight":90},{"version":"1.1","weight":10},{"version":"2.0","weight":0}]}`,
			route.Route{
				Match:   route.Match{PathPrefix: "/api", Host: "api.example.com", Headers: map[string]string{"X-Env": "canary"}},
				Service: "web-2", RewritePrefix: "/v2/", Timeout: route.Duration(90 * time.Second),
				Retry:        &route.Retry{Attempts: 5, PerTryTimeout: route.Duration(250 * time.Millisecond)},
				LoadBalancer: &route.LoadBalancer{Policy: route.RingHash, HashCookie: "session"},
				RateLimit:    &route.RateLimit{RPS: 0.5, Burst: 1, Key: "header:X-User"},
				Split:        []route.Split{{"1.0", 90}, {"1.1", 10}, {"2.0", 0}},
			}},
		{"strip prefix", `{"match":{"pathPrefix":"/s/"},"service":"web","stripPrefix":true}`,
			route.Route{Match: route.Match{PathPrefix: "/s/"}, Service: "web", StripPrefix: true}},
		{"ring hash on a header", `{"match":{"pathPrefix":"/"},"service":"web","loadBalancer":{"policy":"ring-hash","hashHeader":"X-User"}}`,
			route.Route{Match: route.Match{PathPrefix: "/"}, Service: "web", LoadBalancer: &route.LoadBalancer{Policy: route.RingHash, HashHeader: "X-User"}}},
		{"rate limit per ip", `{"match":{"pathPrefix":"/"},"service":"web","rateLimit":{"rps":100,"burst":200,"key":"ip"}}`,
			route.Route{Match: route.Match{PathPrefix: "/"}, Service: "web", RateLimit: &route.RateLimit{RPS: 100, Burst: 200, Key: "ip"}}},
		{"zero retries", `{"match":{"pathPrefix":"/"},"service":"web","retry":{"attempts":0}}`,
			route.Route{Match: route.Match{PathPrefix: "/"}, Service: "web", Retry: &route.Retry{}}},
		{"timeout at the bound", `{"match":{"pathPrefix":"/"},"service":"web","timeout":"10m"}`,
			route.Route{Match: route.Match{PathPrefix: "/"}, Service: "web", Timeout: route.Duration(10 * time.Minute)}},
		{"IPv6 host", `{"match":{"pathPrefix":"/","host":"[::1]"},"service":"web"}`,
			route.Route{Match: route.Match{PathPrefix: "/", Host: "[::1]"}, Service: "web"}},
		{"whitespace after the document", minimal + " \n\t", route.Route{Match: route.Match{PathPrefix: "/api/"}, Service: "web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := route.Parse("r-1", []byte(tc.doc))
			if err != nil {
				t.Fatalf("Parse = %v, want success", err)
			}
			tc.want.Name = "r-1"
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("Parse = %+v, want %+v", *got, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	// with returns minimal with the fields of extra (a JSON object's
	// members) added.
	with := func(extra string) string { return strings.TrimSuffix(minimal, "}") + "," + extra + "}" }
	for _, tc := range []struct {
		name   string
		doc    string
		reason string // a part of the error's detail
	}{
		{"not JSON", `{"match":`, "unexpected EOF"},
		{"not an object", `[]`, "cannot unmarshal array"},
		{"unknown field", with(`"retries":3`), `unknown field "retries"`},
		{"unknown field in match", `{"match":{"pathPrefix":"/","path":"/x"},"service":"web"}`, `unknown field "path"`},
		{"wrong type", with(`"stripPrefix":"yes"`), "cannot unmarshal string"},
		{"duration not a string", with(`"timeout":10`), `want a duration string such as "10s"`},
		{"duration malformed", with(`"timeout":"ten seconds"`), `duration "ten seconds"`},
		{"second document", minimal + minimal, "trailing data after the document"},
		{"trailing garbage", minimal + " x", "trailing data after the document"},
		{"trailing brace", minimal + "}", "trailing data after the document"},
		{"trailing bracket", minimal + "]", "trailing data after the document"},
		{"no path prefix", `{"match":{},"service":"web"}`, `match.pathPrefix "" must start with '/'`},
		{"relative path prefix", `{"match":{"pathPrefix":"api/"},"service":"web"}`, `match.pathPrefix "api/" must start with '/'`},
		{"empty header name", `{"match":{"pathPrefix":"/","headers":{"":"x"}},"service":"web"}`, "match.headers: empty header name"},
		{"bad header name", `{"match":{"pathPrefix":"/","headers":{"X Env":"x"}},"service":"web"}`, `match.headers: "X Env" is not a valid header name`},
		{"host with a port", `{"match":{"pathPrefix":"/","host":"api.example.com:8080"},"service":"web"}`, `match.host "api.example.com:8080": a host name without a port`},
		{"no service", `{"match":{"pathPrefix":"/"}}`, `service "": want a registry service name`},
		{"service with capitals", `{"match":{"pathPrefix":"/"},"service":"Web"}`, `service "Web": want a registry service name`},
		{"service too long", `{"match":{"pathPrefix":"/"},"service":"` + strings.Repeat("s", 64) + `"}`, "want a registry service name"},
		{"the gateway itself", `{"match":{"pathPrefix":"/"},"service":"steward-gateway"}`, "is the gateway itself: the route would loop"},
		{"strip and rewrite", with(`"stripPrefix":true,"rewritePrefix":"/v2"`), "stripPrefix and rewritePrefix exclude each other"},
		{"relative rewrite", with(`"rewritePrefix":"v2/"`), `rewritePrefix "v2/" must start with '/'`},
		{"negative timeout", with(`"timeout":"-1s"`), "timeout: want up to 10m"},
		{"timeout too long", with(`"timeout":"10m1s"`), "timeout: want up to 10m"},
		{"negative attempts", with(`"retry":{"attempts":-1}`), "retry.attempts: want 0 to 5"},
		{"too many attempts", with(`"retry":{"attempts":6}`), "retry.attempts: want 0 to 5"},
		{"negative per-try timeout", with(`"retry":{"attempts":1,"perTryTimeout":"-1ms"}`), "perTryTimeout non-negative"},
		{"unknown policy", with(`"loadBalancer":{"policy":"random"}`), `loadBalancer.policy "random": want least-request, round-robin, ring-hash or peak-ewma`},
		{"empty policy", with(`"loadBalancer":{}`), `loadBalancer.policy ""`},
		{"hash header without ring hash", with(`"loadBalancer":{"policy":"least-request","hashHeader":"X-User"}`), "hashHeader and hashCookie are for ring-hash"},
		{"hash cookie without ring hash", with(`"loadBalancer":{"policy":"peak-ewma","hashCookie":"s"}`), "hashHeader and hashCookie are for ring-hash"},
		{"ring hash without a key", with(`"loadBalancer":{"policy":"ring-hash"}`), "ring-hash needs exactly one of hashHeader and hashCookie"},
		{"ring hash with two keys", with(`"loadBalancer":{"policy":"ring-hash","hashHeader":"X-User","hashCookie":"s"}`), "ring-hash needs exactly one of hashHeader and hashCookie"},
		{"zero rps", with(`"rateLimit":{"rps":0,"burst":1}`), "rps must be positive and burst at least 1"},
		{"zero burst", with(`"rateLimit":{"rps":1,"burst":0}`), "rps must be positive and burst at least 1"},
		{"unknown rate limit key", with(`"rateLimit":{"rps":1,"burst":1,"key":"cookie:s"}`), `rateLimit.key "cookie:s": want "ip" or "header:<Name>"`},
		{"rate limit header without a name", with(`"rateLimit":{"rps":1,"burst":1,"key":"header:"}`), `rateLimit.key "header:": want "ip" or "header:<Name>"`},
		{"rate limit header with a bad name", with(`"rateLimit":{"rps":1,"burst":1,"key":"header:X Key"}`), `rateLimit.key "header:X Key": want "ip" or "header:<Name>"`},
		{"split without version", with(`"split":[{"weight":1}]`), "split: every entry needs a distinct version and a non-negative weight"},
		{"split negative weight", with(`"split":[{"version":"a","weight":-1},{"version":"b","weight":2}]`), "non-negative weight"},
		{"split repeated version", with(`"split":[{"version":"a","weight":1},{"version":"a","weight":1}]`), "distinct version"},
		{"split weights all zero", with(`"split":[{"version":"a","weight":0}]`), "split: the weights must add up to more than 0"},
		// Weights that overflow int to a small positive total would pass a
		// sum check, and a pool holding only some of the versions would
		// then draw a version with a negative total (rand.IntN panics).
		{"split weights overflow", with(`"split":[{"version":"a","weight":` + strconv.Itoa(math.MaxInt) + `},{"version":"b","weight":` + strconv.Itoa(math.MaxInt) + `},{"version":"c","weight":3}]`), "split: a weight is at most 1000000"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantRejected(t, "r-1", tc.doc, tc.reason) })
	}
}

func TestParseRejectsNames(t *testing.T) {
	for _, name := range []string{"", "a/b", "a b", strings.Repeat("n", 129)} {
		wantRejected(t, name, minimal, "name: want 1 to 128 of A-Z, a-z, 0-9, '.', '_' and '-'")
	}
	for _, name := range []string{"a", "A.b_c-9", strings.Repeat("n", 128)} {
		if _, err := route.Parse(name, []byte(minimal)); err != nil {
			t.Errorf("Parse(%q) = %v, want the name accepted", name, err)
		}
	}
}

// wantRejected checks that Parse refuses doc as invalid, naming the route
// and saying reason.
func wantRejected(t *testing.T, name, doc, reason string) {
	t.Helper()
	got, err := route.Parse(name, []byte(doc))
	if err == nil {
		t.Errorf("Parse(%q, %s) = %+v, want an error saying %q", name, doc, got, reason)
		return
	}
	if k := fault.KindOf(err); k != fault.Invalid {
		t.Errorf("Parse(%q, %s) kind = %v, want invalid (400)", name, doc, k)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("Parse(%q, %s) = %q, want it to say %q", name, doc, err, reason)
	}
	if !strings.HasPrefix(err.Error(), "route "+strconv.Quote(name)+": ") {
		t.Errorf("Parse(%q, %s) = %q, want it to name the route", name, doc, err)
	}
}

func cmpOr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		name   string
		match  route.Match
		url    string
		host   string            // the request's Host; "example.com" when empty
		header map[string]string // request headers
		want   bool
	}{
		{"prefix", route.Match{PathPrefix: "/api/"}, "/api/users", "", nil, true},
		{"prefix exact", route.Match{PathPrefix: "/api/"}, "/api/", "", nil, true},
		{"prefix without its slash", route.Match{PathPrefix: "/api/"}, "/api", "", nil, false},
		{"other path", route.Match{PathPrefix: "/api/"}, "/web/api/", "", nil, false},
		// A prefix is a string prefix, not a path segment: "/api" also
		// matches "/apiary" (write "/api/" to mean the segment).
		{"string prefix", route.Match{PathPrefix: "/api"}, "/apiary", "", nil, true},
		{"prefix is case-sensitive", route.Match{PathPrefix: "/api/"}, "/API/x", "", nil, false},
		{"query is not the path", route.Match{PathPrefix: "/api/"}, "/x?next=/api/", "", nil, false},
		{"root", route.Match{PathPrefix: "/"}, "/anything", "", nil, true},

		{"host", route.Match{PathPrefix: "/", Host: "api.example.com"}, "/", "api.example.com", nil, true},
		{"host with a port", route.Match{PathPrefix: "/", Host: "api.example.com"}, "/", "api.example.com:8080", nil, true},
		{"host in other case", route.Match{PathPrefix: "/", Host: "api.example.com"}, "/", "API.Example.COM:80", nil, true},
		{"other host", route.Match{PathPrefix: "/", Host: "api.example.com"}, "/", "www.example.com", nil, false},
		{"host suffix is not the host", route.Match{PathPrefix: "/", Host: "example.com"}, "/", "api.example.com", nil, false},
		{"IPv6 host with a port", route.Match{PathPrefix: "/", Host: "[::1]"}, "/", "[::1]:8080", nil, true},
		{"IPv6 host without a port", route.Match{PathPrefix: "/", Host: "[::1]"}, "/", "[::1]", nil, true},
		{"IPv6 host, other address", route.Match{PathPrefix: "/", Host: "[::1]"}, "/", "[::2]:8080", nil, false},

		{"header", route.Match{PathPrefix: "/", Headers: map[string]string{"X-Env": "canary"}}, "/", "", map[string]string{"X-Env": "canary"}, true},
		{"header name in other case", route.Match{PathPrefix: "/", Headers: map[string]string{"x-env": "canary"}}, "/", "", map[string]string{"X-ENV": "canary"}, true},
		{"header value is exact", route.Match{PathPrefix: "/", Headers: map[string]string{"X-Env": "canary"}}, "/", "", map[string]string{"X-Env": "Canary"}, false},
		{"header missing", route.Match{PathPrefix: "/", Headers: map[string]string{"X-Env": "canary"}}, "/", "", nil, false},
		{"every header must match", route.Match{PathPrefix: "/", Headers: map[string]string{"X-Env": "canary", "X-Team": "a"}}, "/", "",
			map[string]string{"X-Env": "canary", "X-Team": "b"}, false},
		{"every header matches", route.Match{PathPrefix: "/", Headers: map[string]string{"X-Env": "canary", "X-Team": "a"}}, "/", "",
			map[string]string{"X-Env": "canary", "X-Team": "a", "X-Other": "z"}, true},
		{"everything set, path differs", route.Match{PathPrefix: "/api/", Host: "h", Headers: map[string]string{"X-Env": "canary"}}, "/web/", "h",
			map[string]string{"X-Env": "canary"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &route.Route{Name: "r", Match: tc.match, Service: "web"}
			req := httptest.NewRequest("GET", tc.url, nil)
			req.Host = cmpOr(tc.host, "example.com")
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if got := r.Matches(req); got != tc.want {
				t.Fatalf("Matches(%s, Host %s, %v) = %v, want %v", tc.url, req.Host, tc.header, got, tc.want)
			}
		})
	}
}

func TestUpstreamPath(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prefix  string
		strip   bool
		rewrite string
		path    string
		want    string
	}{
		{"as is", "/api/", false, "", "/api/users", "/api/users"},

		{"strip slash prefix", "/api/", true, "", "/api/users/1", "/users/1"},
		{"strip slash prefix, prefix alone", "/api/", true, "", "/api/", "/"},
		{"strip bare prefix", "/api", true, "", "/api/users", "/users"},
		{"strip bare prefix, prefix alone", "/api", true, "", "/api", "/"},
		{"strip bare prefix, longer segment", "/api", true, "", "/apiary", "/ary"},
		{"strip root", "/", true, "", "/users", "/users"},
		{"strip keeps a trailing slash", "/api/", true, "", "/api/users/", "/users/"},
		{"strip keeps repeated slashes after the prefix", "/api", true, "", "/api//x", "//x"},

		{"rewrite bare to bare", "/api", false, "/v2", "/api/users", "/v2/users"},
		{"rewrite bare to slash", "/api", false, "/v2/", "/api/users", "/v2/users"},
		{"rewrite slash to bare", "/api/", false, "/v2", "/api/users", "/v2/users"},
		{"rewrite slash to slash", "/api/", false, "/v2/", "/api/users", "/v2/users"},
		{"rewrite bare, prefix alone", "/api", false, "/v2", "/api", "/v2"},
		{"rewrite bare to slash, prefix alone", "/api", false, "/v2/", "/api", "/v2/"},
		{"rewrite slash, prefix alone", "/api/", false, "/v2", "/api/", "/v2"},
		{"rewrite slash to slash, prefix alone", "/api/", false, "/v2/", "/api/", "/v2/"},
		{"rewrite to root", "/api/", false, "/", "/api/users", "/users"},
		{"rewrite bare to root", "/api", false, "/", "/api/users", "/users"},
		{"rewrite root", "/", false, "/v2", "/users", "/v2/users"},
		{"rewrite bare, longer segment", "/api", false, "/v2", "/apiary", "/v2/ary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &route.Route{Name: "r", Match: route.Match{PathPrefix: tc.prefix}, Service: "web", StripPrefix: tc.strip, RewritePrefix: tc.rewrite}
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := r.UpstreamPath(tc.path); got != tc.want {
				t.Fatalf("UpstreamPath(%q) with prefix %q, strip %v, rewrite %q = %q, want %q", tc.path, tc.prefix, tc.strip, tc.rewrite, got, tc.want)
			}
		})
	}
}

func TestTablePrecedence(t *testing.T) {
	mk := func(name, prefix, host string, headers map[string]string) *route.Route {
		return &route.Route{Name: name, Match: route.Match{PathPrefix: prefix, Host: host, Headers: headers}, Service: "web"}
	}
	canary := map[string]string{"X-Env": "canary"}
	routes := []*route.Route{
		mk("root", "/", "", nil),
		mk("api", "/api/", "", nil),
		mk("api-users", "/api/users/", "", nil),
		mk("api-host", "/api/", "api.example.com", nil),
		mk("api-short-host", "/api/", "a.io", nil),
		mk("api-canary", "/api/", "", canary),
		mk("api-canary-2", "/api/", "", map[string]string{"X-Env": "canary", "X-Team": "a"}),
		mk("b-same", "/same/", "", nil),
		mk("a-same", "/same/", "", nil),
	}
	input := append([]*route.Route(nil), routes...)
	tbl := route.NewTable(routes)
	if !reflect.DeepEqual(routes, input) {
		t.Fatal("NewTable reordered the caller's slice")
	}
	var order []string
	for _, r := range tbl.Routes() {
		order = append(order, r.Name)
	}
	wantOrder := []string{"api-users", "a-same", "b-same", "api-host", "api-short-host", "api-canary-2", "api-canary", "api", "root"}
	if !reflect.DeepEqual(order, wantOrder) {
		t.Errorf("Routes() = %v, want %v", order, wantOrder)
	}

	for _, tc := range []struct {
		name   string
		url    string
		host   string
		header map[string]string
		want   string // "" for no route
	}{
		{"longer prefix wins", "/api/users/1", "api.example.com", canary, "api-users"},
		{"host beats headers", "/api/x", "api.example.com", canary, "api-host"},
		{"longer host first", "/api/x", "a.io", nil, "api-short-host"},
		{"more headers first", "/api/x", "other", map[string]string{"X-Env": "canary", "X-Team": "a"}, "api-canary-2"},
		{"headers beat none", "/api/x", "other", canary, "api-canary"},
		{"plain prefix", "/api/x", "other", nil, "api"},
		{"name breaks a tie", "/same/x", "other", nil, "a-same"},
		{"root catches the rest", "/elsewhere", "other", nil, "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tc.url, nil)
			req.Host = tc.host
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			got := ""
			if r := tbl.Match(req); r != nil {
				got = r.Name
			}
			if got != tc.want {
				t.Fatalf("Match(%s, Host %s, %v) = %q, want %q", tc.url, tc.host, tc.header, got, tc.want)
			}
		})
	}

	empty := route.NewTable(nil)
	if r := empty.Match(httptest.NewRequest("GET", "/", nil)); r != nil {
		t.Errorf("empty table Match = %v, want nil", r.Name)
	}
	if got := route.NewTable([]*route.Route{mk("api", "/api/", "", nil)}).Match(httptest.NewRequest("GET", "/web/", nil)); got != nil {
		t.Errorf("Match of an unrouted path = %v, want nil", got.Name)
	}
}

// FuzzParse: Parse never panics, and an accepted document survives a
// round trip: marshalled and parsed again it is the same route, its
// marshalled form is stable, and every path it matches maps to an
// absolute upstream path.
func FuzzParse(f *testing.F) {
	for _, doc := range []string{
		minimal,
		`{"match":{"pathPrefix":"/api","host":"api.example.com","headers":{"X-Env":"canary"}},"service":"web-2","rewritePrefix":"/v2/","timeout":"1m30s","retry":{"attempts":5,"perTryTimeout":"250ms"},"loadBalancer":{"policy":"ring-hash","hashCookie":"session"},"rateLimit":{"rps":0.5,"burst":1,"key":"header:X-User"},"split":[{"version":"1.0","weight":90},{"version":"1.1","weight":10}]}`,
		`{"match":{"pathPrefix":"/s/","headers":{}},"service":"web","stripPrefix":true,"split":[],"retry":null}`,
		`{"match":{"pathPrefix":"/"},"service":"web","loadBalancer":{"policy":"ring-hash","hashHeader":"X-User"},"rateLimit":{"rps":1e-3,"burst":1,"key":"ip"}}`,
		`{"Match":{"PathPrefix":"/"},"SERVICE":"web","timeout":"1.5s"}`,
		`{"match":{"pathPrefix":"/"},"service":"steward-gateway"}`,
		minimal + "}",
		`{"match":{"pathPrefix":"/"},"service":"web","split":[{"version":"a","weight":9223372036854775807},{"version":"b","weight":1}]}`,
	} {
		f.Add("r-1", []byte(doc))
	}
	f.Add("", []byte(minimal))
	f.Fuzz(func(t *testing.T, name string, doc []byte) {
		r, err := route.Parse(name, doc)
		if err != nil {
			if r != nil {
				t.Fatalf("Parse returned a route and an error %v", err)
			}
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("Parse error %v is not invalid", err)
			}
			return
		}
		if r.Name != name {
			t.Fatalf("Parse(%q).Name = %q", name, r.Name)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", r, err)
		}
		again, err := route.Parse(name, b)
		if err != nil {
			t.Fatalf("re-Parse of %s: %v (from %q)", b, err, doc)
		}
		if !reflect.DeepEqual(normalize(r), normalize(again)) {
			t.Fatalf("round trip of %q via %s:\n got %+v\nwant %+v", doc, b, again, r)
		}
		if b2, _ := json.Marshal(again); string(b2) != string(b) {
			t.Fatalf("marshalled form not stable: %s then %s", b, b2)
		}
		total := 0
		for _, s := range r.Split {
			if s.Weight > math.MaxInt-total {
				t.Fatalf("split weights of an accepted route overflow: %v", r.Split)
			}
			total += s.Weight
		}
		for _, rest := range []string{"", "/", "x", "/x/y", "//x"} {
			if up := r.UpstreamPath(r.Match.PathPrefix + rest); !strings.HasPrefix(up, "/") {
				t.Fatalf("UpstreamPath(%q) = %q, not absolute", r.Match.PathPrefix+rest, up)
			}
		}
	})
}

// normalize maps the empty collections a document may spell out to the
// nil they decode back to once omitted.
func normalize(r *route.Route) route.Route {
	c := *r
	if len(c.Match.Headers) == 0 {
		c.Match.Headers = nil
	}
	if len(c.Split) == 0 {
		c.Split = nil
	}
	return c
}

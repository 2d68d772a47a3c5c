package config_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// keyEscapes is the rule for a key in a path, as every client may send
// it: percent-decoded exactly once, then checked as any key. key is the
// key it names, "" when it is refused with 400.
var keyEscapes = []struct {
	name, path, key string
}{
	{"raw slashes", "app/db/url", "/app/db/url"},
	{"escaped slashes", "app%2Fdb%2Furl", "/app/db/url"},
	{"lower-case escapes", "app%2fdb%2furl", "/app/db/url"},
	{"some escaped", "app/db%2Furl", "/app/db/url"},
	{"escaped letter", "%61pp/db/url", "/app/db/url"},
	{"double-escaped slash is a literal %2F", "app%252Fdb", "/app%2Fdb"},
	{"escaped percent", "rate/100%25", "/rate/100%"},
	{"unicode escaped", "caf%C3%A9/%E2%82%AC", "/café/€"},
	{"space and query characters", "a%20b%3Fc%23d", "/a b?c#d"},
	{"dot-dot", "app/../other", ""},
	{"escaped dot-dot segment", "app/%2E%2E/other", ""},
	{"dot-dot between escaped slashes", "app%2F..%2Fother", ""},
	{"dot", "app/./x", ""},
	{"escaped dot", "app/%2E/x", ""},
	{"empty segment", "app//x", ""},
	{"escaped empty segment", "app%2F%2Fx", ""},
	{"escaped trailing slash", "app%2F", ""},
	{"escaped leading slash", "%2Fapp", ""},
	{"invalid UTF-8", "a%FFb", ""},
	{"escaped newline", "a%0Ab", ""},
	{"escaped NUL", "a%00b", ""},
}

// TestKeyEscaping: PUT, GET and DELETE reach the key keyEscapes names,
// however it was escaped, and a list finds it under its decoded prefix.
func TestKeyEscaping(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	for _, tc := range keyEscapes {
		t.Run(tc.name, func(t *testing.T) {
			u := n.url + "/v1/kv/" + tc.path
			r := call(t, "PUT", u, `"v"`)
			if tc.key == "" {
				if r.status != http.StatusBadRequest {
					t.Fatalf("PUT %s = %d, want 400: %s", tc.path, r.status, r.raw)
				}
				return
			}
			expect(t, r, http.StatusOK)
			if got := r.body["key"]; got != tc.key {
				t.Fatalf("PUT %s: key = %v, want %s", tc.path, got, tc.key)
			}
			if got := expect(t, call(t, "GET", n.url+"/v1/kv"+escapeKey(tc.key), ""), 200).body["key"]; got != tc.key {
				t.Fatalf("GET %s: key = %v, want %s", escapeKey(tc.key), got, tc.key)
			}
			expect(t, call(t, "GET", u, ""), 200)
			expect(t, call(t, "DELETE", u, ""), 200)
			expect(t, call(t, "GET", n.url+"/v1/kv"+escapeKey(tc.key), ""), 404)
		})
	}

	// Both encodings of one key write one key: the second PUT is its
	// version 2, and a list of /app/ finds it and nothing else (the
	// literal /app%2Fdb is not under /app/).
	for i, p := range []string{"app/db/url", "app%2Fdb%2Furl"} {
		r := expect(t, call(t, "PUT", n.url+"/v1/kv/"+p, `"v"`), 200)
		if r.num("version") != int64(i+1) {
			t.Fatalf("PUT %s: version = %d, want %d", p, r.num("version"), i+1)
		}
	}
	expect(t, call(t, "PUT", n.url+"/v1/kv/app%252Fdb", `"v"`), 200)
	if got := listKeys(t, n.url, "/app/"); !slices.Equal(got, []string{"/app/db/url"}) {
		t.Fatalf("list /app/ = %v, want [/app/db/url]", got)
	}

	// A client that puts UTF-8 on the wire unescaped names the same key.
	if code := rawRequest(t, n.url, "GET", "/v1/kv/café/€"); code != 404 {
		t.Fatalf("GET /v1/kv/café/€ raw before the PUT = %d, want 404", code)
	}
	expect(t, call(t, "PUT", n.url+"/v1/kv/caf%C3%A9/%E2%82%AC", `"v"`), 200)
	if code := rawRequest(t, n.url, "GET", "/v1/kv/café/€"); code != 200 {
		t.Fatalf("GET /v1/kv/café/€ raw = %d, want 200", code)
	}
}

// escapeKey is a key as a generated client puts it in a path: every
// segment escaped.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func listKeys(t *testing.T, base, prefix string) []string {
	t.Helper()
	r := expect(t, call(t, "GET", base+"/v1/kv?prefix="+url.QueryEscape(prefix), ""), 200)
	var keys []string
	for _, it := range r.body["items"].([]any) {
		keys = append(keys, it.(map[string]any)["key"].(string))
	}
	return keys
}

// rawRequest sends target as it is on the request line (net/http would
// escape its non-ASCII bytes) and returns the status.
func rawRequest(t *testing.T, base, method, target string) int {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, target, u.Host); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestEscapedKeyAuth: an auth rule sees the key the handler acts on, so
// escaping a key can neither reach outside a token's prefix nor be
// refused inside it.
func TestEscapedKeyAuth(t *testing.T) {
	url := startAuthNode(t)
	_, writer := newToken(t, url, "app-writer", "/app/", "write")
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"inside, escaped", "PUT", "/v1/kv/app%2Fx", 200},
		{"inside, raw", "PUT", "/v1/kv/app/y", 200},
		{"outside, escaped", "PUT", "/v1/kv/other%2Fx", 403},
		{"outside, escaped prefix", "PUT", "/v1/kv/%61pp2/x", 403},
		{"dot-dot out of the prefix, escaped", "PUT", "/v1/kv/app%2F..%2Fother", 400},
		{"dot-dot out of the prefix, escaped dots", "PUT", "/v1/kv/app/%2E%2E/other", 400},
		{"dot-dot out of the prefix, raw", "PUT", "/v1/kv/app/../other", 400},
		{"double-escaped dot-dot is one segment outside /app/", "PUT", "/v1/kv/app%252F..%252Fother", 403},
		{"outside, delete escaped", "DELETE", "/v1/kv/other%2Fx", 403},
		{"outside, read escaped", "GET", "/v1/kv/other%2Fx", 403},
	}
	for _, tc := range tests {
		code, _, body := authtest.Call(t, tc.method, url+tc.path, writer, `"v"`)
		if code != tc.want {
			t.Errorf("%s: %s %s = %d, want %d: %v", tc.name, tc.method, tc.path, code, tc.want, body)
		}
	}
	// Nothing was written outside /app/.
	code, _, body := authtest.Call(t, "GET", url+"/v1/kv?prefix=/", rootSecret, "")
	if code != http.StatusOK {
		t.Fatalf("root list: %d %v", code, body)
	}
	var keys []string
	for _, it := range body["items"].([]any) {
		keys = append(keys, it.(map[string]any)["key"].(string))
	}
	if want := []string{"/app/x", "/app/y"}; !slices.Equal(keys, want) {
		t.Fatalf("keys = %v, want %v", keys, want)
	}
}

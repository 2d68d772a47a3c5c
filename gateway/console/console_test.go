package console_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stewardhq/steward/gateway/console"
	"github.com/stewardhq/steward/platform/web"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	r := io.Reader(resp.Body)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHandler checks what a browser relies on: the index never cached,
// hashed assets cached for good, content types, gzip when accepted, the
// policy on every file, /ui redirected and anything else 404.
func TestHandler(t *testing.T) {
	h := console.Handler()

	resp := get(t, h, "/ui")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET /ui = %d Location %q, want 301 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}

	resp = get(t, h, "/ui/")
	index := body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /ui/ = %d %q %q, want 200 text/html no-cache", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy = %q, want default-src 'self' and no unsafe-inline", csp)
	}
	if strings.Contains(regexp.MustCompile(`<script[^>]*src=`).ReplaceAllString(index, ""), "<script") {
		t.Errorf("index.html has an inline script, which the policy refuses:\n%s", index)
	}

	assets := regexp.MustCompile(`/ui/assets/[^"]+\.(js|css)`).FindAllStringSubmatch(index, -1)
	if len(assets) < 2 {
		t.Fatalf("index.html names %d assets, want a script and a stylesheet:\n%s", len(assets), index)
	}
	for _, a := range assets {
		want := map[string]string{"js": "text/javascript", "css": "text/css"}[a[1]]
		resp := get(t, h, a[0], "Accept-Encoding", "br, gzip")
		b := body(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(b) == 0 {
			t.Errorf("GET %s = %d %q (%d bytes), want 200 %s", a[0], resp.StatusCode, resp.Header.Get("Content-Type"), len(b), want)
		}
		if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: Content-Encoding %q, Cache-Control %q, want gzip and immutable", a[0], resp.Header.Get("Content-Encoding"), resp.Header.Get("Cache-Control"))
		}
		if plain := get(t, h, a[0]); plain.Header.Get("Content-Encoding") != "" || body(t, plain) != b {
			t.Errorf("GET %s without Accept-Encoding: Content-Encoding %q or a different body", a[0], plain.Header.Get("Content-Encoding"))
		}
	}

	for _, p := range []string{"/ui/nope.js", "/ui/../go.mod", "/other"} {
		if resp := get(t, h, p); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != web.ProblemContentType {
			t.Errorf("GET %s = %d, %s; want a 404 problem", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/ui/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Content-Type") != web.ProblemContentType {
		t.Errorf("POST /ui/ = %d, %s; want a 405 problem", rec.Code, rec.Header().Get("Content-Type"))
	}
}

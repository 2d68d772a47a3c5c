package openapitest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/web/openapitest"
)

const doc = `{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {
  "/a": {"get": {"responses": {"200": {"description": "a", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
  "/s": {"get": {"parameters": [{"name": "want", "in": "query", "schema": {"type": "string"}}],
    "responses": {"200": {"description": "s", "content": {"text/event-stream": {"schema": {"type": "string"}}}}}}}}}`

// closeCounter is a base transport that counts CloseIdleConnections.
type closeCounter struct {
	http.Transport
	closed int
}

func (c *closeCounter) CloseIdleConnections() { c.closed++; c.Transport.CloseIdleConnections() }

// TestCoverageAndStreamFor: coverage is kept by server, a stream's events
// are checked by the check StreamEvents made from the stream's request,
// and an http.Client's CloseIdleConnections reaches the base transport.
func TestCoverageAndStreamFor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := openapitest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c.StreamEvents = func(req *http.Request) func(event, id, data string) error {
		want := req.URL.Query().Get("want")
		return func(event, id, data string) error {
			if data != want {
				return fmt.Errorf("event data %q on the stream of %s, want %q", data, req.URL, want)
			}
			return nil
		}
	}
	serve := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": hello\n\nevent: e\ndata: x\n\n")
	})
	a, b := httptest.NewServer(serve), httptest.NewServer(serve)
	defer a.Close()
	defer b.Close()
	base := &closeCounter{}
	client := &http.Client{Transport: c.Transport(base, true)}
	get := func(url string) error {
		res, err := client.Get(url)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		_, err = io.ReadAll(res.Body)
		return err
	}
	if err := get(a.URL + "/a"); err != nil {
		t.Fatal(err)
	}
	if err := get(b.URL + "/s?want=x"); err != nil {
		t.Fatal(err)
	}
	hostA, hostB := strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://")
	for _, tc := range []struct {
		name              string
		hosts             []string
		validated, events int64
		unexercisedOps    []string
	}{
		{"a", []string{hostA}, 1, 0, []string{"GET /s"}},
		{"b", []string{hostB}, 1, 1, []string{"GET /a"}},
		{"a and b", []string{hostA, hostB}, 2, 1, nil},
		{"all", nil, 2, 1, nil},
		{"unknown", []string{"nowhere.test"}, 0, 0, []string{"GET /a", "GET /s"}},
	} {
		cov := c.Coverage(tc.hosts...)
		if cov.Validated != tc.validated || cov.Events != tc.events || !slices.Equal(cov.UnexercisedOps, tc.unexercisedOps) || cov.Responses != 2 {
			t.Errorf("%s: Coverage = %+v, want %d exchanges, %d events, unexercised %v", tc.name, cov, tc.validated, tc.events, tc.unexercisedOps)
		}
	}

	if err := get(b.URL + "/s?want=y"); err == nil {
		t.Error("an event the stream's check refuses was read without an error")
	}
	if f := c.Failures(hostB); len(f) != 1 || !strings.Contains(f[0], `want "y"`) {
		t.Errorf("Failures(%s) = %q, want the refused event", hostB, f)
	}
	client.CloseIdleConnections()
	if base.closed != 1 {
		t.Errorf("CloseIdleConnections reached the base transport %d times, want 1", base.closed)
	}
}

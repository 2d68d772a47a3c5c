// Package authtest is what the services' auth tests share: requests with a
// bearer token past the OpenAPI contract check, an event stream's lines,
// and the check that every route of a service declares its Need.
package authtest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth/authhttp"
)

// Call sends a request with the bearer secret (none if empty) and
// returns the status, the header and the JSON body. A stream's body is
// not read: its status is the answer.
func Call(t testing.TB, method, url, secret, body string) (int, http.Header, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	var out map[string]any
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(res.Body)
		_ = json.Unmarshal(b, &out)
	}
	return res.StatusCode, res.Header, out
}

// Lines opens the event stream at url with the bearer secret and sends
// its lines until it ends, when the channel closes.
func Lines(t testing.TB, url, secret string) chan string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("watch: %v %v", res, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// EveryRouteHasANeed fails unless every route mounted on r is in table
// (authhttp.Unruled finds none) and the table has the want routes of the
// service's API.
func EveryRouteHasANeed(t testing.TB, r chi.Router, table []authhttp.Route, want int) {
	t.Helper()
	unruled, err := authhttp.Unruled(r, table)
	if err != nil {
		t.Fatal(err)
	}
	if len(unruled) > 0 {
		t.Fatalf("routes without a Need: %v", unruled)
	}
	if len(table) != want {
		t.Fatalf("%d routes in the table, want the %d of the API", len(table), want)
	}
}

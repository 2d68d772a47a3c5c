package config_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
)

// TestAuditBy: with auth on, a put made with a token shows the token's id
// as `by` in the key's history and in the watch event of the put, and a
// delete made with another token shows that one's.
func TestAuditBy(t *testing.T) {
	url := startAuthNode(t)
	writerID, writer := newToken(t, url, "app-writer", "/app/", "write")
	deleterID, deleter := newToken(t, url, "app-deleter", "/app/", "write")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/watch?key=/app/a", nil)
	req.Header.Set("Authorization", "Bearer "+writer)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("watch = %d", res.StatusCode)
	}

	if code, _, body := authtest.Call(t, "PUT", url+"/v1/kv/app/a", writer, `{"v":1}`); code != http.StatusOK || body["by"] != writerID {
		t.Fatalf("PUT = %d %v, want 200 by %s", code, body, writerID)
	}
	if code, _, body := authtest.Call(t, "DELETE", url+"/v1/kv/app/a", deleter, ""); code != http.StatusOK {
		t.Fatalf("DELETE = %d %v", code, body)
	}

	code, _, body := authtest.Call(t, "GET", url+"/v1/history?key=/app/a", writer, "")
	if code != http.StatusOK {
		t.Fatalf("history = %d %v", code, body)
	}
	var got []any
	for _, it := range body["items"].([]any) {
		got = append(got, it.(map[string]any)["by"])
	}
	if want := []any{deleterID, writerID}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("history by = %v, want %v (newest first)", got, want)
	}

	for i, ev := range readEvents(t, bufio.NewReader(res.Body), 2) {
		var d struct {
			Entry struct {
				By string `json:"by"`
			} `json:"entry"`
		}
		if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
			t.Fatalf("event %d %q: %v", i, ev.data, err)
		}
		if want := []string{writerID, deleterID}[i]; d.Entry.By != want {
			t.Errorf("%s event by = %q, want %q", ev.event, d.Entry.By, want)
		}
	}
}

package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// RootSecret is the bootstrap root token (STEWARD_BOOTSTRAP_TOKEN) of
// every config replica a section runs with STEWARD_AUTH=on.
const RootSecret = "stw_bench-root-secret-0123456789abcdefghijklmnop"

// ScopedToken waits until the replica at url accepts RootSecret, creates
// a role with kv write (which implies read) on prefix and a token holding
// it, as an application's token would be, checks that the replica
// refuses a request without a token and lets the token write under
// prefix (it PUTs prefix+"check"), and returns the token's secret.
func ScopedToken(ctx context.Context, c *http.Client, url, prefix string) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := call(ctx, c, http.MethodGet, url+"/v1/auth/whoami", RootSecret, "")
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the root token was not accepted within 30s: %d %s %v", code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	role := fmt.Sprintf(`{"name":"bench-writer","rules":[{"resource":"kv","prefix":%q,"access":"write"}]}`, prefix)
	if code, body, err := call(ctx, c, http.MethodPost, url+"/v1/auth/roles", RootSecret, role); err != nil || code != http.StatusCreated {
		return "", fmt.Errorf("create the role: %d %s %v", code, body, err)
	}
	code, body, err := call(ctx, c, http.MethodPost, url+"/v1/auth/tokens", RootSecret, `{"description":"bench","roles":["bench-writer"],"ttl":"24h"}`)
	if err != nil || code != http.StatusCreated {
		return "", fmt.Errorf("create the token: %d %s %v", code, body, err)
	}
	var tok struct{ Secret string }
	if err := json.Unmarshal(body, &tok); err != nil || tok.Secret == "" {
		return "", fmt.Errorf("the token's answer %s: %v", body, err)
	}
	checks := []struct {
		secret, key string
		want        int
	}{
		{"", prefix + "check", http.StatusUnauthorized},
		{tok.Secret, "/outside/check", http.StatusForbidden},
		{tok.Secret, prefix + "check", http.StatusOK},
	}
	for _, ck := range checks {
		if code, body, err := call(ctx, c, http.MethodPut, url+"/v1/kv"+ck.key, ck.secret, `"v"`); err != nil || code != ck.want {
			return "", fmt.Errorf("PUT %s with the token %t = %d %s %v, want %d", ck.key, ck.secret != "", code, body, err, ck.want)
		}
	}
	return tok.Secret, nil
}

// call sends one request with the bearer secret (none if empty) and
// returns the status and the body.
func call(ctx context.Context, c *http.Client, method, url, secret, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, bytes.TrimSpace(b), err
}

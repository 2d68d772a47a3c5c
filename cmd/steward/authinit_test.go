package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestAuthInit: `steward auth-init` against a `steward dev` with auth on
// gives each role a token under the secret given, with the least access
// its calls need and no more, and a second run changes nothing.
func TestAuthInit(t *testing.T) {
	const root = "stw_auth-init-test-root-0123456789abcdefghij"
	d := startDev(t, "STEWARD_AUTH=on", "STEWARD_AUTH_BOOTSTRAP_TOKEN="+root)
	waitReady(t, d.config+"/readyz", d.gateway+"/readyz")
	secrets := map[string]string{}
	var pairs []string
	for _, role := range []string{"config", "registry", "election", "scaler", "gateway"} {
		secrets[role] = "stw_" + role + "-service-token-0123456789abcdefghijklmnop"
		pairs = append(pairs, role+"="+secrets[role])
	}
	initOnce := func() string {
		cmd := exec.Command(binary, "auth-init")
		cmd.Env = []string{"STEWARD_CONFIG_URL=" + d.gateway, "STEWARD_AUTH_TOKEN=" + root,
			"STEWARD_AUTH_SERVICE_TOKENS=" + strings.Join(pairs, ","), "STEWARD_LOG_FORMAT=json"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("steward auth-init: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := initOnce(); !strings.Contains(out, "service tokens ready for 5 roles") {
		t.Fatalf("auth-init printed %q", out)
	}
	call := func(method, path, secret, body string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, d.gateway+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		return res.StatusCode
	}
	instance := `{"address":"127.0.0.1","port":9}`
	const allowed = 0 // neither 401, 403 nor 5xx
	for _, c := range []struct {
		role, method, path, body string
		want                     int
	}{
		{"config", "PUT", "/v1/services/steward-config/instances/t1", instance, 200},
		{"config", "PUT", "/v1/services/web/instances/t1", instance, 403},
		{"config", "GET", "/v1/kv/app/x", "", 403},
		{"registry", "PUT", "/v1/services/steward-registry/instances/t1", instance, 200},
		{"election", "POST", "/v1/elections/other/campaign", `{"candidate":"c"}`, 403},
		{"scaler", "GET", "/v1/services/web/instances", "", 200},
		// dev's scaler leads steward-scaler already: 409, or 200 if not yet.
		{"scaler", "POST", "/v1/elections/steward-scaler/campaign", `{"candidate":"c","ttl":"10s"}`, allowed},
		{"scaler", "PUT", "/v1/kv/app/x", `{"value":1}`, 403},
		{"gateway", "GET", "/v1/kv?prefix=/steward/gateway/routes/", "", 200},
		{"gateway", "GET", "/v1/services", "", 200},
		{"gateway", "POST", "/v1/metrics", `{"samples":[{"service":"web","name":"gateway_rps","value":1}]}`, 202},
		{"gateway", "GET", "/v1/kv/app/x", "", 403},
		{"gateway", "GET", "/v1/auth/tokens", "", 403},
	} {
		got := call(c.method, c.path, secrets[c.role], c.body)
		if c.want == allowed && got != http.StatusUnauthorized && got != http.StatusForbidden && got < 500 {
			continue
		}
		if got != c.want {
			t.Errorf("%s token: %s %s = %d, want %d", c.role, c.method, c.path, got, c.want)
		}
	}
	// Run again, as compose does on every up: nothing new is made.
	count := func() int {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", d.gateway+"/v1/auth/tokens", nil)
		req.Header.Set("Authorization", "Bearer "+root)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var page struct{ Items []json.RawMessage }
		if err := json.NewDecoder(res.Body).Decode(&page); err != nil {
			t.Fatal(err)
		}
		return len(page.Items)
	}
	before := count()
	initOnce()
	if after := count(); after != before || before != 6 {
		t.Errorf("tokens: %d after the first run (want root and 5), %d after the second", before, after)
	}
}

package config_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestAdminContract: every answer of the /v1/auth admin API, success and refusal, matches the OpenAPI document (client checks each exchange).
func TestAdminContract(t *testing.T) {
	url := startAuthNode(t)
	id, reader := newToken(t, url, "r", "/app/", "read")
	do := func(method, path, secret, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s %s = %d, want %d", method, path, res.StatusCode, want)
		}
	}
	do("GET", "/v1/auth/whoami", reader, "", 200)
	do("GET", "/v1/auth/whoami", "", "", 401)
	do("GET", "/v1/auth/roles", rootSecret, "", 200)
	do("POST", "/v1/auth/roles", rootSecret, `{"name":"x","rules":[{"resource":"kv","prefix":"/x/","access":"write"}]}`, 201)
	do("GET", "/v1/auth/roles/x", rootSecret, "", 200)
	do("PUT", "/v1/auth/roles/x", rootSecret, `{"name":"x","rules":[{"resource":"kv","prefix":"/y/","access":"read"}]}`, 200)
	do("GET", "/v1/auth/roles/nope", rootSecret, "", 404)
	do("POST", "/v1/auth/tokens", rootSecret, `{"description":"d","roles":["x"],"ttl":"1h"}`, 201)
	do("POST", "/v1/auth/tokens", rootSecret, `{"description":"d","roles":["x"]}`, 201)
	do("GET", "/v1/auth/tokens", rootSecret, "", 200)
	do("GET", "/v1/auth/tokens/"+id, rootSecret, "", 200)
	do("GET", "/v1/auth/audit?limit=3", rootSecret, "", 200)
	do("GET", "/v1/auth/audit", rootSecret, "", 200)
	do("GET", "/v1/auth/tokens", reader, "", 403)
	do("DELETE", "/v1/auth/roles/x", rootSecret, "", 409)
	do("POST", "/v1/auth/roles", rootSecret, `{"name":"z","rules":[{"resource":"kv","prefix":"/z/","access":"read"}]}`, 201)
	do("DELETE", "/v1/auth/roles/z", rootSecret, "", 200)
	do("DELETE", "/v1/auth/tokens/"+id, rootSecret, "", 200)
	do("GET", "/v1/kv/app/a", reader, "", 401)
	do("PUT", "/v1/kv/app/a", rootSecret, `{"v":1}`, 200)
	do("GET", "/v1/history?key=/app/a", rootSecret, "", 200)
	do("GET", "/metrics", "", "", 401)
	do("GET", "/healthz", "", "", 200)
	do("POST", "/v1/auth/roles", rootSecret, `{"name":"q","rules":[]}`, 400)
	do("POST", "/v1/auth/tokens", rootSecret, `{"roles":["nope"],"ttl":"500ms"}`, 400)
	// A caller-chosen secret (a deployment's service token) works once.
	chosen := `{"description":"svc","roles":["x"],"secret":"stw_chosen-0123456789abcdefghijklmnopqrstuvwxyz"}`
	do("POST", "/v1/auth/tokens", rootSecret, chosen, 201)
	do("POST", "/v1/auth/tokens", rootSecret, chosen, 409)
	do("GET", "/v1/auth/whoami", "stw_chosen-0123456789abcdefghijklmnopqrstuvwxyz", "", 200)
	do("POST", "/v1/auth/tokens", rootSecret, `{"roles":["x"],"secret":"too-short"}`, 400)
	do("GET", "/openapi.json", "", "", 200)
}

// TestAdminWithAuthOff: a replica with STEWARD_AUTH off serves the admin
// API's paths as the document says, each answering 404 that auth is off.
func TestAdminWithAuthOff(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	r := expect(t, call(t, "GET", n.url+"/v1/auth/whoami", ""), http.StatusNotFound)
	if d, _ := r.body["detail"].(string); !strings.Contains(d, "auth is off") {
		t.Fatalf("GET /v1/auth/whoami with auth off: %s", r.raw)
	}
}

package registry_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// TestCheckRecordsItsToken: with STEWARD_AUTH on, a status the
// registry's own checks set carries the id of the token the registry
// runs with (STEWARD_AUTH_TOKEN), not that of the token that registered
// the instance.
func TestCheckRecordsItsToken(t *testing.T) {
	t.Cleanup(plainClient.CloseIdleConnections)
	s := testSettings("registry-0", nil)
	s.Auth, s.BootstrapToken, s.AuthVoters, s.Token = true, rootSecret, []string{s.ReplicaID}, rootSecret
	n := startNode(t, qlogtest.StartServer(t).Connect(t), s)
	var root struct{ ID string }
	webtest.WaitFor(t, 30*time.Second, "root token accepted", func() bool {
		code, _, _ := authCall(t, "GET", n.url+"/v1/auth/whoami", rootSecret, "")
		return code == http.StatusOK
	})
	mustCall(t, "GET", n.url+"/v1/auth/whoami", rootSecret, "", http.StatusOK, &root)
	writerID, writer := newToken(t, n.url, "web-writer", writerRules)

	tg := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(tg.Close)
	host, port, _ := net.SplitHostPort(tg.Listener.Addr().String())
	doc := fmt.Sprintf(`{"address":%q,"port":%s,"check":{"http":"%s/health","interval":"1s","timeout":"500ms"}}`, host, port, tg.URL)
	var inst catalog.Instance
	mustCall(t, "PUT", n.url+"/v1/services/web/instances/h", writer, doc, http.StatusOK, &inst)
	if inst.By != writerID {
		t.Fatalf("registered instance by = %q, want the writer %q", inst.By, writerID)
	}
	webtest.WaitFor(t, 10*time.Second, "the check to pass", func() bool {
		mustCall(t, "GET", n.url+"/v1/services/web/instances/h", writer, "", http.StatusOK, &inst)
		return inst.Status == catalog.Passing
	})
	if inst.By != root.ID {
		t.Fatalf("instance passed by its check: by = %q, want the registry's own token %q", inst.By, root.ID)
	}
}

package qlogsvc_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/stewardhq/steward/platform/qlog/qlogsvc"
)

// startNATS starts a NATS server on a free port that admits the clients
// opts says, and returns its URL.
func startNATS(t *testing.T, opts *server.Options) string {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", -1, true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return srv.ClientURL()
}

func TestConnectAuth(t *testing.T) {
	userServer := startNATS(t, &server.Options{Users: []*server.User{{Username: "steward", Password: "s3cret"}}})
	tokenServer := startNATS(t, &server.Options{Authorization: "t0ken"})

	for _, tc := range []struct {
		name string
		url  string
		auth qlogsvc.NATSAuth
		ok   bool
	}{
		{"user server, no credentials", userServer, qlogsvc.NATSAuth{}, false},
		{"user server, wrong password", userServer, qlogsvc.NATSAuth{NATSUser: "steward", NATSPassword: "guess"}, false},
		{"user server, user and password", userServer, qlogsvc.NATSAuth{NATSUser: "steward", NATSPassword: "s3cret"}, true},
		{"token server, no token", tokenServer, qlogsvc.NATSAuth{}, false},
		{"token server, wrong token", tokenServer, qlogsvc.NATSAuth{NATSToken: "guess"}, false},
		{"token server, token", tokenServer, qlogsvc.NATSAuth{NATSToken: "t0ken"}, true},
		{"password without user", tokenServer, qlogsvc.NATSAuth{NATSPassword: "s3cret"}, false},
		{"user and token", tokenServer, qlogsvc.NATSAuth{NATSUser: "steward", NATSToken: "t0ken"}, false},
		{"certificate without key", tokenServer, qlogsvc.NATSAuth{NATSToken: "t0ken", NATSCertFile: "cert.pem"}, false},
		{"missing credentials file", tokenServer, qlogsvc.NATSAuth{NATSCreds: "/nonexistent/steward.creds"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			nc, err := qlogsvc.Connect(tc.url, "test", tc.auth)
			if err == nil {
				defer nc.Close()
			}
			switch {
			case tc.ok && err != nil:
				t.Fatalf("Connect: %v", err)
			case tc.ok && !nc.IsConnected():
				t.Fatalf("Connect: status %v, want connected", nc.Status())
			case !tc.ok && err == nil:
				t.Fatalf("Connect succeeded (status %v), want an error", nc.Status())
			case !tc.ok && time.Since(start) > 2*time.Second:
				t.Errorf("Connect took %v to fail, want at once", time.Since(start))
			}
		})
	}
}

// A server not there yet is waited for in the background, as before
// credentials existed: the connection comes up when the server does.
func TestConnectWaitsForServer(t *testing.T) {
	nc, err := qlogsvc.Connect("nats://127.0.0.1:1", "test", qlogsvc.NATSAuth{NATSToken: "t0ken"})
	if err != nil {
		t.Fatalf("Connect to a server not there yet: %v, want a connection that keeps trying", err)
	}
	defer nc.Close()
	if nc.IsConnected() {
		t.Fatal("connected to nothing")
	}
}

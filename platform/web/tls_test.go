package web_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// syncBuffer is a log destination the test reads while the server logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveTLS serves, with settings, a handler that answers the common name
// of the client's certificate, and returns the server's address.
func serveTLS(t *testing.T, settings web.TLS, logger *slog.Logger) string {
	t.Helper()
	return serveTLSWith(t, settings, logger, web.Limits{})
}

// serveTLSWith is serveTLS with limits and options.
func serveTLSWith(t *testing.T, settings web.TLS, logger *slog.Logger, limits web.Limits, opts ...web.ServeOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.TLS == nil:
			_, _ = w.Write([]byte("no TLS state"))
		case len(r.TLS.PeerCertificates) > 0:
			_, _ = w.Write([]byte("client " + r.TLS.PeerCertificates[0].Subject.CommonName))
		default:
			_, _ = w.Write([]byte("anonymous"))
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- web.ServeTLS(ctx, ln, h, logger, time.Second, limits, settings, opts...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ln.Addr().String()
}

// get fetches https://addr/ with a client of settings on a fresh
// connection and returns the body and the server certificate's serial.
func get(t *testing.T, settings web.TLS, addr string) (body, serial string, err error) {
	t.Helper()
	tr, err := settings.Transport(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	tr.DisableKeepAlives = true
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return buf.String(), resp.TLS.PeerCertificates[0].SerialNumber.String(), nil
}

func TestTLSServesHTTPSOnly(t *testing.T) {
	ca := webtest.NewPKI(t, "ca")
	cert, key := ca.Issue("server", 10)
	addr := serveTLS(t, web.TLS{CertFile: cert, KeyFile: key}, slog.New(slog.DiscardHandler))

	body, serial, err := get(t, web.TLS{CAFile: ca.Path("ca.pem")}, addr)
	if err != nil || body != "anonymous" || serial != "10" {
		t.Errorf("GET https with the CA = %q, serial %s, %v; want anonymous, serial 10, no error", body, serial, err)
	}
	if _, _, err := get(t, web.TLS{}, addr); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("GET https without the CA: err = %v, want a certificate error", err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := hc.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("GET plain http = %s, want an error", resp.Status)
	}
}

func TestTLSRequiresClientCertificate(t *testing.T) {
	ca := webtest.NewPKI(t, "ca")
	clients := webtest.NewPKI(t, "clients")
	cert, key := ca.Issue("server", 10)
	clientCert, clientKey := clients.Issue("gateway-0", 20)
	strangerCert, strangerKey := ca.Issue("stranger", 30) // right name, wrong CA
	addr := serveTLS(t, web.TLS{CertFile: cert, KeyFile: key, ClientCAFile: clients.Path("clients.pem")}, slog.New(slog.DiscardHandler))

	for _, tc := range []struct {
		name     string
		settings web.TLS
		want     string // body; "" means the request must fail
	}{
		{"no certificate", web.TLS{CAFile: ca.Path("ca.pem")}, ""},
		{"certificate of another CA", web.TLS{CAFile: ca.Path("ca.pem"), CertFile: strangerCert, KeyFile: strangerKey}, ""},
		{"certificate of the client CA", web.TLS{CAFile: ca.Path("ca.pem"), CertFile: clientCert, KeyFile: clientKey}, "client gateway-0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _, err := get(t, tc.settings, addr)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("GET = %q, want an error", body)
			case tc.want != "" && (err != nil || body != tc.want):
				t.Errorf("GET = %q, %v; want %q", body, err, tc.want)
			}
		})
	}
}

func TestTLSReloadsCertificate(t *testing.T) {
	ca := webtest.NewPKI(t, "ca")
	cert, key := ca.Issue("server", 10)
	var logs syncBuffer
	addr := serveTLS(t, web.TLS{CertFile: cert, KeyFile: key}, slog.New(slog.NewTextHandler(&logs, nil)))
	client := web.TLS{CAFile: ca.Path("ca.pem")}
	if _, serial, err := get(t, client, addr); err != nil || serial != "10" {
		t.Fatalf("first GET: serial %s, %v; want 10", serial, err)
	}

	// A key that does not match the certificate: the old pair stays,
	// with one warning however many handshakes look.
	other := webtest.NewPKI(t, "other")
	_, wrongKey := other.Issue("server", 11)
	wrong, err := os.ReadFile(wrongKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, wrong, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "level=WARN") && time.Now().Before(deadline) {
		if _, serial, err := get(t, client, addr); err != nil || serial != "10" {
			t.Fatalf("GET with a broken key pair on disk: serial %s, %v; want 10", serial, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond) // past the next look at the files
	if _, serial, err := get(t, client, addr); err != nil || serial != "10" {
		t.Fatalf("GET with a broken key pair on disk: serial %s, %v; want 10", serial, err)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings about the broken pair, want 1:\n%s", n, logs.String())
	}

	// A renewed certificate is served without a restart.
	ca.Issue("server", 12)
	var serial string
	for serial != "12" && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(100 * time.Millisecond)
		if _, serial, err = get(t, client, addr); err != nil {
			t.Fatalf("GET after renewal: %v", err)
		}
	}
	if serial != "12" {
		t.Errorf("serial after renewal = %s, want 12", serial)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}
}

func TestTLSSettingsErrors(t *testing.T) {
	ca := webtest.NewPKI(t, "ca")
	cert, key := ca.Issue("server", 10)
	for _, tc := range []struct {
		name     string
		settings web.TLS
		plain    bool
	}{
		{"none", web.TLS{}, true},
		{"certificate without key", web.TLS{CertFile: cert}, false},
		{"client CA without certificate", web.TLS{ClientCAFile: ca.Path("ca.pem")}, false},
		{"missing file", web.TLS{CertFile: cert, KeyFile: key + ".gone"}, false},
		{"client CA not PEM", web.TLS{CertFile: cert, KeyFile: key, ClientCAFile: key}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.settings.ServerConfig(nil)
			if tc.plain && (cfg != nil || err != nil) {
				t.Errorf("ServerConfig = %v, %v; want nil, nil (plain HTTP)", cfg, err)
			}
			if !tc.plain && err == nil {
				t.Errorf("ServerConfig = %v, nil; want an error", cfg)
			}
		})
	}
	if _, err := (web.TLS{CAFile: cert + ".gone"}).ClientConfig(nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ClientConfig with a missing CA file: err = %v, want not exist", err)
	}
}

// TestTLSClientCertificateOnEveryPath: with client certificates required,
// a client without one is refused, and a client with one is known to the
// handler on every request of a connection: those h1server serves itself
// (a GET), the one it hands to net/http (a chunked POST) and the ones
// net/http serves after it. The counters of WithMetrics say which server
// served which.
func TestTLSClientCertificateOnEveryPath(t *testing.T) {
	ca := webtest.NewPKI(t, "ca")
	clients := webtest.NewPKI(t, "clients")
	cert, key := ca.Issue("server", 10)
	clientCert, clientKey := clients.Issue("gateway-0", 20)
	for _, server := range []string{web.HTTP1Steward, web.HTTP1NetHTTP} {
		t.Run(server, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			addr := serveTLSWith(t, web.TLS{CertFile: cert, KeyFile: key, ClientCAFile: clients.Path("clients.pem")},
				slog.New(slog.DiscardHandler), web.Limits{HTTP1Server: server}, web.WithMetrics(reg))

			if body, _, err := get(t, web.TLS{CAFile: ca.Path("ca.pem")}, addr); err == nil {
				t.Errorf("GET without a certificate = %q, want an error", body)
			}

			cfg, err := web.TLS{CAFile: ca.Path("ca.pem"), CertFile: clientCert, KeyFile: clientKey}.ClientConfig(nil)
			if err != nil {
				t.Fatal(err)
			}
			c, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			reqs := []string{
				"GET /taken HTTP/1.1\r\nHost: x\r\n\r\n",
				"POST /handed-off HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
				"GET /after HTTP/1.1\r\nHost: x\r\n\r\n",
			}
			for i, a := range exchange(t, c, reqs...) {
				if a.body != "client gateway-0" {
					t.Errorf("%q answered %q, want %q", reqs[i], a.body, "client gateway-0")
				}
			}

			got := http1Counters(t, reg)
			want := map[string]float64{}
			if server == web.HTTP1Steward {
				want = map[string]float64{"steward_http1_requests_total": 1, `steward_http1_handoffs_total{reason="framing"}`: 1}
			}
			for series, n := range want {
				if got[series] != n {
					t.Errorf("%s = %v, want %v", series, got[series], n)
				}
			}
			if len(want) == 0 && len(got) != 0 {
				t.Errorf("with %s, the registry has %v, want no steward_http1_ series", server, got)
			}
		})
	}
}

// TestTLSHandshakeTimeout: a client that connects and does not finish
// its handshake (sends nothing, or part of a ClientHello) is cut after
// ReadHeaderTimeout, whichever server reads the listener; h1server logs
// it as net/http's own handshake does.
func TestTLSHandshakeTimeout(t *testing.T) {
	ca := webtest.NewPKI(t, "ca")
	cert, key := ca.Issue("server", 10)
	const timeout = 300 * time.Millisecond
	for _, server := range []string{web.HTTP1Steward, web.HTTP1NetHTTP} {
		for _, tc := range []struct{ name, send string }{
			{"silent", ""},
			{"half a ClientHello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"},
		} {
			t.Run(server+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				var logs webtest.Logs
				addr := serveTLSWith(t, web.TLS{CertFile: cert, KeyFile: key}, logs.Logger(), web.Limits{HTTP1Server: server, ReadHeaderTimeout: timeout})
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				start := time.Now()
				if _, err := io.WriteString(c, tc.send); err != nil {
					t.Fatal(err)
				}
				n, err := c.Read(make([]byte, 1))
				var ne net.Error
				if took := time.Since(start); n > 0 || errors.As(err, &ne) && ne.Timeout() || took < timeout*3/4 || took > 5*time.Second {
					t.Fatalf("the server closed the connection after %v (read %d bytes, %v), want after ReadHeaderTimeout (%v)", took, n, err, timeout)
				}
				if server != web.HTTP1Steward {
					return // net/http's server never sees the *tls.Conn under framedConn, and logs nothing
				}
				webtest.WaitFor(t, 5*time.Second, "the handshake's failure logged", func() bool {
					for _, rec := range logs.Records("") {
						if msg, _ := rec["msg"].(string); rec["level"] == "WARN" && strings.HasPrefix(msg, "http: TLS handshake error from ") && strings.HasSuffix(msg, "i/o timeout") {
							return true
						}
					}
					return false
				})
			})
		}
	}
}

package web_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web"
)

// pki is a throwaway CA that issues certificates into a directory.
type pki struct {
	t    *testing.T
	dir  string
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{t: t, dir: t.TempDir(), key: key, cert: cert}
	writePEM(t, p.path(name+".pem"), "CERTIFICATE", der)
	return p
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

// issue writes name.pem and name-key.pem, a certificate for 127.0.0.1
// good for server and client authentication, and returns their paths.
func (p *pki) issue(name string, serial int64) (cert, key string) {
	p.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &k.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		p.t.Fatal(err)
	}
	cert, key = p.path(name+".pem"), p.path(name+"-key.pem")
	writePEM(p.t, cert, "CERTIFICATE", der)
	writePEM(p.t, key, "PRIVATE KEY", kder)
	return cert, key
}

// writePEM replaces file at once, as a certificate renewal should.
func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

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
	go func() { served <- web.ServeTLS(ctx, ln, h, logger, time.Second, web.Limits{}, settings) }()
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
	ca := newPKI(t, "ca")
	cert, key := ca.issue("server", 10)
	addr := serveTLS(t, web.TLS{CertFile: cert, KeyFile: key}, slog.New(slog.DiscardHandler))

	body, serial, err := get(t, web.TLS{CAFile: ca.path("ca.pem")}, addr)
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
	ca := newPKI(t, "ca")
	clients := newPKI(t, "clients")
	cert, key := ca.issue("server", 10)
	clientCert, clientKey := clients.issue("gateway-0", 20)
	strangerCert, strangerKey := ca.issue("stranger", 30) // right name, wrong CA
	addr := serveTLS(t, web.TLS{CertFile: cert, KeyFile: key, ClientCAFile: clients.path("clients.pem")}, slog.New(slog.DiscardHandler))

	for _, tc := range []struct {
		name     string
		settings web.TLS
		want     string // body; "" means the request must fail
	}{
		{"no certificate", web.TLS{CAFile: ca.path("ca.pem")}, ""},
		{"certificate of another CA", web.TLS{CAFile: ca.path("ca.pem"), CertFile: strangerCert, KeyFile: strangerKey}, ""},
		{"certificate of the client CA", web.TLS{CAFile: ca.path("ca.pem"), CertFile: clientCert, KeyFile: clientKey}, "client gateway-0"},
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
	ca := newPKI(t, "ca")
	cert, key := ca.issue("server", 10)
	var logs syncBuffer
	addr := serveTLS(t, web.TLS{CertFile: cert, KeyFile: key}, slog.New(slog.NewTextHandler(&logs, nil)))
	client := web.TLS{CAFile: ca.path("ca.pem")}
	if _, serial, err := get(t, client, addr); err != nil || serial != "10" {
		t.Fatalf("first GET: serial %s, %v; want 10", serial, err)
	}

	// A key that does not match the certificate: the old pair stays,
	// with one warning however many handshakes look.
	other := newPKI(t, "other")
	_, wrongKey := other.issue("server", 11)
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
	ca.issue("server", 12)
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
	ca := newPKI(t, "ca")
	cert, key := ca.issue("server", 10)
	for _, tc := range []struct {
		name     string
		settings web.TLS
		plain    bool
	}{
		{"none", web.TLS{}, true},
		{"certificate without key", web.TLS{CertFile: cert}, false},
		{"client CA without certificate", web.TLS{ClientCAFile: ca.path("ca.pem")}, false},
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

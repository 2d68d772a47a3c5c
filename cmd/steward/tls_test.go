package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestDevServesTLS runs `steward dev` with STEWARD_TLS_CERT_FILE,
// STEWARD_TLS_KEY_FILE and STEWARD_TLS_CA_FILE (a CA and a certificate
// for 127.0.0.1 made here), and once more requiring client certificates
// (STEWARD_TLS_CLIENT_CA_FILE). Every role must then reach the others over
// HTTPS with its own clients: each registers itself in the registry as
// https, the scaler campaigns in the election service, the gateway follows
// the registry and the route documents and proxies /v1/kv to the config
// service over TLS. A client that does not trust the CA, or that has no
// certificate when one is required, is refused.
func TestDevServesTLS(t *testing.T) {
	ca := webtest.NewPKI(t, "ca")
	cert, key := ca.Issue("steward", 10)
	own := web.TLS{CAFile: ca.Path("ca.pem"), CertFile: cert, KeyFile: key}
	for _, tc := range []struct {
		name   string
		mutual bool
	}{
		{"server certificates", false},
		{"mutual TLS", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"STEWARD_TLS_CERT_FILE=" + own.CertFile, "STEWARD_TLS_KEY_FILE=" + own.KeyFile,
				"STEWARD_TLS_CA_FILE=" + own.CAFile}
			if tc.mutual {
				env = append(env, "STEWARD_TLS_CLIENT_CA_FILE="+own.CAFile)
			}
			d := startDev(t, env...)
			for _, u := range []string{d.config, d.registry, d.election, d.scaler, d.gateway} {
				if !strings.HasPrefix(u, "https://") {
					t.Fatalf("banner URL %s, want https://", u)
				}
			}
			hc := tlsClient(t, own)
			defer hc.CloseIdleConnections()
			waitReadyWith(t, hc, d.config+"/readyz", d.registry+"/readyz", d.election+"/readyz", d.scaler+"/readyz", d.gateway+"/readyz")

			// Every role registered itself over HTTPS, as https.
			for _, svc := range []string{"steward-config", "steward-registry", "steward-election", "steward-gateway", "steward-scaler"} {
				eventually(t, svc+" registered as https", func() error {
					var list []struct {
						Metadata map[string]string `json:"metadata"`
					}
					if err := getJSON(hc, d.registry+"/v1/services/"+svc+"/instances?status=passing", &list); err != nil {
						return err
					}
					if len(list) != 1 || list[0].Metadata["scheme"] != "https" {
						return errors.New("want one passing instance with metadata scheme https")
					}
					return nil
				})
			}
			// The scaler campaigned in the election service over HTTPS.
			eventually(t, "the scaler leads steward-scaler", func() error {
				return getJSON(hc, d.election+"/v1/elections/steward-scaler", &struct{}{})
			})

			// The gateway proxies /v1 to the config replica it found in
			// the registry, over TLS.
			eventually(t, "PUT through the gateway", func() error {
				return send(hc, http.MethodPut, d.gateway+"/v1/kv/tls/hello", `"world"`)
			})
			var got struct {
				Value json.RawMessage `json:"value"`
			}
			if err := getJSON(hc, d.gateway+"/v1/kv/tls/hello", &got); err != nil || string(got.Value) != `"world"` {
				t.Fatalf("GET /v1/kv/tls/hello through the gateway = %s, %v; want \"world\"", got.Value, err)
			}
			// The gateway follows the route documents over TLS.
			if err := send(hc, http.MethodPut, d.gateway+"/v1/kv/steward/gateway/routes/tls",
				`{"match":{"pathPrefix":"/tls/"},"service":"steward-config"}`); err != nil {
				t.Fatalf("PUT a route document: %v", err)
			}
			eventually(t, "the gateway applies the route document", func() error {
				var st struct {
					Routes []struct {
						Name string `json:"name"`
					} `json:"routes"`
				}
				if err := getJSON(hc, d.gateway+"/gateway/routes", &st); err != nil {
					return err
				}
				if len(st.Routes) != 1 || st.Routes[0].Name != "tls" {
					return errors.New("route tls not in force")
				}
				return nil
			})

			// A client that does not trust the CA is refused; with
			// client certificates required, one without is too.
			stranger := tlsClient(t, web.TLS{})
			_, err := stranger.Get(d.gateway + "/readyz")
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Errorf("GET through the gateway without the CA: %v, want an unknown authority error", err)
			}
			if tc.mutual {
				anonymous := tlsClient(t, web.TLS{CAFile: own.CAFile})
				if res, err := anonymous.Get(d.gateway + "/readyz"); err == nil {
					res.Body.Close()
					t.Errorf("GET through the gateway without a client certificate = %d, want a failed handshake", res.StatusCode)
				}
			}
		})
	}
}

// eventually retries check for 10 seconds, failing the test with its last
// error.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v after 10s", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getJSON GETs url and decodes a 200 answer into out.
func getJSON(hc *http.Client, url string, out any) error {
	return call(hc, http.MethodGet, url, "", out)
}

// send sends a JSON body and wants 200.
func send(hc *http.Client, method, url, body string) error {
	return call(hc, method, url, body, nil)
}

// call sends method to url with a JSON body (none if empty), wants 200
// and decodes the answer into out unless it is nil.
func call(hc *http.Client, method, url, body string, out any) error {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return errors.New(res.Status + ": " + string(b))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// tlsClient is a client with Steward's own client configuration for t
// (web.TLS.ClientConfig): trusting t.CAFile, presenting t.CertFile.
func tlsClient(t *testing.T, settings web.TLS) *http.Client {
	t.Helper()
	cfg, err := settings.ClientConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

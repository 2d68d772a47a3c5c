package sdk_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stewardhq/steward/sdk"
)

// TestNewTransportProxiesAsItsFallback: a request the fallback's Proxy
// names a proxy for reaches that proxy; the others go straight to the
// server.
func TestNewTransportProxiesAsItsFallback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "direct") }))
	t.Cleanup(srv.Close)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "via proxy to "+r.URL.String())
	}))
	t.Cleanup(proxy.Close)
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	fallback := &http.Transport{Proxy: func(r *http.Request) (*url.URL, error) {
		if r.URL.Path == "/proxied" {
			return proxyURL, nil
		}
		return nil, nil
	}}
	t.Cleanup(fallback.CloseIdleConnections)
	hc := &http.Client{Transport: sdk.NewTransport(fallback)}
	t.Cleanup(hc.CloseIdleConnections)
	for path, want := range map[string]string{"/proxied": "via proxy to " + srv.URL + "/proxied", "/direct": "direct"} {
		res, err := hc.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if string(body) != want {
			t.Errorf("GET %s = %q, want %q", path, body, want)
		}
	}
}

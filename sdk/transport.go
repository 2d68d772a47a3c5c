package sdk

import (
	"net/http"

	"github.com/stewardhq/steward/sdk/h1client"
)

// NewTransport returns the transport a Client calls Steward with unless
// WithHTTPClient or WithTLS gives it another: plain-HTTP endpoints over
// h1client (each exchange on the calling goroutine, keep-alive
// connections pooled per endpoint), and everything else, HTTPS and
// requests that HTTP_PROXY sends through a proxy, over fallback. A nil
// fallback is a clone of http.DefaultTransport.
//
// net/http's transport hands every request and answer between the caller
// and two goroutines of the connection's; this one does not. With 64
// callers and the config service in one process on 2 CPUs (make bench
// -only=config-rw, -http-client=sdk against net/http), linearizable GETs
// went from 23.4k-24.3k/s to 26.8k-28.0k/s.
func NewTransport(fallback http.RoundTripper) http.RoundTripper {
	if fallback == nil {
		fallback = http.DefaultTransport.(*http.Transport).Clone()
	}
	return h1client.New(h1client.Options{Fallback: fallback, Proxy: http.ProxyFromEnvironment})
}

// defaultHTTPClient is every Client's that was not given one.
var defaultHTTPClient = &http.Client{Transport: NewTransport(nil)}

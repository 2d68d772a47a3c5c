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
// Measured against net/http's transport under 64 concurrent callers (make
// bench, the config section), it spends less CPU per call: net/http hands
// every request and answer between the caller and two goroutines per
// connection, which on a loaded machine costs about as much as the
// exchange's system calls.
func NewTransport(fallback http.RoundTripper) http.RoundTripper {
	if fallback == nil {
		fallback = http.DefaultTransport.(*http.Transport).Clone()
	}
	return h1client.New(h1client.Options{Fallback: fallback, Proxy: http.ProxyFromEnvironment})
}

// defaultHTTPClient is every Client's that was not given one.
var defaultHTTPClient = &http.Client{Transport: NewTransport(nil)}

package sdk

import (
	"net/http"

	"github.com/stewardhq/steward/sdk/h1client"
)

// NewTransport returns the transport a Client calls Steward with unless
// WithHTTPClient or WithTLS gives it another: plain-HTTP endpoints over
// h1client (each exchange on the calling goroutine, keep-alive
// connections pooled per endpoint), and everything else, HTTPS and
// requests fallback's Proxy sends through a proxy, over fallback. A nil
// fallback is a clone of http.DefaultTransport, whose Proxy is HTTP_PROXY
// and the like; a fallback that is not an *http.Transport is taken to
// proxy as the environment says.
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
	proxy := http.ProxyFromEnvironment
	if t, ok := fallback.(*http.Transport); ok {
		proxy = t.Proxy
	}
	return h1client.New(h1client.Options{Fallback: fallback, Proxy: proxy})
}

// defaultHTTPClient is every Client's that was not given one.
var defaultHTTPClient = &http.Client{Transport: NewTransport(nil)}

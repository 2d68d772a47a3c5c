package web

import (
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/fault"
)

// PathParam returns the path parameter name of r's route, percent-decoded
// exactly once: the one rule for every name in a path (a key, a service,
// an instance id, an election, a scaler). Clients generated from an
// OpenAPI document escape a parameter (the key app/db/url goes as
// app%2Fdb%2Furl), people type it raw: both reach the same name, and
// app%252Fdb is the name app%2Fdb, as in Consul's KV API.
//
// chi matches a request on its escaped path (URL.RawPath) when it has
// one, so the parameter is then still escaped and is decoded here; a
// request without RawPath was matched on URL.Path, decoded already, and
// decoding it again would read the name a%2Fb as a/b. Handlers and the
// auth Needs both call this, so a rule on a name sees what the handler
// acts on.
func PathParam(r *http.Request, name string) (string, error) {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v, nil
	}
	s, err := url.PathUnescape(v)
	if err != nil { // net/url parsed the path already; kept for a handmade request
		return "", fault.New(fault.Invalid, "path parameter %q: %v", v, err)
	}
	return s, nil
}

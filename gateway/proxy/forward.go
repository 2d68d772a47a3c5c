package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// forward proxies a request that is not a protocol upgrade: what
// httputil.ReverseProxy does with the gateway's Rewrite, without its
// per-request copies. The request is the handler's own, so the outbound
// request shares its header map, edited in place, instead of a clone;
// the answer's header values go to the client as the upstream's reader
// made them instead of being copied one by one; the buffered copy runs
// without a flush timer unless the answer streams. The bytes on both
// connections are ReverseProxy's: the reference test holds forward to
// it. Upgrades (WebSocket) still go through ReverseProxy, which hijacks
// the connection.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, x *exchange, ctx context.Context) {
	h := r.Header
	if h == nil {
		h = http.Header{}
	}
	teTrailers := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	removeHopByHop(h)
	if teTrailers {
		h["Te"] = teTrailersValue
	}
	for _, k := range forwardingHeaders {
		delete(h, k)
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h["X-Forwarded-For"] = []string{ip}
	}
	h["X-Forwarded-Host"] = []string{r.Host}
	if r.TLS == nil {
		h["X-Forwarded-Proto"] = protoHTTP
	} else {
		h["X-Forwarded-Proto"] = protoHTTPS
	}
	if _, ok := h["User-Agent"]; !ok {
		// No User-Agent stays none: the transport adds no default.
		h["User-Agent"] = emptyValue
	}

	x.url = *r.URL
	p.addressUpstream(x.route, r.URL, &x.url, h)
	x.url.RawQuery = cleanQuery(x.url.RawQuery)

	x.trace.Got1xxResponse = x.got1xx
	out := r.WithContext(httptrace.WithClientTrace(ctx, &x.trace))
	out.URL, out.Header, out.Close = &x.url, h, false
	out.RequestURI = "" // a client request has none
	if r.ContentLength == 0 {
		out.Body = nil
	} else if out.Body != nil {
		// The transport closes the body it is given when it fails to
		// connect; the client's body is the server's to close.
		x.outBody = noCloseBody{out.Body}
		out.Body = &x.outBody
	}

	res, err := (*balancing)(p).RoundTrip(out)
	x.roundTripMu.Lock()
	x.roundTripDone = true
	x.roundTripMu.Unlock()
	if err != nil {
		p.proxyError(w, out, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Not asked for (an upgrade goes through ReverseProxy).
		_ = res.Body.Close()
		p.proxyError(w, out, errors.New("the upstream switched protocols it was not asked to"))
		return
	}

	removeHopByHop(res.Header)
	dst := w.Header()
	for k, vv := range res.Header {
		// The values are the answer's own, read into slices capped at
		// their length: shared, not copied.
		if prior, ok := dst[k]; ok {
			dst[k] = append(prior, vv...)
		} else {
			dst[k] = vv
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)

	if err := p.copyAnswer(w, res); err != nil {
		defer res.Body.Close()
		// The answer is cut: the client must see it cut, not complete
		// (the server closes the connection on this panic).
		panic(http.ErrAbortHandler)
	}
	_ = res.Body.Close() // now, to read the trailers

	if len(res.Trailer) > 0 {
		// A trailer forces chunking, also of a short answer the server
		// would otherwise send with a Content-Length.
		_ = http.NewResponseController(w).Flush()
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			for _, v := range vv {
				dst.Add(k, v)
			}
		}
		return
	}
	for k, vv := range res.Trailer {
		for _, v := range vv {
			dst.Add(http.TrailerPrefix+k, v)
		}
	}
}

// copyAnswer copies the answer's body to the client through the pooled
// buffer. An answer that streams (an event stream, or one of unknown
// length) is flushed at once and after every read, as ReverseProxy
// flushes it; any other is left to the server's buffering.
func (p *Proxy) copyAnswer(w http.ResponseWriter, res *http.Response) error {
	buf := p.buffers.Get()
	defer p.buffers.Put(buf)
	var flush func() error
	if res.ContentLength == -1 || isEventStream(res.Header["Content-Type"]) {
		flush = http.NewResponseController(w).Flush
		_ = flush() // the head, before the body's first bytes exist
	}
	for {
		n, rerr := res.Body.Read(buf)
		if rerr != nil && rerr != io.EOF && rerr != context.Canceled {
			p.cfg.Logger.Warn("reading the upstream's answer failed", "err", rerr)
		}
		if n > 0 {
			written, werr := w.Write(buf[:n])
			if werr != nil {
				return werr
			}
			if written != n {
				return io.ErrShortWrite
			}
			if flush != nil {
				_ = flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// got1xx passes an informational answer (103 Early Hints) on to the
// client while the transport waits for the final one; once the round
// trip returned, the client's header map is the final answer's.
func (x *exchange) got1xx(code int, header textproto.MIMEHeader) error {
	x.roundTripMu.Lock()
	defer x.roundTripMu.Unlock()
	if x.roundTripDone {
		return nil
	}
	h := x.rec.Header()
	for k, vv := range header {
		for _, v := range vv {
			h.Add(k, v)
		}
	}
	x.rec.WriteHeader(code)
	clear(h) // WriteHeader keeps a 1xx's header
	return nil
}

// forwardState is what forward keeps in the exchange, so that a request
// costs no allocations for it.
type forwardState struct {
	url           url.URL
	trace         httptrace.ClientTrace
	outBody       noCloseBody
	roundTripMu   sync.Mutex
	roundTripDone bool
}

// noCloseBody hides the client's body's Close from the transport.
type noCloseBody struct{ io.Reader }

func (noCloseBody) Close() error { return nil }

// Shared header values; each slice's length is its capacity, so that an
// append copies it.
var (
	teTrailersValue = []string{"trailers"}
	protoHTTP       = []string{"http"}
	protoHTTPS      = []string{"https"}
	emptyValue      = []string{""}
)

// forwardingHeaders are the client's claims about earlier hops, which the
// gateway replaces with its own (as ReverseProxy with a Rewrite does).
var forwardingHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// hopHeaders are RFC 9110's hop-by-hop headers, and the older ones
// ReverseProxy removes too.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopByHop deletes the headers the Connection header names and the
// hop-by-hop ones.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// isEventStream reports whether a Content-Type is text/event-stream,
// parameters aside.
func isEventStream(ct []string) bool {
	if len(ct) == 0 {
		return false
	}
	base, _, _ := strings.Cut(ct[0], ";")
	return strings.EqualFold(strings.TrimSpace(base), "text/event-stream")
}

// cleanQuery drops the query parameters net/url cannot parse (a ';', a
// bad escape), as ReverseProxy does; a query without them is unchanged.
func cleanQuery(q string) string {
	for i := 0; i < len(q); {
		switch q[i] {
		case ';':
			return reencode(q)
		case '%':
			if i+2 >= len(q) || !ishex(q[i+1]) || !ishex(q[i+2]) {
				return reencode(q)
			}
			i += 3
		default:
			i++
		}
	}
	if strings.Count(q, "&") >= maxQueryParams {
		return reencode(q)
	}
	return q
}

// maxQueryParams is net/url's default bound on a query's parameters.
const maxQueryParams = 10000

func reencode(q string) string {
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

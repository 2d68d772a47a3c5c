package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/gateway/balancer"
)

// onePool is one service's pool.
type onePool struct{ pool *balancer.Pool }

func (o onePool) Pool(context.Context, string) *balancer.Pool { return o.pool }
func (o onePool) Known(context.Context, string) bool          { return true }

// poolOf is a pool of one instance, the only one of every service.
func poolOf(inst balancer.Instance) onePool {
	pool := balancer.NewPool(balancer.Options{})
	pool.Update([]balancer.Instance{inst})
	return onePool{pool}
}

// startReferenceUpstream starts a referenceUpstream, closed when the test
// ends, and returns it with the instance that names it.
func startReferenceUpstream(t *testing.T) (*referenceUpstream, balancer.Instance) {
	up := &referenceUpstream{seen: map[string]string{}}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	portN, _ := strconv.Atoi(port)
	return up, balancer.Instance{ID: "up-0", Address: host, Port: portN}
}

// referenceUpstream answers by the last segment of the path and keeps,
// for each X-Case, the request as it arrived (httputil.DumpRequest, body
// and trailers included).
type referenceUpstream struct {
	mu   sync.Mutex
	seen map[string]string
}

func (u *referenceUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dump, err := httputil.DumpRequest(r, true)
	if err != nil {
		dump = []byte("dump failed: " + err.Error())
	}
	u.mu.Lock()
	u.seen[r.Header.Get("X-Case")] = string(dump) + fmt.Sprintf("\ntrailer: %v", r.Trailer)
	u.mu.Unlock()
	h := w.Header()
	switch r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:] {
	case "plain":
		h.Set("Content-Type", "text/plain")
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		_, _ = io.WriteString(w, "hello, world\n")
	case "hop":
		h.Set("Connection", "X-Private, close")
		h.Set("X-Private", "hop only")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("X-Public", "end to end")
		_, _ = io.WriteString(w, "hop")
	case "chunked":
		for i := range 3 {
			fmt.Fprintf(w, "part %d\n", i)
			w.(http.Flusher).Flush()
		}
	case "events":
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Content-Length", "22")
		_, _ = io.WriteString(w, "data: one\n\ndata: two\n\n")
	case "trailers":
		h.Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "body")
		h.Set("X-Sum", "42")
		h.Set(http.TrailerPrefix+"X-Late", "undeclared")
	case "early":
		h.Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		h.Del("Link")
		_, _ = io.WriteString(w, "after hints")
	case "nocontent":
		w.WriteHeader(http.StatusNoContent)
	case "notmodified":
		h.Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	case "error":
		http.Error(w, "upstream broke", http.StatusInternalServerError)
	case "cut":
		h.Set("Content-Length", "100")
		_, _ = io.WriteString(w, "only part")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	default:
		_, _ = io.WriteString(w, r.Method+" "+r.RequestURI)
	}
}

// TestForwardIsReverseProxy holds forward to httputil.ReverseProxy with
// the gateway's Rewrite, which it replaces: for each request, the
// upstream must receive the same request and the client the same bytes
// (but for the Date line).
func TestForwardIsReverseProxy(t *testing.T) {
	up, inst := startReferenceUpstream(t)

	proxies := map[string]*httptest.Server{}
	for _, name := range []string{"reference", "forward"} {
		px := New(Config{Pools: poolOf(inst), ID: "gw-ref", Registerer: prometheus.NewRegistry()})
		px.reference = name == "reference"
		srv := httptest.NewServer(px)
		defer srv.Close()
		proxies[name] = srv
	}

	const get = "GET %s HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\nX-Case: %s\r\n%s\r\n"
	cases := []struct{ name, request string }{
		{"plain", fmt.Sprintf(get, "/s/ref/plain?a=1&b=two", "plain", "User-Agent: curl/8\r\n")},
		{"no user agent", fmt.Sprintf(get, "/s/ref/echo", "no user agent", "")},
		{"forwarding claims", fmt.Sprintf(get, "/s/ref/echo", "forwarding claims",
			"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nForwarded: for=10.0.0.1\r\nVia: 1.1 edge\r\nX-Steward-Zone: z1\r\n")},
		{"hop by hop", fmt.Sprintf(get, "/s/ref/hop", "hop by hop",
			"Connection: X-Hop\r\nX-Hop: private\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nTe: trailers, deflate\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\n")},
		{"te without trailers", fmt.Sprintf(get, "/s/ref/echo", "te without trailers", "Te: deflate\r\n")},
		{"bad query", fmt.Sprintf(get, "/s/ref/echo?a=1;b=2&c=%zz&d=4", "bad query", "")},
		{"escaped path", fmt.Sprintf(get, "/s/ref/a%2Fb/echo?x=%2F", "escaped path", "")},
		{"chunked answer", fmt.Sprintf(get, "/s/ref/chunked", "chunked answer", "")},
		{"event stream", fmt.Sprintf(get, "/s/ref/events", "event stream", "Accept: text/event-stream\r\n")},
		{"trailers", fmt.Sprintf(get, "/s/ref/trailers", "trailers", "Te: trailers\r\n")},
		{"early hints", fmt.Sprintf(get, "/s/ref/early", "early hints", "")},
		{"no content", fmt.Sprintf(get, "/s/ref/nocontent", "no content", "")},
		{"not modified", fmt.Sprintf(get, "/s/ref/notmodified", "not modified", "If-None-Match: \"v1\"\r\n")},
		{"upstream error", fmt.Sprintf(get, "/s/ref/error", "upstream error", "")},
		{"cut answer", fmt.Sprintf(get, "/s/ref/cut", "cut answer", "")},
		{"head", "HEAD /s/ref/plain HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\nX-Case: head\r\n\r\n"},
		{"post", "POST /s/ref/echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\nX-Case: post\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"a\":\"hello\"}"},
		{"chunked post with trailer", "POST /s/ref/echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\nX-Case: chunked post with trailer\r\nTransfer-Encoding: chunked\r\nTrailer: X-Check\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Check: 7\r\n\r\n"},
		{"empty post", "POST /s/ref/echo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\nX-Case: empty post\r\nContent-Length: 0\r\n\r\n"},
		{"ipv6 host", fmt.Sprintf("GET /s/ref/echo HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\nX-Case: %s\r\n\r\n", "ipv6 host")},
	}
	date := regexp.MustCompile(`(?m)^Date: .*\r\n`)
	id := regexp.MustCompile(`[0-9a-f]{32}`) // a request ID the gateway made
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			answers, seen := map[string]string{}, map[string]string{}
			for name, srv := range proxies {
				answer := exchangeRaw(t, srv.Listener.Addr().String(), c.request)
				answers[name] = dechunk(t, id.ReplaceAllString(date.ReplaceAllString(answer, "Date: -\r\n"), "id"))
				up.mu.Lock()
				seen[name] = up.seen[caseOf(c.request)]
				delete(up.seen, caseOf(c.request))
				up.mu.Unlock()
			}
			if answers["forward"] != answers["reference"] {
				t.Errorf("the client got\n%q\nfrom forward, and from ReverseProxy\n%q", answers["forward"], answers["reference"])
			}
			if seen["forward"] != seen["reference"] {
				t.Errorf("the upstream got\n%q\nfrom forward, and from ReverseProxy\n%q", seen["forward"], seen["reference"])
			}
			if answers["forward"] == "" && c.name != "cut answer" {
				t.Errorf("no answer")
			}
			t.Logf("answer:\n%s\nupstream saw:\n%s", answers["forward"], seen["forward"])
		})
	}
}

// dechunk writes a chunked answer's body as one piece: where a streamed
// answer's chunks end is where the proxy's reads of the upstream ended,
// which timing decides, for forward and ReverseProxy alike. The head, the
// bytes of the body and the trailers stay as they came.
func dechunk(t *testing.T, answer string) string {
	t.Helper()
	head, rest, ok := strings.Cut(answer, "\r\n\r\n")
	if !ok || !strings.Contains(head, "\r\nTransfer-Encoding: chunked") {
		return answer
	}
	br := bufio.NewReader(strings.NewReader(rest))
	body, err := io.ReadAll(httputil.NewChunkedReader(br))
	if err != nil {
		t.Fatalf("the chunked answer %q: %v", answer, err)
	}
	trailers, _ := io.ReadAll(br)
	return head + "\r\n\r\n[body, chunks joined] " + string(body) + "[trailers] " + string(trailers)
}

func caseOf(request string) string {
	_, rest, _ := strings.Cut(request, "X-Case: ")
	name, _, _ := strings.Cut(rest, "\r\n")
	return name
}

// exchangeRaw writes request on a new connection and reads until the
// server closes it.
func exchangeRaw(t *testing.T, addr, request string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading the answer: %v (read %q)", err, b)
	}
	return string(b)
}

// TestEarlyHintsCountTheFinalStatus: a 103 passed on before the answer
// is not the answer's status in steward_gateway_requests_total.
func TestEarlyHintsCountTheFinalStatus(t *testing.T) {
	_, inst := startReferenceUpstream(t)
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(New(Config{Pools: poolOf(inst), ID: "gw-hints", Registerer: reg}))
	defer srv.Close()

	answer := exchangeRaw(t, srv.Listener.Addr().String(), "GET /s/ref/early HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(answer, "HTTP/1.1 103 ") || !strings.Contains(answer, "HTTP/1.1 200 OK") {
		t.Fatalf("answer %q, want a 103 and then a 200", answer)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, f := range families {
		if f.GetName() != "steward_gateway_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					codes = append(codes, fmt.Sprintf("%s=%g", l.GetValue(), m.GetCounter().GetValue()))
				}
			}
		}
	}
	if len(codes) != 1 || codes[0] != "200=1" {
		t.Fatalf("requests by code %v, want [200=1]", codes)
	}
}

// Package openapitest checks a service against its OpenAPI document in
// end-to-end tests. A Contract's Transport validates every exchange the
// tests make, requests and responses (status, headers, body) with
// kin-openapi, and every event of a text/event-stream as it is read; a
// request the document calls invalid must have been refused with a 4xx.
// Coverage says, for all servers or some, which documented operations and
// responses no exchange produced. RoutesGolden pins a chi router's routes
// in a golden file and requires them to equal the document's operations.
package openapitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/go-chi/chi/v5"
)

// Contract is a loaded document and what was checked against it.
type Contract struct {
	Doc    *openapi3.T
	router routers.Router

	// Route, if set, finds the operation for a request instead of the
	// document's own router (FindRoute), e.g. for a path parameter that
	// spans segments, which OpenAPI templating cannot express.
	Route func(req *http.Request) (*routers.Route, map[string]string, error)
	// Event checks one server-sent event of a stream: its type, its id
	// line ("" when it has none) and its data. Nil accepts every event.
	Event func(event, id, data string) error
	// StreamEvents, if set, makes the event check of one stream from the
	// request that opened it, in the place of Event: for checks that
	// depend on the request (its path, its query) or on the stream's
	// earlier events.
	StreamEvents func(req *http.Request) func(event, id, data string) error

	mu       sync.Mutex
	servers  map[string]*server  // what was validated, by server (host:port)
	failures map[string][]string // stream events that failed, by server
}

// server is what was validated of the exchanges with one server.
type server struct {
	exchanges, events int64
	seen              map[string]bool // "METHOD /template STATUS"
}

// server returns host's record; c.mu is held.
func (c *Contract) server(host string) *server {
	s := c.servers[host]
	if s == nil {
		s = &server{seen: map[string]bool{}}
		c.servers[host] = s
	}
	return s
}

// Load reads and validates the document at path.
func Load(path string) (*Contract, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI document: %w", path, err)
	}
	// The document's servers name where steward dev listens; a test's
	// servers listen on :0, so operations are found by path alone.
	routed := *doc
	routed.Servers = nil
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		return nil, err
	}
	return &Contract{Doc: doc, router: router, servers: map[string]*server{}, failures: map[string][]string{}}, nil
}

// FindRoute finds the operation for req with the document's paths.
func (c *Contract) FindRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	return c.router.FindRoute(req)
}

// RestOfPath returns a Route that finds template's operations, e.g.
// /v1/kv/{key}, for every path under its fixed part (/v1/kv/) with param
// the whole rest of the path, segments and all, which OpenAPI path
// templating cannot express; other paths go to FindRoute.
func (c *Contract) RestOfPath(template, param string) func(*http.Request) (*routers.Route, map[string]string, error) {
	prefix := strings.TrimSuffix(template, "{"+param+"}")
	item := c.Doc.Paths.Value(template)
	return func(req *http.Request) (*routers.Route, map[string]string, error) {
		rest, ok := strings.CutPrefix(req.URL.Path, prefix)
		if !ok || item == nil {
			return c.FindRoute(req)
		}
		op := item.GetOperation(req.Method)
		if op == nil {
			return nil, nil, routers.ErrMethodNotAllowed
		}
		return &routers.Route{Spec: c.Doc, Path: template, PathItem: item, Method: req.Method, Operation: op},
			map[string]string{param: rest}, nil
	}
}

// fallback is the operation for a request no operation matches: the
// document's response named response, with status.
func (c *Contract) fallback(req *http.Request, status, response string) *routers.Route {
	responses := openapi3.NewResponses()
	responses.Delete("default")
	responses.Set(status, &openapi3.ResponseRef{Value: c.Doc.Components.Responses[response].Value})
	return &routers.Route{Spec: c.Doc, Path: req.URL.Path, Method: req.Method,
		Operation: &openapi3.Operation{Responses: responses}, PathItem: &openapi3.PathItem{}}
}

// Check validates one exchange; body is nil for a stream, whose status and
// headers are checked here and its events as they are read (Stream). A
// request matching no operation must be answered as the document's
// components/responses MethodNotAllowed (405, known path) or NoRoute (404)
// say. strict: a request the document calls invalid must have been
// refused with a 4xx.
func (c *Contract) Check(req *http.Request, reqBody []byte, res *http.Response, body []byte, strict bool) error {
	ctx := context.Background()
	vreq := req.Clone(ctx)
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	vreq.ContentLength = int64(len(reqBody))
	if len(reqBody) > 0 && vreq.Header.Get("Content-Type") == "" {
		vreq.Header.Set("Content-Type", "application/json") // services read an unlabelled body as JSON
	}
	find := c.Route
	if find == nil {
		find = c.FindRoute
	}
	route, params, err := find(vreq)
	// The router matches the escaped path and hands the parameters over
	// still escaped; a service decodes each once (web.PathParam), so the
	// document's schema is for the decoded value.
	for k, v := range params {
		if d, err := url.PathUnescape(v); err == nil {
			params[k] = d
		}
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{SkipSettingDefaults: true, MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	template, want := "", 0
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed):
		in.Route, template, want = c.fallback(vreq, "405", "MethodNotAllowed"), "(method not allowed)", 405
	case errors.Is(err, routers.ErrPathNotFound):
		in.Route, template, want = c.fallback(vreq, "404", "NoRoute"), "(no route)", 404
	case err != nil:
		return fmt.Errorf("openapi: find route for %s %s: %w", req.Method, req.URL, err)
	default:
		template = route.Path
		if verr := openapi3filter.ValidateRequest(ctx, in); strict && verr != nil && (res.StatusCode < 400 || res.StatusCode >= 500) {
			return fmt.Errorf("openapi: %s %s is invalid per the document (%v) but was answered %d", req.Method, req.URL, verr, res.StatusCode)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: body == nil, MultiError: true}}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("openapi: response to %s %s (%d %s) does not match the document: %w\nbody: %.500s",
			req.Method, req.URL, res.StatusCode, res.Header.Get("Content-Type"), err, body)
	}
	if want != 0 && res.StatusCode != want {
		return fmt.Errorf("openapi: %s %s matches no operation of the document but was answered %d", req.Method, req.URL, res.StatusCode)
	}
	c.mu.Lock()
	s := c.server(req.URL.Host)
	s.exchanges++
	s.seen[fmt.Sprintf("%s %s %d", req.Method, template, res.StatusCode)] = true
	c.mu.Unlock()
	return nil
}

// Transport returns a RoundTripper that sends requests with base and
// validates every exchange (Check); a mismatch is the request's error.
// Its CloseIdleConnections closes base's, so that an http.Client's does.
func (c *Contract) Transport(base http.RoundTripper, strict bool) http.RoundTripper {
	return &transport{c: c, base: base, strict: strict}
}

type transport struct {
	c      *Contract
	base   http.RoundTripper
	strict bool
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	send := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		send.Body = io.NopCloser(bytes.NewReader(b))
		send.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	res, err := t.base.RoundTrip(send)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusOK && strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		if err := t.c.Check(req, reqBody, res, nil, t.strict); err != nil {
			res.Body.Close()
			return nil, err
		}
		res.Body = t.c.StreamFor(req, res.Body)
		return res, nil
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err := t.c.Check(req, reqBody, res, body, t.strict); err != nil {
		return nil, err
	}
	return res, nil
}

func (t *transport) CloseIdleConnections() {
	if b, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		b.CloseIdleConnections()
	}
}

// Stream passes an event stream from host through and checks each event
// (Event) as it is read; the first failure is also the reader's error and
// is recorded for ExpectValidated.
func (c *Contract) Stream(host string, body io.ReadCloser) io.ReadCloser {
	return &stream{ReadCloser: body, c: c, host: host, check: c.Event}
}

// StreamFor is Stream for the stream req opened: its events are checked
// with StreamEvents(req), or Event when StreamEvents is nil.
func (c *Contract) StreamFor(req *http.Request, body io.ReadCloser) io.ReadCloser {
	check := c.Event
	if c.StreamEvents != nil {
		check = c.StreamEvents(req)
	}
	return &stream{ReadCloser: body, c: c, host: req.URL.Host, check: check}
}

type stream struct {
	io.ReadCloser
	c               *Contract
	host            string
	check           func(event, id, data string) error
	line            []byte
	id, event, data string
	fields          bool
	err             error
}

func (s *stream) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	for _, b := range p[:n] {
		if b != '\n' {
			s.line = append(s.line, b)
			continue
		}
		s.field(string(s.line))
		s.line = s.line[:0]
	}
	if s.err != nil { // even over io.EOF, which may come with the failing event's last bytes
		err = s.err
	}
	return n, err
}

func (s *stream) field(line string) {
	var err error
	switch {
	case line == "":
		if s.fields {
			if s.check != nil {
				err = s.check(s.event, s.id, s.data)
			}
			if err == nil {
				s.c.mu.Lock()
				s.c.server(s.host).events++
				s.c.mu.Unlock()
			}
		}
		s.id, s.event, s.data, s.fields = "", "", "", false
	case strings.HasPrefix(line, ":"):
	case strings.HasPrefix(line, "id: "):
		s.id, s.fields = line[4:], true
	case strings.HasPrefix(line, "event: "):
		s.event, s.fields = line[7:], true
	case strings.HasPrefix(line, "data: "):
		s.data, s.fields = line[6:], true
	default:
		err = fmt.Errorf("openapi: stream line %q is not a comment, id, event or data field", line)
	}
	if err != nil && s.err == nil {
		s.err = err
		s.c.mu.Lock()
		s.c.failures[s.host] = append(s.c.failures[s.host], err.Error())
		s.c.mu.Unlock()
	}
}

// VisitSchema checks v (decoded JSON) against the document's schema name,
// as a response.
func (c *Contract) VisitSchema(name string, v any) error {
	ref := c.Doc.Components.Schemas[name]
	if ref == nil {
		return fmt.Errorf("openapi: no schema %s", name)
	}
	return ref.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors())
}

// Validated is how many exchanges passed; Events how many stream events.
func (c *Contract) Validated() int64 { return c.Coverage().Validated }

// Events is how many stream events passed.
func (c *Contract) Events() int64 { return c.Coverage().Events }

// Failures returns the stream events from host that failed, and forgets them.
func (c *Contract) Failures(host string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.failures[host]
	delete(c.failures, host)
	return f
}

// ExpectValidated fails t at its end if no exchange with the server at
// host was validated, or if an event of one of its streams failed.
func (c *Contract) ExpectValidated(t testing.TB, host string) {
	t.Cleanup(func() {
		for _, f := range c.Failures(host) {
			t.Error(f)
		}
		if c.Coverage(host).Validated == 0 {
			t.Errorf("no exchange with %s was validated against the OpenAPI document", host)
		}
	})
}

// Unexercised lists the documented responses (METHOD /path STATUS) no
// exchange produced.
func (c *Contract) Unexercised() []string { return c.Coverage().Unexercised }

// Coverage is what the exchanges with some servers covered.
type Coverage struct {
	Validated, Events int64    // exchanges and stream events that passed
	Responses         int      // documented responses
	Unexercised       []string // documented responses no exchange produced: "METHOD /path STATUS", sorted
	UnexercisedOps    []string // operations none of whose documented responses was produced: "METHOD /path", sorted
}

// Coverage reports on the exchanges with the servers at hosts, or with
// every server when there are none: a test that must exercise the whole
// document on its own servers is not helped by other tests' exchanges.
func (c *Contract) Coverage(hosts ...string) Coverage {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(hosts) == 0 {
		for h := range c.servers {
			hosts = append(hosts, h)
		}
	}
	var cov Coverage
	seen := map[string]bool{}
	for _, h := range hosts {
		s := c.servers[h]
		if s == nil {
			continue
		}
		cov.Validated += s.exchanges
		cov.Events += s.events
		for k := range s.seen {
			seen[k] = true
		}
	}
	for path, item := range c.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			exercised := false
			for status := range op.Responses.Map() {
				cov.Responses++
				if k := fmt.Sprintf("%s %s %s", method, path, status); seen[k] {
					exercised = true
				} else {
					cov.Unexercised = append(cov.Unexercised, k)
				}
			}
			if !exercised {
				cov.UnexercisedOps = append(cov.UnexercisedOps, method+" "+path)
			}
		}
	}
	sort.Strings(cov.Unexercised)
	sort.Strings(cov.UnexercisedOps)
	return cov
}

// RoutesGolden compares h's routes ("METHOD PATTERN", sorted; h must be a
// chi router) with the golden file, rewriting it first when update is set,
// and requires every route to be an operation of the document and every
// operation a route. docPath maps a chi pattern to the document's path
// template (nil: the same).
func (c *Contract) RoutesGolden(t *testing.T, h http.Handler, golden string, update bool, docPath func(pattern string) string) {
	t.Helper()
	routes, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("the handler is a %T, not a chi.Routes", h)
	}
	var lines []string
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		lines = append(lines, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	got := strings.Join(lines, "\n") + "\n"
	if update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if got != string(want) {
		t.Fatalf("routes changed; update the OpenAPI document, then go test -run %s -update\ngot:\n%s\nwant:\n%s", t.Name(), got, want)
	}
	if docPath == nil {
		docPath = func(p string) string { return p }
	}
	inGolden := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(want))
	for sc.Scan() {
		method, pattern, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("bad golden line %q", sc.Text())
		}
		path := docPath(pattern)
		inGolden[method+" "+path] = true
		if item := c.Doc.Paths.Value(path); item == nil || item.GetOperation(method) == nil {
			t.Errorf("route %s %s is not in the document as %s %s", method, pattern, method, path)
		}
	}
	for path, item := range c.Doc.Paths.Map() {
		for method := range item.Operations() {
			if !inGolden[method+" "+path] {
				t.Errorf("the document has %s %s, which the router does not serve", method, path)
			}
		}
	}
}

// EventSchemas returns an Event check for a watch whose event types each
// carry one schema's data (schemas maps the type to the schema's name):
// an id, when there is one, is a revision (a positive integer); shutdown
// carries {}; a type not in schemas is undocumented.
func (c *Contract) EventSchemas(schemas map[string]string) func(event, id, data string) error {
	return func(event, id, data string) error {
		if id != "" {
			if rev, err := strconv.ParseInt(id, 10, 64); err != nil || rev < 1 {
				return fmt.Errorf("openapi: event %q has id %q, want a revision", event, id)
			}
		}
		if event == "shutdown" {
			if data != "{}" {
				return fmt.Errorf("openapi: shutdown event data %q, want {}", data)
			}
			return nil
		}
		schema, ok := schemas[event]
		if !ok {
			return fmt.Errorf("openapi: undocumented watch event %q", event)
		}
		var v any
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return fmt.Errorf("openapi: event %q data %q is not JSON: %v", event, data, err)
		}
		if err := c.VisitSchema(schema, v); err != nil {
			return fmt.Errorf("openapi: event %q data does not match %s: %v\ndata: %s", event, schema, err, data)
		}
		return nil
	}
}

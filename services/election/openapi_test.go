package election_test

// This file checks api/openapi.json against the service as implemented:
// every exchange of the end-to-end tests goes through a transport that
// validates the request and the response with kin-openapi (status,
// headers, body; for a watch, every event as it is read), and the chi
// route list is pinned in testdata/routes.golden (go test -update
// rewrites it) and must equal the document's operations.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/services/election"
)

var update = flag.Bool("update", false, "rewrite testdata/routes.golden from the router")

// contract is api/openapi.json, loaded once, and what was checked against it.
type contract struct {
	doc    *openapi3.T
	router routers.Router

	validated atomic.Int64 // exchanges
	events    atomic.Int64 // server-sent events

	mu       sync.Mutex
	failures []string // stream events that did not validate
	seen     map[string]bool
}

func loadContract() (*contract, error) {
	openapi3filter.RegisterBodyDecoder("application/problem+json", openapi3filter.JSONBodyDecoder)
	data, err := os.ReadFile("api/openapi.json")
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.json: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("api/openapi.json is not a valid OpenAPI document: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &contract{doc: doc, router: router, seen: map[string]bool{}}, nil
}

// fallback is the operation for a request no operation matches: the
// document promises 405 for a known path and 404 for any other.
func (c *contract) fallback(req *http.Request, status, response string) *routers.Route {
	responses := openapi3.NewResponses()
	responses.Delete("default")
	responses.Set(status, &openapi3.ResponseRef{Value: c.doc.Components.Responses[response].Value})
	return &routers.Route{Spec: c.doc, Path: req.URL.Path, Method: req.Method,
		Operation: &openapi3.Operation{Responses: responses}, PathItem: &openapi3.PathItem{}}
}

// check validates one exchange; body is nil for a stream, whose events
// are checked as they are read. strict: a request the document calls
// invalid must have been refused with a 4xx.
func (c *contract) check(req *http.Request, reqBody []byte, res *http.Response, body []byte, strict bool) error {
	ctx := context.Background()
	vreq := req.Clone(ctx)
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	if len(reqBody) > 0 && vreq.Header.Get("Content-Type") == "" {
		vreq.Header.Set("Content-Type", "application/json") // the service reads an unlabelled body as JSON
	}
	route, params, err := c.router.FindRoute(vreq)
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{SkipSettingDefaults: true, MultiError: true}}
	template, want := "", 0
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed):
		in.Route, template, want = c.fallback(vreq, "405", "MethodNotAllowed"), "(method not allowed)", 405
	case errors.Is(err, routers.ErrPathNotFound):
		in.Route, template, want = c.fallback(vreq, "404", "NoRoute"), "(no route)", 404
	case err != nil:
		return fmt.Errorf("openapi: route %s %s: %w", req.Method, req.URL, err)
	default:
		template = route.Path
		if verr := openapi3filter.ValidateRequest(ctx, in); strict && verr != nil && (res.StatusCode < 400 || res.StatusCode >= 500) {
			return fmt.Errorf("openapi: %s %s is invalid per the document (%v) but was answered %d", req.Method, req.URL, verr, res.StatusCode)
		}
	}
	if want != 0 && res.StatusCode != want {
		return fmt.Errorf("openapi: %s %s matches no operation but was answered %d", req.Method, req.URL, res.StatusCode)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: body == nil, MultiError: true}}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("openapi: response to %s %s (%d) does not match the document: %w\nbody: %.500s", req.Method, req.URL, res.StatusCode, err, body)
	}
	c.validated.Add(1)
	c.mu.Lock()
	c.seen[fmt.Sprintf("%s %s %d", req.Method, template, res.StatusCode)] = true
	c.mu.Unlock()
	return nil
}

// transport validates every exchange it carries.
type transport struct {
	c      *contract
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
	}
	res, err := t.base.RoundTrip(send)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusOK && strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		if err := t.c.check(req, reqBody, res, nil, t.strict); err != nil {
			res.Body.Close()
			return nil, err
		}
		res.Body = &eventChecker{ReadCloser: res.Body, c: t.c}
		return res, nil
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err := t.c.check(req, reqBody, res, body, t.strict); err != nil {
		return nil, err
	}
	return res, nil
}

// eventChecker validates each event of a watch stream as it passes: its
// data against the schema of its type, and any id as a revision.
type eventChecker struct {
	io.ReadCloser
	c                *contract
	line             []byte
	id, event, data  string
	hasID, hasFields bool
	err              error
}

func (e *eventChecker) Read(p []byte) (int, error) {
	n, err := e.ReadCloser.Read(p)
	for _, b := range p[:n] {
		if b != '\n' {
			e.line = append(e.line, b)
			continue
		}
		e.field(string(e.line))
		e.line = e.line[:0]
	}
	if e.err != nil && err == nil {
		err = e.err
	}
	return n, err
}

func (e *eventChecker) field(line string) {
	var err error
	switch {
	case line == "":
		if e.hasFields {
			err = e.validate()
		}
		e.id, e.event, e.data, e.hasID, e.hasFields = "", "", "", false, false
	case strings.HasPrefix(line, ":"):
	case strings.HasPrefix(line, "id: "):
		e.id, e.hasID, e.hasFields = line[4:], true, true
	case strings.HasPrefix(line, "event: "):
		e.event, e.hasFields = line[7:], true
	case strings.HasPrefix(line, "data: "):
		e.data, e.hasFields = line[6:], true
	default:
		err = fmt.Errorf("openapi: watch line %q is not a comment, id, event or data field", line)
	}
	if err != nil && e.err == nil {
		e.err = err
		e.c.mu.Lock()
		e.c.failures = append(e.c.failures, err.Error())
		e.c.mu.Unlock()
	}
}

func (e *eventChecker) validate() error {
	if e.hasID {
		if rev, err := strconv.ParseInt(e.id, 10, 64); err != nil || rev < 1 {
			return fmt.Errorf("openapi: event %q has id %q, want a revision", e.event, e.id)
		}
	}
	schemas := e.c.doc.Components.Schemas
	var schema *openapi3.Schema
	switch e.event {
	case "current", "elected", "resigned", "expired":
		schema = schemas["Leadership"].Value
	case "vacant":
		schema = schemas["Vacant"].Value
	case "error":
		schema = schemas["WatchErrorData"].Value
	case "shutdown":
		if e.data != "{}" {
			return fmt.Errorf("openapi: shutdown event data %q, want {}", e.data)
		}
		e.c.events.Add(1)
		return nil
	default:
		return fmt.Errorf("openapi: undocumented watch event %q", e.event)
	}
	var v any
	if err := json.Unmarshal([]byte(e.data), &v); err != nil {
		return fmt.Errorf("openapi: event %q data %q is not JSON: %v", e.event, e.data, err)
	}
	if err := schema.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("openapi: event %q data does not match the document: %v\ndata: %s", e.event, err, e.data)
	}
	e.c.events.Add(1)
	return nil
}

// unexercised lists documented responses no test produced.
func (c *contract) unexercised() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if k := fmt.Sprintf("%s %s %s", method, path, status); !c.seen[k] {
					out = append(out, k)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func routeLines(t *testing.T) []string {
	t.Helper()
	routes, ok := election.NewServer(nil, nil, nil).(chi.Routes)
	if !ok {
		t.Fatal("NewServer does not return a chi.Routes")
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
	return lines
}

func TestRoutesGolden(t *testing.T) {
	got := strings.Join(routeLines(t), "\n") + "\n"
	const golden = "testdata/routes.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run TestRoutesGolden -update creates it)", err)
	}
	if got != string(want) {
		t.Fatalf("routes changed; update api/openapi.json, then go test -run TestRoutesGolden -update\ngot:\n%s\nwant:\n%s", got, want)
	}
	doc := contractDoc.doc
	inGolden := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(want))
	for sc.Scan() {
		method, path, _ := strings.Cut(sc.Text(), " ")
		inGolden[method+" "+path] = true
		if item := doc.Paths.Value(path); item == nil || item.GetOperation(method) == nil {
			t.Errorf("route %s %s is not in api/openapi.json", method, path)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !inGolden[method+" "+path] {
				t.Errorf("api/openapi.json documents %s %s, which the router does not serve", method, path)
			}
		}
	}
}

// TestContractRejects shows the validator is not vacuous.
func TestContractRejects(t *testing.T) {
	c := contractDoc
	mk := func(method, url string, status int, ctype string) (*http.Request, *http.Response) {
		req, _ := http.NewRequest(method, "http://example.test"+url, nil)
		h := http.Header{}
		h.Set("Content-Type", ctype)
		h.Set("X-Steward-Revision", "7")
		h.Set("X-Request-Id", "r1")
		h.Set("X-Content-Type-Options", "nosniff")
		return req, &http.Response{StatusCode: status, Header: h}
	}
	good := `{"name":"a","leader":"c1","term":1,"token":5,"ttl":"2s","expiresAt":"2030-01-01T00:00:02Z","queue":0}`
	req, res := mk("GET", "/v1/elections/a", 200, "application/json")
	if err := c.check(req, nil, res, []byte(good), true); err != nil {
		t.Fatalf("a valid exchange was refused: %v", err)
	}
	for name, body := range map[string]string{
		"token 0":         strings.Replace(good, `"token":5`, `"token":0`, 1),
		"unknown field":   strings.Replace(good, `"queue":0`, `"queue":0,"x":1`, 1),
		"missing leader":  strings.Replace(good, `"leader":"c1",`, ``, 1),
		"name with slash": strings.Replace(good, `"name":"a"`, `"name":"a/b"`, 1),
	} {
		req, res := mk("GET", "/v1/elections/a", 200, "application/json")
		if err := c.check(req, nil, res, []byte(body), true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	req, res = mk("GET", "/v1/elections/a", 418, "application/problem+json")
	if err := c.check(req, nil, res, []byte(`{"type":"urn:steward:problem:invalid","title":"x","status":418,"instance":"/","requestId":"r1"}`), true); err == nil {
		t.Error("an undocumented status was accepted")
	}
	req, res = mk("POST", "/v1/elections/a/renew", 200, "application/json")
	if err := c.check(req, []byte(`{"candidate":"c1","token":0}`), res, []byte(good), true); err == nil {
		t.Error("an invalid request answered 200 was accepted")
	}
	e := &eventChecker{ReadCloser: io.NopCloser(strings.NewReader("id: 3\nevent: elected\ndata: {\"name\":\"a\"}\n\n")), c: c}
	if _, err := io.ReadAll(e); err == nil {
		t.Error("an elected event without a leadership was accepted")
	}
	c.mu.Lock()
	c.failures = nil
	c.mu.Unlock()
}

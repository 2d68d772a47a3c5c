package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		running bool
		want    int
	}{
		{"cobra's parsing", errors.New("unknown flag: --x"), false, exitUsage},
		{"a usage error of a command", usagef("no value"), true, exitUsage},
		{"not found", &sdk.Error{Status: 404}, true, exitNotFound},
		{"not found, wrapped", fmt.Errorf("reading: %w", &sdk.Error{Status: 404}), true, exitNotFound},
		{"precondition failed", &sdk.Error{Status: 412}, true, exitPreconditionFailed},
		{"conflict", &sdk.Error{Status: 409}, true, exitError},
		{"no answer", errors.New("connection refused"), true, exitError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err, tc.running); got != tc.want {
				t.Errorf("exitCode(%v, %v) = %d, want %d", tc.err, tc.running, got, tc.want)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&sdk.Error{Status: 404, Title: "Not Found", Detail: "key /a not found"}, "key /a not found"},
		{&sdk.Error{Status: 503, Title: "Service Unavailable"}, "Service Unavailable"},
		{&sdk.Error{Status: 502}, "status 502"},
		{errors.New("dial tcp: refused"), "dial tcp: refused"},
	} {
		if got := message(tc.err); got != tc.want {
			t.Errorf("message(%#v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestNamedDocument(t *testing.T) {
	for _, tc := range []struct {
		name, doc, spec string
		wantName        string
		wantDoc         string
	}{
		{"a name beside the fields", `{"name":"web","service":"web"}`, "spec", "web", `{"service":"web"}`},
		{"no name", `{"service":"web"}`, "spec", "", `{"service":"web"}`},
		{"what get printed", `{"name":"web","spec":{"service":"web"},"status":{}}`, "spec", "web", `{"service":"web"}`},
		{"a route has no spec field", `{"name":"api","match":{"pathPrefix":"/"}}`, "", "api", `{"match":{"pathPrefix":"/"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, doc, err := namedDocument([]byte(tc.doc), tc.spec)
			if err != nil || name != tc.wantName || string(doc) != tc.wantDoc {
				t.Errorf("namedDocument(%s) = %q, %s, %v; want %q, %s", tc.doc, name, doc, err, tc.wantName, tc.wantDoc)
			}
		})
	}
	if _, _, err := namedDocument([]byte(`[1]`), "spec"); err == nil {
		t.Errorf("namedDocument of an array: no error")
	}
	if _, _, err := namedDocument([]byte(`{"name": 1}`), "spec"); err == nil {
		t.Errorf("namedDocument with a numeric name: no error")
	}
}

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want api.AuthRule
		ok   bool
	}{
		{"kv:/app/:read", api.AuthRule{Resource: "kv", Prefix: "/app/", Access: "read"}, true},
		{"scalers::write", api.AuthRule{Resource: "scalers", Prefix: "", Access: "write"}, true},
		{"kv:a:b:write", api.AuthRule{Resource: "kv", Prefix: "a:b", Access: "write"}, true},
		{"kv", api.AuthRule{}, false},
		{"kv:/app/", api.AuthRule{}, false},
	} {
		got, err := parseRule(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRule(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestMaskColumns(t *testing.T) {
	in := "KEY   VALUE   REVISION\n/a    1       7\n/bb   2       1234\nfooter\n"
	want := "KEY   VALUE   REVISION\n/a    1       *\n/bb   2       *\nfooter\n"
	if got := maskColumns(in, "REVISION"); got != want {
		t.Errorf("maskColumns = %q, want %q", got, want)
	}
}

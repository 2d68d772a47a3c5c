package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// fuzzClient validates every answer against the OpenAPI document like
// client, but does not insist that a request the document calls invalid
// gets a 4xx: encoding/json matches field names case-insensitively and
// takes null for an object, so the server accepts some bodies the
// document's stricter schemas do not describe.
var fuzzClient *http.Client // TestMain makes it

// fuzzExchange sends one request and checks the invariants every answer
// must keep (DESIGN.md guarantee 6): 2xx, or a 4xx problem+json, never a
// 5xx. The body is the response body.
func fuzzExchange(t *testing.T, req *http.Request) (status int, revision int64, body []byte) {
	t.Helper()
	res, err := fuzzClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err) // includes OpenAPI mismatches
	}
	defer res.Body.Close()
	body, err = io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	revision, err = strconv.ParseInt(res.Header.Get("X-Steward-Revision"), 10, 64)
	if err != nil {
		t.Fatalf("X-Steward-Revision %q: %v", res.Header.Get("X-Steward-Revision"), err)
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
	case res.StatusCode >= 400 && res.StatusCode < 500:
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("%d with Content-Type %q: %s", res.StatusCode, ct, body)
		}
		var p struct{ Status int }
		if err := json.Unmarshal(body, &p); err != nil || p.Status != res.StatusCode {
			t.Fatalf("%d with problem %s", res.StatusCode, body)
		}
	default:
		t.Fatalf("%s %s = %d: %s", req.Method, req.URL.Path, res.StatusCode, body)
	}
	return res.StatusCode, revision, body
}

// validHeaderValue reports whether net/http will send v as a header value.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// sameJSON reports whether a and b are the same JSON value (numbers
// compared by their text, which compaction keeps).
func sameJSON(a, b []byte) bool {
	decode := func(data []byte) (any, error) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		return v, err
	}
	va, errA := decode(a)
	vb, errB := decode(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

// FuzzPutBody sends arbitrary bodies and Content-Types to PUT /v1/kv/{key}
// of a real replica on a real (embedded) NATS. A 200 stores exactly the
// JSON value sent, at the next revision; anything else is a 4xx problem
// (400, 413, 415) and the revision does not move.
func FuzzPutBody(f *testing.F) {
	for _, seed := range []struct{ body, ctype string }{
		{`1`, ""}, {`"postgres://a"`, ""}, {`null`, ""}, {`true`, ""}, {`{}`, ""}, {`[]`, ""},
		{`{"host":"b","port":5432,"tags":["x",{"y":null}]}`, "application/json"},
		{`  {"a" : 1 }  `, ""}, {`{"a":1,"a":2}`, ""}, {`-0`, ""}, {`1e400`, ""}, {`0.1000000000000000055511151231257827`, ""},
		{`"<script>&amp;</script>"`, ""}, {`"\u2028\u0000"`, ""}, {"\"\xff\xfe\"", ""}, {"\ufeff1", ""},
		{``, ""}, {` `, ""}, {`{"x":`, ""}, {`1 2`, ""}, {`[`, ""}, {`'a'`, ""}, {`NaN`, ""}, {`{"a":1}}`, ""},
		{strings.Repeat("[", 10001) + strings.Repeat("]", 10001), ""},
		{`1`, "text/plain"}, {`1`, "application/json; charset=utf-8"}, {`1`, "application/merge-patch+json"},
		{`1`, "application/problem+json"}, {`1`, "json"}, {`1`, "application/json;;"}, {`1`, "x/y+json"},
		{`"` + strings.Repeat("x", 4096) + `"`, ""},
	} {
		f.Add([]byte(seed.body), seed.ctype)
	}
	n := startNode(f, qlogtest.StartServer(f).Connect(f), "config-0", nil, 1000)
	const key = "/fuzz/put"
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		req, err := http.NewRequest("PUT", n.url+"/v1/kv"+key, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			if !validHeaderValue(ctype) {
				t.Skip("not a header value net/http sends")
			}
			req.Header.Set("Content-Type", ctype)
		}
		before := n.rep.Log.Revision()
		status, rev, raw := fuzzExchange(t, req)
		after := n.rep.Log.Revision()
		switch status {
		case 200:
			var e struct {
				Key         string          `json:"key"`
				Value       json.RawMessage `json:"value"`
				ModRevision int64           `json:"modRevision"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("200 body %s: %v", raw, err)
			}
			if e.Key != key || e.ModRevision != before+1 || rev != before+1 || after != before+1 {
				t.Fatalf("200 = %s with revision %d; the log went from %d to %d", raw, rev, before, after)
			}
			if !sameJSON(body, e.Value) {
				t.Fatalf("PUT %q stored %s", body, e.Value)
			}
		case 400, 413, 415:
			if rev != before || after != before {
				t.Fatalf("%d moved the revision: %d before, %d after, %d in the answer: %s", status, before, after, rev, raw)
			}
		default:
			t.Fatalf("PUT = %d: %s", status, raw)
		}
	})
}

// FuzzTxnBody sends arbitrary bodies to POST /v1/txn. A 200 is one entry
// at the next revision; 400, 413 and 415 are refused before anything is
// proposed (the revision does not move); a 404 (an unknown lease in a put
// op) is one logged no-op that changes nothing (no watch event).
func FuzzTxnBody(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `{"compare":null,"success":null,"failure":null}`,
		`{"compare":[{"key":"/lock","target":"exists","op":"==","value":false}],
			"success":[{"put":{"key":"/lock","value":"me"}},{"get":{"key":"/lock"}}],
			"failure":[{"get":{"key":"/lock"}}]}`,
		`{"compare":[{"key":"/a","target":"version","op":">","value":0},{"key":"/a","target":"value","op":"<","value":"m"}],
			"success":[{"delete":{"prefix":"/a/"}},{"delete":{"key":"/a"}}],"failure":[{"put":{"key":"/a","value":{"n":[1,2]}}}]}`,
		`{"compare":[{"key":"/a","target":"modRevision","op":"<","value":1e3}],"success":[{"get":{"key":"/a"}}]}`,
		`{"compare":[{"key":"/a","target":"createRevision","op":"!=","value":1.5}]}`,
		`{"success":[{"put":{"key":"/l","value":1,"lease":424242}}]}`,
		`{"success":[{"put":{"key":"/l","value":1,"lease":-1}}]}`,
		`{"SUCCESS":[{"PUT":{"KEY":"/case","VALUE":1}}]}`,
		`{"success":[{"put":{"key":"/a","value":1},"get":{"key":"/a"}}]}`,
		`{"success":[{"put":{"key":"/a","value":1},"get":null}]}`,
		`{"success":[{}]}`, `{"success":[null]}`, `{"success":[{"delete":{}}]}`,
		`{"success":[{"delete":{"key":"/a","prefix":"/"}}]}`, `{"success":[{"delete":{"prefix":"/"}}]}`,
		`{"success":[{"put":{"key":"a","value":1}}]}`, `{"success":[{"put":{"key":"/a"}}]}`,
		`{"success":[{"put":{"key":"/a/../b","value":1}}]}`, `{"success":[{"put":{"key":"/a","value":1,"x":1}}]}`,
		`{"compare":[{"key":"/a","target":"exists","op":"<","value":true}]}`,
		`{"compare":[{"key":"/a","target":"version","op":"==","value":"1"}]}`,
		`{"compare":[{"key":"/a","target":"version","op":"==","value":1e400}]}`,
		`{"compare":[{"key":"/a","target":"value","op":"=="}]}`,
		`{"compare":[{"key":"/a","target":"size","op":"==","value":1}]}`,
		`{"compare":[{"key":"/a","target":"value","op":">=","value":1}]}`,
		`{"success":"nope"}`, `{"x":1}`, `[]`, `1`, ``, `{`, `{} {}`, `{"success":[]}x`,
		`{"success":[` + strings.TrimSuffix(strings.Repeat(`{"get":{"key":"/a"}},`, 129), ",") + `]}`,
		`{"success":[` + strings.TrimSuffix(strings.Repeat(`{"get":{"key":"/a"}},`, 128), ",") + `]}`,
	} {
		f.Add([]byte(s))
	}
	n := startNode(f, qlogtest.StartServer(f).Connect(f), "config-0", nil, 1000)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := http.NewRequest("POST", n.url+"/v1/txn", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		before := n.rep.Log.Revision()
		watch, err := n.rep.Log.Watch(0, nil) // everything after before
		if err != nil {
			t.Fatal(err)
		}
		status, rev, raw := fuzzExchange(t, req)
		after := n.rep.Log.Revision()
		switch status {
		case 200:
			var r struct {
				Revision int64 `json:"revision"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatalf("200 body %s: %v", raw, err)
			}
			if r.Revision != before+1 || rev != before+1 || after != before+1 {
				t.Fatalf("200 = %s with revision %d; the log went from %d to %d", raw, rev, before, after)
			}
		case 400, 413, 415:
			if rev != before || after != before {
				t.Fatalf("%d moved the revision: %d before, %d after, %d in the answer: %s", status, before, after, rev, raw)
			}
		case 404:
			if rev != before+1 || after != before+1 {
				t.Fatalf("404 is one logged no-op, but the revision went from %d to %d (%d in the answer): %s", before, after, rev, raw)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // take only what is already there
			if ev, err := watch.Next(ctx); err == nil {
				t.Fatalf("404 changed the store: event %+v", ev)
			}
		default:
			t.Fatalf("POST /v1/txn = %d: %s", status, raw)
		}
	})
}

package kv

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog/envelope"
)

// encodedCommand is what qloghttp.Propose wrote for a command before
// AppendCommand: a json.Encoder's line without HTML escaping, trimmed.
func encodedCommand(t testing.TB, c Command) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		t.Fatalf("json.Encoder: %v", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// checkCommand fails t unless AppendCommand writes what a json.Encoder
// writes for c, and DecodeCommand, when it takes those bytes, reads what
// json.Unmarshal reads; it returns whether DecodeCommand took them.
func checkCommand(t testing.TB, c Command) bool {
	t.Helper()
	got, err := c.AppendCommand([]byte("kept"))
	if err != nil {
		t.Fatalf("AppendCommand(%+v): %v", c, err)
	}
	want := encodedCommand(t, c)
	if !bytes.Equal(got, append([]byte("kept"), want...)) {
		t.Fatalf("command:\n got %s\nwant kept%s", got, want)
	}
	return checkCommandDecode(t, want)
}

// checkResult fails t unless AppendJSON writes what json.Marshal writes
// for r, and DecodeResult, when it takes those bytes, reads what
// json.Unmarshal reads; it returns whether DecodeResult took them.
func checkResult(t testing.TB, r Result) bool {
	t.Helper()
	got, err := r.AppendJSON([]byte("kept"))
	if err != nil {
		t.Fatalf("AppendJSON(%+v): %v", r, err)
	}
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if !bytes.Equal(got, append([]byte("kept"), want...)) {
		t.Fatalf("result:\n got %s\nwant kept%s", got, want)
	}
	return checkDecode(t, want)
}

// checkDecode fails t if DecodeResult takes b and reads anything but what
// json.Unmarshal reads into a zero Result; it returns whether it took b.
func checkDecode(t testing.TB, b []byte) bool {
	t.Helper()
	return checkFastDecode(t, b, (*Result).DecodeResult)
}

// checkCommandDecode is checkDecode for DecodeCommand.
func checkCommandDecode(t testing.TB, b []byte) bool {
	t.Helper()
	return checkFastDecode(t, b, (*Command).DecodeCommand)
}

// checkFastDecode fails t if decode takes b and reads anything but what
// json.Unmarshal reads into a zero T, or declines b and changes its T, or
// keeps a part of b (json.Unmarshal copies a json.RawMessage: the log's
// buffers are reused); it returns whether decode took b.
func checkFastDecode[T any](t testing.TB, b []byte, decode func(*T, []byte) bool) bool {
	t.Helper()
	var fast, zero T
	in := bytes.Clone(b)
	took := decode(&fast, in)
	for i := range in {
		in[i] = 'X' // what the decoded value must not see
	}
	if !took {
		if !reflect.DeepEqual(fast, zero) {
			t.Fatalf("%T's decoder declined %s but changed it: %+v", fast, b, fast)
		}
		return false
	}
	var want T
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%T's decoder took %s, which json.Unmarshal refuses: %v", fast, b, err)
	}
	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("%T's decoder read %s as\n %+v\nwant %+v", fast, b, fast, want)
	}
	return true
}

// TestCommandsAndResultsAreEncodingJSONs: the commands a replica proposes,
// the results Apply returns and the events it emits are the bytes
// encoding/json writes, for what takes the fast path and for what must be
// escaped, compacted or left to encoding/json; and the results of puts and
// deletes are read back without encoding/json, as it reads them.
func TestCommandsAndResultsAreEncodingJSONs(t *testing.T) {
	match := int64(7)
	entry := &Entry{Key: "/app/db/url", Value: json.RawMessage(`"postgres://db:5432/app"`), CreateRevision: 3, ModRevision: 17, Version: 4}
	leased := &Entry{Key: "/a", Value: json.RawMessage(`{"x":[1,2.5e3,true,null],"y":"z"}`), CreateRevision: 1, ModRevision: 2, Version: 2, Lease: 9, By: "tok-1"}
	html := &Entry{Key: "/html<&>", Value: json.RawMessage(`"<b>&amp;</b>"`), CreateRevision: 5, ModRevision: 5, Version: 1, By: "a<b"}
	wide := &Entry{Key: "/日本", Value: json.RawMessage("\"é\u2028\""), CreateRevision: -1, ModRevision: 1 << 62, Version: 1, By: "ü"}
	deleted := &Entry{Key: "/gone", CreateRevision: 4, ModRevision: 9, Version: 0}

	for _, tc := range []struct {
		c    Command
		fast bool // DecodeCommand reads it without encoding/json
	}{
		{Command{Op: "put", Key: "/bench/k1", Value: json.RawMessage(`"v"`)}, true},
		{Command{Op: "put", Key: "/a", Value: json.RawMessage(`{"x":[1,2]}`), Lease: 3, IfMatch: &match, By: "tok-1"}, true},
		{Command{Op: "put", Key: "/a", Value: json.RawMessage(`1`), IfNoneMatch: true, Fence: &Fence{Name: "lock<1>", Token: 12}}, true},
		{Command{Op: "put", Key: "/html<&>", Value: json.RawMessage(`"<b>&amp;</b>"`), By: `q"\`}, false},
		{Command{Op: "put", Key: "/ws", Value: json.RawMessage("{ \"a\" :\n [1, \"x y\"] }")}, true},
		{Command{Op: "put", Key: "/space", Value: json.RawMessage(`[1, {"a": "x y"}]`)}, true},
		{Command{Op: "put", Key: "/日本\u2028", Value: json.RawMessage("\"é\u2028\u2029\""), By: "\xff\x01"}, false},
		{Command{Op: "delete", Key: "/a", IfMatch: new(int64)}, true},
		{Command{Op: "deletePrefix", Prefix: "/app/"}, true},
		{Command{Op: "grant", TTL: 30 * time.Second}, true},
		{Command{Op: "expire", ID: 5, Since: 40}, true},
		{Command{Op: "put", Key: "/neg", Value: json.RawMessage(`-0.5e-3`), Lease: -1, IfMatch: &match, TTL: -5, ID: -2, Since: 1 << 62}, true},
		{Command{Op: "txn", Txn: &Txn{Compare: []Compare{{Key: "/a", Target: "value", Op: "==", Value: json.RawMessage(`"<x>"`)}},
			Success: []Op{{Put: &PutOp{Key: "/b", Value: json.RawMessage(`2`)}}}}}, false},
	} {
		if got := checkCommand(t, tc.c); got != tc.fast {
			t.Errorf("DecodeCommand of %+v took the fast path: %v, want %v", tc.c, got, tc.fast)
		}
	}

	// What DecodeCommand must leave to encoding/json, or read as it does:
	// fields in another order, twice, in another case or unknown; spaces,
	// escapes, nulls, false, numbers JSON writes otherwise, brackets inside
	// a value's strings, values cut short, anything after the object.
	for _, b := range []string{
		`{"key":"/a","op":"put"}`,
		`{"op":"put","key":"/a","key":"/b"}`,
		`{"op":"put","KEY":"/a"}`,
		`{"OP":"put"}`,
		`{"op":"put","extra":1}`,
		`{"op": "put"}`,
		`{"op":"p\u0075t"}`,
		`{"op":"put","key":null}`,
		`{"op":"put","ifMatch":null}`,
		`{"op":"put","ifNoneMatch":false}`,
		`{"op":"put","lease":1.0}`,
		`{"op":"put","lease":01}`,
		`{"op":"put","ttl":1e9}`,
		`{"op":"put","id":99999999999999999999}`,
		`{"op":"put","fence":{"name":"l"}}`,
		`{"op":"put","fence":{"token":1,"name":"l"}}`,
		`{"op":"put","fence":{"name":"l","token":1,"x":2}}`,
		`{"op":"put","value":[1,2,"]"]}`,
		`{"op":"put","value":tru}`,
		`{"op":"put","value":"x`,
		`{"op":"put","txn":{}}`,
		`{"op":"put"} `,
		`{"op":"put"}{}`,
		`{"op":"put"`,
	} {
		checkCommandDecode(t, []byte(b))
	}

	for _, tc := range []struct {
		r    Result
		fast bool // DecodeResult reads it without encoding/json
	}{
		{Result{Status: OK, Entry: entry}, true},
		{Result{Status: OK, Entry: leased, Prev: entry}, true},
		{Result{Status: OK, Entry: deleted, Prev: leased}, true},
		{Result{Status: OK, Deleted: 3}, true},
		{Result{Status: PreconditionFailed, Entry: entry,
			Problem: envelope.Refuse(fault.PreconditionFailed, "modRevision is 17, not 7")}, true},
		{Result{Status: Fenced, FenceToken: 12, Problem: envelope.Refuse(fault.Conflict, "fencing token 3 for \"lock\" is stale")}, false},
		{Result{Status: Fenced, FenceToken: 12, Problem: envelope.Refuse(fault.Conflict, "fencing token 3 for lock is stale")}, true},
		{Result{Status: OK, Entry: html}, false},
		{Result{Status: OK, Entry: wide}, false},
		{Result{Status: OK, Lease: &Lease{ID: 1, TTL: time.Second, Keys: []string{"/a"}}}, false},
		{Result{Status: OK, Txn: &TxnResult{Succeeded: true}}, false},
		{Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "undecodable command")}, true},
	} {
		if got := checkResult(t, tc.r); got != tc.fast {
			t.Errorf("DecodeResult of %+v took the fast path: %v, want %v", tc.r, got, tc.fast)
		}
	}

	for _, ev := range []struct{ e, prev *Entry }{{entry, nil}, {leased, entry}, {html, wide}, {deleted, leased}} {
		got, err := appendEventData([]byte("kept"), ev.e, ev.prev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(EventData{Entry: *ev.e, PrevEntry: ev.prev})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append([]byte("kept"), want...)) {
			t.Errorf("event data:\n got %s\nwant kept%s", got, want)
		}
	}

	// What DecodeResult must leave to encoding/json: the same fields in
	// another order, spaces, escapes, nulls, numbers JSON writes otherwise,
	// values cut short, anything after the object.
	for _, b := range []string{
		`{"entry":{"key":"/a","createRevision":1,"modRevision":1,"version":1},"status":"ok"}`,
		`{"status": "ok"}`,
		`{"status":"o\u006b"}`,
		`{"status":"ok","entry":null}`,
		`{"status":"ok","deleted":1.0}`,
		`{"status":"ok","deleted":01}`,
		`{"status":"ok","deleted":99999999999999999999}`,
		`{"status":"ok","entry":{"key":"/a","value":[1,2,"]"],"createRevision":1,"modRevision":1,"version":1}}`,
		`{"status":"ok","entry":{"key":"/a","value":{"a":"\"}"},"createRevision":1,"modRevision":1,"version":1}}`,
		`{"status":"ok","entry":{"key":"/a","value":tru,"createRevision":1,"modRevision":1,"version":1}}`,
		`{"status":"ok","entry":{"key":"/a","value":[1,,"createRevision":1,"modRevision":1,"version":1}}`,
		`{"status":"ok","entry":{"key":"/a","value":"x`,
		`{"status":"ok"} `,
		`{"status":"ok"}{}`,
		`{"Status":"ok"}`,
	} {
		checkDecode(t, []byte(b))
	}
}

// FuzzResultJSON: for any strings, numbers and valid JSON values, commands,
// results and event data are encoded as encoding/json encodes them and
// read back as it reads them; and neither DecodeResult nor DecodeCommand
// takes bytes json.Unmarshal would read differently.
func FuzzResultJSON(f *testing.F) {
	f.Add("/a", `"v"`, "", "", int64(0), int64(0), false)
	f.Add("/a<b>", "{ \"k\" : [1, \"<&>\"] }", "t\x00k", "detail \"x\"", int64(9), int64(-1), true)
	f.Add("/é", "\"\u2028\"", "\xff", "", int64(-3), int64(1<<62), false)
	f.Add(`{"status":"ok","entry":{"key":"/a","value":[{"b":"}"}],"createRevision":1,"modRevision":2,"version":3}}`, "", "", "", int64(0), int64(0), false)
	f.Add(`{"op":"put","key":"/a","value":{"b":"}"},"fence":{"name":"l","token":-1},"ttl":5}`, "", "", "", int64(0), int64(0), false)
	f.Fuzz(func(t *testing.T, key, value, by, detail string, n, m int64, flag bool) {
		checkDecode(t, []byte(key))
		checkCommandDecode(t, []byte(key))
		if value != "" && !json.Valid([]byte(value)) {
			return // the store and the commands hold only valid values
		}
		e := &Entry{Key: key, Value: json.RawMessage(value), CreateRevision: n, ModRevision: m, Version: n ^ m, Lease: m, By: by}
		prev := &Entry{Key: by, Value: json.RawMessage(value), CreateRevision: m, ModRevision: n, Version: 1}
		var fence *Fence
		var match *int64
		if flag {
			fence, match = &Fence{Name: detail, Token: n}, &m
		}
		checkCommand(t, Command{Op: "put", Key: key, Prefix: detail, Value: json.RawMessage(value), Lease: n,
			IfMatch: match, IfNoneMatch: flag, Fence: fence, TTL: time.Duration(m), ID: n, Since: m, By: by})
		r := Result{Status: Status(by), Entry: e, Deleted: n, FenceToken: m, Problem: envelope.Problem{Fault: key, Detail: detail}}
		if flag {
			r.Prev = prev
		}
		checkResult(t, r)
		got, err := appendEventData(nil, e, r.Prev)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := json.Marshal(EventData{Entry: *e, PrevEntry: r.Prev}); !bytes.Equal(got, want) {
			t.Fatalf("event data:\n got %s\nwant %s", got, want)
		}
	})
}

// BenchmarkPutJSON is the JSON a PUT of a 256-byte value costs a replica
// after the handler has the value: its command encoded by the handler and
// decoded by Apply, the result encoded by Apply and read back by the
// handler, and the watch event's data; through encoding/json (as before)
// and without it.
func BenchmarkPutJSON(b *testing.B) {
	value := json.RawMessage(`"` + string(bytes.Repeat([]byte("x"), 254)) + `"`)
	c := Command{Op: "put", Key: "/bench/k12345", Value: value}
	e := &Entry{Key: c.Key, Value: value, CreateRevision: 12345, ModRevision: 12345, Version: 1}
	r := Result{Status: OK, Entry: e}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(c); err != nil {
				b.Fatal(err)
			}
			var applied Command
			if err := json.Unmarshal(buf.Bytes(), &applied); err != nil {
				b.Fatal(err)
			}
			out, err := json.Marshal(r)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(EventData{Entry: *e}); err != nil {
				b.Fatal(err)
			}
			var back Result
			if err := json.Unmarshal(out, &back); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("by-hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			cmd, err := c.AppendCommand(make([]byte, 0, 256))
			if err != nil {
				b.Fatal(err)
			}
			var applied Command
			if !applied.DecodeCommand(cmd) {
				b.Fatal("DecodeCommand declined a put")
			}
			out, err := r.AppendJSON(make([]byte, 0, 256))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := appendEventData(make([]byte, 0, 512), e, nil); err != nil {
				b.Fatal(err)
			}
			var back Result
			if !back.DecodeResult(out) {
				b.Fatal("DecodeResult declined a put's result")
			}
		}
	})
}

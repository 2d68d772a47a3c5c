package kv

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
)

// encodedLine is what writeSnapshot wrote for a record before
// appendRecordLine: json.Encoder's line for a snapshotRecord.
func encodedLine(t testing.TB, key string, versions []version) []byte {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(snapshotRecord{Key: key, Versions: versions}); err != nil {
		t.Fatalf("json.Encoder: %v", err)
	}
	return b.Bytes()
}

// TestRecordLineIsEncodingJSONs: a snapshot's record lines, and the
// entries the service answers, are the bytes encoding/json writes, for
// keys, values and token ids that take the fast path and for those
// encoding/json must escape or compact.
func TestRecordLineIsEncodingJSONs(t *testing.T) {
	v := func(key, value, by string, lease int64, deleted bool) version {
		return version{Entry: Entry{Key: key, Value: json.RawMessage(value), CreateRevision: 3, ModRevision: 17, Version: 4,
			Lease: lease, By: by}, Deleted: deleted}
	}
	for _, rec := range []struct {
		key      string
		versions []version
	}{
		{"/app/db/url", []version{v("/app/db/url", `"postgres://db:5432/app"`, "", 0, false)}},
		{"/a", []version{v("/a", `{"x":[1,2.5e3,true,null],"y":"z"}`, "tok-1", 7, false), v("/a", "", "tok-2", 0, true)}},
		{"/a", nil},
		{"/a", []version{}},
		{"/html", []version{v("/html", `"<b>&amp;</b>"`, "a<b", 0, false)}},
		{"/ws", []version{v("/ws", "{ \"a\" :\n [1, 2] }", "", 0, false)}},
		{"/space", []version{v("/space", `"two words"`, "", 0, false), v("/space", `[1, {"a": 2}]`, "", 0, false)}},
		{"/quote\"\\", []version{v("/q", `"\"\\\u0000"`, "by\"\\", 0, false)}},
		{"/日本", []version{v("/日本", `"é\u2028"`, "ü", 0, false), v("/日本", "\"\u2028\u2029\"", "", -1, false)}},
		{"/ctl\x01\x1f\x7f", []version{v("/ctl", `-0.0`, "\t", 1<<62, true)}},
		{"/bad\xff", []version{v("/bad\xc3", `1`, "\xff", 0, false)}},
		{"/null", []version{v("/null", `null`, "", 0, false)}},
	} {
		got, err := appendRecordLine([]byte("kept"), rec.key, rec.versions)
		if err != nil {
			t.Fatalf("%q: %v", rec.key, err)
		}
		want := append([]byte("kept"), encodedLine(t, rec.key, rec.versions)...)
		if !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", rec.key, got, want)
		}
		for _, v := range rec.versions {
			checkEntry(t, &v.Entry)
		}
	}
}

// checkEntry fails t unless AppendEntryJSON writes what json.Marshal
// (and json.Encoder, but for its newline) writes for e.
func checkEntry(t testing.TB, e *Entry) {
	t.Helper()
	got, err := AppendEntryJSON([]byte("kept"), e)
	if err != nil {
		t.Fatalf("AppendEntryJSON(%q): %v", e.Key, err)
	}
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if !bytes.Equal(got, append([]byte("kept"), want...)) {
		t.Fatalf("entry %q:\n got %s\nwant kept%s", e.Key, got, want)
	}
}

// FuzzRecordLine: for any key, token id and valid JSON value,
// appendRecordLine and AppendEntryJSON write what encoding/json writes.
func FuzzRecordLine(f *testing.F) {
	f.Add("/a", `"v"`, "", int64(0), false)
	f.Add("/a<b>", "{ \"k\" : [1, \"<&>\"] }", "t\x00k", int64(9), true)
	f.Add("/é", "\"\u2028\"", "\xff", int64(-3), false)
	f.Fuzz(func(t *testing.T, key, value, by string, lease int64, deleted bool) {
		if value != "" && !json.Valid([]byte(value)) {
			return // the store holds only valid values
		}
		versions := []version{
			{Entry: Entry{Key: key, Value: json.RawMessage(value), CreateRevision: 1, ModRevision: lease, Version: 2, Lease: lease, By: by}, Deleted: deleted},
			{Entry: Entry{Key: by, CreateRevision: 5, ModRevision: 6, Version: 1}, Deleted: true},
		}
		got, err := appendRecordLine(nil, key, versions)
		if err != nil {
			t.Fatalf("appendRecordLine: %v", err)
		}
		if want := encodedLine(t, key, versions); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
		checkEntry(t, &versions[0].Entry)
	})
}

// BenchmarkWriteSnapshot is a snapshot of 100,000 keys with 256-byte
// values, as the watch-keys bench's writes leave the store.
func BenchmarkWriteSnapshot(b *testing.B) {
	m := New(DefaultRetainRevisions)
	value := json.RawMessage(`"` + string(bytes.Repeat([]byte("x"), 254)) + `"`)
	for i := range 100_000 {
		key := "/bench/k" + strconv.Itoa(i)
		m.tree.ReplaceOrInsert(&record{key: key, versions: []version{{Entry: Entry{Key: key, Value: value,
			CreateRevision: int64(i + 1), ModRevision: int64(i + 1), Version: 1}}}})
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := m.Snapshot(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

// BenchmarkEntryJSON is the config service's answer to a PUT of a
// 256-byte value, encoded by json.Encoder (as before) and by
// AppendEntryJSON.
func BenchmarkEntryJSON(b *testing.B) {
	e := &Entry{Key: "/bench/k12345", Value: json.RawMessage(`"` + string(bytes.Repeat([]byte("x"), 254)) + `"`),
		CreateRevision: 12345, ModRevision: 12345, Version: 1}
	b.Run("encoding-json", func(b *testing.B) {
		var buf bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			if err := json.NewEncoder(&buf).Encode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendEntryJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := AppendEntryJSON(make([]byte, 0, len(e.Key)+len(e.Value)+128), e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

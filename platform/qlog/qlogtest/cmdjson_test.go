package qlogtest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

var cmdSeeds = [][]byte{
	Put("k", "v"), PutTTL("/a/b", `{"x":1}`, 3*time.Second), CAS("k", "old", "new"), Delete("k"), Expire("k", 42),
	Put("ключ", "värde"), Put("k", `say "hi" <b> & \ `), Put("", ""),
	[]byte(`{"key":"k","op":"put"}`), []byte(`{ "op":"put","key":"k"}`), []byte(`{"op":"put","key":"k","ttl":-5}`),
	[]byte(`{"op":"put","key":"k","ttl":01}`), []byte(`{"op":"put","key":"k","since":99999999999999999999}`),
	[]byte(`{"op":"put","key":"k","value":"\u00e9"}`), []byte(`{"op":"put","key":"k\xff"}`), []byte(`{"op":"put","key":"k",}`),
	[]byte(`{"op":"put","key":"k","value":"v","value":"w"}`), []byte(`{"OP":"put","key":"k"}`), []byte(`{"op":"put","key":"k"}x`),
	[]byte(`[]`), []byte(`{}`), []byte(``), []byte(`{"op":1,"key":"k"}`), []byte(`{"op":"put","key":"k","ttl":1e3}`),
}

// FuzzDecodeCmd: the fast path decodes every document as json.Unmarshal
// does, and fails where it fails.
func FuzzDecodeCmd(f *testing.F) {
	for _, s := range cmdSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want Cmd
		wantErr := json.Unmarshal(b, &want)
		got, err := decodeCmd(b)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decodeCmd(%q) error %v, json.Unmarshal's %v", b, err, wantErr)
		}
		if err == nil && got != want {
			t.Fatalf("decodeCmd(%q) = %+v, json.Unmarshal gives %+v", b, got, want)
		}
	})
}

func TestDecodeCmdTakesTheFastPath(t *testing.T) {
	for _, b := range [][]byte{Put("k", "v"), PutTTL("k", "v", time.Second), CAS("k", "a", "b"), Delete("k"), Expire("k", 7)} {
		if _, ok := decodeCmdFast(b); !ok {
			t.Errorf("%s takes json.Unmarshal", b)
		}
	}
}

// FuzzEncodeReply: the same bytes as json.Marshal.
func FuzzEncodeReply(f *testing.F) {
	for _, s := range []string{"", "v", `a"b`, `<&>`, "\u2028", "é", "\xff", "\x01", `\`} {
		f.Add(true, s, false)
	}
	f.Fuzz(func(t *testing.T, ok bool, prev string, exists bool) {
		r := Reply{OK: ok, Prev: prev, Exists: exists}
		want, _ := json.Marshal(r)
		if got := encodeReply(r); !bytes.Equal(got, want) {
			t.Fatalf("encodeReply(%+v) = %s, json.Marshal gives %s", r, got, want)
		}
	})
}

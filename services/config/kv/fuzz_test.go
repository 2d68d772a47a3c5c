package kv_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/services/config/kv"
)

// FuzzValidateKey: ValidateKey never panics, refuses with an Invalid
// fault, and every key it accepts has the documented shape (which is also
// a valid prefix).
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{
		"/a", "/app/db/url", "", "/", "a", "a/b", "/a/", "//", "/a//b", "/.", "/..", "/./a", "/a/..", "/a/../b",
		"/.a", "/a..", "/...", "/a\x00", "/a\x1f", "/a\x7f", "/a\tb", "/a\nb", "/\xff", "/\xc3", "/é/ü", "/日本",
		"/a b", "/a%2Fb", "/\u2028", "/\ufeff", "/" + strings.Repeat("k", 1023), "/" + strings.Repeat("k", 1024),
		"/" + strings.Repeat("é", 511) + "k", "/" + strings.Repeat("é", 512),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := kv.ValidateKey(key)
		perr := kv.ValidatePrefix(key)
		if err != nil {
			if k := fault.KindOf(err); k != fault.Invalid {
				t.Fatalf("ValidateKey(%q) = %v of kind %v, want Invalid", key, err, k)
			}
			if perr != nil && fault.KindOf(perr) != fault.Invalid {
				t.Fatalf("ValidatePrefix(%q) = %v of kind %v, want Invalid", key, perr, fault.KindOf(perr))
			}
			return
		}
		switch {
		case !strings.HasPrefix(key, "/"):
			t.Fatalf("accepted %q: does not start with '/'", key)
		case len(key) > kv.MaxKeyBytes:
			t.Fatalf("accepted %q: %d bytes, over %d", key, len(key), kv.MaxKeyBytes)
		case !utf8.ValidString(key):
			t.Fatalf("accepted %q: not valid UTF-8", key)
		case strings.HasSuffix(key, "/"):
			t.Fatalf("accepted %q: ends with '/'", key)
		case perr != nil:
			t.Fatalf("accepted key %q is not a valid prefix: %v", key, perr)
		}
		for _, r := range key {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("accepted %q: control character %U", key, r)
			}
		}
		for _, seg := range strings.Split(key[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q: segment %q", key, seg)
			}
		}
	})
}

// FuzzCompactValue: CompactValue, the one pass a PUT's value gets, accepts
// exactly what ValidateValue accepts, refuses it with the same fault, and
// returns what json.Compact would.
func FuzzCompactValue(f *testing.F) {
	for _, s := range []string{
		`1`, `"a"`, `null`, `{}`, `[]`, `  {"a" : [1, 2] }  `, `{"a":1,"a":2}`, `-0`, `1e400`, "\"\u2028\"",
		"\"\xff\"", "\ufeff1", ``, ` `, `{"x":`, `1 2`, `[`, `'a'`, `NaN`, `{"a":1}}`, "\t\n1\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got, err := kv.CompactValue(v)
		verr := kv.ValidateValue(v)
		if (err == nil) != (verr == nil) || (err != nil && err.Error() != verr.Error()) {
			t.Fatalf("CompactValue(%q) = %v, ValidateValue = %v", v, err, verr)
		}
		if err != nil {
			return
		}
		var want bytes.Buffer
		if cerr := json.Compact(&want, v); cerr != nil || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("CompactValue(%q) = %s, json.Compact gives %s (%v)", v, got, want.Bytes(), cerr)
		}
	})
}

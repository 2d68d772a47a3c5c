package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/jsonscan"
)

// agrees fails t unless Check answers for b what encoding/json does.
func agrees(t testing.TB, b []byte) {
	t.Helper()
	valid, compact := jsonscan.Check(b)
	if want := json.Valid(b); valid != want {
		t.Fatalf("Check(%q) valid = %v, want %v (json.Valid)", b, valid, want)
	}
	if !valid {
		return
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("json.Compact(%q): %v", b, err)
	}
	if want := bytes.Equal(out.Bytes(), b); compact != want {
		t.Fatalf("Check(%q) compact = %v, want %v (json.Compact gives %q)", b, compact, want, out.Bytes())
	}
}

// TestEveryShortInput holds Check to encoding/json on every input of up to
// five bytes over an alphabet of what JSON's grammar turns on: brackets,
// quotes, separators, whitespace, the characters of numbers and escapes, a
// control character and a byte that is not UTF-8. Literals are longer than
// that and have their own cases.
func TestEveryShortInput(t *testing.T) {
	alphabet := []byte("{}[]\":, \t01-.e+\\u\x1f\xff")
	maxLen := 5
	if testing.Short() {
		maxLen = 4
	}
	b := make([]byte, 0, maxLen)
	var walk func()
	walk = func() {
		agrees(t, b)
		if len(b) == maxLen {
			return
		}
		for _, c := range alphabet {
			b = append(b, c)
			walk()
			b = b[:len(b)-1]
		}
	}
	walk()
}

func TestCases(t *testing.T) {
	for _, doc := range []string{
		``, ` `, `true`, `false`, `null`, `tru`, `nul`, `nulll`, `truefalse`, `True`,
		`"a\u00e9b"`, `"\u12G4"`, `"\u123"`, `"\ud800"`, `"\x"`, `"a` + "\n" + `"`, "\"\xe9\"",
		`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-05`, `1e`, `1e+`, `+1`, `1.5e3.2`, `-01`, `2 `,
		`{}`, `{ }`, `{"a":1}`, `{"a" : 1 , "b":[1,2,{"c":null}]}`, `{"a":1,}`, `{"a"}`, `{1:2}`, `{"a":1 "b":2}`,
		`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[[]`, `[]]`, `[{]`, `{[}`, `[1}`, `{"a":1]`,
		"\t{\r\n\"k\" :\t[true, false, null]\n}\n", `"  spaces inside stay "`, `{"a":"b"} x`, `[] []`,
		`{"":""}`, `["\"\\\/\b\f\n\r\t"]`,
	} {
		agrees(t, []byte(doc))
	}
}

// TestLongStrings covers strings read eight bytes at a time: every byte
// value, at every place in a string of up to 20 bytes, after a quote.
func TestLongStrings(t *testing.T) {
	for n := 1; n <= 20; n++ {
		for at := 0; at < n; at++ {
			for c := 0; c < 256; c++ {
				s := bytes.Repeat([]byte{'a'}, n)
				s[at] = byte(c)
				agrees(t, append(append([]byte{'"'}, s...), '"'))
				agrees(t, append(append([]byte(`["\\`), s...), `"]`...))
			}
		}
	}
}

// TestDepth: encoding/json allows 10,000 arrays and objects nested, empty
// ones counted, and refuses one more.
func TestDepth(t *testing.T) {
	for _, n := range []int{9999, 10000, 10001} {
		agrees(t, []byte(strings.Repeat("[", n)+strings.Repeat("]", n)))
		agrees(t, []byte(strings.Repeat("[", n-1)+"{}"+strings.Repeat("]", n-1)))
		agrees(t, []byte(strings.Repeat(`{"a":`, n-1)+"[]"+strings.Repeat("}", n-1)))
		agrees(t, []byte(strings.Repeat(`[{"a":`, n/2)+"0"+strings.Repeat("}]", n/2)))
	}
	if !jsonscan.Valid([]byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))) {
		t.Fatal("10,000 arrays nested: invalid, want valid")
	}
	if jsonscan.Valid([]byte(strings.Repeat("[", 10001) + strings.Repeat("]", 10001))) {
		t.Fatal("10,001 arrays nested: valid, want invalid")
	}
}

func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		`{"op":"put","key":"/a","value":{"x":[1,2.5e-3,"\u00e9",true,null]}}`, ` [ ] `, `"\ud83d\ude00"`, "\"\x00\"", `-0.0E+0`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) { agrees(t, b) })
}

// value is a put's value as the benchmarks send it: a 256-byte string.
var value = []byte(`"` + strings.Repeat("x", 254) + `"`)

// command is a put's command in the log, that value in it.
var command = []byte(`{"op":"put","key":"/bench/k12345","value":` + string(value) + `,"by":"root"}`)

func BenchmarkCheck(b *testing.B) {
	for _, doc := range []struct {
		name string
		b    []byte
	}{{"value", value}, {"command", command}} {
		b.Run(doc.name+"/jsonscan", func(b *testing.B) {
			b.SetBytes(int64(len(doc.b)))
			for b.Loop() {
				jsonscan.Check(doc.b)
			}
		})
		b.Run(doc.name+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(doc.b)))
			for b.Loop() {
				json.Valid(doc.b)
			}
		})
	}
}

func TestNoAllocations(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { jsonscan.Check(command) }); n != 0 {
		t.Fatalf("Check(a command) allocates %v times, want 0", n)
	}
}

// Package jsonscan checks JSON documents exactly as encoding/json does,
// in one tight pass: json.Valid steps a state machine through a function
// call per byte, which made checking a put's value, again and again on its
// way through a replica, several percent of the config service's CPU.
//
// Exactly, because the check is part of applying the log: a replica that
// accepted a value another refused would hold a different state. What
// encoding/json accepts, and this package with it:
//   - RFC 8259's grammar, with space, tab, newline and carriage return as
//     whitespace;
//   - any byte of 0x20 or above inside a string, valid UTF-8 or not
//     (encoding/json checks no encoding);
//   - at most 10,000 arrays and objects nested.
//
// The tests hold both to the same answer on every input of up to five
// bytes over the characters that matter and under a differential fuzz
// target.
package jsonscan

import "encoding/binary"

// maxDepth is encoding/json's limit on nesting (maxNestingDepth in its
// scanner): one more open bracket makes the document invalid.
const maxDepth = 10000

// Valid reports whether b is one JSON document, as json.Valid does.
func Valid(b []byte) bool {
	ok, _ := Check(b)
	return ok
}

// Check reports whether b is one JSON document, as json.Valid does, and
// whether it is compact: no whitespace outside its strings, so that
// json.Compact would copy it unchanged.
func Check(b []byte) (valid, compact bool) {
	s := scanner{b: b, compact: true}
	s.space()
	if !s.value() {
		return false, false
	}
	s.space()
	return s.i == len(b), s.compact
}

type scanner struct {
	b       []byte
	i       int
	compact bool
}

// space skips whitespace.
func (s *scanner) space() {
	start := s.i
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
	if s.i != start {
		s.compact = false
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// value reads one value. Arrays and objects are followed with a stack of
// their own rather than by recursion, so that a deep document costs a
// bool a level, not a stack frame.
func (s *scanner) value() bool {
	// open holds, for each array or object the scanner is in, whether it
	// is an object; the first levels live on the stack, so that checking
	// a shallow document allocates nothing.
	var shallow [32]bool
	open := shallow[:0]
	for {
		// A value is wanted here.
		if s.i >= len(s.b) {
			return false
		}
		switch c := s.b[s.i]; {
		case c == '{' || c == '[':
			// encoding/json counts an empty one as a level too.
			if len(open) == maxDepth {
				return false
			}
			s.i++
			s.space()
			object := c == '{'
			if s.i < len(s.b) && (object && s.b[s.i] == '}' || !object && s.b[s.i] == ']') {
				s.i++
				break // an empty one is a whole value
			}
			open = append(open, object)
			if object && !s.member() {
				return false
			}
			continue // its first value
		case c == '"':
			if !s.str() {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			if !s.number() {
				return false
			}
		case c == 't':
			if !s.literal("true") {
				return false
			}
		case c == 'f':
			if !s.literal("false") {
				return false
			}
		case c == 'n':
			if !s.literal("null") {
				return false
			}
		default:
			return false
		}
		// A value ended: close what it ends, until a comma asks for the
		// next one.
		for {
			if len(open) == 0 {
				return true
			}
			s.space()
			if s.i >= len(s.b) {
				return false
			}
			object := open[len(open)-1]
			c := s.b[s.i]
			s.i++
			if c == ',' {
				s.space()
				if object && !s.member() {
					return false
				}
				break
			}
			if object && c != '}' || !object && c != ']' {
				return false
			}
			open = open[:len(open)-1]
		}
	}
}

// member reads an object's key and its colon, leaving the scanner at its
// value.
func (s *scanner) member() bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' || !s.str() {
		return false
	}
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return false
	}
	s.i++
	s.space()
	return true
}

// plain marks the bytes a string holds as they are: all but the quote,
// the backslash and the control characters below 0x20.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string, the scanner at its opening quote.
func (s *scanner) str() bool {
	b, i := s.b, s.i+1
	for {
		for i+8 <= len(b) && !special(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '"':
			s.i = i + 1
			return true
		case '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return false
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		default: // a control character
			return false
		}
	}
}

// special reports whether any of the eight bytes in x is not plain: a
// quote, a backslash or below 0x20. Each test is the "has a zero byte"
// trick, exact about whether any byte matches; a byte of 0x80 or more has
// its top bit set and is never taken for one below 0x20.
func special(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote, backslash := x^(ones*'"'), x^(ones*'\\')
	return ((x-ones*0x20)&^x|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs != 0
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// number reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	b, i := s.b, s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	s.i = i
	return true
}

// digits returns where the run of digits from b[i] ends.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// literal reads true, false or null.
func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

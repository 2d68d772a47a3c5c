package qlogtest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// decodeCmd decodes a command as json.Unmarshal does. Commands as Put,
// CAS, Delete and Expire encode them (json.Marshal's field order, strings
// without escapes) take a fast path that allocates only the strings; any
// other valid document takes json.Unmarshal. The benchmarks apply every
// entry on three voters, so the example state machine's decoding is part
// of what they measure.
func decodeCmd(b []byte) (Cmd, error) {
	if c, ok := decodeCmdFast(b); ok {
		return c, nil
	}
	var c Cmd
	err := json.Unmarshal(b, &c)
	return c, err
}

// cmdMembers are Cmd's members as json.Marshal writes them, in its order,
// each with what comes before its value; op and key are always written.
var cmdMembers = [...]string{`"op":`, `,"key":`, `,"value":`, `,"from":`, `,"ttl":`, `,"since":`}

// decodeCmdFast reads {"op":…,"key":…[,"value":…][,"from":…][,"ttl":…][,"since":…]}
// with plain strings and integers, or reports false.
func decodeCmdFast(b []byte) (Cmd, bool) {
	var c Cmd
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return c, false
	}
	rest := b[1 : len(b)-1]
	for i, member := range cmdMembers {
		if !bytes.HasPrefix(rest, []byte(member)) {
			if i < 2 {
				return c, false
			}
			continue
		}
		rest = rest[len(member):]
		var ok bool
		switch member {
		case `"op":`:
			c.Op, rest, ok = plainString(rest)
		case `,"key":`:
			c.Key, rest, ok = plainString(rest)
		case `,"value":`:
			c.Value, rest, ok = plainString(rest)
		case `,"from":`:
			c.From, rest, ok = plainString(rest)
		case `,"ttl":`:
			var n int64
			n, rest, ok = integer(rest)
			c.TTL = time.Duration(n)
		case `,"since":`:
			c.Since, rest, ok = integer(rest)
		}
		if !ok {
			return c, false
		}
	}
	return c, len(rest) == 0
}

// plainString reads a JSON string without escapes or control characters,
// in valid UTF-8, at the start of b.
func plainString(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s := b[1:i]
			if !utf8.Valid(s) {
				return "", nil, false
			}
			return string(s), b[i+1:], true
		case c == '\\' || c < 0x20:
			return "", nil, false
		}
	}
	return "", nil, false
}

// integer reads an integer without sign, exponent or fraction at the start
// of b.
func integer(b []byte) (int64, []byte, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || (i > 1 && b[0] == '0') {
		return 0, nil, false
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return n, b[i:], err == nil
}

// encodeReply appends r as json.Marshal encodes it.
func encodeReply(r Reply) []byte {
	b := make([]byte, 0, 40+len(r.Prev))
	b = append(b, `{"ok":`...)
	b = strconv.AppendBool(b, r.OK)
	b = append(b, `,"prev":`...)
	if !needsEscape(r.Prev) {
		b = append(b, '"')
		b = append(b, r.Prev...)
		b = append(b, '"')
	} else {
		q, _ := json.Marshal(r.Prev)
		b = append(b, q...)
	}
	b = append(b, `,"exists":`...)
	b = strconv.AppendBool(b, r.Exists)
	return append(b, '}')
}

// needsEscape reports whether json.Marshal writes s other than as is
// between quotes: a control character, a quote, a backslash, HTML's <, >
// and &, U+2028 or U+2029, or invalid UTF-8.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return true
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
				return true
			}
			i += size - 1
		}
	}
	return false
}

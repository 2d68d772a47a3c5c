package kv

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/stewardhq/steward/platform/jsonscan"
)

// A put's way through a replica, without encoding/json's reflection: the
// command the handler proposes (Command.AppendCommand), the result Apply
// returns and the event it emits (Result.AppendJSON, appendEventData),
// the handler's reading of that result (Result.DecodeResult), and every
// replica's reading of the command (Command.DecodeCommand). Each
// writes or reads exactly what encoding/json does, so replicas running an
// older binary agree byte for byte on results, which live on in the log's
// dedupe table and in snapshots. What is not a put's or a delete's plain
// shape (a transaction, a lease, a string to escape) goes through
// encoding/json itself.

// AppendCommand appends c as a json.Encoder with SetEscapeHTML(false)
// encodes it, without the newline: the bytes qloghttp.Propose puts in the
// log (qloghttp.CommandAppender). A
// transaction is left to encoding/json. The value must be valid JSON, as
// the handlers' CompactValue makes it (the log refuses a command that is
// not).
func (c Command) AppendCommand(b []byte) ([]byte, error) {
	if c.Txn != nil {
		return appendNoHTML(b, c)
	}
	var err error
	b = append(b, `{"op":`...)
	if b, err = appendCommandString(b, c.Op); err != nil {
		return nil, err
	}
	if c.Key != "" {
		b = append(b, `,"key":`...)
		if b, err = appendCommandString(b, c.Key); err != nil {
			return nil, err
		}
	}
	if c.Prefix != "" {
		b = append(b, `,"prefix":`...)
		if b, err = appendCommandString(b, c.Prefix); err != nil {
			return nil, err
		}
	}
	if len(c.Value) > 0 {
		b = append(b, `,"value":`...)
		if b, err = appendCommandValue(b, c.Value); err != nil {
			return nil, err
		}
	}
	b = appendIntField(b, `,"lease":`, c.Lease)
	if c.IfMatch != nil {
		b = append(b, `,"ifMatch":`...)
		b = strconv.AppendInt(b, *c.IfMatch, 10)
	}
	if c.IfNoneMatch {
		b = append(b, `,"ifNoneMatch":true`...)
	}
	if c.Fence != nil {
		b = append(b, `,"fence":{"name":`...)
		if b, err = appendCommandString(b, c.Fence.Name); err != nil {
			return nil, err
		}
		b = append(b, `,"token":`...)
		b = strconv.AppendInt(b, c.Fence.Token, 10)
		b = append(b, '}')
	}
	b = appendIntField(b, `,"ttl":`, int64(c.TTL))
	b = appendIntField(b, `,"id":`, c.ID)
	b = appendIntField(b, `,"since":`, c.Since)
	if c.By != "" {
		b = append(b, `,"by":`...)
		if b, err = appendCommandString(b, c.By); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// AppendJSON appends r as json.Marshal encodes it: what Apply returns
// (envelope.Appender). A transaction's or a lease's result is left to
// encoding/json.
func (r Result) AppendJSON(b []byte) ([]byte, error) {
	if r.Txn != nil || r.Lease != nil {
		out, err := json.Marshal(r)
		return append(b, out...), err
	}
	var err error
	b = append(b, `{"status":`...)
	if b, err = appendJSONString(b, string(r.Status)); err != nil {
		return nil, err
	}
	if r.Entry != nil {
		b = append(b, `,"entry":`...)
		if b, err = AppendEntryJSON(b, r.Entry); err != nil {
			return nil, err
		}
	}
	if r.Prev != nil {
		b = append(b, `,"prev":`...)
		if b, err = AppendEntryJSON(b, r.Prev); err != nil {
			return nil, err
		}
	}
	b = appendIntField(b, `,"deleted":`, r.Deleted)
	b = appendIntField(b, `,"fenceToken":`, r.FenceToken)
	if r.Fault != "" {
		b = append(b, `,"fault":`...)
		if b, err = appendJSONString(b, r.Fault); err != nil {
			return nil, err
		}
	}
	if r.Detail != "" {
		b = append(b, `,"detail":`...)
		if b, err = appendJSONString(b, r.Detail); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendEventData appends EventData{e, prev} as json.Marshal encodes it:
// the data of a put's or a delete's watch event.
func appendEventData(b []byte, e *Entry, prev *Entry) ([]byte, error) {
	b = append(b, `{"entry":`...)
	b, err := AppendEntryJSON(b, e)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		b = append(b, `,"prevEntry":`...)
		if b, err = AppendEntryJSON(b, prev); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendIntField appends name and n unless n is 0 (omitempty).
func appendIntField(b []byte, name string, n int64) []byte {
	if n == 0 {
		return b
	}
	b = append(b, name...)
	return strconv.AppendInt(b, n, 10)
}

// appendCommandString appends s quoted as a json.Encoder with
// SetEscapeHTML(false) quotes it.
func appendCommandString(b []byte, s string) ([]byte, error) {
	return appendStringWith(b, s, &asIsInCommandString, appendNoHTML)
}

// appendCommandValue appends a valid JSON value as a json.Encoder with
// SetEscapeHTML(false) writes a json.RawMessage: compacted, nothing
// escaped.
func appendCommandValue(b []byte, v json.RawMessage) ([]byte, error) {
	for _, c := range v {
		if !asIsInCommandValue[c] {
			buf := bytes.NewBuffer(b)
			err := json.Compact(buf, v)
			return buf.Bytes(), err
		}
	}
	return append(b, v...), nil
}

// appendNoHTML appends v as a json.Encoder with SetEscapeHTML(false)
// encodes it, without the newline.
func appendNoHTML(b []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// asIsInCommandString and asIsInCommandValue are the bytes a json.Encoder
// with SetEscapeHTML(false) writes as they are: in a string, printable
// ASCII but for '"' and '\\'; in a value, printable ASCII but the space.
var asIsInCommandString, asIsInCommandValue = func() (s, v [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		s[c] = c != '"' && c != '\\'
		v[c] = c != ' '
	}
	return s, v
}()

// DecodeResult decodes b into r as json.Unmarshal decodes it into a zero
// Result (qloghttp.ResultDecoder), when b has the shape Result.AppendJSON gives a put's or a
// delete's result and its strings are printable ASCII without escapes;
// otherwise it returns false and leaves r as it was, for encoding/json.
func (r *Result) DecodeResult(b []byte) bool {
	p := resultParser{b: b}
	var out Result
	var status string
	if !p.take(`{"status":`) || !p.str(&status) {
		return false
	}
	out.Status = Status(status)
	if p.take(`,"entry":`) && !p.entry(&out.Entry) ||
		p.take(`,"prev":`) && !p.entry(&out.Prev) ||
		!p.optInt(`,"deleted":`, &out.Deleted) ||
		!p.optInt(`,"fenceToken":`, &out.FenceToken) ||
		!p.optStr(`,"fault":`, &out.Fault) ||
		!p.optStr(`,"detail":`, &out.Detail) ||
		!p.take("}") || p.i != len(b) {
		return false
	}
	*r = out
	return true
}

// DecodeCommand decodes b into c as json.Unmarshal decodes it into a zero
// Command (envelope.CommandDecoder), when b has the shape AppendCommand
// gives a command without a transaction and its strings are printable
// ASCII without escapes; otherwise it returns false and leaves c as it
// was, for encoding/json. Apply reads every command of the log through it.
func (c *Command) DecodeCommand(b []byte) bool {
	p := resultParser{b: b}
	var out Command
	if !p.take(`{"op":`) || !p.str(&out.Op) ||
		!p.optStr(`,"key":`, &out.Key) ||
		!p.optStr(`,"prefix":`, &out.Prefix) ||
		p.take(`,"value":`) && !p.value(&out.Value) ||
		!p.optInt(`,"lease":`, &out.Lease) {
		return false
	}
	if p.take(`,"ifMatch":`) {
		var match int64
		if !p.int(&match) {
			return false
		}
		out.IfMatch = &match
	}
	out.IfNoneMatch = p.take(`,"ifNoneMatch":true`)
	if p.take(`,"fence":{"name":`) {
		var f Fence
		if !p.str(&f.Name) || !p.take(`,"token":`) || !p.int(&f.Token) || !p.take("}") {
			return false
		}
		out.Fence = &f
	}
	var ttl int64
	if !p.optInt(`,"ttl":`, &ttl) ||
		!p.optInt(`,"id":`, &out.ID) ||
		!p.optInt(`,"since":`, &out.Since) ||
		!p.optStr(`,"by":`, &out.By) ||
		!p.take("}") || p.i != len(b) {
		return false
	}
	out.TTL = time.Duration(ttl)
	*c = out
	return true
}

// resultParser reads the fixed shapes DecodeResult and DecodeCommand
// accept; every method reports whether what is at i is what it wants, and
// moves past it only when it is. The readers store what they read in
// *dst (what they leave there when they report false is of no use).
type resultParser struct {
	b []byte
	i int
}

func (p *resultParser) take(lit string) bool {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return false
	}
	p.i += len(lit)
	return true
}

// str reads a string of printable ASCII without escapes.
func (p *resultParser) str(dst *string) bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			*dst = string(p.b[p.i+1 : j])
			p.i = j + 1
			return true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return false
		}
	}
	return false
}

// int reads an integer as JSON writes one: an optional minus, then 0 or
// digits not starting with 0.
func (p *resultParser) int(dst *int64) bool {
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		j++
	}
	start := j
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	if j == start || (p.b[start] == '0' && j-start > 1) {
		return false
	}
	n, err := strconv.ParseInt(string(p.b[p.i:j]), 10, 64)
	if err != nil {
		return false
	}
	*dst, p.i = n, j
	return true
}

// entry reads an Entry in the shape AppendEntryJSON writes.
func (p *resultParser) entry(dst **Entry) bool {
	var e Entry
	if !p.take(`{"key":`) || !p.str(&e.Key) ||
		p.take(`,"value":`) && !p.value(&e.Value) ||
		!p.take(`,"createRevision":`) || !p.int(&e.CreateRevision) ||
		!p.take(`,"modRevision":`) || !p.int(&e.ModRevision) ||
		!p.take(`,"version":`) || !p.int(&e.Version) ||
		!p.optInt(`,"lease":`, &e.Lease) ||
		!p.optStr(`,"by":`, &e.By) ||
		!p.take("}") {
		return false
	}
	*dst = &e
	return true
}

// optStr and optInt read an optional field: lit, then its string or
// integer. They report false only when lit came and what followed was not
// one; without lit they leave *dst as it was and report true.
func (p *resultParser) optStr(lit string, dst *string) bool { return !p.take(lit) || p.str(dst) }

func (p *resultParser) optInt(lit string, dst *int64) bool { return !p.take(lit) || p.int(dst) }

// value reads one compact JSON value, checked as json.Valid checks it, and stores
// a copy of it, as json.Unmarshal fills a json.RawMessage.
func (p *resultParser) value(dst *json.RawMessage) bool {
	end, ok := valueEnd(p.b, p.i)
	if !ok || !jsonscan.Valid(p.b[p.i:end]) {
		return false
	}
	*dst = append(json.RawMessage(nil), p.b[p.i:end]...)
	p.i = end
	return true
}

// valueEnd returns where the compact JSON value starting at b[i] ends: at
// the end of a string, at the bracket closing an object or an array, or
// at the first ',', '}' or ']' after anything else. It follows strings and
// their escapes but checks nothing else; value does.
func valueEnd(b []byte, i int) (int, bool) {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			for j++; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if j >= len(b) {
				return 0, false
			}
			if depth == 0 {
				return j + 1, true
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j, j > i
			}
			depth--
			if depth == 0 {
				return j + 1, true
			}
		case ',':
			if depth == 0 {
				return j, j > i
			}
		}
	}
	return 0, false
}

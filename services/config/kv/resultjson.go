package kv

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
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
	if !p.take(`{"status":`) {
		return false
	}
	status, ok := p.str()
	if !ok {
		return false
	}
	out.Status = Status(status)
	if p.take(`,"entry":`) {
		if out.Entry, ok = p.entry(); !ok {
			return false
		}
	}
	if p.take(`,"prev":`) {
		if out.Prev, ok = p.entry(); !ok {
			return false
		}
	}
	if p.take(`,"deleted":`) {
		if out.Deleted, ok = p.int(); !ok {
			return false
		}
	}
	if p.take(`,"fenceToken":`) {
		if out.FenceToken, ok = p.int(); !ok {
			return false
		}
	}
	if p.take(`,"fault":`) {
		if out.Fault, ok = p.str(); !ok {
			return false
		}
	}
	if p.take(`,"detail":`) {
		if out.Detail, ok = p.str(); !ok {
			return false
		}
	}
	if !p.take("}") || p.i != len(b) {
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
	var ok bool
	if !p.take(`{"op":`) {
		return false
	}
	if out.Op, ok = p.str(); !ok {
		return false
	}
	if p.take(`,"key":`) {
		if out.Key, ok = p.str(); !ok {
			return false
		}
	}
	if p.take(`,"prefix":`) {
		if out.Prefix, ok = p.str(); !ok {
			return false
		}
	}
	if p.take(`,"value":`) {
		if out.Value, ok = p.value(); !ok {
			return false
		}
	}
	if p.take(`,"lease":`) {
		if out.Lease, ok = p.int(); !ok {
			return false
		}
	}
	if p.take(`,"ifMatch":`) {
		n, ok := p.int()
		if !ok {
			return false
		}
		out.IfMatch = &n
	}
	if p.take(`,"ifNoneMatch":true`) {
		out.IfNoneMatch = true
	}
	if p.take(`,"fence":{"name":`) {
		var f Fence
		if f.Name, ok = p.str(); !ok || !p.take(`,"token":`) {
			return false
		}
		if f.Token, ok = p.int(); !ok || !p.take("}") {
			return false
		}
		out.Fence = &f
	}
	if p.take(`,"ttl":`) {
		n, ok := p.int()
		if !ok {
			return false
		}
		out.TTL = time.Duration(n)
	}
	if p.take(`,"id":`) {
		if out.ID, ok = p.int(); !ok {
			return false
		}
	}
	if p.take(`,"since":`) {
		if out.Since, ok = p.int(); !ok {
			return false
		}
	}
	if p.take(`,"by":`) {
		if out.By, ok = p.str(); !ok {
			return false
		}
	}
	if !p.take("}") || p.i != len(b) {
		return false
	}
	*c = out
	return true
}

// resultParser reads the fixed shapes DecodeResult and DecodeCommand accept; every method
// reports whether what is at i is what it wants, and moves past it only
// when it is.
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
func (p *resultParser) str() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := string(p.b[p.i+1 : j])
			p.i = j + 1
			return s, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return "", false
		}
	}
	return "", false
}

// int reads an integer as JSON writes one: an optional minus, then 0 or
// digits not starting with 0.
func (p *resultParser) int() (int64, bool) {
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		j++
	}
	start := j
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	if j == start || (p.b[start] == '0' && j-start > 1) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(p.b[p.i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = j
	return n, true
}

// entry reads an Entry in the shape AppendEntryJSON writes.
func (p *resultParser) entry() (*Entry, bool) {
	var e Entry
	var ok bool
	if !p.take(`{"key":`) {
		return nil, false
	}
	if e.Key, ok = p.str(); !ok {
		return nil, false
	}
	if p.take(`,"value":`) {
		if e.Value, ok = p.value(); !ok {
			return nil, false
		}
	}
	if !p.take(`,"createRevision":`) {
		return nil, false
	}
	if e.CreateRevision, ok = p.int(); !ok || !p.take(`,"modRevision":`) {
		return nil, false
	}
	if e.ModRevision, ok = p.int(); !ok || !p.take(`,"version":`) {
		return nil, false
	}
	if e.Version, ok = p.int(); !ok {
		return nil, false
	}
	if p.take(`,"lease":`) {
		if e.Lease, ok = p.int(); !ok {
			return nil, false
		}
	}
	if p.take(`,"by":`) {
		if e.By, ok = p.str(); !ok {
			return nil, false
		}
	}
	if !p.take("}") {
		return nil, false
	}
	return &e, true
}

// value reads one compact JSON value, checked by json.Valid, and returns
// a copy of it, as json.Unmarshal fills a json.RawMessage.
func (p *resultParser) value() (json.RawMessage, bool) {
	end, ok := valueEnd(p.b, p.i)
	if !ok || !json.Valid(p.b[p.i:end]) {
		return nil, false
	}
	v := append(json.RawMessage(nil), p.b[p.i:end]...)
	p.i = end
	return v, true
}

// valueEnd returns where the compact JSON value starting at b[i] ends: at
// the end of a string, at the bracket closing an object or an array, or
// at the first ',', '}' or ']' after anything else. It follows strings and
// their escapes but checks nothing else; json.Valid does.
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

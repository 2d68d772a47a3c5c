package qlog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A stream message is one batch of entries in one of two encodings. The
// proposer writes the binary frame; batches written before it are JSON
// (wireBatch) and stay in streams, so a replica decodes both, told apart
// by the first byte.
//
// The binary frame is the 4 bytes of frameMagic, the entry count as a
// uvarint, then per entry: ID, Proposer, Time, Key and Cmd, each string
// or byte field a uvarint length and the bytes, Time a zig-zag varint of
// Unix nanoseconds. Every varint is in its shortest form and nothing may
// follow the last entry, so a batch has exactly one encoding (the fuzz
// target checks that decoding and encoding again gives the same bytes).
//
// A replica that does not know the frame skips it, as it would garbage,
// and falls behind the others; the hash chain then fail-stops it. So a
// new frame version, like this first one, is only published once every
// replica of the service decodes it: Config.BatchEncoding chooses, and
// is JSON unless set.

// BatchEncoding is how a replica writes the batches it proposes. Every
// replica of this version reads both.
type BatchEncoding string

const (
	// BatchJSON is read by every version of Steward: the encoding to
	// write while replicas of a version before the binary frame may run
	// (a rolling upgrade). The default.
	BatchJSON BatchEncoding = "json"
	// BatchBinary is the binary frame: decoded about 10x faster than
	// JSON, but only by replicas of this version or later.
	BatchBinary BatchEncoding = "binary"
)

// UnmarshalText reads a setting: json or binary.
func (e *BatchEncoding) UnmarshalText(b []byte) error {
	switch v := BatchEncoding(b); v {
	case BatchJSON, BatchBinary:
		*e = v
		return nil
	default:
		return fmt.Errorf("want json or binary")
	}
}

// encodeBatch encodes entries as one stream message.
func (e BatchEncoding) encodeBatch(entries []wireEntry) []byte {
	if e == BatchBinary {
		return appendFrame(nil, entries)
	}
	// Marshalling strings, numbers and commands that are valid JSON
	// (Propose checked them) cannot fail.
	data, err := json.Marshal(wireBatch{Entries: entries})
	if err != nil {
		panic(fmt.Sprintf("qlog: encode a JSON batch: %v", err))
	}
	return data
}

// frameMagic opens every binary frame: a zero byte, which cannot begin a
// JSON document, then "QB" and the frame version.
var frameMagic = [4]byte{0, 'Q', 'B', 1}

// minEntryBytes is the fewest bytes an entry takes (four empty fields and
// a one-byte time); it bounds the count a frame of a given size can claim.
const minEntryBytes = 5

var errNotCanonical = errors.New("varint not in its shortest form")

// appendFrame appends the binary frame of entries to buf, growing it once.
func appendFrame(buf []byte, entries []wireEntry) []byte {
	n := len(frameMagic) + binary.MaxVarintLen64
	for i := range entries {
		e := &entries[i]
		n += 4*binary.MaxVarintLen64 + binary.MaxVarintLen64 + len(e.ID) + len(e.Proposer) + len(e.Key) + len(e.Cmd)
	}
	buf = slices.Grow(buf, n)
	buf = append(buf, frameMagic[:]...)
	buf = binary.AppendUvarint(buf, uint64(len(entries)))
	for i := range entries {
		e := &entries[i]
		buf = appendField(buf, e.ID)
		buf = appendField(buf, e.Proposer)
		buf = binary.AppendVarint(buf, e.Time)
		buf = appendField(buf, e.Key)
		buf = appendField(buf, e.Cmd)
	}
	return buf
}

func appendField[T ~string | ~[]byte](buf []byte, field T) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(field)))
	return append(buf, field...)
}

// decodeBatch decodes a stream message of either encoding. A JSON batch
// decodes as json.Unmarshal always did here: with a field of the wrong
// type it returns the error and the entries decoded, which the log
// applies (see applied.Skipped). A binary frame decodes whole or not at
// all.
func decodeBatch(data []byte) ([]wireEntry, error) {
	if len(data) > 0 && data[0] == frameMagic[0] {
		return decodeFrame(data)
	}
	var b wireBatch
	err := json.Unmarshal(data, &b)
	if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) {
		return b.Entries, fmt.Errorf("JSON batch: %w", err)
	} else if err != nil {
		return nil, fmt.Errorf("neither a binary frame nor a JSON batch: %w", err)
	}
	return b.Entries, nil
}

// decodeFrame decodes a binary frame. It reads the frame twice: first to
// check it and size what it holds, then to fill the entries, so that a
// corrupt or hostile frame is refused before anything is allocated, and a
// good one costs two allocations: the entries, and one string holding
// their IDs, proposers and keys (a proposer repeated from the entry
// before is shared, not copied). Each Cmd is a slice of data, capped so
// that appending to it cannot overwrite what follows; data must not
// change while the entries are in use.
func decodeFrame(data []byte) ([]wireEntry, error) {
	if !bytes.HasPrefix(data, frameMagic[:]) {
		if len(data) >= len(frameMagic) && data[1] == frameMagic[1] && data[2] == frameMagic[2] {
			return nil, fmt.Errorf("binary frame version %d, this replica knows %d", data[3], frameMagic[3])
		}
		return nil, errors.New("not a binary frame")
	}
	r := frameReader{b: data[len(frameMagic):]}
	count := r.uvarint()
	if r.err == nil && count > uint64(len(r.b)/minEntryBytes) {
		return nil, fmt.Errorf("binary frame claims %d entries in %d bytes", count, len(r.b))
	}
	body := r
	strs := 0
	var prev []byte
	for range count {
		id, proposer := r.field(), r.field()
		r.varint()
		key := r.field()
		r.field()
		strs += len(id) + len(key)
		if !bytes.Equal(proposer, prev) {
			strs += len(proposer)
			prev = proposer
		}
	}
	switch {
	case r.err != nil:
		return nil, fmt.Errorf("binary frame: %w", r.err)
	case len(r.b) > 0:
		return nil, fmt.Errorf("binary frame: %d bytes after the last entry", len(r.b))
	case count == 0:
		return nil, nil
	}

	r = body
	var sb stringBlock
	sb.Grow(strs)
	entries := make([]wireEntry, count)
	prev = nil
	for i := range entries {
		e := &entries[i]
		e.ID = sb.add(r.field())
		if p := r.field(); i == 0 || !bytes.Equal(p, prev) {
			e.Proposer, prev = sb.add(p), p
		} else {
			e.Proposer = entries[i-1].Proposer
		}
		e.Time = r.varint()
		e.Key = sb.add(r.field())
		if c := r.field(); len(c) > 0 {
			e.Cmd = c[:len(c):len(c)]
		}
	}
	return entries, nil
}

// stringBlock hands out the strings of a frame from one allocation.
type stringBlock struct{ strings.Builder }

// add copies b into the block and returns it as a string. A Builder only
// appends, so a string taken from String earlier keeps its bytes.
func (s *stringBlock) add(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	off := s.Len()
	s.Write(b)
	return s.String()[off:]
}

// frameReader reads a frame's varints and fields. The first error sticks:
// every later read returns zero values, so a caller checks err once.
type frameReader struct {
	b   []byte
	err error
}

func (r *frameReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	switch {
	case n == 0:
		r.err = errors.New("truncated")
	case n < 0:
		r.err = errors.New("varint overflows 64 bits")
	case n > 1 && r.b[n-1] == 0:
		r.err = errNotCanonical
	}
	if r.err != nil {
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint reads a zig-zag varint; its canonical form is its uvarint's.
func (r *frameReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// field reads a length-prefixed field, bounded by the bytes left.
func (r *frameReader) field() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("field of %d bytes with %d left", n, len(r.b))
		return nil
	}
	f := r.b[:n]
	r.b = r.b[n:]
	return f
}

// MessageEntry is one entry of a log stream message as its proposer wrote
// it, for tools that read a stream (steward log dump).
type MessageEntry struct {
	ID       string    // proposal ID
	Proposer string    // replica ID of the proposer
	Time     time.Time // the proposer's clock, before the log raised it (Entry.Time)
	Key      string    // idempotency key, empty without one
	Cmd      []byte    // the service's command; a slice of the message
}

// DecodeMessage decodes a message of a log's stream, either encoding. It
// returns an error for a message the log skips; for a JSON batch with a
// field of the wrong type it also returns the entries the log applies
// nonetheless.
func DecodeMessage(data []byte) ([]MessageEntry, error) {
	ws, err := decodeBatch(data)
	out := make([]MessageEntry, len(ws))
	for i, w := range ws {
		out[i] = MessageEntry{ID: w.ID, Proposer: w.Proposer, Time: time.Unix(0, w.Time), Key: w.Key, Cmd: w.Cmd}
	}
	return out, err
}

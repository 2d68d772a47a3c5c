package kv

import (
	"encoding/json"
	"strconv"
	"strings"
)

// The store's entries are encoded here by hand, into exactly the bytes
// encoding/json writes for them: a snapshot's record lines (every record
// of the store, during writes) and the config service's answers. Through
// encoding/json each cost a reflection walk and a compaction of the
// stored value, which is compact already (values are compacted when they
// are written).
//
// Strings and values that encoding/json would escape or compact (anything
// outside printable ASCII, a quote or backslash in a string, '<', '>' and
// '&', whitespace in a value) are encoded by encoding/json itself; the rest
// is copied as it is, which is what encoding/json would write for it.

// appendRecordLine appends to b the line json.Encoder writes for
// snapshotRecord{key, versions}, newline included, so the snapshot format
// does not change.
func appendRecordLine(b []byte, key string, versions []version) ([]byte, error) {
	var err error
	b = append(b, `{"k":`...)
	if b, err = appendJSONString(b, key); err != nil {
		return nil, err
	}
	b = append(b, `,"v":`...)
	if versions == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range versions {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendVersion(b, &versions[i]); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...), nil
}

// appendVersion appends v as encoding/json encodes a version: Entry's
// fields, then Deleted.
func appendVersion(b []byte, v *version) ([]byte, error) {
	b, err := appendEntryFields(b, &v.Entry)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"Deleted":`...)
	b = strconv.AppendBool(b, v.Deleted)
	return append(b, '}'), nil
}

// AppendEntryJSON appends e as encoding/json encodes it (HTML escaping
// on, as json.Encoder's default), without the newline json.Encoder adds:
// the config service's answers to writes and reads of one key.
func AppendEntryJSON(b []byte, e *Entry) ([]byte, error) {
	b, err := appendEntryFields(b, e)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendEntryFields appends e's object without its closing brace: its
// fields in order, value, lease and by omitted when empty.
func appendEntryFields(b []byte, e *Entry) ([]byte, error) {
	var err error
	b = append(b, `{"key":`...)
	if b, err = appendJSONString(b, e.Key); err != nil {
		return nil, err
	}
	if len(e.Value) > 0 {
		b = append(b, `,"value":`...)
		if b, err = appendJSONValue(b, e.Value); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"createRevision":`...)
	b = strconv.AppendInt(b, e.CreateRevision, 10)
	b = append(b, `,"modRevision":`...)
	b = strconv.AppendInt(b, e.ModRevision, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, e.Version, 10)
	b = appendIntField(b, `,"lease":`, e.Lease)
	if e.By != "" {
		b = append(b, `,"by":`...)
		if b, err = appendJSONString(b, e.By); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendJSONString appends s quoted, as encoding/json (HTML escaping on)
// quotes it.
func appendJSONString(b []byte, s string) ([]byte, error) {
	return appendStringWith(b, s, &asIsInString, func(b []byte, s any) ([]byte, error) {
		q, err := json.Marshal(s)
		return append(b, q...), err
	})
}

// appendStringWith appends s quoted: as it is when asIs holds each of its
// bytes, else as encode encodes it.
func appendStringWith(b []byte, s string, asIs *[256]bool, encode func([]byte, any) ([]byte, error)) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if !asIs[s[i]] {
			return encode(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// appendJSONValue appends a stored JSON value as encoding/json writes a
// json.RawMessage: compacted, with '<', '>', '&', U+2028 and U+2029
// escaped. A value of printable ASCII without spaces or those three
// characters is written as it is.
func appendJSONValue(b []byte, v json.RawMessage) ([]byte, error) {
	for _, c := range v {
		if !asIsInValue[c] {
			q, err := json.Marshal(v)
			return append(b, q...), err
		}
	}
	return append(b, v...), nil
}

// asIsInString and asIsInValue are the bytes encoding/json writes as they
// are: in a string, printable ASCII but for '"', '\\', '<', '>' and '&';
// in a value, printable ASCII but for the space, '<', '>' and '&'.
var asIsInString, asIsInValue = func() (s, v [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		s[c] = !strings.ContainsRune(`"\\<>&`, rune(c))
		v[c] = c != ' ' && !strings.ContainsRune("<>&", rune(c))
	}
	return s, v
}()

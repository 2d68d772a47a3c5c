package kv

import (
	"encoding/json"
	"strconv"
)

// appendRecordLine appends to b the line json.Encoder writes for
// snapshotRecord{key, versions}: the same bytes, newline included, so the
// snapshot format does not change. A snapshot writes every record of the
// store, during writes; through encoding/json each record cost a
// reflection walk and a compaction of every stored value, which is compact
// already (values are compacted when they are written).
//
// Strings and values that encoding/json would escape or compact (anything
// outside printable ASCII, a quote or backslash in a string, '<', '>' and
// '&', whitespace in a value) are encoded by encoding/json itself; the rest
// is copied as it is, which is what encoding/json would write for it.
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
// fields in order (value, lease and by omitted when empty), then Deleted.
func appendVersion(b []byte, v *version) ([]byte, error) {
	var err error
	b = append(b, `{"key":`...)
	if b, err = appendJSONString(b, v.Key); err != nil {
		return nil, err
	}
	if len(v.Value) > 0 {
		b = append(b, `,"value":`...)
		if b, err = appendJSONValue(b, v.Value); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"createRevision":`...)
	b = strconv.AppendInt(b, v.CreateRevision, 10)
	b = append(b, `,"modRevision":`...)
	b = strconv.AppendInt(b, v.ModRevision, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, v.Version, 10)
	if v.Lease != 0 {
		b = append(b, `,"lease":`...)
		b = strconv.AppendInt(b, v.Lease, 10)
	}
	if v.By != "" {
		b = append(b, `,"by":`...)
		if b, err = appendJSONString(b, v.By); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"Deleted":`...)
	b = strconv.AppendBool(b, v.Deleted)
	return append(b, '}'), nil
}

// appendJSONString appends s quoted, as encoding/json (HTML escaping on)
// quotes it.
func appendJSONString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			return append(b, q...), err
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
		if c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(v)
			return append(b, q...), err
		}
	}
	return append(b, v...), nil
}

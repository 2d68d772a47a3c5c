package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// marshalValue is v as JSON: a json.RawMessage or []byte as it is
// (checked to be JSON), anything else marshalled.
func marshalValue(v any) ([]byte, error) {
	var b []byte
	switch t := v.(type) {
	case json.RawMessage:
		b = t
	case []byte:
		b = t
	default:
		return json.Marshal(v)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("steward: the value is not JSON: %.40q", b)
	}
	return b, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Duration is a time.Duration written as Go writes it ("10s", "1m30s"),
// as Steward's API does.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

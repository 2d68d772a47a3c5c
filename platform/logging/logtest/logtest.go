// Package logtest reads JSON log output the strict way: encoding/json keeps
// the last of a repeated key without a word, so a line that names a key
// twice would pass any test that decodes it into a map.
package logtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Lines decodes every line of JSON log output, refusing a line that is not
// one JSON object or that repeats a key in any object it holds.
func Lines(out []byte) ([]map[string]any, error) {
	var recs []map[string]any
	n := 0
	for line := range bytes.Lines(out) {
		n++
		if err := Strict(line); err != nil {
			return nil, fmt.Errorf("line %d: %w: %s", n, err, bytes.TrimSpace(line))
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// Strict reports an error if line is not exactly one JSON object, or if an
// object in it (nested ones included) has a key twice.
func Strict(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	if err := object(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value")
	}
	return nil
}

// object reads the rest of an object whose '{' was read.
func object(dec *json.Decoder) error {
	seen := map[string]bool{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if tok == json.Delim('}') {
			return nil
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q twice", key)
		}
		seen[key] = true
		if err := value(dec); err != nil {
			return err
		}
	}
}

// value reads one value, descending into objects and arrays.
func value(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return object(dec)
	case json.Delim('['):
		for dec.More() {
			if err := value(dec); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil
}

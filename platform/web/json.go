package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode"

	"github.com/stewardhq/steward/platform/fault"
)

// DefaultBodyLimit bounds request bodies when a handler names no other limit:
// DESIGN.md caps values at 1 MiB, and a body holds a value plus its envelope.
const DefaultBodyLimit = 1<<20 + 64<<10

// Validator is implemented by request types that check their own fields
// after decoding. Decode calls it and classifies its error as Invalid.
type Validator interface {
	Validate() error
}

// Encode writes v as JSON with the given status.
func Encode(w http.ResponseWriter, status int, v any) error {
	writeJSONHead(w, status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	return nil
}

// WriteJSON answers body, a JSON document encoded already, with the given
// status, as Encode answers a value.
func WriteJSON(w http.ResponseWriter, status int, body []byte) error {
	writeJSONHead(w, status)
	_, err := w.Write(body)
	return err
}

func writeJSONHead(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
}

// Decode reads one JSON document of type T from the request body. It refuses
// a body over limit before decoding (413), a non-JSON Content-Type (415),
// malformed JSON, unknown fields, wrong types and trailing data (400). The
// returned error is a *fault.Error ready for Error.
func Decode[T any](w http.ResponseWriter, r *http.Request, limit int64) (T, error) {
	var v T
	body, err := ReadBody(w, r, limit)
	if err != nil {
		return v, err
	}
	if err := Unmarshal(body, &v); err != nil {
		return v, err
	}
	if val, ok := any(&v).(Validator); ok {
		if err := val.Validate(); err != nil {
			return v, classify(err)
		}
	} else if val, ok := any(v).(Validator); ok {
		if err := val.Validate(); err != nil {
			return v, classify(err)
		}
	}
	return v, nil
}

// ReadBody returns the raw request body after checking its media type and
// size. The size is checked from Content-Length before anything is read and
// again while reading, so a lying or chunked client is cut off at limit.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	// A body labelled as a form (curl -d's default) is refused like any
	// other non-JSON type, not read as JSON: a browser posts a form to
	// any origin without a CORS preflight, so reading it would let any
	// web page write to a Steward without auth (dev mode on localhost).
	// An unlabelled body is read as JSON (what Go's http.Post and many
	// scripts send); a browser's cross-origin request always has a type.
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			f := fault.New(fault.UnsupportedMedia, "Content-Type %q is not JSON", ct)
			if err == nil && mt == "application/x-www-form-urlencoded" {
				f = fault.New(fault.UnsupportedMedia, "Content-Type %q is not JSON: send application/json (curl --json, or -H 'Content-Type: application/json')", ct)
			}
			return nil, f
		}
	}
	if r.ContentLength > limit {
		return nil, fault.New(fault.TooLarge, "body of %d bytes is over the limit of %d", r.ContentLength, limit).
			With("limit", limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fault.New(fault.TooLarge, "body is over the limit of %d bytes", limit).With("limit", limit)
		}
		return nil, fault.Wrap(fault.Invalid, err, "could not read the request body")
	}
	return body, nil
}

// Unmarshal decodes exactly one JSON document from data into v, refusing
// unknown fields and trailing data, and classifies any failure as Invalid.
func Unmarshal(data []byte, v any) error {
	// encoding/json turns a top-level null into a zero value without a
	// word; a request that names no fields at all is not what anyone meant.
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return fault.New(fault.Invalid, "request body is null; a JSON document is required")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.New(fault.Invalid, "malformed JSON: data after the first document")
	}
	return nil
}

func decodeError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return fault.New(fault.Invalid, "request body is empty; a JSON document is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.New(fault.Invalid, "malformed JSON: unexpected end of input")
	case errors.As(err, &syn):
		return fault.New(fault.Invalid, "malformed JSON at byte %d: %v", syn.Offset, syn).With("offset", syn.Offset)
	case errors.As(err, &typ):
		field := jsonPath(typ.Field)
		if field == "" {
			field = "(document)"
		}
		return fault.New(fault.Invalid, "field %s: got JSON %s, want %s", field, typ.Value, typ.Type).
			With("field", field)
	default:
		// encoding/json reports unknown fields only as a formatted error.
		return fault.Wrap(fault.Invalid, err, "invalid JSON: "+err.Error())
	}
}

// jsonPath turns encoding/json's field path into the path in the
// document: since Go 1.24 the path names embedded structs by their Go
// type ("Spec.maxReplicas", "driver.WebhookSpec.maxAttempts"), which are
// not in the JSON. Steward's JSON names start with a lower-case letter,
// so a component before the last that starts with an upper-case one is
// such a struct and is dropped.
func jsonPath(p string) string {
	parts := strings.Split(p, ".")
	out := parts[:0]
	for i, part := range parts {
		if i < len(parts)-1 && part != "" && unicode.IsUpper([]rune(part)[0]) {
			continue
		}
		out = append(out, part)
	}
	return strings.Join(out, ".")
}

// classify keeps a validation error's kind if it has one, else makes it Invalid.
func classify(err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	return fault.New(fault.Invalid, "%v", err)
}

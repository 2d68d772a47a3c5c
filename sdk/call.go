package sdk

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// maxAnswer bounds an answer the SDK reads into memory.
const maxAnswer = 256 << 20

// decode reads a 2xx answer's JSON into a new T, or returns its problem.
// res and err are what a call of the generated client gave.
func decode[T any](res *http.Response, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 300 {
		return nil, problem(res)
	}
	defer res.Body.Close()
	v := new(T)
	if res.StatusCode == http.StatusNoContent {
		return v, nil
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, maxAnswer)).Decode(v); err != nil {
		return nil, fmt.Errorf("steward: decoding the answer to %s %s: %w", res.Request.Method, res.Request.URL.Path, err)
	}
	return v, nil
}

// check returns the problem of an answer that is not 2xx, and closes it.
func check(res *http.Response, err error) error {
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return problem(res)
	}
	res.Body.Close()
	return nil
}

// collect reads a listing page after page: page fetches the one after
// the cursor (nil: the first) and returns its items and the next cursor
// (nil or "" on the last).
func collect[T any](page func(after *string) ([]T, *string, error)) ([]T, error) {
	var all []T
	var after *string
	for {
		items, next, err := page(after)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == nil || *next == "" {
			return all, nil
		}
		after = next
	}
}

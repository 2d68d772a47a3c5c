package envelope_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog/envelope"
)

type command struct {
	Op  string `json:"op"`
	Key string `json:"key,omitempty"`
}

type result struct {
	Status string            `json:"status"`
	Seen   map[string]string `json:"seen,omitempty"`
	envelope.Problem
}

// apply stands for a state machine: it refuses what it does not know.
func apply(c *command) result {
	switch c.Op {
	case "get":
		return result{Status: "ok", Seen: map[string]string{"z": "last", "a": "first", c.Key: "asked"}}
	case "cas":
		return result{Status: "preconditionFailed", Problem: envelope.Refuse(fault.PreconditionFailed, "%s changed", c.Key)}
	}
	return result{Status: "invalid", Problem: envelope.Refuse(fault.Invalid, "unknown op %q", c.Op)}
}

func refused(p envelope.Problem) result { return result{Status: "invalid", Problem: p} }

func TestApply(t *testing.T) {
	tests := []struct {
		name string
		cmd  string
		want string
	}{
		{"applied", `{"op":"get","key":"m"}`, `{"status":"ok","seen":{"a":"first","m":"asked","z":"last"}}`},
		{"refused", `{"op":"cas","key":"k"}`, `{"status":"preconditionFailed","fault":"precondition-failed","detail":"k changed"}`},
		{"unknown op", `{"op":"nope"}`, `{"status":"invalid","fault":"invalid","detail":"unknown op \"nope\""}`},
		{"not JSON", `{"op":`, `{"status":"invalid","fault":"invalid","detail":"undecodable command"}`},
		{"wrong type", `{"op":7}`, `{"status":"invalid","fault":"invalid","detail":"undecodable command"}`},
		{"empty", ``, `{"status":"invalid","fault":"invalid","detail":"undecodable command"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := envelope.Apply([]byte(tc.cmd), apply, refused)
			if string(got) != tc.want {
				t.Errorf("Apply(%s) = %s, want %s", tc.cmd, got, tc.want)
			}
		})
	}
}

// TestApplyDeterministic applies each command many times: a result holding
// a map must encode to the same bytes every time, as replicas need.
func TestApplyDeterministic(t *testing.T) {
	for _, cmd := range []string{`{"op":"get","key":"b"}`, `{"op":"cas","key":"k"}`, `garbage`} {
		first := envelope.Apply([]byte(cmd), apply, refused)
		for range 100 {
			if got := envelope.Apply([]byte(cmd), apply, refused); !bytes.Equal(got, first) {
				t.Fatalf("Apply(%s) = %s, then %s", cmd, first, got)
			}
		}
	}
}

// shortCommand decodes itself when its command is the one word "get:"
// followed by a key, and declines anything else.
type shortCommand struct{ command }

func (c *shortCommand) DecodeCommand(b []byte) bool {
	k, ok := bytes.CutPrefix(b, []byte("get:"))
	if !ok {
		return false
	}
	c.Op, c.Key = "get", string(k)
	return true
}

// TestApplyCommandDecoder: a command type that is a CommandDecoder decodes
// what it takes itself, and what it declines goes to encoding/json.
func TestApplyCommandDecoder(t *testing.T) {
	applyShort := func(c *shortCommand) result { return apply(&c.command) }
	for _, tc := range []struct{ cmd, want string }{
		{`get:m`, `{"status":"ok","seen":{"a":"first","m":"asked","z":"last"}}`},
		{`{"op":"cas","key":"k"}`, `{"status":"preconditionFailed","fault":"precondition-failed","detail":"k changed"}`},
		{`{"op":`, `{"status":"invalid","fault":"invalid","detail":"undecodable command"}`},
	} {
		if got := envelope.Apply([]byte(tc.cmd), applyShort, refused); string(got) != tc.want {
			t.Errorf("Apply(%s) = %s, want %s", tc.cmd, got, tc.want)
		}
	}
}

// broken is a field that fails to encode when set.
type broken bool

func (broken) MarshalJSON() ([]byte, error) { return nil, errors.New("broken") }

type unencodable struct {
	Broken broken `json:"broken,omitempty"`
	envelope.Problem
}

func TestApplyUnencodableResult(t *testing.T) {
	got := envelope.Apply([]byte(`{}`),
		func(*command) unencodable { return unencodable{Broken: true} },
		func(p envelope.Problem) unencodable { return unencodable{Problem: p} })
	const want = `{"fault":"internal","detail":"the result does not encode: json: error calling MarshalJSON for type envelope_test.broken: broken"}`
	if string(got) != want {
		t.Errorf("Apply = %s, want %s", got, want)
	}
}

// TestRefusal checks that every kind survives the trip through a result's
// JSON and comes back as the same kind and detail.
func TestRefusal(t *testing.T) {
	kinds := []fault.Kind{
		fault.Internal, fault.Invalid, fault.Unauthorized, fault.Forbidden, fault.NotFound,
		fault.NotAllowed, fault.Conflict, fault.Gone, fault.PreconditionFailed, fault.TooLarge,
		fault.UnsupportedMedia, fault.Unavailable, fault.Timeout, fault.TooManyRequests,
		fault.BadGateway, fault.LoopDetected, fault.ClientClosed,
	}
	for _, k := range kinds {
		t.Run(k.String(), func(t *testing.T) {
			p := envelope.Refuse(k, "because %d", 7)
			if p.Fault != k.String() {
				t.Errorf("Refuse(%v).Fault = %q, want %q", k, p.Fault, k.String())
			}
			f := p.Refusal()
			if f == nil || f.Kind != k || f.Detail != "because 7" {
				t.Fatalf("Refuse(%v).Refusal() = %+v, want kind %v, detail %q", k, f, k, "because 7")
			}
			if got := fault.KindOf(p.Err()); got != k {
				t.Errorf("KindOf(Refuse(%v).Err()) = %v, want %v", k, got, k)
			}
		})
	}
}

func TestRefusalNone(t *testing.T) {
	tests := []struct {
		name string
		p    envelope.Problem
		want *fault.Error
	}{
		{"took effect", envelope.Problem{}, nil},
		{"took effect with a note", envelope.Problem{Detail: "nothing was due"}, nil},
		{"unknown slug", envelope.Problem{Fault: "from-the-future", Detail: "x"}, &fault.Error{Kind: fault.Internal, Detail: "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.Refusal()
			if (got == nil) != (tc.want == nil) || got != nil && (got.Kind != tc.want.Kind || got.Detail != tc.want.Detail) {
				t.Errorf("Refusal() = %+v, want %+v", got, tc.want)
			}
			if err := tc.p.Err(); (err == nil) != (tc.want == nil) {
				t.Errorf("Err() = %v, want nil: %v", err, tc.want == nil)
			}
			var fe *fault.Error
			if tc.want != nil && !errors.As(tc.p.Err(), &fe) {
				t.Errorf("Err() = %v, want a *fault.Error", tc.p.Err())
			}
		})
	}
}

func TestErrWith(t *testing.T) {
	type leader struct{ Name string }
	tests := []struct {
		name   string
		p      envelope.Problem
		fields map[string]any
		want   map[string]any // nil: no error
	}{
		{"took effect", envelope.Problem{}, map[string]any{"modRevision": int64(4)}, nil},
		{"with fields", envelope.Refuse(fault.PreconditionFailed, "changed"), map[string]any{"modRevision": int64(4), "fenceToken": int64(2)},
			map[string]any{"modRevision": int64(4), "fenceToken": int64(2)}},
		{"zero fields left out", envelope.Refuse(fault.Conflict, "taken"), map[string]any{"leader": (*leader)(nil), "fenceToken": int64(0), "none": nil},
			map[string]any{}},
		{"pointer kept", envelope.Refuse(fault.Conflict, "taken"), map[string]any{"leader": &leader{"c1"}},
			map[string]any{"leader": &leader{"c1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.ErrWith(tc.fields)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("ErrWith = %v, want nil", err)
				}
				return
			}
			var fe *fault.Error
			if !errors.As(err, &fe) {
				t.Fatalf("ErrWith = %v, want a *fault.Error", err)
			}
			if len(fe.Fields) != len(tc.want) {
				t.Fatalf("ErrWith fields = %v, want %v", fe.Fields, tc.want)
			}
			for k, v := range tc.want {
				if got := fmt.Sprint(fe.Fields[k]); got != fmt.Sprint(v) {
					t.Errorf("ErrWith field %s = %s, want %s", k, got, fmt.Sprint(v))
				}
			}
		})
	}
}

package main

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// op builds an operation; ret < 0 marks an unknown outcome.
func op(client int, call, ret int64, in kvInput, out kvOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func TestRegisterModel(t *testing.T) {
	const k = "/k"
	put := func(v string) kvInput { return kvInput{Op: "put", Key: k, Value: v} }
	get := kvInput{Op: "get", Key: k}
	cas := func(from, to string) kvInput { return kvInput{Op: "cas", Key: k, Expect: from, Value: to} }
	read := func(v string) kvOutput { return kvOutput{Value: v, Exists: true} }
	ok := kvOutput{OK: true}
	unknown := kvOutput{Unknown: true}
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"sequential put get", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(1, 2, 3, get, read("a")),
		}, porcupine.Ok},
		{"stale read after ack", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(0, 2, 3, put("b"), ok), op(1, 4, 5, get, read("a")),
		}, porcupine.Illegal},
		{"absent before any write", []porcupine.Operation{
			op(1, 0, 1, get, kvOutput{}), op(0, 2, 3, put("a"), ok),
		}, porcupine.Ok},
		{"cas holds", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(1, 2, 3, cas("a", "b"), ok), op(2, 4, 5, get, read("b")),
		}, porcupine.Ok},
		{"cas succeeds on a value that moved", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(0, 2, 3, put("b"), ok), op(1, 4, 5, cas("a", "c"), ok),
		}, porcupine.Illegal},
		{"cas fails on the current value", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(1, 2, 3, cas("a", "c"), kvOutput{}),
		}, porcupine.Illegal},
		{"cas fails naming the value then current", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(0, 2, 3, put("b"), ok), op(1, 4, 5, cas("a", "c"), kvOutput{Value: "b"}),
		}, porcupine.Ok},
		{"cas fails naming a value that was not current", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(0, 2, 3, put("b"), ok), op(1, 4, 5, cas("a", "c"), kvOutput{Value: "a"}),
		}, porcupine.Illegal},
		// An unknown put that nobody read can still explain a failed cas.
		{"unknown put explains a failed cas", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(2, 2, 100, put("x"), unknown), op(1, 4, 5, cas("a", "c"), kvOutput{}),
		}, porcupine.Ok},
		// ... or may never have happened.
		{"unknown put that did not happen", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(2, 2, 100, put("x"), unknown), op(1, 4, 5, get, read("a")), op(1, 6, 7, get, read("a")),
		}, porcupine.Ok},
		{"unknown put read, then gone without a write", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(2, 2, 100, put("x"), unknown), op(1, 4, 5, get, read("x")), op(1, 6, 7, get, read("a")),
		}, porcupine.Illegal},
		{"unknown cas whose precondition could not hold", []porcupine.Operation{
			op(0, 0, 1, put("a"), ok), op(2, 2, 100, cas("z", "x"), unknown), op(1, 4, 5, get, read("x")),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(registerModel, tt.ops, 10*time.Second); got != tt.want {
				t.Errorf("check = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHistoryDropsOnlyUnobservableUnknowns checks the pruning before the
// checker: an unknown write nobody read is left out unless a failed cas on
// its key came after it.
func TestHistoryDropsOnlyUnobservableUnknowns(t *testing.T) {
	w := &configWorkload{}
	w.ops = []porcupine.Operation{
		op(0, 0, 1, kvInput{Op: "put", Key: "/a", Value: "a1"}, kvOutput{OK: true, Rev: 1}),
		op(1, 2, -1, kvInput{Op: "put", Key: "/a", Value: "a2"}, kvOutput{Unknown: true}), // unread: dropped
		op(0, 3, -1, kvInput{Op: "put", Key: "/b", Value: "b1"}, kvOutput{Unknown: true}), // a failed cas follows: kept
		op(2, 4, 5, kvInput{Op: "cas", Key: "/b", Expect: "b0", Value: "b2"}, kvOutput{Rev: 12}),
		op(1, 6, -1, kvInput{Op: "put", Key: "/a", Value: "a3"}, kvOutput{Unknown: true}), // read later: kept
		op(2, 7, 8, kvInput{Op: "get", Key: "/a"}, kvOutput{Value: "a3", Exists: true, Rev: 9}),
		op(2, 9, 10, kvInput{Op: "get", Key: "/b"}, kvOutput{Value: "bx", Exists: true, Rev: 12}),
	}
	ops, unknown, dropped := w.history()
	if unknown != 3 || dropped != 1 || len(ops) != 6 {
		t.Fatalf("history() = %d ops, %d unknown, %d dropped; want 6, 3, 1", len(ops), unknown, dropped)
	}
	for _, o := range ops {
		if o.Output.(kvOutput).Unknown && o.Return != 11 {
			t.Errorf("unknown %v returns at %d, want 11 (after everything)", o.Input, o.Return)
		}
		if in := o.Input.(kvInput); in.Op == "cas" && o.Output.(kvOutput).Value != "bx" {
			t.Errorf("failed cas current value = %q, want bx (revision 12)", o.Output.(kvOutput).Value)
		}
	}
}

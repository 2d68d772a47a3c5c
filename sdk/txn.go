package sdk

import (
	"context"
	"encoding/json"

	"github.com/stewardhq/steward/sdk/api"
)

// Txn is a transaction: if every comparison in If holds, the operations
// in Then run, else those in Else, atomically at one revision.
type Txn struct {
	If   []Cmp `json:"compare,omitempty"`
	Then []Op  `json:"success,omitempty"`
	Else []Op  `json:"failure,omitempty"`
}

// Cmp is one comparison of a transaction: a key's target (value,
// version, createRevision, modRevision or exists) against a value with
// ==, !=, < or >. A missing key has version, createRevision and
// modRevision 0 and no value.
type Cmp struct {
	Key    string          `json:"key"`
	Target string          `json:"target"`
	Op     string          `json:"op"`
	Value  json.RawMessage `json:"value"`
	err    error           // value could not be marshalled
}

// Compare is the comparison of key's target with value (marshalled to
// JSON), e.g. Compare("/app/db", "modRevision", "==", 42).
func Compare(key, target, op string, value any) Cmp {
	b, err := marshalValue(value)
	return Cmp{Key: key, Target: target, Op: op, Value: b, err: err}
}

// Op is one operation of a transaction: exactly one of Put, Get, Delete.
type Op struct {
	Put    *OpPut    `json:"put,omitempty"`
	Get    *OpGet    `json:"get,omitempty"`
	Delete *OpDelete `json:"delete,omitempty"`
	err    error     // a value that could not be marshalled
}

// OpPut writes a key.
type OpPut struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
	Lease int64           `json:"lease,omitempty"`
}

// OpGet reads a key.
type OpGet struct {
	Key string `json:"key"`
}

// OpDelete deletes a key, or every key under a prefix.
type OpDelete struct {
	Key    string `json:"key,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// Put is the operation writing value (marshalled to JSON) to key.
func Put(key string, value any) Op {
	b, err := marshalValue(value)
	return Op{Put: &OpPut{Key: key, Value: b}, err: err}
}

// Get is the operation reading key.
func Get(key string) Op { return Op{Get: &OpGet{Key: key}} }

// Delete is the operation deleting key.
func Delete(key string) Op { return Op{Delete: &OpDelete{Key: key}} }

// TxnResult is what a transaction did: which branch ran, at which
// revision, and one result per operation of that branch.
type TxnResult struct {
	Succeeded bool       `json:"succeeded"`
	Revision  int64      `json:"revision"`
	Results   []OpResult `json:"results"`
}

// OpResult is the outcome of one operation: Put has the new version; Get
// says whether the key was Found and, if so, its version; Delete what
// was deleted.
type OpResult struct {
	Put    *KeyValue `json:"put,omitempty"`
	Get    *KeyValue `json:"get,omitempty"`
	Found  bool      `json:"found,omitempty"`
	Delete *struct {
		Deleted int64      `json:"deleted"`
		Entries []KeyValue `json:"entries,omitempty"`
	} `json:"delete,omitempty"`
}

// Txn runs txn.
func (kv KV) Txn(ctx context.Context, txn Txn) (*TxnResult, error) {
	for _, c := range txn.If {
		if c.err != nil {
			return nil, c.err
		}
	}
	for _, op := range append(txn.Then, txn.Else...) {
		if op.err != nil {
			return nil, op.err
		}
	}
	body, err := json.Marshal(txn)
	if err != nil {
		return nil, err
	}
	return decode[TxnResult](kv.c.api.TxnWithBody(ctx, &api.TxnParams{}, "application/json", bytesReader(body)))
}

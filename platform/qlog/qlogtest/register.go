// Package qlogtest holds helpers for testing code built on qlog: embedded
// NATS servers (single, restartable, clustered) and Registers, a small
// deterministic state machine used by qlog's own tests and benchmarks.
package qlogtest

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
)

// Registers is a map of string registers with put, compare-and-set,
// delete and TTL expiry: the example state machine.
type Registers struct {
	vals map[string]register
	ttl  *qlog.Expiries // rebuilt from vals on Restore
}

type register struct {
	Value   string `json:"v"`
	ModRev  int64  `json:"m"`
	Expires int64  `json:"x,omitempty"` // Unix nanoseconds of log time; 0 = never
}

// Cmd is a Registers command.
type Cmd struct {
	Op    string `json:"op"` // put, cas, delete, expire
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	// From is the value a cas expects.
	From string `json:"from,omitempty"`
	// TTL makes a put expire after this long in log time.
	TTL time.Duration `json:"ttl,omitempty"`
	// Since is an expire's precondition: the key was not renewed after
	// this revision.
	Since int64 `json:"since,omitempty"`
}

// Reply is the result of every command.
type Reply struct {
	OK     bool   `json:"ok"`
	Prev   string `json:"prev"`
	Exists bool   `json:"exists"`
}

// NewRegisters returns an empty state machine.
func NewRegisters() *Registers {
	return &Registers{vals: map[string]register{}, ttl: qlog.NewExpiries()}
}

// Put encodes a put command.
func Put(key, value string) []byte { return mustJSON(Cmd{Op: "put", Key: key, Value: value}) }

// PutTTL encodes a put that expires after ttl of log time.
func PutTTL(key, value string, ttl time.Duration) []byte {
	return mustJSON(Cmd{Op: "put", Key: key, Value: value, TTL: ttl})
}

// CAS encodes a compare-and-set from → to.
func CAS(key, from, to string) []byte {
	return mustJSON(Cmd{Op: "cas", Key: key, From: from, Value: to})
}

// Delete encodes a delete.
func Delete(key string) []byte { return mustJSON(Cmd{Op: "delete", Key: key}) }

// Expire encodes an expiry proposal: it deletes key only if, at apply
// time, its TTL has passed in log time and it was not renewed (put again)
// after revision since.
func Expire(key string, since int64) []byte {
	return mustJSON(Cmd{Op: "expire", Key: key, Since: since})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Apply implements qlog.StateMachine.
func (r *Registers) Apply(e qlog.Entry) ([]byte, []qlog.Event) {
	c, err := decodeCmd(e.Cmd)
	if err != nil {
		return encodeReply(Reply{}), nil
	}
	cur, exists := r.vals[c.Key]
	reply := Reply{Prev: cur.Value, Exists: exists}
	var events []qlog.Event
	switch c.Op {
	case "put":
		reg := register{Value: c.Value, ModRev: e.Revision}
		if c.TTL > 0 {
			reg.Expires = e.Time.Add(c.TTL).UnixNano()
			r.ttl.Set(c.Key, e.Time.Add(c.TTL), e.Revision)
		} else {
			r.ttl.Remove(c.Key)
		}
		r.vals[c.Key] = reg
		reply.OK = true
		events = []qlog.Event{{Type: "put", Key: c.Key, Data: []byte(c.Value)}}
	case "cas":
		if exists && cur.Value == c.From {
			r.vals[c.Key] = register{Value: c.Value, ModRev: e.Revision, Expires: cur.Expires}
			if cur.Expires != 0 {
				// Keep the index equal to what Restore rebuilds from vals.
				r.ttl.Set(c.Key, time.Unix(0, cur.Expires), e.Revision)
			}
			reply.OK = true
			events = []qlog.Event{{Type: "put", Key: c.Key, Data: []byte(c.Value)}}
		}
	case "delete":
		if exists {
			delete(r.vals, c.Key)
			r.ttl.Remove(c.Key)
			reply.OK = true
			events = []qlog.Event{{Type: "delete", Key: c.Key}}
		}
	case "expire":
		// The precondition is checked against the entry's log time, so
		// every replica decides the same, and a duplicate is a no-op.
		if r.ttl.Expired(c.Key, c.Since, e.Time) {
			delete(r.vals, c.Key)
			r.ttl.Remove(c.Key)
			reply.OK = true
			events = []qlog.Event{{Type: "delete", Key: c.Key}}
		}
	}
	return encodeReply(reply), events
}

// Get returns a register's value. Call it inside qlog.Log.Read.
func (r *Registers) Get(key string) (string, bool) {
	v, ok := r.vals[key]
	return v.Value, ok
}

// DueExpiries returns expire commands for the keys whose TTL passed by
// now; give it to qlog.Log.RunExpiry.
func (r *Registers) DueExpiries(now time.Time) [][]byte {
	var cmds [][]byte
	for _, d := range r.ttl.Due(now, 256) {
		cmds = append(cmds, Expire(d.ID, d.NotRenewedSince))
	}
	return cmds
}

// Len returns the number of registers. Call it inside qlog.Log.Read.
func (r *Registers) Len() int { return len(r.vals) }

// Corrupt changes a register behind the log's back: a test hook that makes
// this replica's state diverge from the others'.
func (r *Registers) Corrupt(key, value string) { r.vals[key] = register{Value: value} }

// Snapshot implements qlog.StateMachine. encoding/json sorts map keys, so
// equal states give equal bytes.
func (r *Registers) Snapshot(w io.Writer) error {
	return json.NewEncoder(w).Encode(r.vals)
}

// Restore implements qlog.StateMachine.
func (r *Registers) Restore(rd io.Reader) error {
	vals := map[string]register{}
	if err := json.NewDecoder(rd).Decode(&vals); err != nil {
		return fmt.Errorf("registers: %w", err)
	}
	r.vals = vals
	r.ttl = qlog.NewExpiries()
	for k, v := range vals {
		if v.Expires != 0 {
			r.ttl.Set(k, time.Unix(0, v.Expires), v.ModRev)
		}
	}
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// The config workload: clients put, get and compare-and-set a few keys,
// spread over the replicas; the history is checked for linearizability, lost
// writes and revisions that disagree with values, and at the end every
// replica must hold the same listing at the same revision.
const (
	configClients = 10
	// configKeys is the number of keys per 4 minutes of run: porcupine's
	// memory grows with the square of the operations on one key (a 30 m
	// run on 8 keys took 15 GB), so a longer run spreads over more keys
	// and each key sees about as many operations as in a 4 m run.
	configKeys   = 8
	configPrefix = "/chaos/kv/"
	opTimeout    = 8 * time.Second
	// finalClient is the client id of the reads after the run.
	finalClient = 1000
)

// kvInput is one call: put, get, or cas (If-Match the modRevision of the
// value Expect, which this client read).
type kvInput struct {
	Op     string
	Key    string
	Value  string // put, cas: the new value (unique)
	Expect string // cas
	Node   int    // the replica asked
}

// kvOutput is what came back. Unknown: no definite answer (a timeout, a
// 504 or another 5xx); the call may or may not have taken effect.
type kvOutput struct {
	Value   string // get: the value read; cas that failed: the value then current, if known
	Exists  bool
	OK      bool // put, cas: it took effect
	Unknown bool
	Rev     int64 // the modRevision answered with the value
}

type regState struct {
	Value  string
	Exists bool
}

// registerModel is a register per key. An unknown put or cas either took
// effect or did not, so the model is nondeterministic.
var registerModel = (&porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := slices.Sorted(mapKeys(byKey))
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{regState{}} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(regState), input.(kvInput), output.(kvOutput)
		applied := regState{Value: in.Value, Exists: true}
		switch in.Op {
		case "get":
			if out.Value == s.Value && out.Exists == s.Exists {
				return []any{s}
			}
		case "put":
			if out.Unknown {
				return []any{applied, s}
			}
			return []any{applied}
		case "cas":
			holds := s.Exists && s.Value == in.Expect
			switch {
			case out.Unknown && holds:
				return []any{applied, s}
			case out.Unknown:
				return []any{s}
			case out.OK && holds:
				return []any{applied}
			case !out.OK && !holds && (out.Value == "" || out.Value == s.Value):
				return []any{s}
			}
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		res := "ok"
		switch {
		case out.Unknown:
			res = "?"
		case in.Op == "get" && !out.Exists:
			res = "absent"
		case in.Op == "get":
			res = fmt.Sprintf("%s @%d", out.Value, out.Rev)
		case !out.OK:
			res = "412 (current " + out.Value + ")"
		}
		switch in.Op {
		case "get":
			return fmt.Sprintf("get(%s) on n%d -> %s", in.Key, in.Node, res)
		case "put":
			return fmt.Sprintf("put(%s, %s) on n%d -> %s", in.Key, in.Value, in.Node, res)
		}
		return fmt.Sprintf("cas(%s, %s -> %s) on n%d -> %s", in.Key, in.Expect, in.Value, in.Node, res)
	},
	DescribeState: func(state any) string {
		s := state.(regState)
		if !s.Exists {
			return "absent"
		}
		return s.Value
	},
}).ToModel()

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// configWorkload records the history.
type configWorkload struct {
	s    *suite
	keys int

	mu     sync.Mutex
	ops    []porcupine.Operation
	counts counts
	// writeAcks are acknowledged writes, per replica: for recovery times.
	writeAcks [][]ackRecord
}

// ackRecord is one acknowledged write: when it was sent and answered.
type ackRecord struct{ call, ret time.Time }

// counts is one workload's line in the table.
type counts struct {
	Ops, OK, Failed, Unknown, Violations int
	Notes                                []string
}

// count adds one call: it took effect, or its outcome is unknown, or it
// failed.
func (c *counts) count(ok, unknown bool) {
	c.Ops++
	switch {
	case ok:
		c.OK++
	case unknown:
		c.Unknown++
	default:
		c.Failed++
	}
}

// tally counts a call by its reply: not ok and without a definite answer
// is unknown.
func (c *counts) tally(r reply, ok bool) {
	c.count(ok, !ok && !r.definite() && !r.refused)
}

func newConfigWorkload(s *suite) *configWorkload {
	keys := configKeys * max(1, int((s.o.duration+2*time.Minute)/(4*time.Minute)))
	return &configWorkload{s: s, keys: keys, writeAcks: make([][]ackRecord, s.c.nodes())}
}

func (w *configWorkload) now() int64 { return int64(time.Since(w.s.start)) }

func (w *configWorkload) record(client int, in kvInput, call, ret int64, out kvOutput) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ops = append(w.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

func (w *configWorkload) tally(ok, unknown bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts.count(ok, unknown)
}

// run starts the clients; they stop when ctx ends.
func (w *configWorkload) run(ctx context.Context, wg *sync.WaitGroup) {
	for id := range configClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, id)
		}()
	}
}

// seen is what one client last read of a key: the value and its revision,
// which a cas names in If-Match.
type seen struct {
	value string
	rev   int64
}

// client runs one client against its own replica (client i on node i mod
// 3), so that a paused replica blocks only its own clients and the stall
// measured is the service's, not every client waiting on the one replica
// that hangs; the others' operations on the other replicas are what a
// stale read shows against.
func (w *configWorkload) client(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(w.s.o.seed), uint64(id)))
	last := map[string]seen{}
	for n := 0; ctx.Err() == nil; n++ {
		key := configPrefix + "k" + strconv.Itoa(rng.IntN(w.keys))
		node := id % w.s.c.nodes()
		value := fmt.Sprintf("c%d-%d", id, n)
		answered := true
		switch p := rng.IntN(100); {
		case p < 40:
			var v seen
			var ok bool
			if v, ok, answered = w.get(ctx, id, node, key); ok {
				last[key] = v
			}
		case p < 75:
			answered = w.write(ctx, id, kvInput{Op: "put", Key: key, Value: value, Node: node}, 0)
		default:
			v, ok := last[key]
			if !ok {
				if v, ok, answered = w.get(ctx, id, node, key); !ok {
					break
				}
				last[key] = v
			}
			answered = w.write(ctx, id, kvInput{Op: "cas", Key: key, Value: value, Expect: v.value, Node: node}, v.rev)
			delete(last, key)
		}
		if !answered {
			// A replica that refuses at once (not ready, cut off) is not
			// asked again in a tight loop.
			sleepCtx(ctx, 50*time.Millisecond)
		}
	}
}

// entry is the JSON of a config entry.
type entry struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	ModRevision int64           `json:"modRevision"`
	Version     int64           `json:"version"`
	CreateRev   int64           `json:"createRevision"`
	Lease       int64           `json:"lease,omitempty"`
}

func (e entry) str() string {
	var s string
	_ = json.Unmarshal(e.Value, &s)
	return s
}

// get is a linearizable read; it is recorded only when it answered 200 or
// 404 (a failed read has no effect). It returns what it read, whether the
// key exists, and whether the read answered.
func (w *configWorkload) get(ctx context.Context, client, node int, key string) (seen, bool, bool) {
	call := w.now()
	r := w.s.do(ctx, http.MethodGet, w.s.c.url("config", node)+"/v1/kv"+key, nil, nil, opTimeout)
	ret := w.now()
	in := kvInput{Op: "get", Key: key, Node: node}
	switch {
	case r.err == nil && r.status == http.StatusOK:
		var e entry
		if err := json.Unmarshal(r.body, &e); err != nil {
			w.s.logf("config: get %s: undecodable body %q", key, r.body)
			w.tally(false, false)
			return seen{}, false, false
		}
		w.record(client, in, call, ret, kvOutput{Value: e.str(), Exists: true, Rev: e.ModRevision})
		w.tally(true, false)
		return seen{value: e.str(), rev: e.ModRevision}, true, true
	case r.err == nil && r.status == http.StatusNotFound:
		w.record(client, in, call, ret, kvOutput{})
		w.tally(true, false)
		return seen{}, false, true
	}
	w.tally(false, false)
	return seen{}, false, false
}

// write sends a put or a cas (with If-Match: "rev"); it reports whether
// the replica answered it (200, or 412 for a cas).
func (w *configWorkload) write(ctx context.Context, client int, in kvInput, rev int64) bool {
	var hdr map[string]string
	if in.Op == "cas" {
		hdr = map[string]string{"If-Match": strconv.Quote(strconv.FormatInt(rev, 10))}
	}
	body, _ := json.Marshal(in.Value)
	callT := time.Now()
	call := w.now()
	r := w.s.do(ctx, http.MethodPut, w.s.c.url("config", in.Node)+"/v1/kv"+in.Key, hdr, body, opTimeout)
	ret := w.now()
	switch {
	case r.err == nil && r.status == http.StatusOK:
		var e entry
		_ = json.Unmarshal(r.body, &e)
		w.record(client, in, call, ret, kvOutput{OK: true, Rev: e.ModRevision})
		w.tally(true, false)
		at := time.Now()
		w.s.ack(at)
		w.mu.Lock()
		w.writeAcks[in.Node] = append(w.writeAcks[in.Node], ackRecord{call: callT, ret: at})
		w.mu.Unlock()
		return true
	case r.err == nil && r.status == http.StatusPreconditionFailed && in.Op == "cas":
		var p struct {
			ModRevision int64 `json:"modRevision"`
		}
		_ = json.Unmarshal(r.body, &p)
		w.record(client, in, call, ret, kvOutput{Rev: p.ModRevision})
		w.tally(false, false)
		return true
	case r.refused || (r.err == nil && r.status < 500):
		// Never sent, or refused before it was proposed: no effect.
		if r.err == nil {
			w.s.logf("config: %s %s on n%d: %d %s", in.Op, in.Key, in.Node, r.status, r.body)
		}
		w.tally(false, false)
	default:
		w.record(client, in, call, -1, kvOutput{Unknown: true})
		w.tally(false, true)
	}
	return false
}

// finalReads reads every key linearizably from every replica, into the
// history, after the workload stopped and the cluster healed (each read
// tried up to 5 times).
func (w *configWorkload) finalReads(ctx context.Context) {
	for node := range w.s.c.nodes() {
		for k := range w.keys {
			key := configPrefix + "k" + strconv.Itoa(k)
			for range 5 {
				if _, _, answered := w.get(ctx, finalClient+node, node, key); answered || !sleepCtx(ctx, time.Second) {
					break
				}
			}
		}
	}
}

// history prepares the operations for the checker: a failed cas's
// current value is filled in from its revision where some write or read
// tied that revision to a value; unknown calls end after everything; an
// unknown call whose value nobody observed is left out unless a failed cas
// on its key came after it (its effect could explain that failure). Leaving
// it out is exact otherwise: only a read or a failed cas can observe a
// write, and no read returned its value.
func (w *configWorkload) history() (ops []porcupine.Operation, unknown, dropped int) {
	w.mu.Lock()
	all := slices.Clone(w.ops)
	w.mu.Unlock()
	type kv struct{ k, v string }
	observed := map[kv]bool{}
	valueAt := map[int64]string{}
	var end int64
	lastFailedCAS := map[string]int64{}
	for _, op := range all {
		end = max(end, op.Return, op.Call)
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		switch {
		case in.Op == "get" && out.Exists:
			observed[kv{in.Key, out.Value}] = true
			valueAt[out.Rev] = out.Value
		case out.OK:
			valueAt[out.Rev] = in.Value
		case in.Op == "cas" && !out.Unknown:
			lastFailedCAS[in.Key] = max(lastFailedCAS[in.Key], op.Return)
			observed[kv{in.Key, in.Expect}] = true
		}
	}
	for _, op := range all {
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		if in.Op == "cas" && !out.OK && !out.Unknown {
			out.Value = valueAt[out.Rev]
			op.Output = out
		}
		if out.Unknown {
			unknown++
			if !observed[kv{in.Key, in.Value}] && lastFailedCAS[in.Key] < op.Call {
				dropped++
				continue
			}
			op.Return = end + 1
		}
		ops = append(ops, op)
	}
	return ops, unknown, dropped
}

// check judges the history: linearizability (porcupine), revisions
// consistent with values, and no acknowledged write lost. It returns the
// table line.
func (w *configWorkload) check(runDir string) counts {
	c := w.counts
	ops, unknown, dropped := w.history()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, 5*time.Minute)
	w.s.logf("config: porcupine %v on %d operations (%d with unknown outcome, %d of them never observed and left out) in %s",
		res, len(ops), unknown, dropped, time.Since(start).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		c.Violations++
		path := filepath.Join(runDir, "config-linearizability.html")
		if f, err := os.Create(path); err == nil {
			_ = porcupine.Visualize(registerModel, info, f)
			f.Close()
		}
		c.Notes = append(c.Notes, "NOT LINEARIZABLE: see "+path+"\n"+describeIllegal(ops, info))
	case porcupine.Unknown:
		c.Notes = append(c.Notes, "linearizability: the checker timed out (unknown)")
	}
	c.Notes = append(c.Notes, w.revisionViolations(&c)...)
	c.Notes = append(c.Notes, w.lostWrites(&c)...)
	return c
}

// describeIllegal says, for each key whose history porcupine could not
// linearize, where the longest linearization it found stops: its last
// operations and the earliest operations it could not place next.
func describeIllegal(ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	var b strings.Builder
	parts := registerModel.Partition(ops)
	for p, lins := range info.PartialLinearizationsOperations() {
		var longest []porcupine.Operation
		for _, l := range lins {
			if len(l) > len(longest) {
				longest = l
			}
		}
		if p >= len(parts) || len(longest) == len(parts[p]) {
			continue
		}
		fmt.Fprintf(&b, "    %s: %d of %d operations linearized; the last ones:\n", parts[p][0].Input.(kvInput).Key, len(longest), len(parts[p]))
		placed := map[[2]int64]bool{}
		for _, op := range longest {
			placed[[2]int64{int64(op.ClientId), op.Call}] = true
		}
		for _, op := range longest[max(0, len(longest)-3):] {
			fmt.Fprintf(&b, "      %s\n", describeOp(op))
		}
		var next []porcupine.Operation
		for _, op := range parts[p] {
			if !placed[[2]int64{int64(op.ClientId), op.Call}] {
				next = append(next, op)
			}
		}
		sort.Slice(next, func(i, j int) bool { return next[i].Call < next[j].Call })
		fmt.Fprintf(&b, "    and the first of those it could not place after them:\n")
		for _, op := range next[:min(len(next), 6)] {
			fmt.Fprintf(&b, "      %s\n", describeOp(op))
		}
	}
	return b.String()
}

// describeOp is one operation with its client and times (since the start).
func describeOp(op porcupine.Operation) string {
	ret := "end"
	if op.Return >= 0 && !op.Output.(kvOutput).Unknown {
		ret = time.Duration(op.Return).Round(time.Microsecond).String()
	}
	return fmt.Sprintf("client %d [%s, %s] %s", op.ClientId, time.Duration(op.Call).Round(time.Microsecond), ret, registerModel.DescribeOperation(op.Input, op.Output))
}

// revisionViolations checks that a revision always names the same value:
// a read's (value, modRevision) agrees with the write acknowledged at that
// revision.
func (w *configWorkload) revisionViolations(c *counts) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	type kr struct {
		key string
		rev int64
	}
	byRev := map[kr]string{}
	var notes []string
	for _, op := range w.ops {
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		var v string
		switch {
		case out.OK:
			v = in.Value
		case in.Op == "get" && out.Exists:
			v = out.Value
		default:
			continue
		}
		k := kr{in.Key, out.Rev}
		if prev, ok := byRev[k]; ok && prev != v {
			c.Violations++
			notes = append(notes, fmt.Sprintf("revision %d of %s named two values: %s and %s", out.Rev, in.Key, prev, v))
			continue
		}
		byRev[k] = v
	}
	return notes
}

// lostWrites checks each key's final value (the last read, after the run)
// against the acknowledged writes: a write acknowledged before the write
// of the final value was even sent must not be the one that survived, and
// the final value must be one somebody wrote.
func (w *configWorkload) lostWrites(c *counts) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	final := map[string]porcupine.Operation{}
	writes := map[string]porcupine.Operation{} // by value
	for _, op := range w.ops {
		in, out := op.Input.(kvInput), op.Output.(kvOutput)
		if op.ClientId >= finalClient && in.Op == "get" {
			final[in.Key] = op
		}
		if in.Op != "get" && (out.OK || out.Unknown) {
			writes[in.Value] = op
		}
	}
	var notes []string
	keys := slices.Sorted(mapKeys(final))
	for _, key := range keys {
		out := final[key].Output.(kvOutput)
		if !out.Exists {
			for _, op := range w.ops {
				if op.Input.(kvInput).Key == key && op.Output.(kvOutput).OK {
					c.Violations++
					notes = append(notes, fmt.Sprintf("LOST: %s is absent at the end but %s was acknowledged", key, op.Input.(kvInput).Value))
					break
				}
			}
			continue
		}
		wr, ok := writes[out.Value]
		if !ok {
			c.Violations++
			notes = append(notes, fmt.Sprintf("%s ends as %s, which no client wrote", key, out.Value))
			continue
		}
		if wr.Output.(kvOutput).Unknown {
			continue
		}
		for _, op := range w.ops {
			in, o := op.Input.(kvInput), op.Output.(kvOutput)
			if in.Key == key && o.OK && op.Call > wr.Return {
				c.Violations++
				notes = append(notes, fmt.Sprintf("LOST: %s ends as %s (acknowledged at +%s), but %s was sent after that (+%s) and acknowledged",
					key, out.Value, time.Duration(wr.Return).Round(time.Millisecond), in.Value, time.Duration(op.Call).Round(time.Millisecond)))
				break
			}
		}
	}
	return notes
}

// listing is a replica's serializable view of every key.
type listing struct {
	Revision int64
	Items    []entry
}

// compareReplicas reads every replica's listing serializably once they
// agree on the revision (waiting up to a bound), and reports differences.
func (w *configWorkload) compareReplicas(ctx context.Context, c *counts) {
	var views []listing
	deadline := time.Now().Add(30 * time.Second)
	for {
		views = views[:0]
		var err error
		for node := range w.s.c.nodes() {
			var l listing
			if l, err = w.list(ctx, node); err != nil {
				break
			}
			views = append(views, l)
		}
		same := err == nil
		for _, v := range views[min(1, len(views)):] {
			same = same && v.Revision == views[0].Revision
		}
		if same || time.Now().After(deadline) || !sleepCtx(ctx, 500*time.Millisecond) {
			if err != nil {
				c.Violations++
				c.Notes = append(c.Notes, "replicas could not be listed at the end: "+err.Error())
				return
			}
			break
		}
	}
	for i, v := range views[1:] {
		if v.Revision != views[0].Revision || !reflect.DeepEqual(v.Items, views[0].Items) {
			c.Violations++
			c.Notes = append(c.Notes, fmt.Sprintf("replicas differ at the end: config-0 at revision %d with %d keys, config-%d at revision %d with %d keys",
				views[0].Revision, len(views[0].Items), i+1, v.Revision, len(v.Items)))
		}
	}
	if len(views) > 0 {
		w.s.logf("config: every replica at revision %d with %d keys", views[0].Revision, len(views[0].Items))
	}
}

// list pages through a replica's serializable listing.
func (w *configWorkload) list(ctx context.Context, node int) (listing, error) {
	var l listing
	after := ""
	for range 100 {
		u := w.s.c.url("config", node) + "/v1/kv?prefix=/&consistency=serializable&limit=1000"
		if after != "" {
			u += "&after=" + after
		}
		r := w.s.do(ctx, http.MethodGet, u, nil, nil, opTimeout)
		if r.err != nil || r.status != http.StatusOK {
			return l, fmt.Errorf("list config-%d: %d %s %v", node, r.status, r.body, r.err)
		}
		var page struct {
			Items    []entry `json:"items"`
			Revision int64   `json:"revision"`
			Next     *string `json:"next"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			return l, err
		}
		if l.Revision == 0 {
			l.Revision = page.Revision
		}
		l.Items = append(l.Items, page.Items...)
		if page.Next == nil {
			sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Key < l.Items[j].Key })
			return l, nil
		}
		after = *page.Next
	}
	return l, fmt.Errorf("list config-%d: more than 100 pages", node)
}

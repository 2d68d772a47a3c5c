package kv_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stewardhq/steward/services/config/kv"
)

// churn applies n commands of every kind to h: puts on a few hot keys (long
// histories) and many cold ones, leased puts, deletes, prefix deletes,
// transactions, fenced writes, lease grants, keepalives and revokes, with
// the clock moving so that compaction drops versions and whole records.
func churn(h *harness, rng *rand.Rand, n int) {
	var leases []int64
	for range n {
		key := fmt.Sprintf("/k/%d", rng.IntN(40))
		if rng.IntN(3) == 0 {
			key = fmt.Sprintf("/hot/%d", rng.IntN(3))
		}
		val := raw(fmt.Sprint(rng.IntN(1000)))
		switch rng.IntN(10) {
		case 0, 1, 2:
			h.do(kv.Command{Op: "put", Key: key, Value: val})
		case 3:
			var id int64
			if len(leases) > 0 {
				id = leases[rng.IntN(len(leases))]
			}
			h.do(kv.Command{Op: "put", Key: key, Value: val, Lease: id})
		case 4:
			h.do(kv.Command{Op: "delete", Key: key})
		case 5:
			h.do(kv.Command{Op: "deletePrefix", Prefix: fmt.Sprintf("/k/%d", rng.IntN(4))})
		case 6:
			h.do(kv.Command{Op: "txn", Txn: &kv.Txn{
				Compare: []kv.Compare{{Key: key, Target: "version", Op: ">", Value: raw(`2`)}},
				Success: []kv.Op{{Put: &kv.PutOp{Key: key, Value: val}}, {Delete: &kv.DeleteOp{Key: "/hot/0"}}},
				Failure: []kv.Op{{Put: &kv.PutOp{Key: key, Value: val}}, {Put: &kv.PutOp{Key: key, Value: raw(`"again"`)}}}}})
		case 7:
			h.do(kv.Command{Op: "put", Key: "/fenced", Value: val, Fence: &kv.Fence{Name: fmt.Sprintf("f%d", rng.IntN(3)), Token: int64(rng.IntN(50))}})
		case 8:
			if r := h.do(kv.Command{Op: "grant", TTL: time.Minute}); r.Lease != nil {
				leases = append(leases, r.Lease.ID)
			}
		case 9:
			if len(leases) > 0 {
				i := rng.IntN(len(leases))
				op := "keepalive"
				if rng.IntN(2) == 0 {
					op = "revoke"
				}
				h.do(kv.Command{Op: op, ID: leases[i]})
				if op == "revoke" {
					leases = append(leases[:i], leases[i+1:]...)
				}
			}
		}
		h.now = h.now.Add(time.Second)
	}
}

func snapshotBytes(t *testing.T, s *kv.Machine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSnapshotViewIsPointInTime takes views between bursts of commands and
// writes each one only after more commands changed the store (the first
// one concurrently with them, as the log does, for the race detector). A
// view must write exactly the bytes Snapshot wrote when it was taken, and
// restore to that state.
func TestSnapshotViewIsPointInTime(t *testing.T) {
	h := newHarness(t, 60) // short history: compaction runs throughout
	rng := rand.New(rand.NewPCG(1, 2))
	churn(h, rng, 300)

	type taken struct {
		want  []byte
		write func(w *bytes.Buffer) error
	}
	var views []taken
	view := func() taken {
		write := h.s.SnapshotView()
		return taken{want: snapshotBytes(t, h.s), write: func(w *bytes.Buffer) error { return write(w) }}
	}

	first := view()
	var concurrent bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- first.write(&concurrent) }()
	churn(h, rng, 500)
	if err := <-done; err != nil {
		t.Fatalf("writing the first view: %v", err)
	}
	if !bytes.Equal(concurrent.Bytes(), first.want) {
		t.Fatalf("view written during Apply: %d bytes, differs from the %d bytes Snapshot wrote when it was taken", concurrent.Len(), len(first.want))
	}

	for range 4 {
		views = append(views, view())
		churn(h, rng, 400)
	}
	for i, v := range append(views, first) {
		var got bytes.Buffer
		if err := v.write(&got); err != nil {
			t.Fatalf("view %d: %v", i, err)
		}
		if !bytes.Equal(got.Bytes(), v.want) {
			t.Fatalf("view %d: %d bytes, differs from the %d bytes Snapshot wrote when it was taken", i, got.Len(), len(v.want))
		}
		if bytes.Equal(v.want, snapshotBytes(t, h.s)) {
			t.Fatalf("view %d equals the final state: the churn after it changed nothing", i)
		}
		r := kv.New(1)
		if err := r.Restore(bytes.NewReader(got.Bytes())); err != nil {
			t.Fatalf("Restore(view %d): %v", i, err)
		}
		if back := snapshotBytes(t, r); !bytes.Equal(back, v.want) {
			t.Fatalf("view %d restored: Snapshot gives %d bytes, want the view's %d", i, len(back), len(v.want))
		}
	}
}

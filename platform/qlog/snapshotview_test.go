package qlog_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// viewingRegisters is Registers with a SnapshotView whose writer announces
// itself on entered and then waits for release, so a test can hold a
// snapshot mid-write. The view copies the registers' snapshot bytes, which
// is cheap for a test's few registers.
type viewingRegisters struct {
	*qlogtest.Registers
	entered chan struct{}
	release chan struct{}
}

func (r *viewingRegisters) SnapshotView() func(io.Writer) error {
	var b bytes.Buffer
	err := r.Registers.Snapshot(&b)
	return func(w io.Writer) error {
		if err != nil {
			return err
		}
		r.entered <- struct{}{}
		<-r.release
		_, err := w.Write(b.Bytes())
		return err
	}
}

// TestSnapshotViewDoesNotBlockApply holds a snapshot inside its view
// writer and requires proposals and reads to complete meanwhile; then the
// snapshot must hold the state at the view, and a replica must restore it.
func TestSnapshotViewDoesNotBlockApply(t *testing.T) {
	srv := qlogtest.StartServer(t)
	logger, _ := testLogger(t)
	cfg := func(id string, store qlog.SnapshotStore) qlog.Config {
		return qlog.Config{ReplicaID: id, Voters: []string{"r0"}, Snapshots: store,
			SnapshotEvery: 1 << 40, SnapshotInterval: time.Hour, Logger: logger}
	}
	store := &memSnapshots{}
	sm := &viewingRegisters{Registers: qlogtest.NewRegisters(), entered: make(chan struct{}), release: make(chan struct{})}
	l := openLog(t, srv.Connect(t), cfg("r0", store), sm)
	propose(t, l, qlogtest.Put("a", "1"), "")
	propose(t, l, qlogtest.Put("b", "2"), "")
	atView := l.Revision()

	type taken struct {
		rev int64
		err error
	}
	done := make(chan taken, 1)
	go func() {
		rev, err := l.TakeSnapshot(context.Background())
		done <- taken{rev, err}
	}()
	select {
	case <-sm.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("TakeSnapshot never called the view's writer")
	}
	// The snapshot is now stuck writing. Under the locked path this
	// Propose would wait for it (its Apply needs the write lock) and time
	// out.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	res, err := l.Propose(ctx, qlogtest.Put("a", "3"), qlog.ProposeOptions{})
	cancel()
	if err != nil {
		close(sm.release)
		t.Fatalf("Propose while a snapshot is being written: %v; want it applied meanwhile", err)
	}
	var got string
	if err := l.Read(context.Background(), qlog.Serializable, func(int64) error {
		got, _ = sm.Get("a")
		return nil
	}); err != nil || got != "3" {
		close(sm.release)
		t.Fatalf("Read(a) while a snapshot is being written = %q, %v; want 3", got, err)
	}
	close(sm.release)
	tk := <-done
	if tk.err != nil || tk.rev != atView {
		t.Fatalf("TakeSnapshot = %d, %v; want %d (the revision of the view)", tk.rev, tk.err, atView)
	}
	if res.Revision <= atView {
		t.Fatalf("the put during the snapshot got revision %d, want after the view's %d", res.Revision, atView)
	}

	s, ok := store.at(atView)
	if !ok {
		t.Fatalf("no snapshot stored at revision %d", atView)
	}
	// The body is the state at the view: a=1, not the 3 applied after it.
	n := binary.BigEndian.Uint32(s.Data)
	regs := qlogtest.NewRegisters()
	if err := regs.Restore(bytes.NewReader(s.Data[4+n:])); err != nil {
		t.Fatal(err)
	}
	if a, _ := regs.Get("a"); a != "1" || regs.Len() != 2 {
		t.Fatalf("snapshot at the view holds a=%q and %d registers; want a=1 of 2", a, regs.Len())
	}
	// A replica restores it (checksum, header) and replays the rest.
	o := qlogtest.NewRegisters()
	ol := openLog(t, srv.Connect(t), cfg("o1", &memSnapshots{snaps: []qlog.Snapshot{s}}), o)
	if err := ol.Read(context.Background(), qlog.Linearizable, func(int64) error {
		got, _ = o.Get("a")
		return nil
	}); err != nil || got != "3" {
		t.Fatalf("replica restored from the snapshot reads a = %q, %v; want 3", got, err)
	}
}

package qlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestBatchEncodingsMix is the rolling upgrade to the binary frame between
// replicas of this version: two voters of one log, one writing JSON
// batches (the default) and one writing binary frames. Each writes in the
// encoding it was given, and both apply every entry of either to the same
// state at the same revision.
func TestBatchEncodingsMix(t *testing.T) {
	srv := qlogtest.StartServer(t)
	voters := []string{"r0", "r1"}
	r0 := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0", Voters: voters})
	r1 := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r1", Voters: voters, BatchEncoding: qlog.BatchBinary})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, _ := jetstream.New(srv.Connect(t))
	stream, err := js.Stream(ctx, qlog.StreamName("test"))
	if err != nil {
		t.Fatal(err)
	}
	lastFirstByte := func() byte {
		t.Helper()
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.GetMsg(ctx, info.State.LastSeq)
		if err != nil || len(msg.Data) == 0 {
			t.Fatalf("last message: %v", err)
		}
		return msg.Data[0]
	}
	for i, w := range []struct {
		r     *replica
		value string
		first byte
	}{{r0, "json", '{'}, {r1, "binary", 0}, {r0, "json again", '{'}, {r1, "binary again", 0}} {
		res, reply := propose(t, w.r.log, qlogtest.Put("k", w.value), "")
		if !reply.OK || res.Revision != int64(i+1) {
			t.Fatalf("put %q = rev %d %+v, want rev %d", w.value, res.Revision, reply, i+1)
		}
		if got := lastFirstByte(); got != w.first {
			t.Fatalf("put %q: the message begins with %#x, want %#x", w.value, got, w.first)
		}
		for _, r := range []*replica{r0, r1} {
			if v, ok, rev := r.get(t, qlog.Linearizable, "k"); !ok || v != w.value || rev != int64(i+1) {
				t.Fatalf("after put %q a replica reads %q %v at %d", w.value, v, ok, rev)
			}
		}
	}
}

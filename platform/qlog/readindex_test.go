package qlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestReadIndexFromStreamInfo feeds the read index's parser the STREAM.INFO
// answers of real servers: a standalone server and a clustered stream's
// leader give the last sequence; the one member left of an R3 stream whose
// two other servers are gone answers too, with its own state and no
// leader, and that answer must be refused (it may lack a write a majority
// acknowledged).
func TestReadIndexFromStreamInfo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	info := func(t *testing.T, nc *nats.Conn, stream string) []byte {
		t.Helper()
		msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+stream, nil)
		if err != nil {
			t.Fatalf("STREAM.INFO: %v", err)
		}
		return msg.Data
	}
	publish := func(t *testing.T, js jetstream.JetStream, subject string, n int) {
		t.Helper()
		for range n {
			if _, err := js.Publish(ctx, subject, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("standalone", func(t *testing.T) {
		nc := qlogtest.StartServer(t).Connect(t)
		js, _ := jetstream.New(nc)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RI", Subjects: []string{"ri.>"}}); err != nil {
			t.Fatal(err)
		}
		publish(t, js, "ri.a", 3)
		if last, err := qlog.ParseStreamInfoLast(info(t, nc, "RI")); err != nil || last != 3 {
			t.Fatalf("last = %d, %v; want 3", last, err)
		}
		if _, err := qlog.ParseStreamInfoLast(info(t, nc, "NOPE")); err != jetstream.ErrStreamNotFound {
			t.Fatalf("unknown stream: %v, want ErrStreamNotFound", err)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs a 3-node NATS cluster")
		}
		c := qlogtest.StartCluster(t, 3)
		nc := qlogtest.Connect(t, c.Servers[0].URL())
		js, _ := jetstream.New(nc)
		waitFor(t, "the cluster's JetStream to elect its meta leader", 60*time.Second, func() bool {
			actx, acancel := context.WithTimeout(ctx, time.Second)
			defer acancel()
			_, err := js.AccountInfo(actx)
			return err == nil
		})
		// The meta leader may answer before it has heard from every
		// server: placing three replicas fails ("no suitable peers")
		// until it has.
		waitFor(t, "an R3 stream to be placed", 30*time.Second, func() bool {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RI", Subjects: []string{"ri.>"}, Replicas: 3})
			return err == nil
		})
		publish(t, js, "ri.a", 5)
		if last, err := qlog.ParseStreamInfoLast(info(t, nc, "RI")); err != nil || last != 5 {
			t.Fatalf("with a leader: last = %d, %v; want 5", last, err)
		}
		c.Servers[1].Stop()
		c.Servers[2].Stop()
		// n0 answers as the leader until it notices it lost its quorum
		// (taken: no other leader can exist before then, and acknowledged
		// writes reached a majority of voters, which the read index asks
		// too); then, as the member left of a leaderless group, with no
		// leader named.
		waitFor(t, "the member left to answer STREAM.INFO naming no leader", 60*time.Second, func() bool {
			rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
			defer rcancel()
			msg, err := nc.RequestWithContext(rctx, "$JS.API.STREAM.INFO.RI", nil)
			if err != nil {
				return false
			}
			var named struct {
				Cluster struct{ Leader string } `json:"cluster"`
			}
			if err := json.Unmarshal(msg.Data, &named); err != nil {
				t.Fatal(err)
			}
			last, perr := qlog.ParseStreamInfoLast(msg.Data)
			switch {
			case named.Cluster.Leader != "" && (perr != nil || last != 5):
				t.Fatalf("an answer of leader %s: last = %d, %v; want 5", named.Cluster.Leader, last, perr)
			case named.Cluster.Leader == "" && perr == nil:
				t.Fatalf("a leaderless member's answer was taken: last %d from %s", last, msg.Data)
			}
			return named.Cluster.Leader == ""
		})
	})
}

// BenchmarkReadIndexRequest compares the two leader-only ways to learn a
// stream's last sequence, by the size of the last message: the message
// get API (the read index before, which ships the message) and STREAM.INFO
// (now, whose answer does not grow with it). Each op is one request and
// the decoding of its answer, on a standalone embedded server.
func BenchmarkReadIndexRequest(b *testing.B) {
	ctx := context.Background()
	nc := qlogtest.StartServer(b).Connect(b)
	js, _ := jetstream.New(nc)
	for _, size := range []int{256, 64 << 10, 1 << 20} {
		stream := fmt.Sprintf("RI%d", size)
		subject := "ri." + stream
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}, MaxMsgSize: 2 << 20}); err != nil {
			b.Fatal(err)
		}
		if _, err := js.Publish(ctx, subject, make([]byte, size)); err != nil {
			b.Fatal(err)
		}
		getReq, _ := json.Marshal(map[string]string{"last_by_subj": subject})
		b.Run(fmt.Sprintf("msg-get/last=%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				msg, err := nc.Request("$JS.API.STREAM.MSG.GET."+stream, getReq, 5*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				var resp struct {
					Message *struct {
						Seq uint64 `json:"seq"`
					} `json:"message"`
				}
				if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.Message == nil || resp.Message.Seq != 1 {
					b.Fatalf("%v %s", err, msg.Data[:min(200, len(msg.Data))])
				}
				b.ReportMetric(float64(len(msg.Data)), "answer-bytes")
			}
		})
		b.Run(fmt.Sprintf("stream-info/last=%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				msg, err := nc.Request("$JS.API.STREAM.INFO."+stream, nil, 5*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if last, err := qlog.ParseStreamInfoLast(msg.Data); err != nil || last != 1 {
					b.Fatalf("%d %v", last, err)
				}
				b.ReportMetric(float64(len(msg.Data)), "answer-bytes")
			}
		})
	}
}

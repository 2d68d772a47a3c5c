package qlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestStatus: a voter and an observer of one log, after three writes,
// report where they are and what JetStream says of the stream; once its
// NATS server is gone a replica still answers, at once, with its
// position and why the stream is missing.
func TestStatus(t *testing.T) {
	srv := qlogtest.StartServer(t)
	voter := openReplica(t, srv.Connect(t), qlog.Config{Service: "status", ReplicaID: "v0", Voters: []string{"v0"}})
	observer := openReplica(t, srv.Connect(t), qlog.Config{Service: "status", ReplicaID: "o0", Voters: []string{"v0"}})
	for _, k := range []string{"a", "b", "c"} {
		propose(t, voter.log, qlogtest.Put(k, "v"), "")
	}
	waitFor(t, "the observer to apply revision 3", 10*time.Second, func() bool { return observer.log.Revision() == 3 })

	for _, tc := range []struct {
		name    string
		log     *qlog.Log
		replica string
		voter   bool
	}{
		{"voter", voter.log, "v0", true},
		{"observer", observer.log, "o0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.log.Status(context.Background())
			if st.Service != "status" || st.Replica != tc.replica || st.Voter != tc.voter || !st.Ready || st.NotReady != "" {
				t.Errorf("Status = %+v, want service status, replica %s, voter %v, ready", st, tc.replica, tc.voter)
			}
			if st.Revision != 3 || st.AppliedSequence == 0 || st.Lag != 0 || st.StreamLastSequence != st.AppliedSequence {
				t.Errorf("Status position = revision %d, applied %d, stream last %d, lag %d; want revision 3, applied = stream last > 0, lag 0",
					st.Revision, st.AppliedSequence, st.StreamLastSequence, st.Lag)
			}
			s := st.Stream
			if s == nil {
				t.Fatalf("Stream = nil (%s), want the stream's state", st.StreamError)
			}
			if s.Name != "STEWARD_STATUS" || s.Replicas != 1 || s.Messages == 0 || s.Bytes == 0 ||
				s.FirstSequence != 1 || s.LastSequence != st.AppliedSequence || s.Peers == nil || len(s.Peers) != 0 {
				t.Errorf("Stream = %+v, want STEWARD_STATUS, 1 replica, messages 1..%d, no peers", s, st.AppliedSequence)
			}
		})
	}

	srv.Stop()
	start := time.Now()
	st := voter.log.Status(context.Background())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Status took %v without a NATS server, want about a second at most", took)
	}
	if st.Stream != nil || st.StreamError == "" || st.Revision != 3 || st.AppliedSequence == 0 {
		t.Errorf("Status without NATS = %+v, want no stream, a stream error, revision 3", st)
	}

	voter.log.Close()
	if st := voter.log.Status(context.Background()); st.Ready || st.NotReady == "" {
		t.Errorf("Status of a closed replica = ready %v (%q), want not ready with the reason", st.Ready, st.NotReady)
	}
}

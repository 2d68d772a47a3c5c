package qlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestProposeTimeoutEndsAProposalWithoutQuorum: a proposal whose caller
// never gives up ends after ProposeTimeout (and within 9/8 of it, the
// shared deadline's slice) with ErrUnknownOutcome when a majority of
// voters never applies it: two of the three voters never run.
func TestProposeTimeoutEndsAProposalWithoutQuorum(t *testing.T) {
	srv := qlogtest.StartServer(t)
	const timeout = 400 * time.Millisecond
	r0 := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0", Voters: []string{"r0", "r1", "r2"}, ProposeTimeout: timeout})
	for range 3 {
		began := time.Now()
		_, err := r0.log.Propose(context.Background(), qlogtest.Put("k", "v"), qlog.ProposeOptions{})
		took := time.Since(began)
		if !errors.Is(err, qlog.ErrUnknownOutcome) {
			t.Fatalf("Propose without a quorum: %v, want ErrUnknownOutcome", err)
		}
		if took < timeout {
			t.Fatalf("Propose gave up after %s, before ProposeTimeout %s", took, timeout)
		}
		if took > 5*timeout {
			t.Fatalf("Propose gave up after %s, long after ProposeTimeout %s", took, timeout)
		}
		time.Sleep(timeout / 5) // the next one in another slice
	}
}

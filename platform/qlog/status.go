package qlog

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Status is one replica's own view of itself and of its stream, for an
// operator's overview (GET /status of every service, the gateway's GET
// /gateway/cluster): what the metrics' gauges say, in one answer.
type Status struct {
	Service string `json:"service"`
	Replica string `json:"replica"`
	// Ready is Ready() == nil; NotReady says why not when it is false.
	Ready    bool   `json:"ready"`
	NotReady string `json:"notReady,omitempty"`
	Voter    bool   `json:"voter"`
	// Revision and AppliedSequence are how far the replica applied.
	Revision        int64  `json:"revision"`
	AppliedSequence uint64 `json:"appliedSequence"`
	// StreamLastSequence is the stream's last sequence: the one Stream
	// says when JetStream answered, else the stream leader's as the
	// replica last heard it. Lag is StreamLastSequence minus
	// AppliedSequence, at least 0.
	StreamLastSequence uint64 `json:"streamLastSequence"`
	Lag                uint64 `json:"lag"`
	// Stream is JetStream's account of the stream; nil, with
	// StreamError, when it did not answer within statusTimeout.
	Stream      *StreamStatus `json:"stream"`
	StreamError string        `json:"streamError,omitempty"`
}

// StreamStatus is what JetStream says of a service's stream.
type StreamStatus struct {
	Name          string `json:"name"`
	Messages      uint64 `json:"messages"`
	Bytes         uint64 `json:"bytes"`
	FirstSequence uint64 `json:"firstSequence"`
	LastSequence  uint64 `json:"lastSequence"`
	// Replicas is the stream's configured replica count; Leader the NATS
	// server that leads it ("" while none does) and Peers the other
	// servers that hold it.
	Replicas int          `json:"replicas"`
	Leader   string       `json:"leader"`
	Peers    []StreamPeer `json:"peers"`
}

// StreamPeer is one NATS server holding a copy of the stream besides its
// leader: whether it is caught up with the leader, and how many
// operations behind it is.
type StreamPeer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Lag     uint64 `json:"lag"`
}

// statusTimeout bounds Status's JetStream request: the answer is for a
// person's overview, and a slow one says more than a late one.
const statusTimeout = time.Second

// Status returns the replica's status. It asks JetStream for the
// stream's state (at most statusTimeout, or less when ctx ends sooner)
// and reads the replica's position after that answer, so that a
// caught-up replica shows no lag.
func (l *Log) Status(ctx context.Context) Status {
	st := Status{Service: l.cfg.Service, Replica: l.cfg.ReplicaID, Voter: l.voter, StreamLastSequence: l.streamLast.Load()}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	stream, err := l.js.Stream(ctx, StreamName(l.cfg.Service))
	if err != nil {
		st.StreamError = err.Error()
	} else {
		st.Stream = streamStatus(stream.CachedInfo())
		st.StreamLastSequence = st.Stream.LastSequence
	}
	if err := l.Ready(); err != nil {
		st.NotReady = err.Error()
	} else {
		st.Ready = true
	}
	l.mu.RLock()
	st.Revision, st.AppliedSequence = l.rev, l.seq
	l.mu.RUnlock()
	st.Lag = uint64(max(int64(st.StreamLastSequence)-int64(st.AppliedSequence), 0))
	return st
}

// streamStatus is the part of info Status shows.
func streamStatus(info *jetstream.StreamInfo) *StreamStatus {
	s := &StreamStatus{Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSequence: info.State.FirstSeq, LastSequence: info.State.LastSeq, Replicas: info.Config.Replicas,
		Peers: []StreamPeer{}}
	if c := info.Cluster; c != nil {
		s.Leader = c.Leader
		for _, p := range c.Replicas {
			s.Peers = append(s.Peers, StreamPeer{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag})
		}
	}
	return s
}

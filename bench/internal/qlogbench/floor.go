package qlogbench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/bench/internal/harness"
)

const (
	RawStream  = "BENCH_RAW"
	rawSubject = "bench.raw"
)

// Floor measures what JetStream itself does on the server qlog runs on:
// the lowest latency and highest throughput a log built on it could reach.
type Floor struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	payload []byte
}

func openFloor(ctx context.Context, s *harness.NATSServer, valueSize, inFlight int) (*Floor, error) {
	nc, err := s.Connect()
	if err != nil {
		return nil, err
	}
	return NewFloor(ctx, nc, 1, valueSize, inFlight)
}

// NewFloor creates the raw stream with the given replicas on nc's server
// (or cluster); the floor owns nc from here, even on error.
func NewFloor(ctx context.Context, nc *nats.Conn, replicas, valueSize, inFlight int) (*Floor, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(inFlight),
		jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		nc.Close()
		return nil, err
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     RawStream,
		Subjects: []string{rawSubject},
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("create stream %s: %w", RawStream, err)
	}
	return &Floor{NC: nc, JS: js, payload: harness.Filler(valueSize)}, nil
}

func (f *Floor) Close() { f.NC.Close() }

// SyncPublish publishes and waits for the stream's acknowledgement.
func (f *Floor) SyncPublish(ctx context.Context, _ int64) error {
	_, err := f.JS.Publish(ctx, rawSubject, f.payload)
	return err
}

// echo is an ordered consumer on the raw stream, read the way qlog's apply
// loop reads its log, for the publish-and-receive floor: a proposal is
// applied only once the message came back through such a consumer.
type echo struct {
	it        jetstream.MessagesContext
	delivered chan uint64 // stream sequences, in order
	done      chan struct{}
}

func (f *Floor) startEcho(ctx context.Context) (*echo, error) {
	st, err := f.JS.Stream(ctx, RawStream)
	if err != nil {
		return nil, err
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, err
	}
	e := &echo{it: it, delivered: make(chan uint64, 1024), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for {
			msg, err := it.Next()
			if err != nil {
				return
			}
			if meta, err := msg.Metadata(); err == nil {
				e.delivered <- meta.Sequence.Stream
			}
		}
	}()
	return e, nil
}

func (e *echo) stop() {
	e.it.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-e.delivered:
		}
	}
}

// publishAndReceive publishes, waits for the acknowledgement, and then for
// the consumer to deliver that message. One caller at a time.
func (f *Floor) publishAndReceive(e *echo) harness.Op {
	return func(ctx context.Context, _ int64) error {
		ack, err := f.JS.Publish(ctx, rawSubject, f.payload)
		if err != nil {
			return err
		}
		for {
			select {
			case seq := <-e.delivered:
				if seq >= ack.Sequence {
					return nil
				}
			case <-ctx.Done():
				return fmt.Errorf("message %d was not delivered: %w", ack.Sequence, ctx.Err())
			}
		}
	}
}

// AsyncPublish measures one publisher that keeps inFlight publishes
// outstanding (js.PublishAsync); a message's latency runs from the moment
// it is handed to PublishAsync until its acknowledgement arrives.
func (f *Floor) AsyncPublish(ctx context.Context, s harness.Settings, inFlight int) harness.Result {
	run := func(d time.Duration) harness.RunStats {
		type sent struct {
			at  time.Time
			ack jetstream.PubAckFuture
		}
		slots := make(chan struct{}, inFlight)
		queue := make(chan sent, inFlight)
		var (
			lat      []time.Duration
			errs     atomic.Int64
			errMu    sync.Mutex
			firstErr error
		)
		noteErr := func(err error) {
			errs.Add(1)
			errMu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			errMu.Unlock()
		}
		// JetStream acknowledges one stream's messages in order, so
		// collecting the futures in publish order measures each ack when
		// it arrives.
		collected := make(chan struct{})
		go func() {
			defer close(collected)
			for m := range queue {
				select {
				case <-m.ack.Ok():
					lat = append(lat, time.Since(m.at))
				case err := <-m.ack.Err():
					noteErr(err)
				}
				<-slots
			}
		}()
		start := time.Now()
		deadline := start.Add(d)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			slots <- struct{}{}
			at := time.Now()
			ack, err := f.JS.PublishAsync(rawSubject, f.payload, jetstream.WithStallWait(30*time.Second))
			if err != nil {
				<-slots
				noteErr(err)
				continue
			}
			queue <- sent{at, ack}
		}
		close(queue)
		<-collected
		return harness.NewRunStats(lat, int(errs.Load()), firstErr, time.Since(start))
	}
	if s.Warmup > 0 {
		run(s.Warmup)
	}
	var r harness.Result
	for range s.Runs {
		r.Runs = append(r.Runs, run(s.Duration))
	}
	return r
}
